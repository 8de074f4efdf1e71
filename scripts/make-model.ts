/**
 * Writes a cortex test model (no download needed).
 *
 *   bun scripts/make-model.ts --out models/cortex-tiny.gguf            # bigram demo model, ~2.5 MB
 *   bun scripts/make-model.ts --out models/rand-300m.gguf --size 300M  # random weights, ~300 MiB, F16
 *
 * The file appears atomically (written to a temp file, then renamed).
 */
import { rename, rm } from "node:fs/promises";
import { parseArgs } from "node:util";
import { consola } from "consola";
import { writeRandomModel } from "../src/neuron/gguf/random-model.ts";
import { buildTinyModel, writeTinyModel } from "../src/neuron/gguf/tiny-model.ts";

const USAGE = "usage: bun scripts/make-model.ts --out <path> [--size N(K|M|G)] [--seed N]";

/** "300M" → bytes (binary units); undefined for malformed input. */
export function parseSize(text: string): number | undefined {
  const match = /^(\d+(?:\.\d+)?)\s*([KMG])i?B?$/i.exec(text.trim());
  if (!match) return undefined;
  const unit = { K: 2 ** 10, M: 2 ** 20, G: 2 ** 30 }[(match[2] ?? "M").toUpperCase() as "K" | "M" | "G"];
  return Math.round(Number(match[1]) * unit);
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      out: { type: "string" },
      size: { type: "string" },
      seed: { type: "string", default: "1" },
      help: { type: "boolean", short: "h" },
    },
  });
  if (values.help) {
    console.log(USAGE);
    return;
  }
  if (!values.out) throw new Error(`--out is required\n${USAGE}`);
  const seed = Number(values.seed);
  if (!Number.isInteger(seed) || seed < 0)
    throw new Error(`--seed must be a non-negative integer, got ${values.seed}`);
  const size = values.size === undefined ? undefined : parseSize(values.size);
  if (values.size !== undefined && (size === undefined || size < 2 ** 20)) {
    throw new Error(`--size must look like 300M or 2G (at least 1M), got ${values.size}`);
  }

  const temp = `${values.out}.${process.pid}.tmp`;
  const started = performance.now();
  try {
    if (size === undefined) {
      const model = buildTinyModel();
      const bytes = await writeTinyModel(temp, model);
      consola.info(
        `tiny bigram model: ${model.vocab.tokens.length} tokens, n_embd ${model.nEmbd}, ` +
          `greedy answers ≤ ${model.bigram.maxGreedySteps} tokens, ${bytes} bytes, version ${model.version}`,
      );
    } else {
      const { shape, bytes } = await writeRandomModel(temp, size, seed);
      consola.info(`random model: ${JSON.stringify(shape)}, ${(bytes / 2 ** 20).toFixed(1)} MiB`);
    }
    await rename(temp, values.out);
  } catch (error) {
    await rm(temp, { force: true });
    throw error;
  }
  consola.success(`wrote ${values.out} in ${((performance.now() - started) / 1000).toFixed(2)}s`);
}

if (import.meta.main) {
  main().catch((error: unknown) => {
    consola.error(error instanceof Error ? error.message : error);
    process.exit(1);
  });
}
