/**
 * Process-wide native set-up, done once on the main thread: locate the
 * native set, load the CUDA runtime libraries a CUDA set needs, register
 * ggml's backends, compile the shim and route llama.cpp's log into it.
 * Device Workers then bind the same shim by address and open libllama
 * themselves; no model state lives here.
 */
import { consola } from "consola";
import { locateCudaLibs, preloadCudaLibs, probeBackendLibrary } from "./cuda-libs.ts";
import { openGgmlAndLoadBackends, openLlama } from "./llama-symbols.ts";
import { type LocateOptions, locateNativeSet, type NativeSet } from "./native-paths.ts";
import { compileShim, linkShim, type ShimAddresses, type ShimSources } from "./shim.ts";

/** A ggml backend device as ggml registered it. */
export interface GgmlDevice {
  /** `CPU`, `CUDA0`, … */
  name: string;
  /** For CUDA the GPU's name as the driver reports it (`NVIDIA H200`). */
  description: string;
}

/** What became of a CUDA set's backend; absent for a CPU set. */
export interface CudaBackendState {
  /** The runtime libraries loaded by absolute path (soname → path). */
  runtimeLibs: Record<string, string>;
  /** Runtime libraries not found, with the folders looked in. */
  missing: Array<{ soname: string; looked: string[] }>;
  /** The dynamic loader's message when libggml-cuda.so could not be loaded; undefined when it loaded. */
  loadError: string | undefined;
}

export interface NativeProcess {
  set: NativeSet & { cudaLooked: string[] };
  shimAddresses: ShimAddresses;
  /** Backend devices ggml registered. */
  backendDevices: GgmlDevice[];
  cuda: CudaBackendState | undefined;
}

let prepared: NativeProcess | undefined;

function prepareCuda(set: NativeSet, env: Record<string, string | undefined>): CudaBackendState {
  const lookup = locateCudaLibs(env);
  const errors = preloadCudaLibs(lookup);
  const backend = set.backends.find((b) => /libggml-cuda[^/]*\.so$/.test(b));
  const loadError = backend ? probeBackendLibrary(backend) : `no libggml-cuda*.so in ${set.dir}`;
  return {
    runtimeLibs: Object.fromEntries(lookup.found),
    missing: lookup.missing.map((soname) => ({ soname, looked: lookup.looked.get(soname) ?? [] })),
    loadError: loadError === undefined ? undefined : [...errors, loadError].join("; "),
  };
}

/** Idempotent: later calls return the first set-up, whatever their options. */
export function prepareNativeProcess(
  options: LocateOptions & {
    shimSources?: ShimSources;
    logLevel?: number;
    /** ggml_abort (a CUDA error) logs its lines at ERROR in this format and exits with this code. */
    fatal?: { exitCode: number; json: boolean };
  },
): NativeProcess {
  if (prepared) {
    // Someone else in the process may have replaced llama.cpp's (global) log callback since.
    const shim = linkShim(prepared.shimAddresses);
    shim.shim_log_install(options.logLevel ?? 3);
    if (options.fatal) shim.shim_fatal_install(options.fatal.exitCode, options.fatal.json ? 1 : 0);
    return prepared;
  }
  const set = locateNativeSet(options);
  // Before ggml loads its backends: the CUDA backend's NEEDED cudart/cublas resolve to these copies.
  const cuda = set.flavor === "cuda" ? prepareCuda(set, options.env ?? process.env) : undefined;
  // Pin libllama in this process before the shim links against it.
  openLlama(set.libllama);
  const shimAddresses = compileShim(set.libllama, options.shimSources);
  // Before the backends load, so their log lines go through consola too.
  const shim = linkShim(shimAddresses);
  shim.shim_log_install(options.logLevel ?? 3);
  if (options.fatal) shim.shim_fatal_install(options.fatal.exitCode, options.fatal.json ? 1 : 0);
  const ggml = openGgmlAndLoadBackends(set);
  const backendDevices: GgmlDevice[] = [];
  for (let i = 0; i < ggml.ggml_backend_dev_count(); i++) {
    const dev = ggml.ggml_backend_dev_get(i);
    if (dev)
      backendDevices.push({
        name: ggml.ggml_backend_dev_name(dev).toString(),
        description: ggml.ggml_backend_dev_description(dev).toString(),
      });
  }
  consola.info(
    `native set: ${set.dir} (${set.source}, ${set.flavor}, node-llama-cpp ${set.packageVersion ?? "?"}, llama.cpp ${set.llamaCppTag ?? "?"}); ggml devices: ${backendDevices.map((d) => d.name).join(", ")}`,
  );
  prepared = { set, shimAddresses, backendDevices, cuda };
  return prepared;
}
