/**
 * `cortex serve`: routing services over the configured neurons (or over a
 * neuron started in this process when none are configured, which the caller
 * injects: the gateway does not import the neuron), the API server, and the
 * metrics server on its own port.
 */
import { Counter } from "prom-client";
import type { FleetNode } from "../core/admin-api.ts";
import { bindServer, EXCLUSIVE_BIND } from "../core/bind-server.ts";
import type { ModelProfile, NeuronRef } from "../core/config/config-schema.ts";
import type { LoadedConfig } from "../core/config/load-config.ts";
import { logger } from "../core/logger.ts";
import { isLoopback } from "../core/config/exposure.ts";
import { runUntilSignal } from "../core/run-until-signal.ts";
import { VERSION } from "../core/version.ts";
import { settlesWithin } from "../core/within.ts";
import { createAdminOps } from "./admin-ops.ts";
import { DnsDiscovery, serverLookup, systemLookup } from "./discovery/dns-discovery.ts";
import type { FleetState } from "./fleet/fleet-state.ts";
import { createGatewayApp } from "./gateway-app.ts";
import { attachFleetGauges } from "./metrics/fleet-gauges.ts";
import { GatewayMetrics } from "./metrics/gateway-metrics.ts";
import { instrumentNeuron } from "./metrics/instrumented-neuron.ts";
import { NeuronClient } from "./neuron-client.ts";
import { createRecordStore } from "./responses/create-response-store.ts";
import { RedisConnection } from "./state/redis-connection.ts";
import { RedisConversationHomes } from "./state/redis-conversation-homes.ts";
import { createRoutingServices } from "./routing/routing-services.ts";

const log = logger("gateway");

export interface RunningGateway {
  url: string;
  port: number;
  metricsUrl: string | undefined;
  /**
   * Resolves with the `/admin/fleet` nodes once `ready` holds for them:
   * checked now and after every change a poll, load or unload makes. For
   * tools and tests that wait on the fleet instead of polling it.
   */
  whenFleet(ready: (nodes: FleetNode[]) => boolean): Promise<FleetNode[]>;
  /** Runs one background eviction pass (idle TTL, defrag) now; resolves when it is done. */
  evictNow(): Promise<void>;
  /**
   * SIGTERM: /health answers 503 `draining` at once; requests are still taken
   * for `gateway.drain_delay_s` (while load balancers take this replica out),
   * then the listener closes and running requests and streams finish, for at
   * most `gateway.shutdown_grace_s`; then everything stops.
   */
  drain(hurry?: AbortSignal): Promise<void>;
  stop(): Promise<void>;
}

/**
 * The neuron a gateway configured without `[[neurons]]` serves from: a child
 * process `cortex serve` supervises (src/cli/local-neuron.ts), restarted when
 * it exits, at the same URL.
 */
export interface LocalNeuron {
  url: string;
  /** Its bearer token; default `neuron.auth_token`. */
  token?: string;
  /** The model profiles to route: the config's own, or the demo model's when it names none. */
  models: readonly ModelProfile[];
  /** Calls `listener` with the reason (a bounded label) each time the neuron is restarted after an exit. */
  onRestart?(listener: (reason: string) => void): () => void;
  stop(): Promise<void>;
}

/**
 * A conversation's shared node is a routing hint: past this, a turn goes by
 * this replica's own memory rather than wait on Redis.
 */
const CONVERSATION_HOME_TIMEOUT_MS = 100;
/** A conversation's shared node is forgotten after a day without a turn (its KV cache is long gone). */
const CONVERSATION_HOME_TTL_MS = 86_400_000;

/** A URL this machine can reach a listener at (a wildcard address becomes loopback). */
function localUrl(hostname: string, port: number): string {
  const host = hostname === "0.0.0.0" ? "127.0.0.1" : hostname === "::" ? "::1" : hostname;
  return `http://${host.includes(":") ? `[${host}]` : host}:${port}`;
}

export interface StartGatewayOptions {
  /** Time between background eviction passes (idle TTL, defrag); default max(poll interval, 5 s). */
  evictorIntervalMs?: number;
  /** Starts the neuron to serve from when the config lists no `[[neurons]]` (`cortex serve` passes one). */
  startLocalNeuron?: (config: LoadedConfig) => Promise<LocalNeuron>;
  /** The fleet's clock, which idle times are measured on; default Date.now. */
  now?: () => number;
}

export async function startGateway(
  config: LoadedConfig,
  options: StartGatewayOptions = {},
): Promise<RunningGateway> {
  const gateway = config.file.gateway;
  let embedded: LocalNeuron | undefined;
  let neurons: Array<Pick<NeuronRef, "name" | "endpoint" | "token">> = [...config.file.neurons];
  let effective = config;
  const discoveryConfig = config.file.discovery;
  if (neurons.length === 0 && discoveryConfig.dns === undefined) {
    if (!options.startLocalNeuron) throw new Error("no [[neurons]] configured and no local neuron to start");
    embedded = await options.startLocalNeuron(config);
    neurons = [
      { name: "local", endpoint: embedded.url, token: embedded.token ?? config.file.neuron.auth_token },
    ];
    effective = { ...config, models: embedded.models };
    log.info(`no [[neurons]] configured: serving from a local neuron process (${embedded.url})`);
  }
  const metrics = gateway.metrics ? new GatewayMetrics() : undefined;
  const stateUrl = config.file.state.redis_url;
  const sharedState =
    stateUrl === undefined
      ? undefined
      : new RedisConnection({ url: stateUrl, timeoutMs: config.file.state.timeout_s * 1000 });
  const services = createRoutingServices(effective, {
    version: VERSION,
    neurons,
    ...(sharedState === undefined
      ? {}
      : {
          conversationHomes: new RedisConversationHomes(sharedState, {
            prefix: config.file.state.key_prefix,
            ttlMs: CONVERSATION_HOME_TTL_MS,
            timeoutMs: CONVERSATION_HOME_TIMEOUT_MS,
            retryAfterMs: 1_000,
          }),
        }),
    ...(options.evictorIntervalMs === undefined ? {} : { evictorIntervalMs: options.evictorIntervalMs }),
    ...(options.now === undefined ? {} : { now: options.now }),
    ...(metrics === undefined
      ? {}
      : {
          clientFactory: (neuron: Pick<NeuronRef, "name" | "endpoint" | "token">) =>
            instrumentNeuron(
              new NeuronClient({
                name: neuron.name,
                endpoint: neuron.endpoint,
                token: neuron.token,
                lifecycleTimeoutMs: gateway.load_timeout_s * 1000,
              }),
              metrics,
            ),
        }),
  });
  if (metrics)
    attachFleetGauges(metrics, {
      view: () => services.fleet.state.view(),
      depths: () => services.admission.depths(),
      evictions: services.fleet.evictions,
      profiles: effective.models.map((model) => model.id),
    });
  if (metrics && embedded?.onRestart) {
    const restarts = new Counter({
      name: "cortex_gateway_local_neuron_restarts_total",
      help: "Restarts of the single-process mode's neuron after it exited, by reason (exit_70 is Stage 2)",
      labelNames: ["reason"],
      registers: [metrics.registry],
    });
    embedded.onRestart((reason) => restarts.inc({ reason }));
  }
  services.start();
  const discovery =
    discoveryConfig.dns === undefined
      ? undefined
      : new DnsDiscovery({
          spec: discoveryConfig.dns,
          intervalMs: discoveryConfig.interval_s * 1000,
          lookup:
            discoveryConfig.dns_server === undefined
              ? systemLookup()
              : serverLookup(discoveryConfig.dns_server),
          token: discoveryConfig.token,
          fleet: services.fleet,
          taken: new Set(neurons.map((neuron) => neuron.name)),
        });
  if (discovery !== undefined) {
    // The first round before serving, so the first requests find the neurons (bounded like the first poll).
    discovery.start();
    await settlesWithin(discovery.refresh(), 5_000);
  }
  await firstPoll(services.fleet.state, 5_000);

  // Shared state (docs/GATEWAY.md, "Shared state"): a Redis that is not there yet is an ERROR, not a
  // refusal to start; only requests that need it answer 503 until it is.
  await sharedState?.start();
  const records = createRecordStore(config.file.responses, config.file.state, sharedState);
  let draining = false;
  const app = createGatewayApp({
    draining: () => draining,
    records,
    routing: services,
    admin: createAdminOps(services),
    metrics,
    version: VERSION,
    apiKeys: gateway.api_keys,
    adminToken: gateway.admin_token,
    requestTimeoutMs: gateway.request_timeout_s * 1000,
    upstreamReadTimeoutMs: gateway.upstream_read_timeout_s * 1000,
    keepBillingHeader: gateway.keep_billing_header,
    contextOverflow: gateway.context_overflow,
    listenHostname: config.gatewayListen.hostname,
    bodyTimeoutS: gateway.body_timeout_s,
    docs: gateway.docs,
  });
  try {
    bindServer("gateway.listen", config.gatewayListen, () =>
      app.listen({
        ...config.gatewayListen,
        ...EXCLUSIVE_BIND,
        idleTimeout: gateway.idle_timeout_s,
        // Bodies are counted and cut off by readJsonBody, which answers 413 in the client's
        // dialect; Bun's own cap (128 MiB) would answer first, in its own words.
        maxRequestBodySize: Number.MAX_SAFE_INTEGER,
      }),
    );
  } catch (error) {
    services.stop();
    sharedState?.close();
    await embedded?.stop();
    throw error;
  }
  const port = app.server?.port ?? config.gatewayListen.port;
  const url = localUrl(config.gatewayListen.hostname, port);

  let metricsServer: ReturnType<typeof Bun.serve> | undefined;
  if (metrics) {
    try {
      metricsServer = bindServer("gateway.metrics_listen", config.metricsListen, () =>
        Bun.serve({
          ...config.metricsListen,
          ...EXCLUSIVE_BIND,
          async fetch(request) {
            if (new URL(request.url).pathname !== "/metrics")
              return new Response("see /metrics\n", { status: 404 });
            if (
              gateway.metrics_token !== "" &&
              request.headers.get("authorization") !== `Bearer ${gateway.metrics_token}`
            )
              return new Response("missing or wrong bearer token (gateway.metrics_token)\n", { status: 401 });
            const { body, contentType } = await metrics.render();
            return new Response(body, { headers: { "content-type": contentType } });
          },
        }),
      );
    } catch (error) {
      services.stop();
      await app.stop(true);
      sharedState?.close();
      await embedded?.stop();
      throw error;
    }
  }
  // The metrics port has its own address: build its URL from that, not the API's.
  const metricsUrl = metricsServer?.port
    ? `${localUrl(config.metricsListen.hostname, metricsServer.port)}/metrics`
    : undefined;
  if (gateway.api_keys.length === 0 && !isLoopback(config.gatewayListen.hostname))
    log.warn(
      `the API on ${config.gatewayListen.hostname}:${port} is open to anyone who can reach it (gateway.allow_unauthenticated); set gateway.api_keys to require a key`,
    );
  if (gateway.admin_token === "")
    log.info("no gateway.admin_token: the admin API answers loopback clients only");
  log.info(
    `gateway ${VERSION} listening on ${config.gatewayListen.hostname}:${port}${metricsUrl ? `, metrics on ${config.metricsListen.hostname}:${metricsServer?.port}` : ""}; ${neurons.length} neuron(s), ${effective.models.length} model profile(s)`,
  );
  let stopped = false;
  const state = services.fleet.state;
  const stop = async () => {
    if (stopped) return;
    stopped = true;
    discovery?.stop();
    services.stop();
    await app.stop(true);
    metricsServer?.stop(true);
    records.close();
    sharedState?.close();
    await embedded?.stop();
  };
  return {
    url,
    port,
    metricsUrl,
    whenFleet(ready) {
      const now = state.fleetNodes();
      if (ready(now)) return Promise.resolve(now);
      return new Promise((resolve) => {
        const unsubscribe = state.onChange(() => {
          const nodes = state.fleetNodes();
          if (!ready(nodes)) return;
          unsubscribe();
          resolve(nodes);
        });
      });
    },
    evictNow: () => services.evictor.runOnce(),
    async drain(hurry) {
      draining = true;
      const delayS = gateway.drain_delay_s;
      log.info(`draining: /health says so${delayS > 0 ? `; taking requests for ${delayS} s more` : ""}`);
      // Nothing to wait for but the time itself: a promise that never settles.
      if (delayS > 0) await settlesWithin(new Promise(() => {}), delayS * 1000, hurry);
      // Bun's stop(false) closes the listener and resolves once every response, streams included, is sent.
      const sent = app.server?.stop(false) ?? Promise.resolve();
      if (await settlesWithin(sent, gateway.shutdown_grace_s * 1000, hurry))
        log.info("drained: every request finished");
      else log.warn("gateway.shutdown_grace_s ran out with requests still running; they are cut off");
      await stop();
    },
    stop,
  };
}

/**
 * Waits (bounded) until every neuron has answered or failed its first poll,
 * so a gateway that just started does not answer 503 "unknown node" to the
 * first requests. Requests never wait on polls after that.
 */
function firstPoll(state: Pick<FleetState, "view" | "onChange">, limitMs: number): Promise<void> {
  const polled = () => !state.view().nodes.some((node) => node.state === "unknown");
  if (polled()) return Promise.resolve();
  return new Promise((resolve) => {
    const done = () => {
      clearTimeout(timer);
      unsubscribe();
      resolve();
    };
    const timer = setTimeout(done, limitMs);
    const unsubscribe = state.onChange(() => {
      if (polled()) done();
    });
  });
}

/** Runs until SIGINT/SIGTERM, then drains and exits 0. */
export async function runGateway(config: LoadedConfig, options: StartGatewayOptions = {}): Promise<number> {
  const running = await startGateway(config, options);
  return runUntilSignal((hurry) => running.drain(hurry), log);
}
