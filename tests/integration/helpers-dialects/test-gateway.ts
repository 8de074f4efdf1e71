/**
 * Starts a gateway for dialect tests from a TOML config written to a temp
 * directory: either over an in-process neuron serving the tiny model from a
 * temp models directory, or over `[[neurons]]` the test runs itself.
 */
import { mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { basename, join } from "node:path";
import { startLocalNeuron } from "../../../src/cli/local-neuron.ts";
import { loadConfig } from "../../../src/core/config/load-config.ts";
import { configureLogging } from "../../../src/core/logger.ts";
import { type RunningGateway, startGateway } from "../../../src/gateway/run-gateway.ts";
import { ensureDemoModel, TINY_MODEL_FILE } from "../../../src/neuron/gguf/tiny-model.ts";
import { writeFimTinyModel } from "./fim-tiny-model.ts";
import { writeLongTinyModel } from "./long-tiny-model.ts";

export const TINY_ID = "cortex-tiny";

export interface TestModel {
  id: string;
  file?: string;
  contextSize?: number;
  vision?: boolean;
}

export interface TestGatewayOptions {
  models?: TestModel[];
  apiKeys?: string[];
  /** Scripted neurons to use instead of the in-process one. */
  neurons?: Array<{ name: string; endpoint: string }>;
  /** Also write the tiny model with this trained context, as LONG_TINY_FILE. */
  longContext?: number;
  /** Also write the tiny model with fill-in-the-middle tokens, as FIM_TINY_FILE. */
  fimModel?: boolean;
  /** gateway.context_overflow (default: the config's default, clamp). */
  contextOverflow?: "clamp" | "error";
  /** GGUF files from elsewhere (a real model in .cache/models) linked into the models directory. */
  linkFiles?: string[];
}

export interface TestGateway {
  gateway: RunningGateway;
  url: string;
  dir: string;
  stop(): Promise<void>;
}

function tomlString(value: string): string {
  return JSON.stringify(value);
}

/** The config file text; every value the tests depend on is spelled out. */
export function gatewayToml(options: TestGatewayOptions, modelsDir: string): string {
  const lines = [
    "[log]",
    'level = "warn"',
    "[gateway]",
    'listen = "127.0.0.1:0"',
    "metrics = false",
    `api_keys = [${(options.apiKeys ?? []).map(tomlString).join(", ")}]`,
    "poll_interval_ms = 200",
    "request_timeout_s = 60",
    "load_timeout_s = 60",
    ...(options.contextOverflow === undefined ? [] : [`context_overflow = "${options.contextOverflow}"`]),
    "[neuron]",
    `models_dir = ${tomlString(modelsDir)}`,
  ];
  for (const neuron of options.neurons ?? [])
    lines.push(
      "[[neurons]]",
      `name = ${tomlString(neuron.name)}`,
      `endpoint = ${tomlString(neuron.endpoint)}`,
    );
  for (const model of options.models ?? [{ id: TINY_ID }])
    lines.push(
      "[[models]]",
      `id = ${tomlString(model.id)}`,
      `file = ${tomlString(model.file ?? TINY_MODEL_FILE)}`,
      `context_size = ${model.contextSize ?? 2048}`,
      `vision = ${model.vision ?? false}`,
    );
  return `${lines.join("\n")}\n`;
}

export async function startTestGateway(options: TestGatewayOptions = {}): Promise<TestGateway> {
  const dir = mkdtempSync(join(tmpdir(), "cortex-dialects-"));
  const modelsDir = join(dir, "models");
  if (options.neurons === undefined) await ensureDemoModel(modelsDir);
  if (options.longContext !== undefined) await writeLongTinyModel(modelsDir, options.longContext);
  for (const file of options.linkFiles ?? []) {
    mkdirSync(modelsDir, { recursive: true });
    symlinkSync(file, join(modelsDir, basename(file)));
  }
  if (options.fimModel === true) await writeFimTinyModel(modelsDir);
  const path = join(dir, "cortex.toml");
  writeFileSync(path, gatewayToml(options, modelsDir));
  const config = loadConfig({ path, env: {} });
  configureLogging(config.file.log);
  const gateway = await startGateway(config, { startLocalNeuron });
  // A gateway answers 503 until a poll has seen a node up: wait for that, on its fleet's changes.
  await gateway.whenFleet((nodes) => nodes.length > 0 && nodes.every((node) => node.state === "up"));
  return {
    gateway,
    url: gateway.url,
    dir,
    async stop() {
      await gateway.stop();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
