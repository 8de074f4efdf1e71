/**
 * The CUDA runtime libraries a prebuilt ggml CUDA backend needs but does not
 * ship (`libcudart.so.13`, `libcublas.so.13` and its `libcublasLt.so.13`),
 * found where operators keep them and loaded by absolute path before ggml
 * loads its CUDA backend: the dynamic loader then satisfies the backend's
 * NEEDED entries by soname from the copies already in the process, whatever
 * the loader's own search path says.
 */
import { dlopen, type FFIFunction } from "bun:ffi";
import { existsSync, readdirSync } from "node:fs";
import { homedir } from "node:os";
import { join } from "node:path";

/** What the CUDA backend of @node-llama-cpp/linux-x64-cuda needs, in load order (cublas needs cublasLt). */
export const CUDA_RUNTIME_LIBS = [
  { soname: "libcudart.so.13", wheel: "cuda_runtime", symbol: "cudaRuntimeGetVersion" },
  { soname: "libcublasLt.so.13", wheel: "cublas", symbol: "cublasLtGetVersion" },
  { soname: "libcublas.so.13", wheel: "cublas", symbol: "cublasGetProperty" },
] as const;

/** pip wheels that carry them (CUDA 13 wheels dropped the -cu13 suffix). */
export const CUDA_RUNTIME_WHEELS = ["nvidia-cuda-runtime==13.*", "nvidia-cublas==13.*"] as const;

type Env = Record<string, string | undefined>;

/** Python site-packages folders of the usual interpreters: venv, conda, system, user, pyenv. */
export function sitePackagesDirs(env: Env = process.env): string[] {
  const home = env.HOME ?? homedir();
  const roots = ["/usr/lib", "/usr/local/lib", "/usr/lib64", "/opt/conda/lib", join(home, ".local/lib")];
  if (env.VIRTUAL_ENV) roots.unshift(join(env.VIRTUAL_ENV, "lib"));
  if (env.CONDA_PREFIX) roots.unshift(join(env.CONDA_PREFIX, "lib"));
  const pyenv = join(env.PYENV_ROOT ?? join(home, ".pyenv"), "versions");
  for (const version of listDir(pyenv).sort()) roots.push(join(pyenv, version, "lib"));
  const out: string[] = [];
  for (const root of roots) {
    for (const entry of listDir(root)
      .filter((e) => e.startsWith("python3"))
      .sort()) {
      out.push(join(root, entry, "site-packages"), join(root, entry, "dist-packages"));
    }
  }
  return out;
}

function listDir(dir: string): string[] {
  try {
    return readdirSync(dir);
  } catch {
    return [];
  }
}

/**
 * Folders searched for one library, in order: CORTEX_CUDA_LIB_DIR, the CUDA
 * toolkit (CUDA_HOME, CUDA_PATH, /usr/local/cuda*), LD_LIBRARY_PATH, the
 * system library folders, then Python wheels. Pure but for listing the
 * folders that hold toolkits and wheels, so the order is testable.
 */
export function cudaLibDirs(wheel: string, env: Env = process.env): string[] {
  const toolkits = [env.CUDA_HOME, env.CUDA_PATH, "/usr/local/cuda"]
    .filter((d): d is string => Boolean(d))
    .concat(
      listDir("/usr/local")
        .filter((e) => /^cuda-13/.test(e))
        .sort()
        .reverse()
        .map((e) => join("/usr/local", e)),
    );
  const dirs = [
    ...(env.CORTEX_CUDA_LIB_DIR ?? "").split(":").filter(Boolean),
    ...toolkits.flatMap((t) => [join(t, "lib64"), join(t, "targets/x86_64-linux/lib")]),
    ...(env.LD_LIBRARY_PATH ?? "").split(":").filter(Boolean),
    "/usr/lib/x86_64-linux-gnu",
    "/usr/lib64",
    "/usr/lib",
    ...sitePackagesDirs(env).flatMap((d) => [join(d, "nvidia", wheel, "lib"), join(d, "nvidia/cu13/lib")]),
  ];
  return [...new Set(dirs)];
}

export interface CudaLibsLookup {
  /** soname → absolute path, for those found. */
  found: Map<string, string>;
  missing: string[];
  /** Every folder looked in, per missing library, for the error message. */
  looked: Map<string, string[]>;
}

export function locateCudaLibs(env: Env = process.env): CudaLibsLookup {
  const found = new Map<string, string>();
  const missing: string[] = [];
  const looked = new Map<string, string[]>();
  for (const lib of CUDA_RUNTIME_LIBS) {
    const dirs = cudaLibDirs(lib.wheel, env);
    const dir = dirs.find((d) => existsSync(join(d, lib.soname)));
    if (dir) found.set(lib.soname, join(dir, lib.soname));
    else {
      missing.push(lib.soname);
      looked.set(lib.soname, dirs);
    }
  }
  return { found, missing, looked };
}

/** Libraries stay loaded for the life of the process: ggml's CUDA backend points into them. */
const pinned: unknown[] = [];

/**
 * Loads every found library by its absolute path, in dependency order.
 * Returns the loader's message for each one that failed to load.
 */
export function preloadCudaLibs(lookup: CudaLibsLookup): string[] {
  const errors: string[] = [];
  for (const lib of CUDA_RUNTIME_LIBS) {
    const path = lookup.found.get(lib.soname);
    if (!path) continue;
    const defs = { [lib.symbol]: { args: [], returns: "void" } } satisfies Record<string, FFIFunction>;
    try {
      pinned.push(dlopen(path, defs));
    } catch (error) {
      errors.push(error instanceof Error ? error.message : String(error));
    }
  }
  return errors;
}

/**
 * Tries to load a ggml backend library the way ggml will, so a failure is
 * reported with the dynamic loader's own words ("libcudart.so.13: cannot
 * open shared object file") instead of a silently missing device.
 */
export function probeBackendLibrary(path: string): string | undefined {
  try {
    pinned.push(dlopen(path, { ggml_backend_init: { args: [], returns: "ptr" } }));
    return undefined;
  } catch (error) {
    return error instanceof Error ? error.message : String(error);
  }
}
