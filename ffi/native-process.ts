/**
 * Process-wide native set-up, done once on the main thread: locate the
 * native set, register ggml's backends, compile the shim and route
 * llama.cpp's log into it. Device Workers then bind the same shim by address
 * and open libllama themselves; no model state lives here.
 */
import { consola } from "consola";
import { openGgmlAndLoadBackends, openLlama } from "./llama-symbols.ts";
import { type LocateOptions, locateNativeSet, type NativeSet } from "./native-paths.ts";
import { compileShim, linkShim, type ShimAddresses, type ShimSources } from "./shim.ts";

export interface NativeProcess {
  set: NativeSet;
  shimAddresses: ShimAddresses;
  /** Backend devices ggml registered (`CPU`, `CUDA0`, …). */
  backendDevices: string[];
}

let prepared: NativeProcess | undefined;

/** Idempotent: later calls return the first set-up, whatever their options. */
export function prepareNativeProcess(
  options: LocateOptions & { shimSources?: ShimSources; logLevel?: number },
): NativeProcess {
  if (prepared) {
    // Someone else in the process may have replaced llama.cpp's (global) log callback since.
    linkShim(prepared.shimAddresses).shim_log_install(options.logLevel ?? 3);
    return prepared;
  }
  const set = locateNativeSet(options);
  // Pin libllama in this process before the shim links against it.
  openLlama(set.libllama);
  const shimAddresses = compileShim(set.dir, options.shimSources);
  // Before the backends load, so their log lines go through consola too.
  linkShim(shimAddresses).shim_log_install(options.logLevel ?? 3);
  const ggml = openGgmlAndLoadBackends(set);
  const backendDevices: string[] = [];
  for (let i = 0; i < ggml.ggml_backend_dev_count(); i++) {
    const dev = ggml.ggml_backend_dev_get(i);
    if (dev) backendDevices.push(ggml.ggml_backend_dev_name(dev).toString());
  }
  consola.info(
    `native set: ${set.dir} (${set.source}, ${set.flavor}, node-llama-cpp ${set.packageVersion ?? "?"}, llama.cpp ${set.llamaCppTag ?? "?"}); ggml devices: ${backendDevices.join(", ")}`,
  );
  prepared = { set, shimAddresses, backendDevices };
  return prepared;
}
