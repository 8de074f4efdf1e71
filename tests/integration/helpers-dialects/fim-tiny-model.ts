/**
 * The tiny model with fill-in-the-middle tokens: the same weights and
 * vocabulary, with `tokenizer.ggml.fim_{pre,suf,mid}_token_id` naming three
 * of its control tokens, so llama.cpp reports FIM tokens for it.
 */
import { join } from "node:path";
import { gv, writeGguf } from "../../../src/neuron/gguf/gguf-writer.ts";
import { buildTinyModel } from "../../../src/neuron/gguf/tiny-model.ts";
import { TINY_SPECIAL_TOKENS } from "../../../src/neuron/gguf/tiny-vocab.ts";

export const FIM_TINY_FILE = "cortex-tiny-fim.gguf";

/** Writes `dir/cortex-tiny-fim.gguf`; returns the path. */
export async function writeFimTinyModel(dir: string): Promise<string> {
  const { spec } = buildTinyModel();
  const metadata = [
    ...spec.metadata,
    ["tokenizer.ggml.fim_pre_token_id", gv.u32(TINY_SPECIAL_TOKENS.unk)] as const,
    ["tokenizer.ggml.fim_suf_token_id", gv.u32(TINY_SPECIAL_TOKENS.imStart)] as const,
    ["tokenizer.ggml.fim_mid_token_id", gv.u32(TINY_SPECIAL_TOKENS.eos)] as const,
  ];
  const path = join(dir, FIM_TINY_FILE);
  await writeGguf(path, { ...spec, metadata });
  return path;
}
