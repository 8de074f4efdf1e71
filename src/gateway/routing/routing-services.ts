/**
 * Everything the gateway's HTTP layer needs to decide where a request goes,
 * built from the loaded config in one call. See docs/GATEWAY.md for usage.
 */
import type { CatalogueEntry, FleetView } from "../../core/admin-api.ts";
import type { NeuronRef } from "../../core/config/config-schema.ts";
import type { LoadedConfig } from "../../core/config/load-config.ts";
import { BackgroundEvictor } from "../fleet/background-evictor.ts";
import { Fleet } from "../fleet/fleet.ts";
import type { NeuronApi } from "../neuron-client.ts";
import { Admission } from "./admission.ts";
import { buildCatalogue } from "./build-catalogue.ts";
import type { ConversationHomes } from "./conversation-homes.ts";
import { type Routed, type RouteOptions, type RouteTarget, routeWithFailover } from "./failover.ts";
import { ModelLoader } from "./model-loader.ts";
import { PrefixAffinity } from "./prefix-affinity.ts";

export interface RoutingServicesOptions {
  /** Neurons to use instead of `[[neurons]]` (e.g. the embedded one when none is configured). */
  neurons?: readonly Pick<NeuronRef, "name" | "endpoint" | "token">[];
  clientFactory?: (neuron: Pick<NeuronRef, "name" | "endpoint" | "token">) => NeuronApi;
  version: string;
  startedAt?: number;
  evictorIntervalMs?: number;
  /** The fleet's clock (idle times are measured on it); default Date.now. */
  now?: () => number;
  /** Each conversation's node, shared by the gateway replicas (`[state]` Redis); unset: none shared. */
  conversationHomes?: ConversationHomes;
}

export interface RoutingServices {
  fleet: Fleet;
  loader: ModelLoader;
  admission: Admission;
  evictor: BackgroundEvictor;
  /** Starts polling and the background evictor. */
  start(): void;
  stop(): void;
  /** `/v1/models` data. */
  catalogue(): CatalogueEntry[];
  /** `/admin/fleet` body. */
  fleetView(): FleetView;
  /** Cache-aware routing is on (`routing.cache_affinity`): callers pass each request's prefix chain. */
  readonly cacheAffinity: boolean;
  /** routeWithFailover bound to this fleet and loader. */
  route<T>(
    model: string,
    attempt: (target: RouteTarget) => Promise<T>,
    options?: RouteOptions,
  ): Promise<Routed<T>>;
}

export function createRoutingServices(
  config: LoadedConfig,
  options: RoutingServicesOptions,
): RoutingServices {
  const { gateway, eviction, routing } = config.file;
  const affinity = routing.cache_affinity
    ? {
        served: new PrefixAffinity(routing.cache_affinity_entries),
        maxImbalance: routing.cache_affinity_max_imbalance,
        homes: options.conversationHomes,
      }
    : undefined;
  const startedAt = options.startedAt ?? Date.now();
  const fleet = Fleet.fromConfig(config, {
    ...(options.neurons === undefined ? {} : { neurons: options.neurons }),
    ...(options.clientFactory === undefined ? {} : { clientFactory: options.clientFactory }),
    ...(options.now === undefined ? {} : { now: options.now }),
  });
  const loader = new ModelLoader({
    fleet,
    profiles: config.models,
    strategy: eviction.strategy,
    loadTimeoutS: gateway.load_timeout_s,
  });
  const admission = new Admission({
    maxConcurrency: gateway.max_concurrency_per_model,
    queueSize: gateway.queue_size_per_model,
    queueTimeoutS: gateway.queue_timeout_s,
  });
  const evictor = new BackgroundEvictor(fleet, {
    idleTtlS: eviction.idle_ttl_s,
    defragAfterCycles: eviction.defrag_after_cycles,
    intervalMs: options.evictorIntervalMs ?? Math.max(gateway.poll_interval_ms, 5_000),
  });
  return {
    fleet,
    loader,
    admission,
    evictor,
    start() {
      fleet.start();
      evictor.start();
    },
    stop() {
      evictor.stop();
      fleet.stop();
    },
    cacheAffinity: affinity !== undefined,
    catalogue: () => buildCatalogue(config.models, fleet.view(), { created: Math.floor(startedAt / 1000) }),
    fleetView: () => fleet.fleetView({ version: options.version, startedAt }),
    route: (model, attempt, routeOptions) =>
      routeWithFailover({ fleet, loader, affinity }, model, attempt, routeOptions),
  };
}
