import { mkdir, rename, rm, stat } from "node:fs/promises";
import { join } from "node:path";
import { consola } from "consola";
import corpus from "../../../assets/corpus.txt";
import { type BigramModel, buildBigramModel } from "./bigram-model.ts";
import { CHATML_TOOLS_TEMPLATE } from "./chatml-tools-template.ts";
import { readGgufInfo } from "./gguf-reader.ts";
import { type GgufTypedValue, LLAMA_FILE_TYPE } from "./gguf-types.ts";
import { type GgufTensorSpec, type GgufWriteSpec, gv, writeGguf } from "./gguf-writer.ts";
import { buildTinyVocab, TINY_SPECIAL_TOKENS, type TinyVocab } from "./tiny-vocab.ts";

/** The shipped corpus the demo model's bigram statistics come from. */
export const TINY_CORPUS: string = corpus;
export const TINY_MODEL_FILE = "cortex-tiny.gguf";
/** Metadata key holding the generator version; a file with another value is rebuilt. */
export const TINY_MODEL_VERSION_KEY = "cortex.tiny_model.version";
/** Prefix of the version string; the rest is a hash of everything else in the file. */
const TINY_MODEL_FORMAT = "1";
/**
 * Trained context. Real clients' prompts are long (Claude Code's first request
 * is ~35k tokens in this small vocabulary, ~57k with every tool), and the KV
 * cache of a 1-layer, 32-dim model costs 128 bytes a token, so be generous.
 */
export const TINY_CONTEXT_LENGTH = 131072;
/** Bound on a greedy answer's length in tokens, end-of-generation included; building fails beyond it. */
export const TINY_GREEDY_LIMIT = 64;

/** Hyperparameters of the tiny model (llama architecture). */
export const TINY_HPARAMS = {
  nLayer: 1,
  nHead: 1,
  nHeadKv: 1,
  headDim: 32,
  nFf: 32,
  rmsEps: 1e-5,
} as const;

const NEVER_LOGIT = -1e4;

/**
 * Logit of a byte-fallback token. The model never writes bytes on its own
 * (they sit far below every word), but a grammar can rule out every word
 * (a digit, a quote, an "é" in a schema's property name), and then bytes
 * are all that is left. Tiers keep that choice to valid, shortest UTF-8:
 * printable ASCII first, then the lead bytes of longer and longer
 * sequences, and lead bytes that can start an overlong, surrogate or
 * out-of-range sequence (and control bytes) last. llama.cpp's grammar
 * checks continuation bytes itself, but not what a lead byte commits to.
 * The gaps (20 nats) make a lower tier negligible whenever a higher one is
 * allowed.
 */
export function byteLogit(byte: number): number {
  const tier =
    byte >= 0x20 && byte < 0x7f
      ? 0
      : byte >= 0x80 && byte <= 0xbf
        ? 1 // continuation: only ever allowed right after a lead byte
        : byte >= 0xc2 && byte <= 0xdf
          ? 1
          : (byte >= 0xe1 && byte <= 0xec) || byte === 0xee || byte === 0xef
            ? 2
            : byte === 0xe0 || byte === 0xed || (byte >= 0xf1 && byte <= 0xf3)
              ? 3
              : byte === 0xf0 || byte === 0xf4
                ? 4
                : 5;
  return NEVER_LOGIT - 20 * tier;
}

/** Everything needed to write the tiny model and to reason about it in tests. */
export interface TinyModel {
  vocab: TinyVocab;
  bigram: BigramModel;
  nEmbd: number;
  /** Stored under `cortex.tiny_model.version`; changes whenever any other byte of the file would. */
  version: string;
  spec: GgufWriteSpec;
}

/**
 * Builds a llama-architecture model that is a word-level bigram LM over `text`:
 * one-hot token embeddings (one dimension per bigram state), zero attention and FFN
 * weights so the residual stream carries the embedding through unchanged, an output
 * norm weight that undoes RMSNorm's scaling, and an output matrix of log-probabilities,
 * so the logits for the next token are log P(next | current token).
 */
export function buildTinyModel(text: string = TINY_CORPUS): TinyModel {
  const vocab = buildTinyVocab(text);
  const bigram = buildBigramModel(vocab, { eogId: TINY_SPECIAL_TOKENS.imEnd });
  if (bigram.maxGreedySteps > TINY_GREEDY_LIMIT) {
    throw new Error(`greedy answers may run ${bigram.maxGreedySteps} tokens (limit ${TINY_GREEDY_LIMIT})`);
  }
  const nVocab = vocab.tokens.length;
  const nEmbd = Math.ceil(bigram.nStates / 32) * 32;
  const { nLayer, nHead, nHeadKv, headDim, nFf, rmsEps } = TINY_HPARAMS;

  const tokenEmbd = new Float32Array(nEmbd * nVocab);
  for (let t = 0; t < nVocab; t++) tokenEmbd[t * nEmbd + (bigram.stateOfToken[t] ?? 0)] = 1;
  // RMSNorm of a one-hot vector of height 1 divides by sqrt(1/nEmbd + eps); multiply it back.
  const outputNorm = new Float32Array(nEmbd).fill(Math.sqrt(1 / nEmbd + rmsEps));

  const width = bigram.emitIds.length;
  const output = new Float32Array(nEmbd * nVocab).fill(NEVER_LOGIT);
  for (let s = 0; s < bigram.nStates; s++) {
    for (const [j, id] of bigram.emitIds.entries()) {
      // Impossible successors get a large finite logit: -Infinity times a zero activation is NaN.
      output[id * nEmbd + s] = Math.max(NEVER_LOGIT, Math.log(bigram.probs[s * width + j] ?? 0));
    }
  }
  for (let byte = 0; byte < 256; byte++) {
    const id = TINY_SPECIAL_TOKENS.firstByte + byte;
    output.fill(byteLogit(byte), id * nEmbd, id * nEmbd + bigram.nStates);
  }
  // Padding dimensions never carry activation, so their weights are irrelevant; keep them tidy.
  for (let t = 0; t < nVocab; t++) output.fill(0, t * nEmbd + bigram.nStates, (t + 1) * nEmbd);

  const zeros = (n: number) => new Float32Array(n);
  const tensors: GgufTensorSpec[] = [
    { name: "token_embd.weight", type: "F32", dims: [nEmbd, nVocab], data: tokenEmbd },
    { name: "output_norm.weight", type: "F32", dims: [nEmbd], data: outputNorm },
    { name: "output.weight", type: "F32", dims: [nEmbd, nVocab], data: output },
  ];
  for (let layer = 0; layer < nLayer; layer++) {
    const p = `blk.${layer}`;
    tensors.push(
      { name: `${p}.attn_norm.weight`, type: "F32", dims: [nEmbd], data: new Float32Array(nEmbd).fill(1) },
      {
        name: `${p}.attn_q.weight`,
        type: "F32",
        dims: [nEmbd, nHead * headDim],
        data: zeros(nEmbd * nHead * headDim),
      },
      {
        name: `${p}.attn_k.weight`,
        type: "F32",
        dims: [nEmbd, nHeadKv * headDim],
        data: zeros(nEmbd * nHeadKv * headDim),
      },
      {
        name: `${p}.attn_v.weight`,
        type: "F32",
        dims: [nEmbd, nHeadKv * headDim],
        data: zeros(nEmbd * nHeadKv * headDim),
      },
      {
        name: `${p}.attn_output.weight`,
        type: "F32",
        dims: [nHead * headDim, nEmbd],
        data: zeros(nEmbd * nHead * headDim),
      },
      { name: `${p}.ffn_norm.weight`, type: "F32", dims: [nEmbd], data: new Float32Array(nEmbd).fill(1) },
      { name: `${p}.ffn_gate.weight`, type: "F32", dims: [nEmbd, nFf], data: zeros(nEmbd * nFf) },
      { name: `${p}.ffn_up.weight`, type: "F32", dims: [nEmbd, nFf], data: zeros(nEmbd * nFf) },
      { name: `${p}.ffn_down.weight`, type: "F32", dims: [nFf, nEmbd], data: zeros(nEmbd * nFf) },
    );
  }

  const contentMetadata = [
    ...llamaMetadata({
      name: "cortex-tiny",
      fileType: LLAMA_FILE_TYPE.ALL_F32,
      contextLength: TINY_CONTEXT_LENGTH,
      nEmbd,
      nLayer,
      nFf,
      nHead,
      nHeadKv,
      headDim,
      rmsEps,
    }),
    ...tokenizerMetadata(vocab),
  ];
  const version = `${TINY_MODEL_FORMAT}-${contentHash(contentMetadata, tensors)}`;
  const metadata = [...contentMetadata, [TINY_MODEL_VERSION_KEY, gv.str(version)] as const];
  return { vocab, bigram, nEmbd, version, spec: { metadata, tensors } };
}

/** Hash of metadata and tensor data, so a file written by an older generator is detected as stale. */
function contentHash(
  metadata: ReadonlyArray<readonly [string, GgufTypedValue]>,
  tensors: readonly GgufTensorSpec[],
): string {
  let hash = Bun.hash.wyhash(JSON.stringify(metadata));
  for (const tensor of tensors) {
    hash = Bun.hash.wyhash(`${tensor.name}:${tensor.type}:${tensor.dims.join("x")}`, hash);
    if (typeof tensor.data !== "function") hash = Bun.hash.wyhash(tensor.data, hash);
  }
  return hash.toString(16);
}

export interface LlamaShape {
  name: string;
  fileType: number;
  contextLength: number;
  nEmbd: number;
  nLayer: number;
  nFf: number;
  nHead: number;
  nHeadKv: number;
  headDim: number;
  rmsEps: number;
}

/** `general.*` and `llama.*` keys for a llama-architecture file. */
export function llamaMetadata(shape: LlamaShape): Array<readonly [string, GgufTypedValue]> {
  return [
    ["general.architecture", gv.str("llama")],
    ["general.name", gv.str(shape.name)],
    ["general.file_type", gv.u32(shape.fileType)],
    ["llama.context_length", gv.u32(shape.contextLength)],
    ["llama.embedding_length", gv.u32(shape.nEmbd)],
    ["llama.block_count", gv.u32(shape.nLayer)],
    ["llama.feed_forward_length", gv.u32(shape.nFf)],
    ["llama.attention.head_count", gv.u32(shape.nHead)],
    ["llama.attention.head_count_kv", gv.u32(shape.nHeadKv)],
    ["llama.attention.key_length", gv.u32(shape.headDim)],
    ["llama.attention.value_length", gv.u32(shape.headDim)],
    ["llama.rope.dimension_count", gv.u32(shape.headDim)],
    ["llama.rope.freq_base", gv.f32(10000)],
    ["llama.attention.layer_norm_rms_epsilon", gv.f32(shape.rmsEps)],
  ];
}

/** `tokenizer.*` keys: SPM vocabulary with byte fallback, ChatML specials and template. */
export function tokenizerMetadata(vocab: TinyVocab): Array<readonly [string, GgufTypedValue]> {
  return [
    ["llama.vocab_size", gv.u32(vocab.tokens.length)],
    ["tokenizer.ggml.model", gv.str("llama")],
    ["tokenizer.ggml.tokens", gv.arr("string", vocab.tokens)],
    ["tokenizer.ggml.scores", gv.arr("float32", vocab.scores)],
    ["tokenizer.ggml.token_type", gv.arr("int32", vocab.tokenTypes)],
    ["tokenizer.ggml.bos_token_id", gv.u32(TINY_SPECIAL_TOKENS.bos)],
    ["tokenizer.ggml.eos_token_id", gv.u32(TINY_SPECIAL_TOKENS.imEnd)],
    ["tokenizer.ggml.eot_token_id", gv.u32(TINY_SPECIAL_TOKENS.imEnd)],
    ["tokenizer.ggml.unknown_token_id", gv.u32(TINY_SPECIAL_TOKENS.unk)],
    ["tokenizer.ggml.padding_token_id", gv.u32(TINY_SPECIAL_TOKENS.unk)],
    ["tokenizer.ggml.add_bos_token", gv.bool(true)],
    ["tokenizer.ggml.add_eos_token", gv.bool(false)],
    ["tokenizer.ggml.add_space_prefix", gv.bool(true)],
    ["tokenizer.chat_template", gv.str(CHATML_TOOLS_TEMPLATE)],
  ];
}

/** Writes the tiny model to `path` (not atomically; see `ensureDemoModel`). Returns bytes written. */
export async function writeTinyModel(path: string, model: TinyModel = buildTinyModel()): Promise<number> {
  return writeGguf(path, model.spec);
}

/**
 * Makes sure `dir/cortex-tiny.gguf` exists and was written by this version of the generator
 * (rewriting it atomically otherwise) and returns its path, so a neuron can serve the demo
 * model with no models directory configured. Costs a model build (tens of ms) even when the
 * file is current, because the version is a hash of the built content.
 */
export async function ensureDemoModel(dir: string): Promise<string> {
  const path = join(dir, TINY_MODEL_FILE);
  const model = buildTinyModel();
  const { version } = model;
  if (await isCurrent(path, version)) return path;
  await mkdir(dir, { recursive: true });
  const temp = `${path}.${process.pid}.${crypto.randomUUID().slice(0, 8)}.tmp`;
  try {
    const bytes = await writeTinyModel(temp, model);
    await rename(temp, path);
    consola.info(`wrote demo model ${path} (${bytes} bytes, version ${version})`);
    return path;
  } catch (error) {
    await rm(temp, { force: true });
    throw error;
  }
}

async function isCurrent(path: string, version: string): Promise<boolean> {
  const exists = await stat(path).then(
    (s) => s.isFile(),
    () => false,
  );
  if (!exists) return false;
  try {
    const info = await readGgufInfo(path);
    return info.metadata[TINY_MODEL_VERSION_KEY] === version;
  } catch {
    return false; // a damaged file is simply rewritten
  }
}
