#!/usr/bin/env bun
/** The `cortex` executable: one binary, gateway and neuron modes, operator commands. */
import { defineCommand } from "citty";
import { VERSION } from "../core/version.ts";
import { modelsCommand } from "./commands/models.ts";
import { neuronCommand } from "./commands/neuron.ts";
import { serveCommand } from "./commands/serve.ts";
import { statusCommand } from "./commands/status.ts";
import { runCli } from "./run-cli.ts";

export const main = defineCommand({
  meta: { name: "cortex", version: VERSION, description: "Run local LLMs across a fleet of GPU machines" },
  subCommands: { serve: serveCommand, neuron: neuronCommand, status: statusCommand, models: modelsCommand },
});

if (import.meta.main) {
  const code = await runCli(main, process.argv.slice(2), VERSION);
  // Servers resolve their command only when they stop; exit explicitly so a
  // lingering handle cannot keep a finished command alive.
  process.exit(code);
}
