/**
 * Worker-side owner of the native libraries and of each loaded model's
 * handles (model, context, batch). Only a device Worker constructs these;
 * nothing here is ever sent to another thread.
 */
import { CString, ptr } from "bun:ffi";
import { statSync } from "node:fs";
import { consola } from "consola";
import {
  cString,
  type LlamaBatchPtr,
  type LlamaContextPtr,
  type LlamaMemoryPtr,
  type LlamaModelPtr,
  type LlamaSymbols,
  type LlamaVocabPtr,
  openLlama,
} from "../../../ffi/llama-symbols.ts";
import { linkShim, type ShimAddresses, type ShimSymbols } from "../../../ffi/shim.ts";
import { CortexError } from "../../core/errors.ts";
import { estimateModelBytes } from "./memory-estimate.ts";

/** Largest number of tokens one llama_decode takes (prefill chunk size). */
export const BATCH_TOKENS = 512;

export class NativeRuntime {
  readonly llama: LlamaSymbols;
  readonly shim: ShimSymbols;
  readonly systemInfo: string;
  readonly abortFlag: Int32Array;
  readonly #logBuf = new Uint8Array(65536);

  private constructor(llama: LlamaSymbols, shim: ShimSymbols, abortFlag: Int32Array) {
    this.llama = llama;
    this.shim = shim;
    this.abortFlag = abortFlag;
    this.systemInfo = llama.llama_print_system_info().toString();
  }

  /** Binds libllama and the main thread's compiled shim in this Worker. */
  static open(options: {
    libllama: string;
    shimAddresses: ShimAddresses;
    abortFlag: SharedArrayBuffer;
    logLevel: number;
  }): NativeRuntime {
    const llama = openLlama(options.libllama);
    const shim = linkShim(options.shimAddresses);
    // llama_log_set is process-wide, and other code in the process (a test's
    // own shim, say) may have replaced the callback, or freed the code it pointed to.
    shim.shim_log_install(options.logLevel);
    llama.llama_backend_init();
    const runtime = new NativeRuntime(llama, shim, new Int32Array(options.abortFlag));
    runtime.drainLog();
    return runtime;
  }

  /** Forwards llama.cpp's buffered log lines to consola (debug, warn for errors). */
  drainLog(): void {
    const n = this.shim.shim_log_drain(this.#logBuf, this.#logBuf.length);
    if (n <= 0) return;
    const text = new TextDecoder().decode(this.#logBuf.subarray(0, n));
    for (const entry of text.split("\n")) {
      if (entry.length < 2) continue;
      const level = Number(entry[0]);
      const line = `llama.cpp: ${entry.slice(1)}`;
      if (level >= 4) consola.warn(line);
      else consola.debug(line);
    }
  }

  /**
   * Drains the log one last time. The libraries and the compiled shim stay
   * loaded for the life of the process on purpose: llama.cpp's log callback
   * and backend state are process-wide, so freeing one Worker's copy (or
   * calling llama_backend_free) would pull them out from under the others.
   */
  close(): void {
    this.drainLog();
  }
}

export interface ModelConfig {
  path: string;
  contextSize: number;
  slots: number;
  gpuIndex: number;
  threads: number;
  memoryBudgetBytes: number;
  /**
   * Tensor-parallel leader on CUDA: the group's ggml devices (`CUDA0`, …,
   * leader first); llama.cpp splits the layers over them. Absent = one device.
   */
  splitDevices?: readonly string[];
}

/** llama_split_mode LLAMA_SPLIT_MODE_LAYER: layers and KV split across the group's devices. */
const SPLIT_MODE_LAYER = 1;

function loadModelPointer(rt: NativeRuntime, config: ModelConfig): LlamaModelPtr | null {
  const split = config.splitDevices ?? [];
  if (split.length > 1) {
    const names = Buffer.from(split.map((name) => `${name}\0`).join(""), "utf8");
    return rt.shim.shim_model_load_devices(cString(config.path), names, split.length, SPLIT_MODE_LAYER, true);
  }
  return rt.shim.shim_model_load(
    cString(config.path),
    config.gpuIndex >= 0 ? -1 : 0,
    Math.max(0, config.gpuIndex),
    true,
  );
}

/** One model with its context and batch; freed exactly once, never mid-decode. */
export class NativeModel {
  readonly model: LlamaModelPtr;
  readonly vocab: LlamaVocabPtr;
  readonly ctx: LlamaContextPtr;
  readonly memory: LlamaMemoryPtr;
  readonly batch: LlamaBatchPtr;
  readonly nVocab: number;
  readonly memoryBytes: number;
  readonly trainedContextSize: number;
  readonly chatTemplate: string | null;
  readonly bos: number;
  readonly eos: number;
  readonly addBos: boolean;
  readonly description: string;
  readonly #rt: NativeRuntime;
  #freed = false;
  #pieceBuf = new Uint8Array(256);

  private constructor(
    rt: NativeRuntime,
    fields: Omit<NativeModel, "tokenize" | "piece" | "tokenText" | "maxTokenBytes" | "free">,
  ) {
    this.#rt = rt;
    this.model = fields.model;
    this.vocab = fields.vocab;
    this.ctx = fields.ctx;
    this.memory = fields.memory;
    this.batch = fields.batch;
    this.nVocab = fields.nVocab;
    this.memoryBytes = fields.memoryBytes;
    this.trainedContextSize = fields.trainedContextSize;
    this.chatTemplate = fields.chatTemplate;
    this.bos = fields.bos;
    this.eos = fields.eos;
    this.addBos = fields.addBos;
    this.description = fields.description;
  }

  static load(rt: NativeRuntime, config: ModelConfig): NativeModel {
    const { llama, shim } = rt;
    const fileBytes = fileSize(config.path);
    const model = loadModelPointer(rt, config);
    rt.drainLog();
    if (!model)
      throw new CortexError(
        "load_failed",
        `llama.cpp could not load ${config.path}${config.splitDevices && config.splitDevices.length > 1 ? ` over ${config.splitDevices.join(",")}` : ""} (see the log for why)`,
      );
    const release: Array<() => void> = [() => llama.llama_model_free(model)];
    try {
      const vocab = llama.llama_model_get_vocab(model);
      if (!vocab) throw new CortexError("load_failed", `${config.path} has no vocabulary`);
      const nVocab = llama.llama_vocab_n_tokens(vocab);
      const estimate = estimateModelBytes({
        weightBytes: Math.max(fileBytes, llama.llama_model_size(model)),
        nLayer: llama.llama_model_n_layer(model),
        nEmbd: llama.llama_model_n_embd(model),
        nHead: llama.llama_model_n_head(model),
        nHeadKv: llama.llama_model_n_head_kv(model),
        nVocab,
        contextSize: config.contextSize,
        slots: config.slots,
        batchTokens: BATCH_TOKENS,
      });
      if (estimate > config.memoryBudgetBytes)
        throw new CortexError(
          "insufficient_memory",
          `${config.path} needs about ${estimate} bytes (weights + KV for ${config.slots} × ${config.contextSize} tokens); ${config.memoryBudgetBytes} free`,
          { details: { required_bytes: estimate, free_bytes: config.memoryBudgetBytes } },
        );
      const ctx = shim.shim_context_new(
        model,
        config.contextSize * config.slots,
        BATCH_TOKENS,
        config.slots,
        config.threads,
        ptr(rt.abortFlag),
      );
      rt.drainLog();
      if (!ctx)
        throw new CortexError("load_failed", `llama.cpp could not create a context for ${config.path}`);
      release.unshift(() => llama.llama_free(ctx));
      const memory = llama.llama_get_memory(ctx);
      if (!memory) throw new CortexError("load_failed", `${config.path}: the context has no KV memory`);
      const batch = shim.shim_batch_new(BATCH_TOKENS);
      if (!batch) throw new CortexError("load_failed", "could not allocate a llama_batch");
      release.unshift(() => shim.shim_batch_free(batch));
      const templatePtr = llama.llama_model_chat_template(model, null);
      const descBuf = new Uint8Array(256);
      const descLen = llama.llama_model_desc(model, descBuf, descBuf.length);
      return new NativeModel(rt, {
        model,
        vocab,
        ctx,
        memory,
        batch,
        nVocab,
        memoryBytes: estimate,
        trainedContextSize: llama.llama_model_n_ctx_train(model),
        chatTemplate: templatePtr ? new CString(templatePtr).toString() : null,
        bos: llama.llama_vocab_bos(vocab),
        eos: llama.llama_vocab_eos(vocab),
        addBos: llama.llama_vocab_get_add_bos(vocab),
        description: new TextDecoder().decode(descBuf.subarray(0, Math.max(0, Math.min(descLen, 255)))),
      });
    } catch (error) {
      for (const free of release) free();
      throw error;
    }
  }

  #maxTokenBytes: number | undefined;

  /**
   * The most prompt bytes one token can stand for: the longest raw token
   * text in UTF-8 (a byte-level BPE text spells each byte as one or two
   * bytes, SentencePiece's "▁" a space in three), computed once. A prompt of
   * B bytes is at least ceil(B / this) tokens.
   */
  maxTokenBytes(): number {
    if (this.#maxTokenBytes === undefined) {
      let longest = 1;
      for (let token = 0; token < this.nVocab; token++)
        longest = Math.max(longest, Buffer.byteLength(this.tokenText(token), "utf8"));
      this.#maxTokenBytes = longest;
    }
    return this.#maxTokenBytes;
  }

  /** Raw text of a token (`<|im_end|>` for specials), or "" for none (-1). */
  tokenText(token: number): string {
    return token < 0 ? "" : this.#rt.llama.llama_vocab_get_text(this.vocab, token).toString();
  }

  /**
   * Tokenizes a rendered prompt, parsing special tokens. A template that
   * already wrote the BOS token must not get a second one.
   */
  tokenize(text: string, addSpecial = true): Int32Array {
    const bytes = Buffer.from(text, "utf8");
    let out = new Int32Array(bytes.length + 8);
    let n = this.#rt.llama.llama_tokenize(this.vocab, bytes, bytes.length, out, out.length, addSpecial, true);
    if (n < 0) {
      out = new Int32Array(-n);
      n = this.#rt.llama.llama_tokenize(this.vocab, bytes, bytes.length, out, out.length, addSpecial, true);
    }
    if (n < 0) throw new CortexError("invalid_request", "the prompt could not be tokenized");
    const tokens = out.subarray(0, n);
    if (n >= 2 && this.bos >= 0 && tokens[0] === this.bos && tokens[1] === this.bos)
      return tokens.subarray(1);
    return tokens;
  }

  /**
   * The bytes a sampled token stands for. Special tokens render as nothing,
   * unless `special` (a format's markers, such as `<|channel|>`, that its parser must see).
   */
  piece(token: number, special = false): Uint8Array {
    let n = this.#rt.llama.llama_token_to_piece(
      this.vocab,
      token,
      this.#pieceBuf,
      this.#pieceBuf.length,
      0,
      special,
    );
    if (n < 0) {
      this.#pieceBuf = new Uint8Array(-n);
      n = this.#rt.llama.llama_token_to_piece(
        this.vocab,
        token,
        this.#pieceBuf,
        this.#pieceBuf.length,
        0,
        special,
      );
    }
    return this.#pieceBuf.slice(0, Math.max(0, n));
  }

  free(): void {
    if (this.#freed) return;
    this.#freed = true;
    this.#rt.shim.shim_batch_free(this.batch);
    this.#rt.llama.llama_free(this.ctx);
    this.#rt.llama.llama_model_free(this.model);
    this.#rt.drainLog();
  }
}

function fileSize(path: string): number {
  try {
    return statSync(path).size;
  } catch (error) {
    throw new CortexError("load_failed", `model file not readable: ${path}`, { cause: error });
  }
}
