/**
 * Where a tensor-parallel group goes: pure choices over the pool's devices,
 * kept apart from the pool so they can be tested without Workers.
 */
import { CortexError } from "../../core/errors.ts";

export interface PlacementDevice {
  id: string;
  kind: "cpu" | "cuda";
  free: number;
  poisoned: boolean;
  /** Already a member of a group, or serving any model: a group needs its devices to itself. */
  busy: boolean;
}

/**
 * Picks the group's devices, leader first. Explicit ids are taken as given
 * (and must be usable); otherwise the first `count` usable devices with at
 * least `needBytes / count` free each. Throws a CortexError saying why not.
 */
export function chooseGroupDevices(
  devices: readonly PlacementDevice[],
  request: { modelId: string; deviceIds?: readonly string[]; count: number; needBytes: number },
): PlacementDevice[] {
  const { modelId, count } = request;
  const share = request.needBytes / count;
  if (request.deviceIds) {
    const chosen: PlacementDevice[] = [];
    for (const id of request.deviceIds) {
      const device = devices.find((d) => d.id === id);
      if (!device) throw new CortexError("not_found", `no device ${id} on this neuron`, { param: "devices" });
      if (chosen.includes(device))
        throw new CortexError("invalid_request", `device ${id} is listed twice`, { param: "devices" });
      if (device.poisoned) throw new CortexError("device_fault", `${id} is poisoned; recycle it first`);
      if (device.busy)
        throw new CortexError(
          "conflict",
          `${id} is already serving a model; a tensor-parallel group needs its devices to itself`,
          {
            retryAfterS: 1,
          },
        );
      chosen.push(device);
    }
    const kinds = new Set(chosen.map((d) => d.kind));
    if (kinds.size > 1)
      throw new CortexError("invalid_request", "a tensor-parallel group cannot mix CPU and CUDA devices", {
        param: "devices",
      });
    return chosen;
  }
  if (devices.length < count)
    throw new CortexError(
      "invalid_request",
      `${modelId} asks for ${count} devices; this neuron has ${devices.length} (${devices.map((d) => d.id).join(", ")})`,
      { param: "deviceCount" },
    );
  const usable = devices.filter((d) => !d.poisoned && !d.busy && d.free >= share);
  const kind = usable[0]?.kind;
  const chosen = usable.filter((d) => d.kind === kind).slice(0, count);
  if (chosen.length < count)
    throw new CortexError(
      "insufficient_memory",
      `${modelId} needs ${count} devices with ${Math.ceil(share)} bytes free each and no other model; only ${chosen.length} are (${usable.map((d) => d.id).join(", ") || "none"})`,
      { details: { required_bytes: request.needBytes, devices_needed: count, devices_free: chosen.length } },
    );
  return chosen;
}

/** Bytes of a group's model charged to one member: all on the CPU leader (it runs the model), an equal share on CUDA. */
export function groupShareBytes(
  memoryBytes: number,
  group: { kind: "cpu" | "cuda"; deviceIds: readonly string[] },
  deviceId: string,
): number {
  if (!group.deviceIds.includes(deviceId)) return 0;
  if (group.kind === "cuda") return memoryBytes / group.deviceIds.length;
  return group.deviceIds[0] === deviceId ? memoryBytes : 0;
}

/** ggml's names of CUDA devices, as llama.cpp's device list wants them. */
export function ggmlCudaNames(ordinals: readonly number[]): string[] {
  return ordinals.map((ordinal) => `CUDA${ordinal}`);
}
