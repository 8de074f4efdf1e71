/**
 * `cortex serve` with a models_dir and no [[models]]: every GGUF in it is
 * served under its file name, so `CORTEX_MODELS_DIR=… npm start` serves the
 * real models an operator put there.
 */
import { expect, test } from "bun:test";
import { copyFileSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { startLocalNeuron } from "../../src/cli/local-neuron.ts";
import { loadConfig } from "../../src/core/config/load-config.ts";
import { ensureDemoModel, TINY_MODEL_FILE } from "../../src/neuron/gguf/tiny-model.ts";

test("a models_dir without [[models]]: each GGUF is a model under its file name, at most the default context", async () => {
  const dir = mkdtempSync(join(tmpdir(), "cortex-local-neuron-"));
  try {
    const models = join(dir, "models");
    const demo = await ensureDemoModel(models);
    copyFileSync(demo, join(models, "second copy.gguf"));
    const path = join(dir, "cortex.toml");
    writeFileSync(path, `[neuron]\nmodels_dir = ${JSON.stringify(models)}\ndefault_context_size = 1024\n`);
    const local = await startLocalNeuron(loadConfig({ path, env: {} }));
    try {
      expect(local.models.map((m) => [m.id, m.file, m.context_size]).sort()).toEqual([
        [TINY_MODEL_FILE.replace(/\.gguf$/, ""), TINY_MODEL_FILE, 1024],
        ["second-copy", "second copy.gguf", 1024],
      ]);
    } finally {
      await local.stop();
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
