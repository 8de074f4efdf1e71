/**
 * The layering rules in biome.json bite: `npm test`'s lint step fails when
 * ffi/ imports from src/ or the gateway imports the neuron or ffi. Runs the
 * project's own biome config over probe files laid out like the repo.
 */
import { afterAll, describe, expect, test } from "bun:test";
import { copyFileSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";

const root = join(import.meta.dir, "../..");
const dir = mkdtempSync(join(tmpdir(), "cortex-layering-"));
copyFileSync(join(root, "biome.json"), join(dir, "biome.json"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function lint(file: string, source: string): { exitCode: number; output: string } {
  const path = join(dir, file);
  mkdirSync(dirname(path), { recursive: true });
  writeFileSync(path, source);
  const proc = Bun.spawnSync([join(root, "node_modules/.bin/biome"), "lint", file], { cwd: dir });
  rmSync(path);
  return { exitCode: proc.exitCode, output: proc.stdout.toString() + proc.stderr.toString() };
}

describe("layering", () => {
  test.each([
    [
      "ffi/probe.ts",
      'import { CortexError } from "../src/core/errors.ts";\n\nexport const E = CortexError;\n',
    ],
    [
      "src/gateway/probe.ts",
      'import { startNeuron } from "../neuron/start-neuron.ts";\n\nexport const s = startNeuron;\n',
    ],
    ["src/gateway/fleet/probe.ts", 'export const m = await import("../../neuron/start-neuron.ts");\n'],
    ["src/gateway/probe.ts", 'export type { NativeError } from "../../ffi/native-error.ts";\n'],
  ])("%s importing across the layers fails lint", (file, source) => {
    const { exitCode, output } = lint(file, source);
    expect(output).toContain("noRestrictedImports");
    expect(exitCode).not.toBe(0);
  });

  test.each([
    ["ffi/probe.ts", 'import { NativeError } from "./native-error.ts";\n\nexport const E = NativeError;\n'],
    [
      "src/gateway/probe.ts",
      'import type { NeuronApi } from "./neuron-client.ts";\n\nexport type N = NeuronApi;\n',
    ],
  ])("%s importing within its layer passes", (file, source) => {
    expect(lint(file, source)).toMatchObject({ exitCode: 0 });
  });
});
