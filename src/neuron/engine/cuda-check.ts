/**
 * Whether a node with GPUs really computes on them: the devices ggml's CUDA
 * backend registered must be the ones libcuda lists (same count, same
 * names, in the same order). A `cuda-dev-N` that computes on the CPU is
 * never acceptable; the pool refuses to start or, with
 * `neuron.allow_cpu_fallback`, runs as a CPU node and says so. Pure: the
 * native facts are gathered at the edge (DevicePool.start).
 */
import type { CudaDevice } from "../../../ffi/cuda.ts";
import type { CudaBackendState, GgmlDevice } from "../../../ffi/native-process.ts";

export interface CudaFacts {
  /** What libcuda lists (empty: no driver or no GPU, a CPU node). */
  cuda: readonly CudaDevice[];
  /** CUDA version the driver supports (`13.0`), when known. */
  driverVersion: string | undefined;
  set: { dir: string; flavor: "cpu" | "cuda"; cudaLooked: readonly string[] };
  backend: CudaBackendState | undefined;
  ggmlDevices: readonly GgmlDevice[];
}

export type CudaVerdict =
  | { kind: "cpu-node" }
  | { kind: "gpu-node"; devices: readonly CudaDevice[] }
  | { kind: "refused"; reason: string };

/** The CUDA version the prebuilt set's cudart and cublas (`*.so.13`) need from the driver. */
const NEEDED_DRIVER_CUDA = 13;

function describeGpus(facts: CudaFacts): string {
  const names = new Map<string, number>();
  for (const d of facts.cuda) names.set(d.name, (names.get(d.name) ?? 0) + 1);
  const list = [...names].map(([name, n]) => (n > 1 ? `${name} ×${n}` : name)).join(", ");
  const caps = [...new Set(facts.cuda.map((d) => d.computeCapability))].join("/");
  return `${facts.cuda.length} CUDA device(s) (${list}; compute capability ${caps}; driver supports CUDA ${facts.driverVersion ?? "?"})`;
}

function driverHint(facts: CudaFacts): string {
  const major = Number((facts.driverVersion ?? "").split(".")[0]);
  return Number.isFinite(major) && major > 0 && major < NEEDED_DRIVER_CUDA
    ? `; the driver supports CUDA ${facts.driverVersion} but this set needs CUDA ${NEEDED_DRIVER_CUDA} (driver 580 or later), or build one for this driver: npm run build:native:cuda`
    : "";
}

export function checkCudaBackend(facts: CudaFacts): CudaVerdict {
  if (facts.cuda.length === 0) return { kind: "cpu-node" };
  const gpus = describeGpus(facts);
  if (facts.set.flavor !== "cuda") {
    const where =
      facts.set.cudaLooked.length > 0
        ? `no CUDA native set found (looked in ${facts.set.cudaLooked.join(", ")})`
        : `the native set in ${facts.set.dir} is CPU-only (no libggml-cuda.so)`;
    return {
      kind: "refused",
      reason: `${gpus}, but ${where}; run \`npm run setup:cuda\` (or point CORTEX_NATIVE_DIR at a CUDA set)`,
    };
  }
  if (facts.backend?.loadError !== undefined) {
    const missing = facts.backend.missing
      .map((m) => `${m.soname} not found (looked in ${m.looked.join(", ")})`)
      .join("; ");
    return {
      kind: "refused",
      reason:
        `${gpus}, but ggml's CUDA backend in ${facts.set.dir} did not load: ${facts.backend.loadError}` +
        (missing ? `; ${missing}; set CORTEX_CUDA_LIB_DIR or run \`npm run setup:cuda\`` : "") +
        driverHint(facts),
    };
  }
  const registered = facts.ggmlDevices.filter((d) => /^CUDA\d+$/.test(d.name));
  if (registered.length !== facts.cuda.length)
    return {
      kind: "refused",
      reason:
        `${gpus}, but ggml's CUDA backend registered ${registered.length} (${registered.map((d) => d.name).join(", ") || "none"}; ggml devices: ${facts.ggmlDevices.map((d) => d.name).join(", ")})` +
        driverHint(facts),
    };
  const mismatch = facts.cuda.find((d, i) => registered[i]?.description !== d.name);
  if (mismatch)
    return {
      kind: "refused",
      reason: `${gpus}, but ggml's CUDA${mismatch.index} is "${registered[mismatch.index]?.description}" where libcuda's device ${mismatch.index} is "${mismatch.name}" (CUDA_VISIBLE_DEVICES read differently?)`,
    };
  return { kind: "gpu-node", devices: facts.cuda };
}
