/**
 * The `/v1/models` list: every profile some live neuron can serve (allowed
 * by affinity and has its file), plus every model loaded anywhere live, with
 * the `cortex` extension saying where each is loaded and in what state.
 */
import type { CatalogueEntry } from "../../core/admin-api.ts";
import type { ModelProfile } from "../../core/config/config-schema.ts";
import { type FleetModel, type FleetSnapshot, isLive } from "../fleet/fleet-types.ts";
import { profileFileOn } from "./profile-file.ts";

export interface CatalogueOptions {
  /** `created` of every entry (epoch seconds); the gateway's start time. */
  created: number;
  ownedBy?: string;
}

type Location = CatalogueEntry["cortex"]["loaded_on"][number];

export function buildCatalogue(
  profiles: readonly ModelProfile[],
  fleet: FleetSnapshot,
  options: CatalogueOptions,
): CatalogueEntry[] {
  const live = fleet.nodes.filter(isLive);
  const locations = new Map<string, { location: Location; model: FleetModel }[]>();
  for (const node of live) {
    for (const model of node.loaded) {
      if (model.state === "failed") continue;
      const list = locations.get(model.id) ?? [];
      list.push({
        model,
        location: {
          node: node.name,
          state: model.state,
          inFlight: model.inFlight,
          lastUsed: model.lastUsed,
          pinned: model.pinned,
        },
      });
      locations.set(model.id, list);
    }
  }
  const entries: CatalogueEntry[] = [];
  const named = new Set<string>();
  const base = { object: "model" as const, created: options.created, owned_by: options.ownedBy ?? "cortex" };
  for (const profile of profiles) {
    named.add(profile.id);
    for (const alias of profile.aliases) named.add(alias);
    const servableOn = live
      .filter((node) => profile.affinity.length === 0 || profile.affinity.includes(node.name))
      .filter((node) =>
        node.available.some(
          (file) => file.file === profileFileOn(profile, node) && file.problem === undefined,
        ),
      )
      .map((node) => node.name);
    const here = locations.get(profile.id) ?? [];
    // A profile with a source is offered even where no node holds its file yet: a request pulls it.
    if (servableOn.length === 0 && here.length === 0 && profile.source === undefined) continue;
    entries.push({
      id: profile.id,
      ...base,
      cortex: {
        aliases: [...profile.aliases],
        state: stateOf(here.map(({ model }) => model)),
        loaded_on: here.map(({ location }) => location),
        servable_on: servableOn,
        pinned: profile.pinned || here.some(({ model }) => model.pinned),
        priority: profile.priority,
        context_size: profile.context_size,
      },
    });
  }
  for (const [id, here] of locations) {
    // A loaded id equal to a profile's alias is reached through that profile.
    if (named.has(id)) continue;
    const first = here[0]!.model;
    entries.push({
      id,
      ...base,
      cortex: {
        aliases: [],
        state: stateOf(here.map(({ model }) => model)),
        loaded_on: here.map(({ location }) => location),
        servable_on: here.map(({ location }) => location.node),
        pinned: here.some(({ model }) => model.pinned),
        priority: Math.max(...here.map(({ model }) => model.priority)),
        context_size: first.contextSize,
      },
    });
  }
  return entries.sort((a, b) => a.id.localeCompare(b.id));
}

function stateOf(copies: readonly FleetModel[]): CatalogueEntry["cortex"]["state"] {
  if (copies.some((model) => model.state === "ready")) return "loaded";
  if (copies.some((model) => model.state === "loading")) return "loading";
  return "available";
}
