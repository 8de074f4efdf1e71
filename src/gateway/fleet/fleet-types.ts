/**
 * The routing view of the fleet: what the pure routing policies read. It is
 * the neurons' latest answers merged with what this gateway knows happened
 * since (loads it started, requests it sent, victims it is unloading,
 * reservations), so a decision made now accounts for a decision made a
 * moment ago. Built by FleetState.view(); never mutated by its readers.
 */
import type { NodeState } from "../../core/admin-api.ts";
import type { AvailableModel, DeviceInfo, LoadedModel } from "../../core/neuron-api.ts";

/** A model on a node as the router sees it. */
export interface FleetModel extends LoadedModel {
  /**
   * Requests waiting for this copy that have not reached the neuron yet
   * (they waited on its load or were just routed to it). A reserved model is
   * never evicted: it must serve its waiters first, so loads cannot thrash.
   */
  reserved: number;
}

export interface FleetNodeView {
  name: string;
  endpoint: string;
  state: NodeState;
  /** Devices, with memoryFree adjusted for loads and unloads this gateway has in progress. */
  devices: readonly DeviceInfo[];
  loaded: readonly FleetModel[];
  /** GGUF files in the node's models directory; empty until the first successful poll. */
  available: readonly AvailableModel[];
}

export interface FleetSnapshot {
  /** Epoch ms at which the view was taken (idle computations use it). */
  now: number;
  nodes: readonly FleetNodeView[];
}

/** True when a node may take requests and loads. */
export function isLive(node: Pick<FleetNodeView, "state">): boolean {
  return node.state === "up" || node.state === "degraded";
}

/** Requests a model copy is busy with: the neuron's counts, or this gateway's own when higher. */
export function busyness(model: Pick<LoadedModel, "inFlight" | "queued">): number {
  return model.inFlight + model.queued;
}

/** Free memory of the node's usable (non-poisoned) devices. */
export function usableFreeMemory(node: Pick<FleetNodeView, "devices">): number {
  return node.devices.reduce(
    (sum, device) => sum + (device.poisoned ? 0 : Math.max(0, device.memoryFree)),
    0,
  );
}
