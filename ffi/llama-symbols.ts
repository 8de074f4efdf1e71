/**
 * Every `dlopen` signature of libllama and libggml used by cortex, in one
 * place, with branded pointer types so a context can never be passed where a
 * model is expected. Calls that take or return structs by value go through
 * the C shim instead (ffi/shim.ts).
 */
import { dlopen, type FFIFunction, FFIType, type Pointer } from "bun:ffi";

export type LlamaModelPtr = Pointer & { readonly __brand: "llama_model" };
export type LlamaContextPtr = Pointer & { readonly __brand: "llama_context" };
export type LlamaVocabPtr = Pointer & { readonly __brand: "llama_vocab" };
export type LlamaMemoryPtr = Pointer & { readonly __brand: "llama_memory" };
export type LlamaSamplerPtr = Pointer & { readonly __brand: "llama_sampler" };
export type LlamaBatchPtr = Pointer & { readonly __brand: "llama_batch" };
export type GgmlBackendDevPtr = Pointer & { readonly __brand: "ggml_backend_dev" };

/** Anything bun:ffi accepts for a `ptr` argument. */
export type PtrArg = Pointer | NodeJS.TypedArray | null;

const llamaDefs = {
  llama_backend_init: { args: [], returns: "void" },
  llama_backend_free: { args: [], returns: "void" },
  llama_print_system_info: { args: [], returns: "cstring" },
  llama_supports_gpu_offload: { args: [], returns: "bool" },
  llama_max_parallel_sequences: { args: [], returns: FFIType.u64_fast },
  llama_model_free: { args: ["ptr"], returns: "void" },
  llama_model_get_vocab: { args: ["ptr"], returns: "ptr" },
  llama_model_n_ctx_train: { args: ["ptr"], returns: "i32" },
  llama_model_n_embd: { args: ["ptr"], returns: "i32" },
  llama_model_n_layer: { args: ["ptr"], returns: "i32" },
  llama_model_n_head: { args: ["ptr"], returns: "i32" },
  llama_model_n_head_kv: { args: ["ptr"], returns: "i32" },
  llama_model_size: { args: ["ptr"], returns: FFIType.u64_fast },
  llama_model_n_params: { args: ["ptr"], returns: FFIType.u64_fast },
  llama_model_n_swa: { args: ["ptr"], returns: "i32" },
  llama_model_is_recurrent: { args: ["ptr"], returns: "bool" },
  llama_model_is_hybrid: { args: ["ptr"], returns: "bool" },
  llama_model_chat_template: { args: ["ptr", "ptr"], returns: "ptr" },
  llama_model_desc: { args: ["ptr", "ptr", "u64"], returns: "i32" },
  llama_free: { args: ["ptr"], returns: "void" },
  llama_n_ctx: { args: ["ptr"], returns: "u32" },
  llama_n_ctx_seq: { args: ["ptr"], returns: "u32" },
  llama_n_seq_max: { args: ["ptr"], returns: "u32" },
  llama_n_batch: { args: ["ptr"], returns: "u32" },
  llama_get_memory: { args: ["ptr"], returns: "ptr" },
  llama_memory_clear: { args: ["ptr", "bool"], returns: "void" },
  llama_memory_seq_rm: { args: ["ptr", "i32", "i32", "i32"], returns: "bool" },
  llama_memory_seq_pos_min: { args: ["ptr", "i32"], returns: "i32" },
  llama_memory_seq_pos_max: { args: ["ptr", "i32"], returns: "i32" },
  llama_state_get_size: { args: ["ptr"], returns: FFIType.u64_fast },
  llama_state_seq_get_size_ext: { args: ["ptr", "i32", "u32"], returns: FFIType.u64_fast },
  llama_state_seq_get_data_ext: { args: ["ptr", "ptr", "u64", "i32", "u32"], returns: FFIType.u64_fast },
  llama_state_seq_set_data_ext: { args: ["ptr", "ptr", "u64", "i32", "u32"], returns: FFIType.u64_fast },
  llama_synchronize: { args: ["ptr"], returns: "void" },
  llama_get_embeddings_seq: { args: ["ptr", "i32"], returns: "ptr" },
  llama_vocab_fim_pre: { args: ["ptr"], returns: "i32" },
  llama_vocab_fim_suf: { args: ["ptr"], returns: "i32" },
  llama_vocab_fim_mid: { args: ["ptr"], returns: "i32" },
  llama_vocab_n_tokens: { args: ["ptr"], returns: "i32" },
  llama_vocab_is_eog: { args: ["ptr", "i32"], returns: "bool" },
  llama_vocab_bos: { args: ["ptr"], returns: "i32" },
  llama_vocab_eos: { args: ["ptr"], returns: "i32" },
  llama_vocab_eot: { args: ["ptr"], returns: "i32" },
  llama_vocab_get_add_bos: { args: ["ptr"], returns: "bool" },
  llama_vocab_get_text: { args: ["ptr", "i32"], returns: "cstring" },
  llama_tokenize: { args: ["ptr", "ptr", "i32", "ptr", "i32", "bool", "bool"], returns: "i32" },
  llama_token_to_piece: { args: ["ptr", "i32", "ptr", "i32", "i32", "bool"], returns: "i32" },
  llama_sampler_sample: { args: ["ptr", "ptr", "i32"], returns: "i32" },
  llama_sampler_free: { args: ["ptr"], returns: "void" },
  llama_sampler_init_grammar: { args: ["ptr", "ptr", "ptr"], returns: "ptr" },
  llama_sampler_init_grammar_lazy_patterns: {
    args: ["ptr", "ptr", "ptr", "ptr", "u64", "ptr", "u64"],
    returns: "ptr",
  },
} as const satisfies Record<string, FFIFunction>;

const ggmlDefs = {
  ggml_backend_load_all_from_path: { args: ["ptr"], returns: "void" },
  ggml_backend_dev_count: { args: [], returns: FFIType.u64_fast },
  ggml_backend_dev_get: { args: ["u64"], returns: "ptr" },
  ggml_backend_dev_name: { args: ["ptr"], returns: "cstring" },
  ggml_backend_dev_description: { args: ["ptr"], returns: "cstring" },
} as const satisfies Record<string, FFIFunction>;

/** libllama as cortex calls it. Integers are `llama_token`/`llama_seq_id`/`llama_pos`. */
export interface LlamaSymbols {
  llama_backend_init(): void;
  llama_backend_free(): void;
  llama_print_system_info(): { toString(): string };
  llama_supports_gpu_offload(): boolean;
  llama_max_parallel_sequences(): number;
  llama_model_free(model: LlamaModelPtr): void;
  llama_model_get_vocab(model: LlamaModelPtr): LlamaVocabPtr | null;
  llama_model_n_ctx_train(model: LlamaModelPtr): number;
  llama_model_n_embd(model: LlamaModelPtr): number;
  llama_model_n_layer(model: LlamaModelPtr): number;
  llama_model_n_head(model: LlamaModelPtr): number;
  llama_model_n_head_kv(model: LlamaModelPtr): number;
  llama_model_size(model: LlamaModelPtr): number;
  llama_model_n_params(model: LlamaModelPtr): number;
  /** Sliding-window size of the attention, 0 without SWA. */
  llama_model_n_swa(model: LlamaModelPtr): number;
  llama_model_is_recurrent(model: LlamaModelPtr): boolean;
  llama_model_is_hybrid(model: LlamaModelPtr): boolean;
  /** Returns a `const char *` owned by the model, or null. */
  llama_model_chat_template(model: LlamaModelPtr, name: PtrArg): Pointer | null;
  llama_model_desc(model: LlamaModelPtr, buf: PtrArg, size: number): number;
  llama_free(ctx: LlamaContextPtr): void;
  llama_n_ctx(ctx: LlamaContextPtr): number;
  llama_n_ctx_seq(ctx: LlamaContextPtr): number;
  llama_n_seq_max(ctx: LlamaContextPtr): number;
  llama_n_batch(ctx: LlamaContextPtr): number;
  llama_get_memory(ctx: LlamaContextPtr): LlamaMemoryPtr | null;
  llama_memory_clear(mem: LlamaMemoryPtr, data: boolean): void;
  /** False when the memory cannot drop that range (recurrent state, say). */
  llama_memory_seq_rm(mem: LlamaMemoryPtr, seq: number, p0: number, p1: number): boolean;
  /** Smallest position the sequence still holds (> 0 once a sliding window dropped the start), -1 empty. */
  llama_memory_seq_pos_min(mem: LlamaMemoryPtr, seq: number): number;
  llama_memory_seq_pos_max(mem: LlamaMemoryPtr, seq: number): number;
  llama_state_get_size(ctx: LlamaContextPtr): number;
  llama_state_seq_get_size_ext(ctx: LlamaContextPtr, seq: number, flags: number): number;
  /** Bytes written into `dst`, 0 on failure. */
  llama_state_seq_get_data_ext(
    ctx: LlamaContextPtr,
    dst: PtrArg,
    size: number,
    seq: number,
    flags: number,
  ): number;
  /** Bytes read from `src` into sequence `seq` (replacing what it held), 0 on failure. */
  llama_state_seq_set_data_ext(
    ctx: LlamaContextPtr,
    src: PtrArg,
    size: number,
    seq: number,
    flags: number,
  ): number;
  llama_synchronize(ctx: LlamaContextPtr): void;
  /** A pooled embedding context's `float[n_embd]` for a sequence of the last decode, or null. */
  llama_get_embeddings_seq(ctx: LlamaContextPtr, seq: number): Pointer | null;
  /** Fill-in-the-middle tokens, or -1 where the vocabulary has none. */
  llama_vocab_fim_pre(vocab: LlamaVocabPtr): number;
  llama_vocab_fim_suf(vocab: LlamaVocabPtr): number;
  llama_vocab_fim_mid(vocab: LlamaVocabPtr): number;
  llama_vocab_n_tokens(vocab: LlamaVocabPtr): number;
  llama_vocab_is_eog(vocab: LlamaVocabPtr, token: number): boolean;
  llama_vocab_bos(vocab: LlamaVocabPtr): number;
  llama_vocab_eos(vocab: LlamaVocabPtr): number;
  llama_vocab_eot(vocab: LlamaVocabPtr): number;
  llama_vocab_get_add_bos(vocab: LlamaVocabPtr): boolean;
  llama_vocab_get_text(vocab: LlamaVocabPtr, token: number): { toString(): string };
  llama_tokenize(
    vocab: LlamaVocabPtr,
    text: PtrArg,
    textLen: number,
    tokens: PtrArg,
    maxTokens: number,
    addSpecial: boolean,
    parseSpecial: boolean,
  ): number;
  llama_token_to_piece(
    vocab: LlamaVocabPtr,
    token: number,
    buf: PtrArg,
    length: number,
    lstrip: number,
    special: boolean,
  ): number;
  llama_sampler_sample(sampler: LlamaSamplerPtr, ctx: LlamaContextPtr, idx: number): number;
  llama_sampler_free(sampler: LlamaSamplerPtr): void;
  /** A GBNF grammar sampler, or null when `grammar` does not parse (llama.cpp logs why). */
  llama_sampler_init_grammar(vocab: LlamaVocabPtr, grammar: PtrArg, root: PtrArg): LlamaSamplerPtr | null;
  /**
   * A grammar that constrains nothing until one of `patterns` (an array of
   * `const char *`) matches the output so far; it then applies from the
   * match's first group (or the match itself) on.
   */
  llama_sampler_init_grammar_lazy_patterns(
    vocab: LlamaVocabPtr,
    grammar: PtrArg,
    root: PtrArg,
    patterns: PtrArg,
    nPatterns: number,
    tokens: PtrArg,
    nTokens: number,
  ): LlamaSamplerPtr | null;
}

export interface GgmlSymbols {
  ggml_backend_load_all_from_path(dir: PtrArg): void;
  ggml_backend_dev_count(): number;
  ggml_backend_dev_get(index: number): GgmlBackendDevPtr | null;
  ggml_backend_dev_name(dev: GgmlBackendDevPtr): { toString(): string };
  ggml_backend_dev_description(dev: GgmlBackendDevPtr): { toString(): string };
}

/** NUL-terminated UTF-8 for `const char *` arguments. */
export function cString(text: string): Buffer {
  return Buffer.from(`${text}\0`, "utf8");
}

/**
 * Opens libllama. The typed facade is the functions bun:ffi built, viewed
 * through branded signatures; the cast is the one place the two meet.
 * Libraries stay open for the life of the process (state in them is global).
 */
export function openLlama(libllama: string): LlamaSymbols {
  const lib = dlopen(libllama, llamaDefs);
  pinned.push(lib);
  return lib.symbols as unknown as LlamaSymbols;
}

/**
 * Library handles are never closed or collected: if every handle to
 * libllama went away (a Worker's handle, a test's own shim) the library
 * would be unmapped under the compiled shim, which points into it.
 */
const pinned: unknown[] = [];

/**
 * Opens libggml and registers the backends found in `dir`. The backend
 * registry is process-wide: call this once per process, not per Worker.
 */
export function openGgmlAndLoadBackends(paths: { dir: string; libggml: string }): GgmlSymbols {
  const lib = dlopen(paths.libggml, ggmlDefs);
  pinned.push(lib);
  const ggml = lib.symbols as unknown as GgmlSymbols;
  ggml.ggml_backend_load_all_from_path(cString(paths.dir));
  return ggml;
}
