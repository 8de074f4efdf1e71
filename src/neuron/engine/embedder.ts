/**
 * Worker-side embeddings of one loaded model: a second llama_context with
 * embeddings on, made on first use and freed with the model, so embedding
 * never touches the KV cells or batches of the model's chat sequences. Each
 * input is one sequence; several go into one llama_decode while they fit.
 */
import { toArrayBuffer } from "bun:ffi";
import type { LlamaBatchPtr, LlamaContextPtr, LlamaMemoryPtr } from "../../../ffi/llama-symbols.ts";
import { CortexError } from "../../core/errors.ts";
import { DeviceFault } from "./batch-scheduler.ts";
import type { NativeModel, NativeRuntime } from "./native-runtime.ts";
import type { EmbedInput } from "./protocol.ts";

/**
 * Most tokens one input may have. A pooled sequence must fit in one ubatch,
 * and the attention scratch grows with its square, so this stays well below
 * a chat model's context.
 */
export const EMBED_TOKENS = 2048;
/** Inputs decoded together at most. */
const EMBED_SEQUENCES = 16;

export interface EmbedResult {
  embeddings: Float32Array[];
  promptTokens: number;
}

export class Embedder {
  readonly #rt: NativeRuntime;
  readonly #native: NativeModel;
  readonly #ctx: LlamaContextPtr;
  readonly #memory: LlamaMemoryPtr | null;
  readonly #batch: LlamaBatchPtr;
  readonly #nCtx: number;
  readonly nEmbd: number;
  #freed = false;

  private constructor(
    rt: NativeRuntime,
    native: NativeModel,
    ctx: LlamaContextPtr,
    batch: LlamaBatchPtr,
    nCtx: number,
  ) {
    this.#rt = rt;
    this.#native = native;
    this.#ctx = ctx;
    this.#memory = rt.llama.llama_get_memory(ctx);
    this.#batch = batch;
    this.#nCtx = nCtx;
    this.nEmbd = rt.llama.llama_model_n_embd(native.model);
  }

  static open(rt: NativeRuntime, native: NativeModel, contextSize: number, threads: number): Embedder {
    const nCtx = Math.min(contextSize, EMBED_TOKENS);
    const ctx = rt.shim.shim_embed_context_new(native.model, nCtx, EMBED_SEQUENCES, threads, null);
    rt.drainLog();
    if (!ctx)
      throw new CortexError(
        "invalid_request",
        "this model gives no embeddings (it is a reranker, or llama.cpp could not make an embedding context; see the log)",
        { param: "model" },
      );
    const batch = rt.shim.shim_batch_new(nCtx);
    if (!batch) {
      rt.llama.llama_free(ctx);
      throw new CortexError("internal", "could not allocate a llama_batch");
    }
    return new Embedder(rt, native, ctx, batch, nCtx);
  }

  /** One L2-normalised vector per input, in order. */
  embed(inputs: readonly EmbedInput[], dimensions?: number): EmbedResult {
    if (dimensions !== undefined && dimensions !== this.nEmbd)
      throw new CortexError(
        "invalid_request",
        `dimensions: this model's embeddings have ${this.nEmbd} dimensions and cannot be shortened`,
        { param: "dimensions" },
      );
    const sequences = inputs.map((input, i) => this.#tokens(input, i));
    const embeddings: Float32Array[] = [];
    let start = 0;
    while (start < sequences.length) {
      let end = start;
      let tokens = 0;
      while (
        end < sequences.length &&
        end - start < EMBED_SEQUENCES &&
        tokens + (sequences[end]?.length ?? 0) <= this.#nCtx
      ) {
        tokens += sequences[end]?.length ?? 0;
        end++;
      }
      embeddings.push(...this.#decode(sequences.slice(start, end), tokens));
      start = end;
    }
    return { embeddings, promptTokens: sequences.reduce((n, s) => n + s.length, 0) };
  }

  #tokens(input: EmbedInput, index: number): Int32Array {
    const param = `input[${index}]`;
    let tokens: Int32Array;
    if (typeof input === "string") {
      if (input === "") throw new CortexError("invalid_request", `${param} is empty`, { param });
      tokens = this.#native.tokenize(input);
    } else {
      tokens = Int32Array.from(input);
      if (tokens.length === 0) throw new CortexError("invalid_request", `${param} is empty`, { param });
      for (const token of input)
        if (!Number.isInteger(token) || token < 0 || token >= this.#native.nVocab)
          throw new CortexError(
            "invalid_request",
            `${param}: token ${token} is not in this model's vocabulary (0…${this.#native.nVocab - 1})`,
            { param },
          );
    }
    if (tokens.length > this.#nCtx)
      throw new CortexError(
        "context_length_exceeded",
        `${param} has ${tokens.length} tokens; this model embeds at most ${this.#nCtx} per input`,
        { param },
      );
    return tokens;
  }

  #decode(group: readonly Int32Array[], n: number): Float32Array[] {
    const tokens = new Int32Array(n);
    const pos = new Int32Array(n);
    const seq = new Int32Array(n);
    const logits = new Int8Array(n).fill(1);
    let at = 0;
    group.forEach((input, s) => {
      tokens.set(input, at);
      for (let i = 0; i < input.length; i++) {
        pos[at + i] = i;
        seq[at + i] = s;
      }
      at += input.length;
    });
    const { llama, shim } = this.#rt;
    if (this.#memory) llama.llama_memory_clear(this.#memory, true);
    const rc = shim.shim_batch_decode(this.#ctx, this.#batch, n, tokens, pos, seq, logits);
    if (rc !== 0) {
      if (rc === 1 || rc === -1)
        throw new CortexError("internal", `llama_decode refused an embedding batch (status ${rc})`);
      throw new DeviceFault(`llama_decode failed with status ${rc} while embedding`);
    }
    return group.map((_, s) => {
      const out = llama.llama_get_embeddings_seq(this.#ctx, s);
      if (!out) throw new CortexError("internal", "llama.cpp returned no pooled embedding");
      return normalized(new Float32Array(toArrayBuffer(out, 0, this.nEmbd * 4).slice(0)));
    });
  }

  free(): void {
    if (this.#freed) return;
    this.#freed = true;
    this.#rt.shim.shim_batch_free(this.#batch);
    this.#rt.llama.llama_free(this.#ctx);
  }
}

/** The vector scaled to unit length (a zero vector stays zero). */
export function normalized(vector: Float32Array): Float32Array {
  let sum = 0;
  for (const x of vector) sum += x * x;
  const norm = Math.sqrt(sum);
  if (norm > 0) for (let i = 0; i < vector.length; i++) vector[i] = (vector[i] ?? 0) / norm;
  return vector;
}
