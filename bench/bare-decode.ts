/**
 * The floor the neuron is measured against: a bare greedy decode loop on
 * the benchmark's own thread, through the same FFI layer and C shim the
 * device Worker uses (tokenize → llama_decode → sample, one token a step),
 * with no Worker, no messages, no streams and no detokenizing.
 */
import { ptr } from "bun:ffi";
import {
  cString,
  type LlamaBatchPtr,
  type LlamaContextPtr,
  type LlamaModelPtr,
  type LlamaSymbols,
  openLlama,
} from "../ffi/llama-symbols.ts";
import { prepareNativeProcess } from "../ffi/native-process.ts";
import { linkShim, type ShimSymbols } from "../ffi/shim.ts";

export interface BareRun {
  promptTokens: number;
  tokens: number;
  /** First sampled token to last sampled token. */
  decodeMs: number;
}

export class BareDecoder {
  readonly #llama: LlamaSymbols;
  readonly #shim: ShimSymbols;
  readonly #model: LlamaModelPtr;
  readonly #ctx: LlamaContextPtr;
  readonly #batch: LlamaBatchPtr;
  /**
   * llama.cpp's abort callback reads [0] during every decode (non-zero aborts),
   * so the array must live as long as the context: this field keeps it.
   */
  readonly abortFlag: Int32Array;
  readonly #tokens = new Int32Array(512);
  readonly #pos = new Int32Array(512);
  readonly #seq = new Int32Array(512);
  readonly #logits = new Int8Array(512);

  private constructor(
    llama: LlamaSymbols,
    shim: ShimSymbols,
    model: LlamaModelPtr,
    ctx: LlamaContextPtr,
    batch: LlamaBatchPtr,
    abortFlag: Int32Array,
  ) {
    this.#llama = llama;
    this.#shim = shim;
    this.#model = model;
    this.#ctx = ctx;
    this.#batch = batch;
    this.abortFlag = abortFlag;
  }

  /**
   * Same context shape as a neuron model with `sequences` slots: n_ctx =
   * contextSize × sequences, n_batch = n_ubatch = 512, one KV stream per sequence.
   */
  static open(options: {
    model: string;
    threads: number;
    contextSize: number;
    sequences?: number;
  }): BareDecoder {
    const sequences = options.sequences ?? 1;
    // Idempotent: reuses the set-up the device pool already did in this process.
    const native = prepareNativeProcess({});
    const llama = openLlama(native.set.libllama);
    const shim = linkShim(native.shimAddresses);
    llama.llama_backend_init();
    const model = shim.shim_model_load(cString(options.model), 0, 0, true);
    if (!model) throw new Error(`bare loop: llama.cpp could not load ${options.model}`);
    const flag = new Int32Array(1);
    const ctx = shim.shim_context_new(
      model,
      options.contextSize * sequences,
      512,
      sequences,
      options.threads,
      ptr(flag),
    );
    if (!ctx) throw new Error("bare loop: no context");
    const batch = shim.shim_batch_new(512);
    if (!batch) throw new Error("bare loop: no batch");
    return new BareDecoder(llama, shim, model, ctx, batch, flag);
  }

  run(prompt: string, wanted: number): BareRun {
    const llama = this.#llama;
    const vocab = llama.llama_model_get_vocab(this.#model);
    if (!vocab) throw new Error("bare loop: no vocabulary");
    const memory = llama.llama_get_memory(this.#ctx);
    if (!memory) throw new Error("bare loop: no KV memory");
    llama.llama_memory_clear(memory, true);
    const bytes = Buffer.from(prompt, "utf8");
    const input = new Int32Array(bytes.length + 8);
    const n = llama.llama_tokenize(vocab, bytes, bytes.length, input, input.length, true, true);
    if (n <= 0) throw new Error("bare loop: tokenizing failed");
    const sampler = this.#shim.shim_sampler_new(
      llama.llama_vocab_n_tokens(vocab),
      0,
      0,
      1,
      0,
      1,
      64,
      1,
      0,
      0,
      0,
      null,
      null,
    );
    if (!sampler) throw new Error("bare loop: no sampler");
    try {
      for (let i = 0; i < n; i++) this.#put(i, input[i]!, i, i === n - 1);
      this.#decode(n);
      let token = llama.llama_sampler_sample(sampler, this.#ctx, n - 1);
      const firstAt = performance.now();
      let lastAt = firstAt;
      for (let made = 1; made < wanted; made++) {
        this.#put(0, token, n + made - 1, true);
        this.#decode(1);
        token = llama.llama_sampler_sample(sampler, this.#ctx, 0);
        lastAt = performance.now();
      }
      return { promptTokens: n, tokens: wanted, decodeMs: lastAt - firstAt };
    } finally {
      llama.llama_sampler_free(sampler);
    }
  }

  /**
   * Median milliseconds of one llama_decode of `batch` tokens, one for each
   * of `batch` sequences (a continuous-batching step with every slot
   * generating), over `steps` steps after a short prompt in each sequence.
   * `batch / stepMs` is what the hardware allows for that many streams.
   */
  stepMs(batch: number, steps: number, promptTokens = 16): number {
    const memory = this.#llama.llama_get_memory(this.#ctx);
    if (!memory) throw new Error("bare loop: no KV memory");
    this.#llama.llama_memory_clear(memory, true);
    const token = 1;
    for (let s = 0; s < batch; s++) {
      for (let i = 0; i < promptTokens; i++) this.#put(i, token, i, i === promptTokens - 1, s);
      this.#decode(promptTokens);
    }
    const times: number[] = [];
    for (let step = 0; step < steps; step++) {
      for (let s = 0; s < batch; s++) this.#put(s, token, promptTokens + step, true, s);
      const started = performance.now();
      this.#decode(batch);
      times.push(performance.now() - started);
    }
    times.sort((a, b) => a - b);
    return times[Math.floor(times.length / 2)]!;
  }

  #put(i: number, token: number, pos: number, logits: boolean, seq = 0): void {
    this.#tokens[i] = token;
    this.#pos[i] = pos;
    this.#seq[i] = seq;
    this.#logits[i] = logits ? 1 : 0;
  }

  #decode(n: number): void {
    const rc = this.#shim.shim_batch_decode(
      this.#ctx,
      this.#batch,
      n,
      this.#tokens,
      this.#pos,
      this.#seq,
      this.#logits,
    );
    if (rc !== 0) throw new Error(`bare loop: llama_decode returned ${rc}`);
  }

  close(): void {
    this.#shim.shim_batch_free(this.#batch);
    this.#llama.llama_free(this.#ctx);
    this.#llama.llama_model_free(this.#model);
  }
}
