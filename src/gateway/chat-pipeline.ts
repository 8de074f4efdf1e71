/**
 * One chat request through the fleet, dialect-independent: admission,
 * routing with load on demand and failover before the first byte (the
 * routing services), the upstream call, and observation for metrics and the
 * request log. A streamed chat gives a pull-based source of canonical parts
 * (cancelling it cancels upstream); a non-streamed one the whole answer.
 */
import { CortexError, toCortexError } from "../core/errors.ts";
import { logEnabled, logFields, logger } from "../core/logger.ts";
import type { CanonicalRequest, CanonicalResponse } from "../dialects/canonical.ts";
import { requestHasImages } from "../dialects/images.ts";
import { toUpstreamChatBody } from "../dialects/openai/render-request.ts";
import type { Dialect, GatewayMetrics } from "./metrics/gateway-metrics.ts";
import type { RequestHistory } from "./metrics/request-history.ts";
import {
  decodeRate,
  observeCompletion,
  type StreamObservation,
  StreamObserver,
} from "./metrics/stream-observer.ts";
import { observeParts, type PartSource } from "./part-source.ts";
import type { Routed } from "./routing/failover.ts";
import { prefixChain } from "./routing/prefix-chain.ts";
import type { RoutingServices } from "./routing/routing-services.ts";
import { callNeuronRelay, observeRelay, relayBody } from "./sse-relay.ts";
import { callNeuronChat, callNeuronCompletion, type UpstreamCall } from "./upstream-call.ts";
import { ChatBounds, type UpstreamWatchdog } from "./upstream-guard.ts";

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
  parts: PartSource;
}

export interface ChatRelay {
  model: string;
  node: string;
  /** The neuron's SSE bytes as the client gets them. */
  body: Uint8Array | ReadableStream<Uint8Array>;
}

export interface ChatCompletion {
  model: string;
  node: string;
  response: CanonicalResponse;
}

export interface ChatPipelineDeps {
  routing: Pick<RoutingServices, "loader" | "admission" | "route" | "fleet"> &
    Partial<Pick<RoutingServices, "cacheAffinity">>;
  metrics: GatewayMetrics | undefined;
  /** gateway.request_timeout_s, as ms: bounds the whole request, end to end (upstream-guard.ts). */
  requestTimeoutMs?: number;
  /** Ends attempts on a node marked down or silent past gateway.upstream_read_timeout_s. */
  watchdog?: UpstreamWatchdog;
  /** gateway.context_overflow: what the neuron does with max_tokens over what the prompt leaves (default "error"). */
  contextOverflow?: "clamp" | "error";
  /** The dashboard's tail and time series (request-history.ts). */
  history?: RequestHistory;
}

/**
 * Starts a streamed chat. Throws for anything known before the first byte
 * (the handler renders it in the client's dialect); afterwards failures
 * arrive as an `error` part.
 */
export function startChat(
  deps: ChatPipelineDeps,
  request: CanonicalRequest,
  ctx: ChatContext,
): Promise<ChatStart> {
  return routeChat(deps, request, ctx, callNeuronChat, (chat) => {
    const observer = new StreamObserver(ctx.startedAt, chat.end);
    return { model: chat.model, node: chat.routed.node, parts: observeParts(chat.routed.value, observer) };
  });
}

/**
 * Whether a streamed OpenAI request can take the neuron's stream as it is
 * (sse-relay.ts): the client named the model by its id, so the chunks name
 * it as the client did. (An alias, or an unknown model, takes startChat.)
 */
export function canRelay(deps: ChatPipelineDeps, request: CanonicalRequest): boolean {
  try {
    return deps.routing.loader.resolve(request.model).id === request.model;
  } catch {
    return false;
  }
}

/** A streamed chat relayed as the neuron writes it (see canRelay); throws as startChat does. */
export function relayChat(
  deps: ChatPipelineDeps,
  request: CanonicalRequest,
  ctx: ChatContext,
): Promise<ChatRelay> {
  return routeChat(
    deps,
    request,
    ctx,
    callNeuronRelay,
    (chat) => {
      const stream = chat.routed.value;
      const body = relayBody(stream, ({ cancelled }) =>
        chat.end(observeRelay(stream, stream.sentAt - ctx.startedAt, cancelled)),
      );
      return { model: chat.model, node: chat.routed.node, body };
    },
    true,
  );
}

/**
 * A non-streamed chat: the whole answer (the neuron is asked not to stream,
 * and reports its token times for the metrics). Throws as startChat does.
 */
export function completeChat(
  deps: ChatPipelineDeps,
  request: CanonicalRequest,
  ctx: ChatContext,
): Promise<ChatCompletion> {
  return routeChat(deps, request, ctx, callNeuronCompletion, (chat) => {
    const { response, sentAt, tokens } = chat.routed.value;
    chat.end(observeCompletion(response, sentAt - ctx.startedAt, tokens));
    return { model: chat.model, node: chat.routed.node, response };
  });
}

interface RoutedChat<T> {
  model: string;
  routed: Routed<T>;
  /** The answer ended as observed: the copy's in-flight count and the admission slot are given back, the outcome recorded. Once. */
  end: (observation: StreamObservation) => void;
}

/**
 * Admission, routing with load on demand and failover, and the upstream
 * call (`send`, streamed or not), with failures before the answer counted
 * and logged here; `then` turns the routed call into the result, in the
 * same step (no promise hop of its own).
 */
async function routeChat<T, R>(
  deps: ChatPipelineDeps,
  request: CanonicalRequest,
  ctx: ChatContext,
  send: (call: UpstreamCall) => Promise<T>,
  then: (chat: RoutedChat<T>) => R,
  relay = false,
): Promise<R> {
  const { routing, metrics } = deps;
  let modelLabel = "unknown";
  // The log may name what the client asked for; labels may not (cardinality).
  let logModel = request.model;
  let release: (() => void) | undefined;
  let chat: RoutedChat<T>;
  // The client's signal, the request's own deadline, and each attempt's read timeout and node:
  // every wait and call below ends at any of them.
  const bounds = new ChatBounds(ctx.signal, deps.requestTimeoutMs, deps.watchdog);
  try {
    const resolved = routing.loader.resolve(request.model);
    const model = resolved.id;
    logModel = model;
    modelLabel = metrics?.modelLabel(model) ?? model;
    // The profile knows before any load or slot is spent; models served without a
    // profile are left to the neuron, which refuses images it cannot read.
    if (resolved.profile?.vision === false && requestHasImages(request))
      throw new CortexError(
        "invalid_request",
        `model ${model} does not accept images (its profile has vision = false); send text only or use a vision model`,
        { param: "messages" },
      );
    const queuedAt = performance.now();
    bounds.signal.throwIfAborted();
    // A free slot is taken without a promise hop; the releaser is idempotent.
    release = routing.admission.tryAcquire(model) ?? (await routing.admission.acquire(model, bounds.signal));
    metrics?.queueWait.observe({ model: modelLabel }, (performance.now() - queuedAt) / 1000);
    const routeStarted = performance.now();
    let waitedForLoad = false;
    let attempted = false;
    let previousNode: string | undefined;
    const routing$ = routing.route(
      model,
      (target) => {
        attempted = true;
        if (waitedForLoad) {
          waitedForLoad = false;
          metrics?.loadWait.observe({ model: modelLabel }, (performance.now() - routeStarted) / 1000);
        }
        // Counted when the retry is sent, so retries that fail again count too; a
        // second try on the same node (a stale copy placed again) is no retry elsewhere.
        if (previousNode !== undefined && previousNode !== target.node)
          metrics?.retries.inc({ model: modelLabel, from_node: previousNode });
        previousNode = target.node;
        const upstream = target.upstream("v1/chat/completions");
        const call: UpstreamCall = {
          target: { node: target.node, url: upstream.url, headers: upstream.headers },
          body: toUpstreamChatBody(request, {
            model: target.modelId,
            stream: request.stream,
            relay,
            contextOverflow: deps.contextOverflow ?? "error",
            // Anthropic's message_start carries the prompt's tokens; nothing else needs them that early.
            promptTokens: ctx.dialect === "anthropic",
          }),
          requestId: ctx.requestId,
          signal: bounds.attempt(target.node),
          onRead: bounds.reading,
        };
        return send(call);
      },
      {
        // Read at each use: an attempt ended for its own reasons leaves a fresh signal for the next,
        // and a failed attempt's node marked down later must not end the wait for another copy.
        get signal() {
          return bounds.betweenAttempts();
        },
        deadline: deps.requestTimeoutMs === undefined ? undefined : Date.now() + deps.requestTimeoutMs,
        prefix: routing.cacheAffinity === true ? prefixChain(request, model) : undefined,
      },
    );
    // route() asks the loader synchronously, so a load this request must wait for is under
    // way by now; reading the loader is cheaper than a fleet view per request.
    // (tests/integration/metrics-gateway.test.ts checks one load wait for a cold model.)
    // With a ready copy the first attempt is sent already, synchronously inside route().
    waitedForLoad = !attempted && metrics !== undefined && routing.loader.isLoading(model);
    const routed = await routing$;
    const slot = release;
    chat = {
      model,
      routed,
      end: (observation) => {
        routed.finish();
        bounds.clear();
        slot();
        recordOutcome(deps, ctx, modelLabel, model, routed.node, request.stream, observation);
      },
    };
  } catch (caught) {
    release?.();
    bounds.clear();
    // A wait our deadline ended rejects with the signal's reason: the deadline's own error.
    const error = !ctx.signal.aborted && bounds.signal.aborted ? bounds.signal.reason : caught;
    recordFailure(deps, ctx, { label: modelLabel, log: logModel }, request.stream, error);
    throw error;
  }
  return then(chat);
}

function statusClass(status: number): string {
  return `${Math.floor(status / 100)}xx`;
}

function recordFailure(
  deps: ChatPipelineDeps,
  ctx: ChatContext,
  model: { label: string; log: string },
  stream: boolean,
  error: unknown,
): void {
  const modelLabel = model.label;
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
  deps.history?.record(
    {
      requestId: ctx.requestId,
      model: model.log,
      node,
      dialect: ctx.dialect,
      stream,
      status,
      durationMs,
      error: errorType,
    },
    modelLabel,
  );
  const level = status >= 500 ? "error" : "info";
  if (!logEnabled(log, level)) return;
  logFields(log, level, "chat", {
    request_id: ctx.requestId,
    dialect: ctx.dialect,
    model: model.log,
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
    if (observation.usage.cachedInputTokens)
      metrics?.cachedPromptTokens.inc({ model: modelLabel, node }, observation.usage.cachedInputTokens);
    metrics?.completionTokens.inc({ model: modelLabel, node }, observation.usage.outputTokens);
  }
  deps.history?.record(
    {
      requestId: ctx.requestId,
      model,
      node,
      dialect: ctx.dialect,
      stream,
      status,
      promptTokens: observation.usage?.inputTokens,
      cachedTokens: observation.usage?.cachedInputTokens,
      generatedTokens: observation.usage?.outputTokens,
      ttftMs: observation.firstTokenMs,
      durationMs,
      error: errorType === "" ? undefined : errorType,
    },
    modelLabel,
  );
  const level = status === 502 ? "error" : "info";
  // The request log is off at the default level: skip building its fields.
  if (!logEnabled(log, level)) return;
  logFields(log, level, "chat", {
    request_id: ctx.requestId,
    dialect: ctx.dialect,
    model,
    node,
    status,
    stream,
    prompt_tokens: observation.usage?.inputTokens,
    cached_tokens: observation.usage?.cachedInputTokens,
    completion_tokens: observation.usage?.outputTokens,
    ttft_ms: observation.firstTokenMs === undefined ? undefined : Math.round(observation.firstTokenMs),
    duration_ms: Math.round(durationMs),
    tok_s: rate === undefined ? undefined : Number(rate.toFixed(1)),
    finish: observation.finishReason,
    error: errorType === "" ? undefined : errorType,
  });
}
