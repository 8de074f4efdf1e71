/**
 * Defrag: a device whose Worker has gone through `afterCycles` load/unload
 * cycles is recycled (fresh Worker, fresh allocator) once it is idle: no
 * model on it loading, unloading, busy or reserved. A device that holds a
 * pinned model is left alone: the neuron would reload the model on the fresh
 * Worker, but it would not answer while it reloads, and a pinned model is
 * pinned so that it always answers. Unpinned models on a recycled device are
 * dropped by the neuron and load again on demand.
 */
import type { DeviceInfo } from "../../core/neuron-api.ts";
import { busyness, type FleetSnapshot, isLive } from "../fleet/fleet-types.ts";

export interface DeviceRecycle {
  node: string;
  device: DeviceInfo;
}

/** afterCycles = 0 turns the policy off. Poisoned devices are left to the neuron's recovery. */
export function devicesToRecycle(fleet: FleetSnapshot, afterCycles: number): DeviceRecycle[] {
  if (afterCycles <= 0) return [];
  return fleet.nodes.filter(isLive).flatMap((node) =>
    node.devices
      .filter((device) => !device.poisoned && device.loadCycles >= afterCycles)
      .filter((device) =>
        node.loaded.every(
          (model) =>
            !model.devices.includes(device.id) ||
            (!model.pinned &&
              model.state !== "loading" &&
              model.state !== "unloading" &&
              busyness(model) === 0 &&
              model.reserved === 0),
        ),
      )
      .map((device) => ({ node: node.name, device })),
  );
}
