/**
 * libnccl through bun:ffi, plus the handful of libcuda driver calls the
 * liveness all-reduce needs. Each thread (rank Worker, aborter Worker) loads
 * it for itself; dlopen hands every thread the same library instance, so a
 * communicator pointer made in one Worker can be aborted from another.
 *
 * ncclCommInitRank(Config) take the 128-byte ncclUniqueId by value, which
 * bun:ffi cannot pass; a few lines of C compiled at run time with bun:ffi's
 * built-in TinyCC (`cc`, no system compiler needed) take a pointer and pass
 * the struct on. The shim dlopens the library itself, so it works with the
 * `libnccl.so.2` file name that pip and distro packages ship (`-lnccl` would
 * want a `libnccl.so` development link).
 */

import { cc, dlopen, type Pointer, ptr } from "bun:ffi";
import { existsSync, mkdirSync, readdirSync, writeFileSync } from "node:fs";
import { homedir, tmpdir } from "node:os";
import { join } from "node:path";
import { NativeError } from "./native-error.ts";
import {
  CUDA_LIVENESS_SYMBOLS,
  CUDA_SUCCESS,
  NCCL_FLOAT64,
  NCCL_RESULT,
  NCCL_SHIM_SYMBOLS,
  NCCL_SYMBOLS,
} from "./nccl-symbols.ts";

export * from "./nccl-symbols.ts";

export const NCCL_UNIQUE_ID_BYTES = 128;

/**
 * The shim. `cortex_nccl_config_2_14` is the leading part of nccl.h's
 * ncclConfig_t (size, magic, version, blocking) as NCCL_CONFIG_INITIALIZER
 * fills it, declared at version 2.14.0, the first release with the struct:
 * NCCL copies `size` bytes of the caller's struct over its own
 * NCCL_CONFIG_INITIALIZER defaults and resets every field newer than
 * `version` (parseCommConfig in init.cc), so this prefix means the same thing
 * to every NCCL from 2.14 on, whereas a copy of today's full struct would
 * claim fields an older library does not have.
 */
export const NCCL_SHIM_SOURCE = `
typedef struct { char internal[128]; } cortex_nccl_unique_id;
typedef struct ncclComm* ncclComm_t;
typedef struct {
  unsigned long size;    /* sizeof(ncclConfig_t) as the caller knows it */
  unsigned int magic;    /* NCCL_API_MAGIC 0xcafebeef */
  unsigned int version;  /* NCCL_VERSION_CODE of the declaring header */
  int blocking;          /* 0: calls return ncclInProgress; poll ncclCommGetAsyncError */
} cortex_nccl_config_2_14;
typedef int (*init_config_fn)(ncclComm_t*, int, cortex_nccl_unique_id, int, cortex_nccl_config_2_14*);
typedef int (*init_fn)(ncclComm_t*, int, cortex_nccl_unique_id, int);
extern void* dlopen(const char*, int);
extern void* dlsym(void*, const char*);
static init_config_fn g_init_config;
static init_fn g_init;

int cortex_nccl_bind(const char* path) {
  void* handle = dlopen(path, 2 /* RTLD_NOW */);
  if (!handle) return -1;
  g_init_config = (init_config_fn)dlsym(handle, "ncclCommInitRankConfig");
  g_init = (init_fn)dlsym(handle, "ncclCommInitRank");
  return g_init ? 0 : -2;
}

int cortex_nccl_has_init_config(void) { return g_init_config != 0; }

int cortex_nccl_init_rank_config(ncclComm_t* comm, int nranks, const cortex_nccl_unique_id* id, int rank, int blocking) {
  cortex_nccl_config_2_14 config;
  char* bytes = (char*)&config;
  for (unsigned long i = 0; i < sizeof(config); i++) bytes[i] = 0;
  config.size = sizeof(config);
  config.magic = 0xcafebeef;
  config.version = 21400; /* NCCL_VERSION(2,14,0) */
  config.blocking = blocking;
  if (!g_init_config) return 5; /* ncclInvalidUsage */
  return g_init_config(comm, nranks, *id, rank, &config);
}

int cortex_nccl_init_rank(ncclComm_t* comm, int nranks, const cortex_nccl_unique_id* id, int rank) {
  if (!g_init) return 5;
  return g_init(comm, nranks, *id, rank);
}
`;

export interface NcclLookup {
  path: string | undefined;
  /** Every place looked, in order, for the "not found" message. */
  looked: string[];
}

function sitePackagesDirs(env: Record<string, string | undefined>): string[] {
  const roots = ["/usr/lib", "/usr/local/lib", "/usr/lib64", "/opt/conda/lib", join(homedir(), ".local/lib")];
  if (env.VIRTUAL_ENV) roots.unshift(join(env.VIRTUAL_ENV, "lib"));
  if (env.CONDA_PREFIX) roots.unshift(join(env.CONDA_PREFIX, "lib"));
  const out: string[] = [];
  for (const root of roots) {
    let entries: string[];
    try {
      entries = readdirSync(root);
    } catch {
      continue;
    }
    for (const entry of entries.filter((e) => e.startsWith("python3")).sort()) {
      out.push(join(root, entry, "site-packages"), join(root, entry, "dist-packages"));
    }
  }
  return out;
}

/** Finds libnccl: CORTEX_NCCL_LIB, then the usual system and Python wheel locations. */
export function findNcclLibrary(env: Record<string, string | undefined> = process.env): NcclLookup {
  const looked: string[] = [];
  const explicit = env.CORTEX_NCCL_LIB;
  if (explicit) {
    looked.push(`CORTEX_NCCL_LIB=${explicit}`);
    return { path: existsSync(explicit) ? explicit : undefined, looked };
  }
  const dirs = [
    ...(env.LD_LIBRARY_PATH ?? "").split(":").filter(Boolean),
    "/usr/lib/x86_64-linux-gnu",
    "/usr/lib/aarch64-linux-gnu",
    "/usr/lib64",
    "/usr/lib",
    "/usr/local/lib",
    "/usr/local/cuda/lib64",
    "/usr/local/nccl/lib",
    ...sitePackagesDirs(env).map((d) => join(d, "nvidia/nccl/lib")),
  ];
  for (const dir of dirs) {
    const candidate = join(dir, "libnccl.so.2");
    looked.push(candidate);
    if (existsSync(candidate)) return { path: candidate, looked };
  }
  return { path: undefined, looked };
}

/** The one clear message for a missing libnccl. */
export function ncclMissingMessage(lookup: NcclLookup): string {
  return (
    `libnccl not found (looked in: ${lookup.looked.join(", ")}); the nccl communicator is unavailable, ` +
    "so multi-device groups use the shm communicator or are refused. Set CORTEX_NCCL_LIB to libnccl.so.2 " +
    "or install NCCL (e.g. the nvidia-nccl-cu12 wheel)."
  );
}

type NcclSymbols = ReturnType<typeof dlopen<typeof NCCL_SYMBOLS>>["symbols"];
type ShimSymbols = ReturnType<typeof cc<typeof NCCL_SHIM_SYMBOLS>>["symbols"];

/** One thread's view of a loaded libnccl. Pointers are plain numbers, as bun:ffi hands them out. */
export interface NcclLibrary {
  readonly path: string;
  /** NCCL_VERSION_CODE, e.g. 22105 for 2.21.5. */
  readonly version: number;
  readonly hasInitRankConfig: boolean;
  getUniqueId(): Uint8Array;
  /** Nonblocking (blocking=0) init when the library has ncclCommInitRankConfig, classic blocking init otherwise. */
  initRank(
    nranks: number,
    uniqueId: Uint8Array,
    rank: number,
    blocking: boolean,
  ): { result: number; comm: number };
  allReduce(send: Pointer | number, recv: Pointer | number, count: number, op: number, comm: number): number;
  commAbort(comm: number): number;
  commDestroy(comm: number): number;
  /** ncclCommGetAsyncError's out value (its own return folded in: a failed query reads as that failure). */
  asyncError(comm: number): number;
  errorString(result: number): string;
}

const loaded = new Map<string, NcclLibrary>();

/** Loads (once per thread and path) the library at `path`; throws NativeError("unavailable") with the reason. */
export function loadNccl(path: string): NcclLibrary {
  const cached = loaded.get(path);
  if (cached) return cached;
  let nccl: NcclSymbols;
  try {
    nccl = dlopen(path, NCCL_SYMBOLS).symbols;
  } catch (error) {
    throw new NativeError("unavailable", `cannot load libnccl from ${path}: ${(error as Error).message}`, {
      cause: error,
    });
  }
  const shim = compileShim();
  const bound = shim.cortex_nccl_bind(ptr(Buffer.from(`${path}\0`)));
  if (bound !== 0)
    throw new NativeError("unavailable", `libnccl at ${path} lacks ncclCommInitRank (bind ${bound})`);
  const versionOut = new Int32Array(1);
  const vr = nccl.ncclGetVersion(ptr(versionOut));
  if (vr !== NCCL_RESULT.success)
    throw new NativeError("unavailable", `ncclGetVersion failed (${vr}) for ${path}`);
  const lib = makeLibrary(path, versionOut[0]!, nccl, shim);
  loaded.set(path, lib);
  return lib;
}

function compileShim(): ShimSymbols {
  const dir = join(tmpdir(), "cortex-ffi");
  mkdirSync(dir, { recursive: true });
  const file = join(dir, `nccl-shim-${Bun.hash(NCCL_SHIM_SOURCE).toString(16)}.c`);
  if (!existsSync(file)) writeFileSync(file, NCCL_SHIM_SOURCE);
  return cc({ source: file, symbols: NCCL_SHIM_SYMBOLS }).symbols;
}

function makeLibrary(path: string, version: number, nccl: NcclSymbols, shim: ShimSymbols): NcclLibrary {
  const hasInitRankConfig = shim.cortex_nccl_has_init_config() === 1;
  return {
    path,
    version,
    hasInitRankConfig,
    getUniqueId() {
      const id = new Uint8Array(NCCL_UNIQUE_ID_BYTES);
      const r = nccl.ncclGetUniqueId(ptr(id));
      if (r !== NCCL_RESULT.success) {
        throw new NativeError("broken", `ncclGetUniqueId failed: ${describe(nccl, r)}`);
      }
      return id;
    },
    initRank(nranks, uniqueId, rank, blocking) {
      if (uniqueId.byteLength !== NCCL_UNIQUE_ID_BYTES) {
        throw new TypeError(`ncclUniqueId must be ${NCCL_UNIQUE_ID_BYTES} bytes, got ${uniqueId.byteLength}`);
      }
      const out = new BigUint64Array(1);
      const result =
        hasInitRankConfig && !blocking
          ? shim.cortex_nccl_init_rank_config(ptr(out), nranks, ptr(uniqueId), rank, 0)
          : shim.cortex_nccl_init_rank(ptr(out), nranks, ptr(uniqueId), rank);
      return { result, comm: Number(out[0]) };
    },
    allReduce(send, recv, count, op, comm) {
      return nccl.ncclAllReduce(
        send as Pointer,
        recv as Pointer,
        count,
        NCCL_FLOAT64,
        op,
        comm as Pointer,
        null,
      );
    },
    commAbort: (comm) => nccl.ncclCommAbort(comm as Pointer),
    commDestroy: (comm) => nccl.ncclCommDestroy(comm as Pointer),
    asyncError(comm) {
      const out = new Int32Array(1);
      const r = nccl.ncclCommGetAsyncError(comm as Pointer, ptr(out));
      return r === NCCL_RESULT.success ? out[0]! : r;
    },
    errorString: (result) => describe(nccl, result),
  };
}

function describe(nccl: NcclSymbols, result: number): string {
  const text = nccl.ncclGetErrorString(result);
  return `${String(text)} (ncclResult ${result})`;
}

type CudaSymbols = ReturnType<typeof dlopen<typeof CUDA_LIVENESS_SYMBOLS>>["symbols"];
let cuda: CudaSymbols | undefined;

/** libcuda's driver calls for the liveness buffers; throws NativeError("unavailable") without a driver. */
export function loadCudaLiveness(): CudaSymbols {
  if (cuda) return cuda;
  try {
    cuda = dlopen("libcuda.so.1", CUDA_LIVENESS_SYMBOLS).symbols;
  } catch (error) {
    throw new NativeError("unavailable", `libcuda.so.1 not loadable: ${(error as Error).message}`, {
      cause: error,
    });
  }
  return cuda;
}

/** Throws when a CUDA driver call did not return CUDA_SUCCESS, naming the call. */
export function checkCuda(what: string, result: number): void {
  if (result !== CUDA_SUCCESS) throw new Error(`${what} failed (CUresult ${result})`);
}

/** Makes device `index`'s primary context current on this thread (NCCL and cuMem* calls need one). */
export function useCudaDevice(index: number): void {
  const cu = loadCudaLiveness();
  checkCuda("cuInit", cu.cuInit(0));
  const dev = new Int32Array(1);
  checkCuda("cuDeviceGet", cu.cuDeviceGet(ptr(dev), index));
  const ctx = new BigUint64Array(1);
  checkCuda("cuDevicePrimaryCtxRetain", cu.cuDevicePrimaryCtxRetain(ptr(ctx), dev[0]!));
  checkCuda("cuCtxSetCurrent", cu.cuCtxSetCurrent(Number(ctx[0]) as Pointer));
}
