/**
 * The tiny model with a longer trained context. Its word-level tokenizer
 * needs ~1.4 characters per token, so Claude Code's ~48 KB first request is
 * ~35k tokens: over the demo model's 32768 (the neuron caps a load at the
 * trained context). Same weights and vocabulary, only
 * `llama.context_length` differs.
 */
import { join } from "node:path";
import { gv, writeGguf } from "../../../src/neuron/gguf/gguf-writer.ts";
import { buildTinyModel } from "../../../src/neuron/gguf/tiny-model.ts";

export const LONG_TINY_FILE = "cortex-tiny-long.gguf";

/** Writes `dir/cortex-tiny-long.gguf` with `contextLength` as its trained context; returns the path. */
export async function writeLongTinyModel(dir: string, contextLength: number): Promise<string> {
  const { spec } = buildTinyModel();
  const metadata = spec.metadata.map(([key, value]) =>
    key === "llama.context_length" ? ([key, gv.u32(contextLength)] as const) : ([key, value] as const),
  );
  const path = join(dir, LONG_TINY_FILE);
  await writeGguf(path, { ...spec, metadata });
  return path;
}
