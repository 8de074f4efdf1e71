/**
 * The JSON the dashboard polls (`/admin/overview`, `/admin/timeseries`,
 * `/admin/requests/recent`), built from the one owner of each piece: the
 * fleet state and catalogue (routing services), the admission queues, and
 * the request history. Shapes are the zod schemas in core/admin-api.ts.
 */
import type { DashboardOverview, RecentRequestsResponse, TimeSeriesResponse } from "../../core/admin-api.ts";
import { CortexError } from "../../core/errors.ts";
import type { RequestHistory } from "../metrics/request-history.ts";
import type { RoutingServices } from "../routing/routing-services.ts";

export interface DashboardApiDeps {
  routing: Pick<RoutingServices, "fleetView" | "catalogue" | "admission">;
  history: RequestHistory;
  apiKeyRequired: boolean;
}

export function dashboardOverview(deps: DashboardApiDeps): DashboardOverview {
  return {
    fleet: deps.routing.fleetView(),
    catalogue: deps.routing.catalogue(),
    queues: [...deps.routing.admission.depths()]
      .map(([model, depth]) => ({ model, inFlight: depth.inFlight, queued: depth.queued }))
      .filter((queue) => queue.inFlight > 0 || queue.queued > 0),
    apiKeyRequired: deps.apiKeyRequired,
  };
}

export function dashboardTimeSeries(deps: DashboardApiDeps): TimeSeriesResponse {
  return deps.history.series();
}

const MAX_RECENT = 500;

/** `?limit=N` (1…500, default 100): the newest N requests, newest first. */
export function dashboardRecent(deps: DashboardApiDeps, url: URL): RecentRequestsResponse {
  const raw = url.searchParams.get("limit");
  const limit = raw === null ? 100 : Number(raw);
  if (!Number.isInteger(limit) || limit < 1 || limit > MAX_RECENT)
    throw new CortexError("invalid_request", `limit must be an integer from 1 to ${MAX_RECENT}`, {
      param: "limit",
    });
  return { requests: deps.history.recent(limit) };
}
