/**
 * Which devices a neuron serves: one per CUDA device when the native set is
 * the CUDA one and the driver found GPUs, else `cpu-0` … `cpu-<n-1>` (several
 * CPU devices let tensor-parallel groups run on CPU), narrowed to the
 * configured `devices`. Pure: discovery itself (libcuda) happens at the edge.
 */
import { totalmem } from "node:os";
import type { CudaDevice } from "../../../ffi/cuda.ts";
import { CortexError } from "../../core/errors.ts";
import type { DeviceSpec } from "./device-handle.ts";

export interface DeviceChoice {
  /** The CUDA devices usable with the native set (empty when it is CPU-only). */
  cuda: readonly CudaDevice[];
  cpuDevices: number;
  /** Keep only these device ids. */
  only?: readonly string[];
}

/** One CPU device's share of the machine's `bytes` among `cpuDevices`. */
export function cpuShare(bytes: number, cpuDevices: number): number {
  return Math.floor(bytes / Math.max(1, cpuDevices));
}

export function deviceSpecs(choice: DeviceChoice): DeviceSpec[] {
  let specs: DeviceSpec[] =
    choice.cuda.length > 0
      ? choice.cuda.map((d) => ({
          id: `cuda-dev-${d.index}`,
          kind: "cuda" as const,
          index: d.index,
          name: d.name,
          uuid: d.uuid,
          computeCapability: d.computeCapability,
          memoryTotal: d.memoryTotal,
        }))
      : Array.from({ length: Math.max(1, choice.cpuDevices) }, (_, index) => ({
          id: `cpu-${index}`,
          kind: "cpu" as const,
          index,
          name: "CPU",
          // The CPU devices share one machine's memory: each reports its share, so the
          // fleet's totals (and placement) do not count the machine's memory n times.
          memoryTotal: cpuShare(totalmem(), choice.cpuDevices),
        }));
  if (choice.only) {
    const wanted = new Set(choice.only);
    specs = specs.filter((s) => wanted.has(s.id));
    if (specs.length === 0)
      throw new CortexError("invalid_request", `none of the devices ${choice.only.join(", ")} exist`);
  }
  return specs;
}
