/**
 * Idle TTL: which model copies to unload now because nobody has used them
 * for `idleTtlS` seconds. Never a pinned, busy, reserved or not-ready copy.
 * `lastUsed` comes from the neurons, so every gateway replica agrees.
 */
import { type FleetModel, type FleetSnapshot, isLive } from "../fleet/fleet-types.ts";
import { isEvictable } from "./choose-victims.ts";

export interface IdleUnload {
  node: string;
  model: FleetModel;
  idleMs: number;
}

/** idleTtlS = 0 turns the policy off. */
export function idleModelsToUnload(fleet: FleetSnapshot, idleTtlS: number): IdleUnload[] {
  if (idleTtlS <= 0) return [];
  const ttlMs = idleTtlS * 1000;
  return fleet.nodes
    .filter(isLive)
    .flatMap((node) =>
      node.loaded
        .filter((model) => isEvictable(model) && fleet.now - model.lastUsed >= ttlMs)
        .map((model) => ({ node: node.name, model, idleMs: fleet.now - model.lastUsed })),
    );
}
