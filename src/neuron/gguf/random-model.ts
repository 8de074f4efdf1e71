import { LLAMA_FILE_TYPE } from "./gguf-types.ts";
import { type GgufTensorSpec, type GgufWriteSpec, tensorByteLength, writeGguf } from "./gguf-writer.ts";
import { llamaMetadata, TINY_CONTEXT_LENGTH, TINY_CORPUS, tokenizerMetadata } from "./tiny-model.ts";
import { buildTinyVocab, TINY_SPECIAL_TOKENS, type TinyVocab } from "./tiny-vocab.ts";

/** Shape of a random-weight benchmark model. */
export interface RandomModelShape {
  nEmbd: number;
  nLayer: number;
  nFf: number;
  nHead: number;
  nHeadKv: number;
  headDim: number;
  nVocab: number;
}

const HEAD_DIM = 64;
const WIDTHS = [256, 384, 512, 768, 1024, 1536, 2048, 2560, 3072, 4096, 5120, 6144, 8192];

/**
 * Picks a llama shape whose F16 weights take roughly `targetBytes`: the narrowest width
 * (multiple of 64) whose layer count stays within width/64, about the depth-to-width
 * ratio of real llama models, with SwiGLU n_ff ≈ 8/3 n_embd and 4-way GQA where possible.
 */
export function randomModelShape(targetBytes: number, nVocab: number): RandomModelShape {
  const params = targetBytes / 2;
  let fallback: RandomModelShape | undefined;
  for (const nEmbd of WIDTHS) {
    const nHead = nEmbd / HEAD_DIM;
    const nHeadKv = nHead % 4 === 0 && nHead >= 8 ? nHead / 4 : nHead;
    const nFf = Math.round((nEmbd * 8) / 3 / 64) * 64;
    const perLayer = 2 * nEmbd * nEmbd + 2 * nEmbd * nHeadKv * HEAD_DIM + 3 * nEmbd * nFf;
    const nLayer = Math.max(1, Math.round((params - 2 * nVocab * nEmbd) / perLayer));
    const shape = { nEmbd, nLayer, nFf, nHead, nHeadKv, headDim: HEAD_DIM, nVocab };
    fallback = shape;
    if (nLayer <= nEmbd / 64) return shape;
  }
  if (fallback === undefined) throw new Error("no widths to choose from");
  return fallback;
}

/** 32-bit PRNG (mulberry32): fast, seedable, plenty for weights nobody will read. */
export function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const POOL_SIZE = 1 << 20;
const CHUNK_ELEMENTS = 1 << 21;

/**
 * A random-weight llama model of about `targetBytes` (F16 matrices, F32 norms) that uses the
 * tiny model's tokenizer and chat template. Tensor data is generated while it is written:
 * chunks are stitched from random windows into a pool of normal(0, 0.02) halves.
 */
export function buildRandomModel(
  targetBytes: number,
  seed = 1,
  vocab: TinyVocab = buildTinyVocab(TINY_CORPUS),
): { shape: RandomModelShape; spec: GgufWriteSpec } {
  const shape = randomModelShape(targetBytes, vocab.tokens.length);
  const { nEmbd, nLayer, nFf, nHead, nHeadKv, headDim, nVocab } = shape;
  const random = mulberry32(seed);
  const pool = new Float16Array(POOL_SIZE);
  for (let i = 0; i < POOL_SIZE; i += 2) {
    // Box-Muller: two normals per pair of uniforms.
    const r = Math.sqrt(-2 * Math.log(1 - random())) * 0.02;
    const theta = 2 * Math.PI * random();
    pool[i] = r * Math.cos(theta);
    pool[i + 1] = r * Math.sin(theta);
  }
  const poolBits = new Uint16Array(pool.buffer);

  const randomF16 = (name: string, dims: number[]): GgufTensorSpec => ({
    name,
    type: "F16",
    dims,
    data: function* () {
      let remaining = tensorByteLength({ type: "F16", dims }) / 2;
      while (remaining > 0) {
        const n = Math.min(remaining, CHUNK_ELEMENTS);
        const chunk = new Uint16Array(n);
        for (let filled = 0; filled < n; ) {
          const len = Math.min(n - filled, 4096 + Math.floor(random() * 4096));
          const from = Math.floor(random() * (POOL_SIZE - len));
          chunk.set(poolBits.subarray(from, from + len), filled);
          filled += len;
        }
        remaining -= n;
        yield new Uint8Array(chunk.buffer);
      }
    },
  });
  const ones = (name: string): GgufTensorSpec => ({
    name,
    type: "F32",
    dims: [nEmbd],
    data: new Float32Array(nEmbd).fill(1),
  });

  const output = randomF16("output.weight", [nEmbd, nVocab]);
  const tensors: GgufTensorSpec[] = [
    randomF16("token_embd.weight", [nEmbd, nVocab]),
    ones("output_norm.weight"),
    { ...output, data: withSilentSpecials(output, nEmbd) },
  ];
  for (let layer = 0; layer < nLayer; layer++) {
    const p = `blk.${layer}`;
    tensors.push(
      ones(`${p}.attn_norm.weight`),
      randomF16(`${p}.attn_q.weight`, [nEmbd, nHead * headDim]),
      randomF16(`${p}.attn_k.weight`, [nEmbd, nHeadKv * headDim]),
      randomF16(`${p}.attn_v.weight`, [nEmbd, nHeadKv * headDim]),
      randomF16(`${p}.attn_output.weight`, [nHead * headDim, nEmbd]),
      ones(`${p}.ffn_norm.weight`),
      randomF16(`${p}.ffn_gate.weight`, [nEmbd, nFf]),
      randomF16(`${p}.ffn_up.weight`, [nEmbd, nFf]),
      randomF16(`${p}.ffn_down.weight`, [nFf, nEmbd]),
    );
  }
  const sizeLabel = `${Math.round(targetBytes / 2 ** 20)}M`;
  const metadata = [
    ...llamaMetadata({
      name: `cortex-random-${sizeLabel}`,
      fileType: LLAMA_FILE_TYPE.MOSTLY_F16,
      contextLength: TINY_CONTEXT_LENGTH,
      nEmbd,
      nLayer,
      nFf,
      nHead,
      nHeadKv,
      headDim,
      rmsEps: 1e-5,
    }),
    ...tokenizerMetadata(vocab),
  ];
  return { shape, spec: { metadata, tensors } };
}

/**
 * Zeroes the output rows of the special and byte tokens (ids up to `<|im_end|>`), so their
 * logit is exactly 0 while word tokens' logits spread around it: greedy decoding never picks
 * them (no early end-of-generation, no invalid UTF-8) and sampling rarely does, so benchmarks
 * measure long generations of readable pieces.
 */
function withSilentSpecials(tensor: GgufTensorSpec, nEmbd: number): GgufTensorSpec["data"] {
  const source = tensor.data;
  if (typeof source !== "function") return source;
  const silentBytes = (TINY_SPECIAL_TOKENS.imEnd + 1) * nEmbd * 2;
  return async function* () {
    let offset = 0;
    for await (const chunk of source()) {
      if (offset < silentBytes) chunk.fill(0, 0, Math.min(chunk.length, silentBytes - offset));
      offset += chunk.length;
      yield chunk;
    }
  };
}

/** Writes a random-weight model of about `targetBytes` to `path`; returns its shape and size. */
export async function writeRandomModel(
  path: string,
  targetBytes: number,
  seed = 1,
): Promise<{ shape: RandomModelShape; bytes: number }> {
  const { shape, spec } = buildRandomModel(targetBytes, seed);
  return { shape, bytes: await writeGguf(path, spec) };
}
