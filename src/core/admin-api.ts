/**
 * The gateway's admin API contract (`/admin/...`), shared by the gateway and
 * the `cortex status` / `cortex models` commands.
 */
import { z } from "zod";
import { DeviceInfo, LoadedModel } from "./neuron-api.ts";
import { PullStatus } from "./pull-api.ts";

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
  /** Model pulls in flight and lately finished on the node (docs/MODELS-PULL.md). */
  pulls: z.array(PullStatus).optional(),
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

/** One finished chat request, as `/admin/requests/recent` lists it (the dashboard's tail). */
export const RecentRequest = z.object({
  /** Epoch ms the request ended. */
  at: z.number(),
  requestId: z.string(),
  model: z.string(),
  /** The node that answered, or "none" when it was refused before one was chosen. */
  node: z.string(),
  dialect: z.enum(["openai", "anthropic", "responses"]),
  stream: z.boolean(),
  /** HTTP status the client saw (499: the client went away; 502: failed mid-stream). */
  status: z.number().int(),
  promptTokens: z.number().int().optional(),
  cachedTokens: z.number().int().optional(),
  generatedTokens: z.number().int().optional(),
  ttftMs: z.number().optional(),
  durationMs: z.number(),
  /** The error code, when it failed. */
  error: z.string().optional(),
});
export type RecentRequest = z.infer<typeof RecentRequest>;
export const RecentRequestsResponse = z.object({ requests: z.array(RecentRequest) });
export type RecentRequestsResponse = z.infer<typeof RecentRequestsResponse>;

/** One time bucket of `/admin/timeseries`: counts over `bucketMs`, TTFT percentiles of the requests in it. */
export const SeriesPoint = z.object({
  t: z.number(),
  requests: z.number().int(),
  errors: z.number().int(),
  generatedTokens: z.number().int(),
  promptTokens: z.number().int(),
  ttftP50Ms: z.number().nullable(),
  ttftP95Ms: z.number().nullable(),
});
export type SeriesPoint = z.infer<typeof SeriesPoint>;
export const TimeSeriesResponse = z.object({
  bucketMs: z.number(),
  windowMs: z.number(),
  total: z.array(SeriesPoint),
  models: z.array(z.object({ model: z.string(), points: z.array(SeriesPoint) })),
});
export type TimeSeriesResponse = z.infer<typeof TimeSeriesResponse>;

/** `/admin/overview`: what the dashboard's fleet view polls, in one answer. */
export const DashboardOverview = z.object({
  fleet: FleetView,
  catalogue: z.array(CatalogueEntry),
  /** Requests holding or waiting for a gateway concurrency slot, per model. */
  queues: z.array(z.object({ model: z.string(), inFlight: z.number().int(), queued: z.number().int() })),
  /** Whether /v1/* wants an API key (the playground asks for one then). */
  apiKeyRequired: z.boolean(),
});
export type DashboardOverview = z.infer<typeof DashboardOverview>;
