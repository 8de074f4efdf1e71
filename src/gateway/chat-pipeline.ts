/**
 * One chat request through the fleet, dialect-independent: admission,
 * routing with load on demand and failover before the first byte (the
 * routing services), the upstream call, and observation for metrics and the
 * request log. The result is a pull-based stream of canonical parts;
 * cancelling it cancels upstream.
 */
import { toCortexError } from "../core/errors.ts";
import { logFields, logger } from "../core/logger.ts";
import type { CanonicalRequest, CanonicalStreamPart } from "../dialects/canonical.ts";
import { toUpstreamChatBody } from "../dialects/openai/render-request.ts";
import type { Dialect, GatewayMetrics } from "./metrics/gateway-metrics.ts";
import { decodeRate, observeStream, type StreamObservation } from "./metrics/stream-observer.ts";
import { pickLoadedNode } from "./routing/pick-loaded-node.ts";
import type { RoutingServices } from "./routing/routing-services.ts";
import { callNeuronChat } from "./upstream-call.ts";

const log = logger("gateway");

export interface ChatContext {
  dialect: Dialect;
  requestId: string;
  signal: AbortSignal;
  /** performance.now() at arrival. */
  startedAt: number;
}

export interface ChatStart {
  model: string;
  node: string;
  parts: ReadableStream<CanonicalStreamPart>;
}

export interface ChatPipelineDeps {
  routing: Pick<RoutingServices, "loader" | "admission" | "route" | "fleet">;
  metrics: GatewayMetrics | undefined;
  /** gateway.request_timeout_s, as ms: bounds waiting for a load. */
  requestTimeoutMs?: number;
}

/**
 * Starts a chat. Throws for anything known before the first byte (the
 * handler renders it in the client's dialect); afterwards failures arrive as
 * an `error` part.
 */
export async function startChat(
  deps: ChatPipelineDeps,
  request: CanonicalRequest,
  ctx: ChatContext,
): Promise<ChatStart> {
  const { routing, metrics } = deps;
  let modelLabel = "unknown";
  let release: (() => void) | undefined;
  try {
    const model = routing.loader.resolve(request.model).id;
    modelLabel = metrics?.modelLabel(model) ?? model;
    const queuedAt = performance.now();
    const releaseSlot = await routing.admission.acquire(model, ctx.signal);
    metrics?.queueWait.observe({ model: modelLabel }, (performance.now() - queuedAt) / 1000);
    metrics?.inFlight.inc({ model: modelLabel });
    let released = false;
    release = () => {
      if (released) return;
      released = true;
      releaseSlot();
      metrics?.inFlight.dec({ model: modelLabel });
    };
    const wasLoaded = pickLoadedNode(routing.fleet.state.view(), model) !== undefined;
    const routeStarted = performance.now();
    let loadWaitObserved = false;
    const routed = await routing.route(
      model,
      (target) => {
        if (!wasLoaded && !loadWaitObserved) {
          loadWaitObserved = true;
          metrics?.loadWait.observe({ model: modelLabel }, (performance.now() - routeStarted) / 1000);
        }
        const upstream = target.upstream("v1/chat/completions");
        return callNeuronChat({
          target: { node: target.node, url: upstream.url, headers: upstream.headers },
          body: toUpstreamChatBody({ ...request, model: target.modelId }),
          requestId: ctx.requestId,
          signal: ctx.signal,
        });
      },
      {
        signal: ctx.signal,
        ...(deps.requestTimeoutMs === undefined ? {} : { deadline: Date.now() + deps.requestTimeoutMs }),
      },
    );
    if (routed.attempts > 1)
      metrics?.retries.inc({ model: modelLabel, from_node: "any" }, routed.attempts - 1);
    const finishRelease = release;
    const parts = observeStream(routed.value, ctx.startedAt, (observation) => {
      routed.finish();
      finishRelease();
      recordOutcome(deps, ctx, modelLabel, model, routed.node, request.stream, observation);
    });
    return { model, node: routed.node, parts };
  } catch (error) {
    release?.();
    recordFailure(deps, ctx, modelLabel, request.stream, error);
    throw error;
  }
}

function statusClass(status: number): string {
  return `${Math.floor(status / 100)}xx`;
}

function recordFailure(
  deps: ChatPipelineDeps,
  ctx: ChatContext,
  modelLabel: string,
  stream: boolean,
  error: unknown,
): void {
  const cortex = toCortexError(error);
  const status = ctx.signal.aborted ? 499 : cortex.status;
  const errorType = ctx.signal.aborted ? "client_closed" : cortex.code;
  const node = typeof cortex.details?.node === "string" ? cortex.details.node : "none";
  deps.metrics?.requests.inc({
    model: modelLabel,
    node,
    dialect: ctx.dialect,
    stream: String(stream),
    status_class: statusClass(status),
    error_type: errorType,
  });
  const durationMs = performance.now() - ctx.startedAt;
  deps.metrics?.requestDuration.observe(
    { model: modelLabel, dialect: ctx.dialect, stream: String(stream) },
    durationMs / 1000,
  );
  logFields(log, status >= 500 ? "error" : "info", "chat", {
    request_id: ctx.requestId,
    dialect: ctx.dialect,
    model: modelLabel,
    node,
    status,
    stream,
    error: errorType,
    duration_ms: Math.round(durationMs),
    message: cortex.message,
  });
}

function recordOutcome(
  deps: ChatPipelineDeps,
  ctx: ChatContext,
  modelLabel: string,
  model: string,
  node: string,
  stream: boolean,
  observation: StreamObservation,
): void {
  const { metrics } = deps;
  const durationMs = performance.now() - ctx.startedAt;
  const status = observation.cancelled ? 499 : observation.errorCode ? 502 : 200;
  const errorType = observation.cancelled ? "client_closed" : (observation.errorCode ?? "");
  metrics?.requests.inc({
    model: modelLabel,
    node,
    dialect: ctx.dialect,
    stream: String(stream),
    status_class: statusClass(status),
    error_type: errorType,
  });
  metrics?.requestDuration.observe(
    { model: modelLabel, dialect: ctx.dialect, stream: String(stream) },
    durationMs / 1000,
  );
  if (observation.firstTokenMs !== undefined)
    metrics?.timeToFirstToken.observe(
      { model: modelLabel, node, dialect: ctx.dialect },
      observation.firstTokenMs / 1000,
    );
  const rate = decodeRate(observation);
  if (rate !== undefined) metrics?.decodeRate.observe({ model: modelLabel, node }, rate);
  if (observation.usage) {
    metrics?.promptTokens.inc({ model: modelLabel, node }, observation.usage.inputTokens);
    metrics?.completionTokens.inc({ model: modelLabel, node }, observation.usage.outputTokens);
  }
  logFields(log, status === 502 ? "error" : "info", "chat", {
    request_id: ctx.requestId,
    dialect: ctx.dialect,
    model,
    node,
    status,
    stream,
    prompt_tokens: observation.usage?.inputTokens,
    completion_tokens: observation.usage?.outputTokens,
    ttft_ms: observation.firstTokenMs === undefined ? undefined : Math.round(observation.firstTokenMs),
    duration_ms: Math.round(durationMs),
    tok_s: rate === undefined ? undefined : Number(rate.toFixed(1)),
    finish: observation.finishReason,
    error: errorType === "" ? undefined : errorType,
  });
}
