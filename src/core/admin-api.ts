/**
 * The gateway's admin API contract (`/admin/...`), shared by the gateway and
 * the `cortex status` / `cortex models` commands.
 */
import { z } from "zod";
import { DeviceInfo, LoadedModel } from "./neuron-api.ts";

export const NodeState = z.enum(["up", "degraded", "draining", "down", "unknown"]);
export type NodeState = z.infer<typeof NodeState>;

export const FleetNode = z.object({
  name: z.string(),
  endpoint: z.string(),
  state: NodeState,
  version: z.string().optional(),
  /** Epoch ms of the last successful poll. */
  lastSeen: z.number().optional(),
  error: z.string().optional(),
  devices: z.array(DeviceInfo),
  loaded: z.array(LoadedModel),
});
export type FleetNode = z.infer<typeof FleetNode>;

export const FleetView = z.object({
  gateway: z.object({ version: z.string(), startedAt: z.number() }),
  nodes: z.array(FleetNode),
});
export type FleetView = z.infer<typeof FleetView>;

/** The `cortex` extension on each `/v1/models` entry. */
export const CatalogueLocation = z.object({
  node: z.string(),
  state: z.string(),
  inFlight: z.number(),
  lastUsed: z.number(),
  pinned: z.boolean(),
});
export const CatalogueEntry = z.object({
  id: z.string(),
  object: z.literal("model"),
  created: z.number(),
  owned_by: z.string(),
  cortex: z.object({
    aliases: z.array(z.string()),
    state: z.enum(["loaded", "loading", "available"]),
    loaded_on: z.array(CatalogueLocation),
    servable_on: z.array(z.string()),
    pinned: z.boolean(),
    priority: z.number(),
    context_size: z.number().optional(),
  }),
});
export type CatalogueEntry = z.infer<typeof CatalogueEntry>;
export const CatalogueResponse = z.object({ object: z.literal("list"), data: z.array(CatalogueEntry) });

export const AdminModelAction = z.object({
  model: z.string().min(1),
  node: z.string().optional(),
  force: z.boolean().optional(),
});
export type AdminModelAction = z.infer<typeof AdminModelAction>;
