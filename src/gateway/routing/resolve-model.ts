/**
 * Name → model: a profile's id or alias, or the id of a model some live
 * neuron has loaded without a profile (still servable, by its id only).
 */
import type { ModelProfile } from "../../core/config/config-schema.ts";
import { CortexError } from "../../core/errors.ts";
import { type FleetSnapshot, isLive } from "../fleet/fleet-types.ts";

export type ResolvedModel =
  | { kind: "profile"; id: string; profile: ModelProfile }
  | { kind: "loaded"; id: string; profile?: undefined };

/** `fleet` may be a function: the fleet is only read for names that are no profile's. */
export function resolveModel(
  profiles: readonly ModelProfile[],
  fleet: FleetSnapshot | (() => FleetSnapshot),
  name: string,
): ResolvedModel | undefined {
  const profile =
    profiles.find((candidate) => candidate.id === name) ??
    profiles.find((candidate) => candidate.aliases.includes(name));
  if (profile !== undefined) return { kind: "profile", id: profile.id, profile };
  const snapshot = typeof fleet === "function" ? fleet() : fleet;
  const loaded = snapshot.nodes.some(
    (node) => isLive(node) && node.loaded.some((model) => model.id === name && model.state !== "failed"),
  );
  return loaded ? { kind: "loaded", id: name } : undefined;
}

/** resolveModel, or a 404 that says where to look. */
export function requireModel(
  profiles: readonly ModelProfile[],
  fleet: FleetSnapshot | (() => FleetSnapshot),
  name: string,
): ResolvedModel {
  const resolved = resolveModel(profiles, fleet, name);
  if (resolved === undefined)
    throw new CortexError(
      "model_not_found",
      `model ${JSON.stringify(name)} is neither a configured model nor loaded on any live node (GET /v1/models lists them)`,
      { param: "model" },
    );
  return resolved;
}
