/**
 * Compiles ffi/shim.c at run time with bun:ffi's built-in TinyCC and links it
 * against the located libllama. The source and header folder are parameters
 * so the compiled executable can point at the copies it extracted to its
 * cache directory.
 */
import { consola } from "consola";
import { cc, type FFIFunction, linkSymbols, type Pointer } from "bun:ffi";
import { existsSync } from "node:fs";
import { basename, dirname, join, resolve } from "node:path";
import { NativeError } from "./native-error.ts";
import type {
  LlamaBatchPtr,
  LlamaContextPtr,
  LlamaModelPtr,
  LlamaSamplerPtr,
  PtrArg,
} from "./llama-symbols.ts";

/** Sizes of the by-value structs in the vendored llama.h, as gcc lays them out on x86-64. */
export const EXPECTED_STRUCT_SIZES = { contextParams: 160, modelParams: 80 } as const;

export const shimDefs = {
  shim_log_install: { args: ["i32"], returns: "void" },
  shim_log_drain: { args: ["ptr", "i32"], returns: "i32" },
  shim_fatal_install: { args: ["i32", "i32"], returns: "void" },
  shim_model_load: { args: ["ptr", "i32", "i32", "bool"], returns: "ptr" },
  shim_model_load_devices: { args: ["ptr", "ptr", "i32", "i32", "bool"], returns: "ptr" },
  shim_context_new: { args: ["ptr", "u32", "u32", "u32", "i32", "ptr"], returns: "ptr" },
  shim_embed_context_new: { args: ["ptr", "u32", "u32", "i32", "ptr"], returns: "ptr" },
  shim_batch_new: { args: ["i32"], returns: "ptr" },
  shim_batch_free: { args: ["ptr"], returns: "void" },
  shim_batch_decode: { args: ["ptr", "ptr", "i32", "ptr", "ptr", "ptr", "ptr"], returns: "i32" },
  shim_sampler_new: {
    args: ["i32", "f32", "i32", "f32", "f32", "u32", "i32", "f32", "f32", "f32", "i32", "ptr", "ptr"],
    returns: "ptr",
  },
  shim_sample_constrained: { args: ["ptr", "ptr", "ptr", "i32", "ptr", "i32"], returns: "i32" },
  shim_sample_greedy: { args: ["ptr", "i32", "i32"], returns: "i32" },
  shim_argmax: { args: ["ptr", "i32"], returns: "i32" },
  shim_chat_apply_template: { args: ["ptr", "i32", "ptr", "ptr", "bool", "ptr", "i32"], returns: "i32" },
  shim_sizeof_context_params: { args: [], returns: "i32" },
  shim_sizeof_model_params: { args: [], returns: "i32" },
} as const satisfies Record<string, FFIFunction>;

export interface ShimSymbols {
  /** Routes llama.cpp's log into the shim's ring; `minLevel` is a ggml_log_level (1 debug … 4 error). */
  shim_log_install(minLevel: number): void;
  shim_log_drain(out: PtrArg, cap: number): number;
  /**
   * Makes ggml_abort (a CUDA error, a failed GGML_ASSERT) write the buffered
   * log and its message to stderr as ERROR lines (`json` 1: JSON lines) and
   * exit with `exitCode` instead of raising SIGABRT.
   */
  shim_fatal_install(exitCode: number, json: number): void;
  shim_model_load(path: PtrArg, nGpuLayers: number, mainGpu: number, useMmap: boolean): LlamaModelPtr | null;
  /**
   * Loads a model split over several ggml devices (`names`: NUL-terminated
   * names back to back, e.g. "CUDA0\0CUDA1\0"); `splitMode` is a llama_split_mode.
   */
  shim_model_load_devices(
    path: PtrArg,
    names: PtrArg,
    nDevices: number,
    splitMode: number,
    useMmap: boolean,
  ): LlamaModelPtr | null;
  shim_context_new(
    model: LlamaModelPtr,
    nCtx: number,
    nBatch: number,
    nSeqMax: number,
    nThreads: number,
    abortFlag: PtrArg,
  ): LlamaContextPtr | null;
  /** A pooled-embedding context (mean pooling unless the model has its own); null for a reranker. */
  shim_embed_context_new(
    model: LlamaModelPtr,
    nCtx: number,
    nSeqMax: number,
    nThreads: number,
    abortFlag: PtrArg,
  ): LlamaContextPtr | null;
  shim_batch_new(nTokens: number): LlamaBatchPtr | null;
  shim_batch_free(batch: LlamaBatchPtr): void;
  /** 0 ok; 1 no KV slot; 2 aborted; -1 invalid batch; < -1 fatal. */
  shim_batch_decode(
    ctx: LlamaContextPtr,
    batch: LlamaBatchPtr,
    n: number,
    tokens: PtrArg,
    pos: PtrArg,
    seq: PtrArg,
    logits: PtrArg,
  ): number;
  shim_sampler_new(
    nVocab: number,
    temperature: number,
    topK: number,
    topP: number,
    minP: number,
    seed: number,
    penaltyLastN: number,
    penaltyRepeat: number,
    penaltyFreq: number,
    penaltyPresent: number,
    nBias: number,
    biasTokens: PtrArg,
    biasValues: PtrArg,
  ): LlamaSamplerPtr | null;
  /**
   * Samples and accepts one token under a grammar sampler (kept outside the
   * chain); `buf` holds nVocab llama_token_data (12 bytes each). -1: no logits.
   */
  shim_sample_constrained(
    chain: LlamaSamplerPtr,
    grammar: LlamaSamplerPtr,
    ctx: LlamaContextPtr,
    idx: number,
    buf: PtrArg,
    nVocab: number,
  ): number;
  /** The token with the highest logit at output `idx` (llama.cpp's greedy choice, without its copy of the logits); -1: no logits. */
  shim_sample_greedy(ctx: LlamaContextPtr, idx: number, nVocab: number): number;
  /** shim_sample_greedy's scan over `n` floats: the index of the first highest value; -1 when n ≤ 0. */
  shim_argmax(values: PtrArg, n: number): number;
  shim_chat_apply_template(
    tmpl: PtrArg,
    nMsg: number,
    roles: PtrArg,
    contents: PtrArg,
    addAssistant: boolean,
    buf: PtrArg,
    cap: number,
  ): number;
  shim_sizeof_context_params(): number;
  shim_sizeof_model_params(): number;
}

export interface ShimSources {
  /** Path of shim.c. */
  source: string;
  /** Folder holding llama.h and the ggml headers. */
  includeDir: string;
  /** Folder of the libc stand-in headers (ffi/shim-include), so no system headers are needed. */
  libcIncludeDir: string;
}

/**
 * Where shim.c and the headers live: this file's folder in a source checkout;
 * in the compiled executable (whose modules sit in Bun's virtual file
 * system) the `native/` folder that `npm run build` puts beside it.
 */
export function repoShimSources(): ShimSources {
  const inRepo = import.meta.dir;
  const here = existsSync(join(inRepo, "shim.c")) ? inRepo : join(dirname(process.execPath), "native");
  return {
    source: join(here, "shim.c"),
    includeDir: join(here, "include"),
    libcIncludeDir: join(here, "shim-include"),
  };
}

/** Entry-point addresses of a compiled shim, sendable to Workers. */
export type ShimAddresses = Record<keyof typeof shimDefs, number>;

/** Compile attempts before a failure counts as real (see compileWithRetries). */
const COMPILE_ATTEMPTS = 3;

/**
 * Seen only on a machine under heavy load, a few times in hundreds of runs and once twice in a row: Bun's
 * TinyCC reported a parse error in the unchanged, read-only headers (`';' expected (got 'size_t')`), and
 * the same compile then succeeded. The cause is inside Bun's TinyCC and not established (a header read cut
 * short would fit). A real error in the source fails every attempt, so a few attempts cost nothing there.
 */
function compileWithRetries<T>(compile: () => T, source: string): T {
  for (let attempt = 1; ; attempt++) {
    try {
      return compile();
    } catch (error) {
      if (attempt >= COMPILE_ATTEMPTS)
        throw new NativeError("broken", `compiling the native shim ${source} failed: ${String(error)}`, {
          cause: error,
        });
      consola.warn(
        `compiling the native shim failed (attempt ${attempt} of ${COMPILE_ATTEMPTS}), trying again: ${String(error).split("\n")[0]}`,
      );
    }
  }
}

/**
 * Compiles and links the shim against `libllama` (a path in the native set). The
 * result must live as long as the process: llama.cpp keeps pointers into it
 * (the log and abort callbacks), so compile once on the main thread and hand
 * Workers the addresses (linkShim).
 */
export function compileShim(libllama: string, sources: ShimSources = repoShimSources()): ShimAddresses {
  const libDir = dirname(libllama);
  // `-l` takes the name between `lib` and `.so`: llama.v0.5.0, llama.cuda.v0.5.0 or llama.
  const linkName = basename(libllama).replace(/^lib/, "").replace(/\.so$/, "");
  const source = resolve(sources.source);
  const includeDir = resolve(sources.includeDir);
  const libcIncludeDir = resolve(sources.libcIncludeDir);
  for (const [what, path] of [
    ["shim source", source],
    ["llama.h", join(includeDir, "llama.h")],
    ["shim libc headers", join(libcIncludeDir, "stdint.h")],
  ] as const) {
    if (!existsSync(path)) throw new NativeError("broken", `${what} not found at ${path}`);
  }
  const compile = () =>
    cc({
      source,
      include: [libcIncludeDir, includeDir],
      library: [linkName],
      // -nostdinc: a user's machine need not have C headers; ffi/shim-include stands in for them.
      flags: ["-nostdinc", `-L${libDir}`, `-Wl,-rpath,${libDir}`],
      symbols: shimDefs,
    });
  const compiled = compileWithRetries(compile, source);
  keepAlive.push(compiled);
  const sizes = {
    contextParams: compiled.symbols.shim_sizeof_context_params(),
    modelParams: compiled.symbols.shim_sizeof_model_params(),
  };
  if (
    sizes.contextParams !== EXPECTED_STRUCT_SIZES.contextParams ||
    sizes.modelParams !== EXPECTED_STRUCT_SIZES.modelParams
  ) {
    throw new NativeError(
      "broken",
      `native shim struct layout mismatch: ${JSON.stringify(sizes)} vs ${JSON.stringify(EXPECTED_STRUCT_SIZES)}`,
    );
  }
  const addresses = {} as ShimAddresses;
  const byName = compiled.symbols as unknown as Record<string, { ptr?: unknown }>;
  for (const name of Object.keys(shimDefs) as Array<keyof typeof shimDefs>) {
    const address = byName[name]?.ptr;
    if (typeof address !== "number") throw new NativeError("broken", `shim symbol ${name} has no address`);
    addresses[name] = address;
  }
  return addresses;
}

/** Compiled shims are never freed (see compileShim). */
const keepAlive: unknown[] = [];

/** Binds a compiled shim's entry points in this thread. */
export function linkShim(addresses: ShimAddresses): ShimSymbols {
  const defs: Record<string, FFIFunction> = {};
  for (const name of Object.keys(shimDefs) as Array<keyof typeof shimDefs>) {
    const def: FFIFunction = shimDefs[name];
    defs[name] = { args: def.args, returns: def.returns, ptr: addresses[name] as Pointer };
  }
  return linkSymbols(defs).symbols as unknown as ShimSymbols;
}
