/**
 * Which loaded models to unload to make room. A model is a candidate only
 * when it is `ready` (not loading, unloading or failed), not pinned, has no
 * request in flight or queued (the neuron's count or this gateway's), and is
 * not reserved for requests that waited on its load and have not reached it
 * yet. That last rule stops swap thrash: a model loaded for waiting requests
 * serves them before anything can evict it.
 */
import type { FleetModel } from "../fleet/fleet-types.ts";

export type EvictionStrategy = "lru" | "priority";

export function isEvictable(model: FleetModel): boolean {
  return (
    model.state === "ready" &&
    !model.pinned &&
    model.inFlight === 0 &&
    model.queued === 0 &&
    model.reserved === 0
  );
}

/** lru: least recently used first. priority: lowest priority first, LRU among equals. */
export function evictionOrder(strategy: EvictionStrategy): (a: FleetModel, b: FleetModel) => number {
  switch (strategy) {
    case "lru":
      return (a, b) => a.lastUsed - b.lastUsed || a.id.localeCompare(b.id);
    case "priority":
      return (a, b) => a.priority - b.priority || a.lastUsed - b.lastUsed || a.id.localeCompare(b.id);
    default: {
      const unreachable: never = strategy;
      return unreachable;
    }
  }
}

/**
 * The shortest prefix of the eviction order that frees at least `needBytes`,
 * or undefined when even every candidate together is not enough.
 * `bytesOf` gives what unloading a model frees where it matters (its share of
 * one device, for placement on that device).
 */
export function chooseVictims(
  models: readonly FleetModel[],
  needBytes: number,
  strategy: EvictionStrategy,
  bytesOf: (model: FleetModel) => number = (model) => model.memoryBytes,
): FleetModel[] | undefined {
  if (needBytes <= 0) return [];
  const victims: FleetModel[] = [];
  let freed = 0;
  for (const model of models.filter(isEvictable).sort(evictionOrder(strategy))) {
    victims.push(model);
    freed += bytesOf(model);
    if (freed >= needBytes) return victims;
  }
  return undefined;
}
