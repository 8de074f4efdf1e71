/**
 * The neuron's HTTP API (elysia). Handlers only translate between HTTP and
 * NeuronService; every error leaves in OpenAI's envelope with its status.
 */
import { Elysia } from "elysia";
import { DEFAULT_BODY_TIMEOUT_S } from "../core/read-body.ts";
import { CortexError, errorMessage, toCortexError } from "../core/errors.ts";
import { InFlight } from "../core/in-flight.ts";
import { logFields, logger } from "../core/logger.ts";
import { LoadRequest, PinRequest, RecycleRequest, UnloadRequest } from "../core/neuron-api.ts";
import { readBodyBounded } from "../core/read-body.ts";
import { PullRequest, RemoveRequest } from "../core/pull-api.ts";
import { type AnswerOptions, completionAnswer, streamAnswer } from "./chat-answer.ts";
import { neuronError } from "./error-body.ts";
import type { NeuronService } from "./neuron-service.ts";
import { isReady } from "./readiness.ts";
import type { PullManager } from "./pull/pull-manager.ts";
import { removeModelFile } from "./pull/remove-model-file.ts";

const log = logger("neuron-http");

/** Routes without the bearer token and without a log line: a supervisor's probes and the gateway's polls. */
const PROBE_ROUTES: ReadonlySet<string> = new Set(["GET /health", "GET /live", "GET /ready"]);

export interface NeuronAppOptions {
  service: NeuronService;
  /** Model pulls from Hugging Face (docs/MODELS-PULL.md); absent = the pull routes answer 404. */
  pulls?: PullManager;
  /** Bearer token required on everything but /health, /live and /ready; empty = open. */
  authToken: string;
  /** Extra routes (metrics) mounted by the caller. */
  metrics?: () => Promise<{ body: string; contentType: string }>;
  /** Test only: between the heartbeats of an answer that is slow to begin (chat-answer.ts). */
  answerHeartbeatMs?: number;
  /** neuron.body_timeout_s: how long a request body may take to arrive. */
  bodyTimeoutS?: number;
  /** Counts the work routes' requests until their answers are sent, for a drain to wait on. */
  inFlight?: InFlight;
}

/** Routes that start work on the engine: refused while draining, and what a drain waits for. */
const WORK_ROUTES = new Set([
  "POST /models/load",
  // A pull started now would be cut off by the shutdown (its partial file resumes at the next pull).
  "POST /models/pull",
  "POST /v1/chat/count_tokens",
  "POST /v1/embeddings",
  "POST /v1/chat/completions",
]);

function json(body: unknown, status = 200, headers: Record<string, string> = {}): Response {
  return new Response(JSON.stringify(body), {
    status,
    headers: { "content-type": "application/json", ...headers },
  });
}

/** A client that went away before its answer ended: an info line, for it is no fault of the neuron's. */
function logClientClosed(route: string, requestId: string): void {
  logFields(log, "info", route, {
    status: 499,
    request_id: requestId,
    error: "the client closed the connection",
  });
}

function errorResponse(error: unknown, requestId: string): Response {
  const rendered = neuronError(error);
  return json(rendered.body, rendered.status, { ...rendered.headers, "x-request-id": requestId });
}

async function readJson(request: Request, bodyTimeoutMs: number): Promise<unknown> {
  const bytes = await readBodyBounded(request, Number.MAX_SAFE_INTEGER, bodyTimeoutMs);
  const text = new TextDecoder().decode(bytes);
  if (text.trim() === "")
    throw new CortexError("invalid_request", "the request body is empty; expected JSON");
  try {
    return JSON.parse(text);
  } catch {
    throw new CortexError("invalid_request", "the request body is not valid JSON");
  }
}

function parseWith<T>(
  schema: {
    safeParse(
      value: unknown,
    ):
      | { success: true; data: T }
      | { success: false; error: { issues: Array<{ path: PropertyKey[]; message: string }> } };
  },
  value: unknown,
): T {
  const result = schema.safeParse(value);
  if (result.success) return result.data;
  const issue = result.error.issues[0];
  const path = issue?.path.map(String).join(".") || "body";
  throw new CortexError("invalid_request", `${path}: ${issue?.message ?? "invalid"}`, { param: path });
}

export function createNeuronApp(options: NeuronAppOptions) {
  const { service, answerHeartbeatMs } = options;
  const inFlight = options.inFlight ?? new InFlight();
  const pulls = (): PullManager => {
    if (options.pulls === undefined) throw new CortexError("not_found", "model pulls are not enabled here");
    return options.pulls;
  };
  const bodyTimeoutMs = (options.bodyTimeoutS ?? DEFAULT_BODY_TIMEOUT_S) * 1000;

  const handle =
    (route: string, fn: (request: Request, requestId: string) => Promise<Response>) =>
    async ({ request }: { request: Request }): Promise<Response> => {
      const requestId = request.headers.get("x-request-id") ?? crypto.randomUUID();
      const started = performance.now();
      if (options.authToken !== "" && !PROBE_ROUTES.has(route)) {
        const header = request.headers.get("authorization") ?? "";
        if (header !== `Bearer ${options.authToken}`) {
          logFields(log, "warn", route, {
            status: 401,
            request_id: requestId,
            error: "missing or wrong bearer token",
          });
          return errorResponse(new CortexError("unauthorized", "missing or invalid bearer token"), requestId);
        }
      }
      const work = WORK_ROUTES.has(route);
      if (work && service.draining) {
        // The gateway fails this over to another node (503 is retryable) and its next poll
        // sees `draining` in /health; requests already running here finish.
        const refused = errorResponse(
          new CortexError("unavailable", "this neuron is draining (shutting down); use another node", {
            retryAfterS: 1,
            details: { draining: true },
          }),
          requestId,
        );
        logFields(log, "info", route, { status: 503, request_id: requestId, error: "draining" });
        return refused;
      }
      const end = work ? inFlight.begin() : () => {};
      let response: Response;
      try {
        response = await fn(request, requestId);
      } catch (error) {
        if (request.signal.aborted) {
          // The client went away before its answer began: nobody reads this one, and it is no
          // fault of the neuron's.
          logClientClosed(route, requestId);
          end();
          return new Response(null, { status: 499 });
        }
        const cortex = toCortexError(error);
        if (cortex.status >= 500)
          logFields(log, "error", route, {
            status: cortex.status,
            request_id: requestId,
            message: cortex.message,
          });
        response = errorResponse(cortex, requestId);
      }
      response.headers.set("x-request-id", requestId);
      response = InFlight.untilSent(response, end);
      if (
        !PROBE_ROUTES.has(route) &&
        route !== "GET /models" &&
        route !== "GET /metrics" &&
        route !== "GET /models/pulls"
      )
        logFields(log, "info", route, {
          status: response.status,
          request_id: requestId,
          duration_ms: Math.round(performance.now() - started),
        });
      return response;
    };

  return new Elysia()
    .get(
      "/health",
      handle("GET /health", async () => json(service.health())),
    )
    .get(
      "/live",
      // Liveness: answers whenever the HTTP thread does, through long loads and a Stage 1 recovery.
      handle("GET /live", async () => json({ status: "alive" })),
    )
    .get(
      "/ready",
      // Readiness: 503 while the neuron should get no requests (draining, unhealthy, a status not known to be ready).
      handle("GET /ready", async () => {
        const { status } = service.health();
        return json({ status, ready: isReady(status) }, isReady(status) ? 200 : 503);
      }),
    )
    .get(
      "/models",
      handle("GET /models", async () =>
        json({ ...(await service.models()), pulls: options.pulls?.list() ?? [] }),
      ),
    )
    .post(
      "/models/pull",
      handle("POST /models/pull", async (request) => {
        const body = parseWith(PullRequest, await readJson(request, bodyTimeoutMs));
        return json(await pulls().start(body.source), 202);
      }),
    )
    .get(
      "/models/pulls",
      handle("GET /models/pulls", async () => json({ pulls: pulls().list() })),
    )
    .post(
      "/models/remove",
      handle("POST /models/remove", async (request) => {
        const body = parseWith(RemoveRequest, await readJson(request, bodyTimeoutMs));
        const removed = await removeModelFile(body.file, {
          modelsDir: service.modelsDir,
          loaded: service.loaded(),
          pulls: pulls(),
        });
        return json({ removed });
      }),
    )
    .post(
      "/models/load",
      handle("POST /models/load", async (request) => {
        const result = await service.load(parseWith(LoadRequest, await readJson(request, bodyTimeoutMs)));
        return json(result, result.alreadyLoaded ? 200 : 201);
      }),
    )
    .post(
      "/models/unload",
      handle("POST /models/unload", async (request) => {
        await service.unload(parseWith(UnloadRequest, await readJson(request, bodyTimeoutMs)));
        return json({ ok: true });
      }),
    )
    .post(
      "/models/pin",
      handle("POST /models/pin", async (request) =>
        json({ model: service.pin(parseWith(PinRequest, await readJson(request, bodyTimeoutMs))) }),
      ),
    )
    .post(
      "/devices/recycle",
      handle("POST /devices/recycle", async (request) => {
        await service.recycle(parseWith(RecycleRequest, await readJson(request, bodyTimeoutMs)).device);
        return json({ ok: true });
      }),
    )
    .post(
      "/v1/chat/count_tokens",
      handle("POST /v1/chat/count_tokens", async (request) =>
        json({ prompt_tokens: await service.countTokens(await readJson(request, bodyTimeoutMs)) }),
      ),
    )
    .post(
      "/v1/embeddings",
      handle("POST /v1/embeddings", async (request) =>
        json(await service.embeddings(await readJson(request, bodyTimeoutMs))),
      ),
    )
    .post(
      "/v1/chat/completions",
      handle("POST /v1/chat/completions", async (request, requestId) => {
        const receivedAt = performance.now();
        const body = await readJson(request, bodyTimeoutMs);
        const chat = service.chat(body, request.signal);
        const options: AnswerOptions = {
          signal: request.signal,
          ...(answerHeartbeatMs === undefined ? {} : { heartbeatMs: answerHeartbeatMs }),
          onEnd: ({ error, cancelled }) => {
            if (cancelled) logClientClosed("POST /v1/chat/completions", requestId);
            else if (error !== undefined)
              log.error(
                `POST /v1/chat/completions failed after its headers request_id=${requestId}: ${errorMessage(error)}`,
              );
          },
        };
        // `stream` decides the answer's form before the request is checked: a bad one is
        // refused by service.chat either way, with its status.
        const streamed =
          typeof body === "object" && body !== null && (body as { stream?: unknown }).stream === true;
        if (!streamed) return completionAnswer(chat, receivedAt, options);
        const trailed = (body as { cortex_trailer?: unknown }).cortex_trailer === true;
        if (trailed) return streamAnswer(chat, { ...options, trailer: { receivedAt } });
        const reportPromptTokens = (body as { cortex_prompt_tokens?: unknown }).cortex_prompt_tokens === true;
        return streamAnswer(chat, { ...options, reportPromptTokens });
      }),
    )
    .get(
      "/metrics",
      handle("GET /metrics", async () => {
        if (!options.metrics) throw new CortexError("not_found", "metrics are not enabled");
        const { body, contentType } = await options.metrics();
        return new Response(body, { headers: { "content-type": contentType } });
      }),
    )
    .onError(({ error, code }) => {
      // Elysia's own errors (unknown route, unparsable body) in our envelope too.
      const status = code === "NOT_FOUND" ? "not_found" : "invalid_request";
      const message =
        code === "NOT_FOUND" ? "no such endpoint" : error instanceof Error ? error.message : String(error);
      return errorResponse(new CortexError(status, message), crypto.randomUUID());
    });
}
