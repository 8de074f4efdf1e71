/**
 * The gateway's HTTP API (elysia): OpenAI and Anthropic endpoints, the merged
 * catalogue, the admin API and the OpenAPI page. Handlers only translate
 * between HTTP and the pipeline; errors leave in the caller's dialect.
 */
import { Elysia } from "elysia";
import { DEFAULT_BODY_TIMEOUT_S } from "../core/read-body.ts";
import { AdminModelAction } from "../core/admin-api.ts";
import { AdminPullRequest } from "../core/pull-api.ts";
import { CortexError, toCortexError } from "../core/errors.ts";
import { logger } from "../core/logger.ts";
import {
  parseAnthropicCountTokensRequest,
  parseAnthropicRequest,
  renderAnthropicCountTokensResponse,
} from "../dialects/anthropic/parse-request.ts";
import { renderAnthropicError } from "../dialects/anthropic/render-error.ts";
import { renderAnthropicModel, renderAnthropicModelList } from "../dialects/anthropic/render-models.ts";
import { renderAnthropicResponse } from "../dialects/anthropic/render-response.ts";
import { AnthropicStreamEncoder } from "../dialects/anthropic/stream-encoder.ts";
import { parseOpenAIRequest } from "../dialects/openai/parse-request.ts";
import { renderOpenAIError } from "../dialects/openai/render-error.ts";
import { toUpstreamChatBody } from "../dialects/openai/render-request.ts";
import { renderOpenAIResponse } from "../dialects/openai/render-response.ts";
import { OpenAIStreamEncoder } from "../dialects/openai/stream-encoder.ts";
import type { AdminOps } from "./admin-ops.ts";
import { mountApiDocs } from "./api-docs.ts";
import { type ChatContext, canRelay, completeChat, relayChat, startChat } from "./chat-pipeline.ts";
import { createCompletions } from "./completions.ts";
import { createEmbeddings } from "./embeddings.ts";
import type { Dialect, GatewayMetrics } from "./metrics/gateway-metrics.ts";
import { RequestHistory } from "./metrics/request-history.ts";
import { errorFromResponse } from "./neuron-client.ts";
import { relaySse } from "./part-source.ts";
import { DEFAULT_MAX_BODY_BYTES, type ReadJsonOptions, readJsonBody } from "./read-json-body.ts";
import { keepThreadAtEnd, openThread, threadStore } from "./responses/message-threads.ts";
import type { RecordStore } from "./responses/record-store.ts";
import { responseStore } from "./responses/response-store.ts";
import {
  createResponse,
  deleteResponse,
  listInputItems,
  retrieveResponse,
} from "./responses/responses-api.ts";
import type { RoutingServices } from "./routing/routing-services.ts";
import { dashboardOverview, dashboardRecent, dashboardTimeSeries } from "./ui/dashboard-api.ts";
import { dashboardAsset } from "./ui/dashboard-page.ts";
import { UpstreamWatchdog } from "./upstream-guard.ts";

const log = logger("gateway-http");

export interface GatewayAppOptions {
  routing: RoutingServices;
  admin: AdminOps;
  /** gateway.request_timeout_s in ms: bounds the whole request, end to end. */
  requestTimeoutMs?: number;
  /** gateway.upstream_read_timeout_s in ms: a node silent this long on a pending read fails the attempt. */
  upstreamReadTimeoutMs?: number;
  metrics: GatewayMetrics | undefined;
  version: string;
  apiKeys: readonly string[];
  adminToken: string;
  /** True once SIGTERM began a drain: /health answers 503 `draining` so load balancers take this replica out. */
  draining?: () => boolean;
  /** Upper bound on a request body (bytes); bigger bodies get 413. */
  maxBodyBytes?: number;
  /** gateway.keep_billing_header: keep Claude Code's billing block in `system` (dialects/anthropic/billing-header.ts). */
  keepBillingHeader?: boolean;
  /** gateway.context_overflow. */
  contextOverflow?: "clamp" | "error";
  /** Where stored Responses API answers and Anthropic message threads live (`[responses]`, `[state]`). */
  records: RecordStore;
  /** gateway.listen's host: a name the admin API answers to besides the loopback names. */
  listenHostname?: string;
  /** gateway.body_timeout_s: how long a request body may take to arrive. */
  bodyTimeoutS?: number;
  /** gateway.docs: /docs and /docs/json open, behind the API keys, or off. Default open. */
  docs?: "open" | "api_key" | "off";
  /** The dashboard's tail and time series; one is made when not given. */
  history?: RequestHistory;
}

/** A literal per response: cheaper than spreading a shared object into a new one. */
function sseHeaders(requestId: string): Record<string, string> {
  return {
    "content-type": "text/event-stream; charset=utf-8",
    "cache-control": "no-cache",
    connection: "keep-alive",
    "x-accel-buffering": "no",
    "x-request-id": requestId,
  };
}

function json(body: unknown, status = 200, headers?: Record<string, string>): Response {
  return new Response(JSON.stringify(body), {
    status,
    headers: headers === undefined ? JSON_HEADERS : { "content-type": "application/json", ...headers },
  });
}

/** A request's context for the chat pipeline, its clock started now. */
function chatContext(request: Request, requestId: string, dialect: ChatContext["dialect"]): ChatContext {
  return { dialect, requestId, signal: request.signal, startedAt: performance.now() };
}

/** An answer that is either a stream of SSE bytes or one JSON body. */
function sseOrJson(
  answer: { stream: true; body: ReadableStream<Uint8Array> | Uint8Array } | { stream: false; body: unknown },
  requestId: string,
): Response {
  if (answer.stream) return new Response(answer.body, { headers: sseHeaders(requestId) });
  return json(answer.body, 200, { "x-request-id": requestId });
}

const JSON_HEADERS = { "content-type": "application/json" } as const;

function renderError(dialect: Dialect, error: unknown, headers?: Record<string, string>): Response {
  const rendered = dialect === "anthropic" ? renderAnthropicError(error) : renderOpenAIError(error);
  return json(
    rendered.body,
    rendered.status,
    headers ? { ...rendered.headers, ...headers } : rendered.headers,
  );
}

/** The catalogue answers in Anthropic's shape to a client that says it speaks Anthropic's API. */
function catalogueDialect(request: Request): Dialect {
  return request.headers.has("anthropic-version") ? "anthropic" : "openai";
}

/** The `Authorization: Bearer …` token, if any. */
function bearerToken(request: Request): string | undefined {
  const match = /^Bearer\s+(\S+)\s*$/i.exec(request.headers.get("authorization") ?? "");
  return match?.[1];
}

/** Host names (no port) that reach this machine's loopback. */
function isLoopbackName(host: string): boolean {
  return host === "localhost" || host.endsWith(".localhost") || isLoopback(host.replace(/^\[|\]$/g, ""));
}

/** The host name of a `Host` header or an `Origin`'s authority, without the port, lower-cased. */
function hostOf(authority: string): string {
  const text = authority.trim().toLowerCase();
  if (text.startsWith("[")) return text.slice(0, text.indexOf("]") + 1);
  return text.split(":", 1)[0] ?? "";
}

function isLoopback(address: string | undefined): boolean {
  if (address === undefined) return false;
  return address === "::1" || address.startsWith("127.") || address.startsWith("::ffff:127.");
}

export function createGatewayApp(options: GatewayAppOptions) {
  const maxBody = options.maxBodyBytes ?? DEFAULT_MAX_BODY_BYTES;
  const bodyTimeoutMs = (options.bodyTimeoutS ?? DEFAULT_BODY_TIMEOUT_S) * 1000;
  /** A client's JSON body within its bounds: size, nesting, media type, time (read-json-body.ts). */
  const readBody = (request: Request, contentType: ReadJsonOptions["contentType"]) =>
    readJsonBody(request, { maxBytes: maxBody, contentType, timeoutMs: bodyTimeoutMs });
  const keys = new Set(options.apiKeys);

  const clientAuthorized = (request: Request): boolean => {
    if (keys.size === 0) return true;
    const bearer = bearerToken(request);
    const apiKey = request.headers.get("x-api-key");
    return (bearer !== undefined && keys.has(bearer)) || (apiKey !== null && keys.has(apiKey));
  };

  const isAdmin = (request: Request): boolean =>
    options.adminToken !== "" && bearerToken(request) === options.adminToken;
  // `cortex models ls` lists the catalogue with the operator's admin token, which is no API key.
  const catalogueAuthorized = (request: Request): boolean => clientAuthorized(request) || isAdmin(request);

  const history = options.history ?? new RequestHistory();
  const chatDeps = {
    history,
    routing: options.routing,
    metrics: options.metrics,
    ...(options.requestTimeoutMs === undefined ? {} : { requestTimeoutMs: options.requestTimeoutMs }),
    watchdog: new UpstreamWatchdog(options.routing.fleet.state, options.upstreamReadTimeoutMs),
    ...(options.contextOverflow === undefined ? {} : { contextOverflow: options.contextOverflow }),
  };

  const threads = threadStore(options.records);

  const chatHandler =
    (dialect: Dialect) =>
    async ({ request }: { request: Request }): Promise<Response> => {
      const startedAt = performance.now();
      const requestId = request.headers.get("x-request-id") ?? crypto.randomUUID();
      try {
        if (!clientAuthorized(request))
          throw new CortexError(
            "unauthorized",
            "invalid API key: send it as Authorization: Bearer or x-api-key",
          );
        const sent = await readBody(request, "if-present");
        // Anthropic's message threads: the whole conversation, from the store (responses/message-threads.ts).
        const thread = dialect === "anthropic" ? await openThread(threads, sent, requestId) : undefined;
        const body = thread?.body ?? sent;
        const canonical =
          dialect === "anthropic"
            ? parseAnthropicRequest(body, {
                onWarning: (message) => log.debug(`request_id=${requestId}: ${message}`),
                keepBillingHeader: options.keepBillingHeader === true,
                onBillingHeaderDropped: () => {
                  options.metrics?.billingHeadersDropped.inc();
                  log.debug(`request_id=${requestId}: dropped Claude Code's billing block from system`);
                },
              })
            : parseOpenAIRequest(body);
        // Claude Code names its session in a header too (and in metadata.user_id, read by the parser).
        const session = request.headers.get("x-claude-code-session-id");
        if (canonical.sessionKey === undefined && session) canonical.sessionKey = session;
        const ctx: ChatContext = { dialect, requestId, signal: request.signal, startedAt };
        if (!canonical.stream) {
          const { response } = await completeChat(chatDeps, canonical, ctx);
          await thread?.keep?.(response, canonical.model);
          const body =
            dialect === "anthropic"
              ? renderAnthropicResponse(response, {
                  model: canonical.model,
                  messageId: thread?.messageId,
                  thinking: canonical.thinking === true,
                })
              : renderOpenAIResponse(response, { model: canonical.model });
          return new Response(JSON.stringify(body), {
            headers: { "content-type": "application/json", "x-request-id": requestId },
          });
        }
        if (dialect === "openai" && canRelay(chatDeps, canonical)) {
          const relay = await relayChat(chatDeps, canonical, ctx);
          return new Response(relay.body, { headers: sseHeaders(requestId) });
        }
        const chat = await startChat(chatDeps, canonical, ctx);
        const encoder =
          dialect === "anthropic"
            ? new AnthropicStreamEncoder({
                model: canonical.model,
                messageId: thread?.messageId,
                thinking: canonical.thinking === true,
              })
            : new OpenAIStreamEncoder({ includeUsage: canonical.includeUsage, model: canonical.model });
        const keep = thread?.keep;
        const parts =
          keep === undefined
            ? chat.parts
            : keepThreadAtEnd(chat.parts, (answer) => keep(answer, canonical.model));
        return new Response(await relaySse(parts, encoder), { headers: sseHeaders(requestId) });
      } catch (error) {
        return renderError(dialect, error, { "x-request-id": requestId });
      }
    };

  const responses = responseStore(options.records);
  const responsesDeps = { ...chatDeps, store: responses };

  /** An OpenAI endpoint (Responses, completions, embeddings): the client's key checked, errors in OpenAI's envelope. */
  const responsesRoute =
    (fn: (request: Request, requestId: string) => Promise<Response>) =>
    async ({ request }: { request: Request }): Promise<Response> => {
      const requestId = request.headers.get("x-request-id") ?? crypto.randomUUID();
      try {
        if (!clientAuthorized(request))
          throw new CortexError(
            "unauthorized",
            "invalid API key: send it as Authorization: Bearer or x-api-key",
          );
        return await fn(request, requestId);
      } catch (error) {
        return renderError("responses", error, { "x-request-id": requestId });
      }
    };

  /** The `{id}` of /v1/responses/{id}…, decoded. */
  const responseId = (request: Request): string =>
    decodeURIComponent(new URL(request.url).pathname.split("/")[3] ?? "");

  const listenHost = options.listenHostname?.toLowerCase();
  /** Host names the admin API answers to without a token: loopback names and gateway.listen's host. */
  const ownName = (host: string): boolean =>
    isLoopbackName(host) || (listenHost !== undefined && listenHost !== "0.0.0.0" && host === listenHost);

  const adminGuard = (
    request: Request,
    server: { requestIP(request: Request): { address: string } | null } | null,
  ) => {
    const host = hostOf(request.headers.get("host") ?? "");
    // A browser page elsewhere must not drive the admin API (a cross-site POST needs no preflight).
    const origin = request.headers.get("origin");
    if (origin !== null) {
      let originHost: string;
      try {
        originHost = origin === "null" ? "" : hostOf(new URL(origin).host);
      } catch {
        originHost = "";
      }
      if (originHost === "" || (originHost !== host && !ownName(originHost)))
        throw new CortexError("forbidden", "the admin API refuses requests from another origin");
    }
    if (options.adminToken === "") {
      // DNS rebinding: a name that resolves to 127.0.0.1 is still somebody else's site.
      if (!ownName(host))
        throw new CortexError(
          "forbidden",
          "the admin API without gateway.admin_token answers only to loopback host names",
        );
      if (!isLoopback(server?.requestIP(request)?.address))
        throw new CortexError(
          "forbidden",
          "the admin API is only open to loopback; set gateway.admin_token to use it remotely",
        );
      return;
    }
    if (!isAdmin(request)) throw new CortexError("unauthorized", "missing or invalid admin token");
  };

  const adminAction =
    (fn: (action: AdminModelAction) => Promise<string>) =>
    async ({ request, server }: { request: Request; server: Parameters<typeof adminGuard>[1] }) => {
      try {
        adminGuard(request, server);
        const body = await readBody(request, "required");
        const parsed = AdminModelAction.safeParse(body);
        if (!parsed.success) throw new CortexError("invalid_request", "expected {model, node?, force?}");
        const message = await fn(parsed.data);
        log.info(`admin: ${message}`);
        return json({ ok: true, message });
      } catch (error) {
        return renderError("openai", error);
      }
    };

  const dashboardDeps = { routing: options.routing, history, apiKeyRequired: keys.size > 0 };
  /** A GET on the admin API that answers JSON. */
  const adminRead =
    (fn: (request: Request) => unknown) =>
    ({ request, server }: { request: Request; server: Parameters<typeof adminGuard>[1] }) => {
      try {
        adminGuard(request, server);
        return json(fn(request));
      } catch (error) {
        return renderError("openai", error);
      }
    };
  /**
   * The dashboard page: with an admin token it is a login form anyone may
   * load (the data behind it needs the token); without one, loopback only,
   * as the admin API.
   */
  const dashboardPage = async ({
    request,
    server,
  }: {
    request: Request;
    server: Parameters<typeof adminGuard>[1];
  }): Promise<Response> => {
    try {
      if (options.adminToken === "") adminGuard(request, server);
    } catch (error) {
      return new Response(`${toCortexError(error).message}\n`, {
        status: toCortexError(error).status,
        headers: { "content-type": "text/plain; charset=utf-8" },
      });
    }
    const asset = await dashboardAsset(new URL(request.url).pathname);
    return asset ?? renderError("openai", new CortexError("not_found", "no such dashboard file"));
  };

  const docs = options.docs ?? "open";
  const app = new Elysia();
  // /docs and /docs/json describe the API (routes, request schemas); they hold no keys, models or fleet data.
  if (docs === "api_key")
    app.onRequest(({ request }) => {
      const path = new URL(request.url).pathname;
      if ((path === "/docs" || path.startsWith("/docs/")) && !clientAuthorized(request))
        return renderError(
          "openai",
          new CortexError("unauthorized", 'invalid API key (gateway.docs = "api_key")'),
        );
    });
  if (docs !== "off")
    mountApiDocs(app, {
      title: "cortex gateway",
      version: options.version,
      description:
        "OpenAI- and Anthropic-compatible API in front of a fleet of llama.cpp nodes, plus the admin API.",
    });
  return app
    .get("/health", () =>
      options.draining?.()
        ? json({ status: "draining", version: options.version }, 503)
        : json({ status: "ok", version: options.version }),
    )
    .get("/v1/models", ({ request }) => {
      const dialect = catalogueDialect(request);
      if (!catalogueAuthorized(request))
        return renderError(dialect, new CortexError("unauthorized", "invalid API key"));
      const catalogue = options.routing.catalogue();
      if (dialect === "anthropic") return json(renderAnthropicModelList(catalogue));
      return json({ object: "list", data: catalogue });
    })
    .get("/v1/models/:id", ({ request, params }) => {
      const dialect = catalogueDialect(request);
      if (!catalogueAuthorized(request))
        return renderError(dialect, new CortexError("unauthorized", "invalid API key"));
      const id = decodeURIComponent(params.id);
      const entry = options.routing
        .catalogue()
        .find((model) => model.id === id || model.cortex.aliases.includes(id));
      if (!entry)
        return renderError(dialect, new CortexError("model_not_found", `model ${id} does not exist`));
      return json(dialect === "anthropic" ? renderAnthropicModel(entry) : entry);
    })
    .post("/v1/chat/completions", chatHandler("openai"))
    .post("/v1/messages", chatHandler("anthropic"))
    .post(
      "/v1/responses",
      responsesRoute(async (request, requestId) =>
        sseOrJson(
          await createResponse(
            responsesDeps,
            await readBody(request, "if-present"),
            chatContext(request, requestId, "responses"),
          ),
          requestId,
        ),
      ),
    )
    .get(
      "/v1/responses/:id",
      responsesRoute(async (request) => {
        if (new URL(request.url).searchParams.get("stream") === "true")
          throw new CortexError(
            "unsupported_parameter",
            "streaming a stored response again is not supported",
            {
              param: "stream",
            },
          );
        return json(await retrieveResponse(responses, responseId(request)));
      }),
    )
    .delete(
      "/v1/responses/:id",
      responsesRoute(async (request) => json(await deleteResponse(responses, responseId(request)))),
    )
    .get(
      "/v1/responses/:id/input_items",
      responsesRoute(async (request) =>
        json(await listInputItems(responses, responseId(request), new URL(request.url).searchParams)),
      ),
    )
    .post(
      "/v1/completions",
      responsesRoute(async (request, requestId) =>
        sseOrJson(
          await createCompletions(
            chatDeps,
            await readBody(request, "if-present"),
            chatContext(request, requestId, "openai"),
          ),
          requestId,
        ),
      ),
    )
    .post(
      "/v1/embeddings",
      responsesRoute(async (request, requestId) =>
        json(
          await createEmbeddings(chatDeps, await readBody(request, "if-present"), {
            requestId,
            signal: request.signal,
          }),
          200,
          { "x-request-id": requestId },
        ),
      ),
    )
    .post("/v1/messages/count_tokens", async ({ request }) => {
      try {
        if (!clientAuthorized(request)) throw new CortexError("unauthorized", "invalid API key");
        // A thread's continuation counts the whole conversation it stands for.
        const opened = await openThread(threads, await readBody(request, "if-present"), "count_tokens");
        const canonical = parseAnthropicCountTokensRequest(opened.body);
        const model = options.routing.loader.resolve(canonical.model).id;
        const routed = await options.routing.route(
          model,
          async (target) => {
            const upstream = target.upstream("v1/chat/count_tokens");
            const response = await fetch(upstream.url, {
              method: "POST",
              headers: { ...upstream.headers, "content-type": "application/json" },
              body: JSON.stringify(toUpstreamChatBody(canonical, { model: target.modelId, stream: false })),
              signal: request.signal,
            });
            const body: unknown = await response.json().catch(() => undefined);
            if (!response.ok)
              throw errorFromResponse(
                target.node,
                response.status,
                body,
                response.headers.get("retry-after"),
              );
            const count = (body as { prompt_tokens?: unknown } | undefined)?.prompt_tokens;
            if (typeof count !== "number")
              throw new CortexError(
                "upstream_error",
                `node ${target.node} answered count_tokens without a count`,
              );
            return count;
          },
          { signal: request.signal },
        );
        routed.finish();
        return json(renderAnthropicCountTokensResponse(routed.value));
      } catch (error) {
        return renderError("anthropic", error);
      }
    })
    .get("/admin/fleet", ({ request, server }) => {
      try {
        adminGuard(request, server);
        return json(options.routing.fleetView());
      } catch (error) {
        return renderError("openai", error);
      }
    })
    .get(
      "/admin/overview",
      adminRead(() => dashboardOverview(dashboardDeps)),
    )
    .get(
      "/admin/timeseries",
      adminRead(() => dashboardTimeSeries(dashboardDeps)),
    )
    .get(
      "/admin/requests/recent",
      adminRead((request) => dashboardRecent(dashboardDeps, new URL(request.url))),
    )
    .get("/ui", dashboardPage)
    .get("/ui/*", dashboardPage)
    .post(
      "/admin/models/load",
      adminAction((a) => options.admin.load(a.model, a.node)),
    )
    .post(
      "/admin/models/unload",
      adminAction((a) => options.admin.unload(a.model, a.node, a.force)),
    )
    .post(
      "/admin/models/pin",
      adminAction((a) => options.admin.pin(a.model, true)),
    )
    .post(
      "/admin/models/unpin",
      adminAction((a) => options.admin.pin(a.model, false)),
    )
    .post(
      "/admin/models/rm",
      adminAction((a) => options.admin.remove(a.model, a.node)),
    )
    .post("/admin/models/pull", async ({ request, server }) => {
      try {
        adminGuard(request, server);
        const parsed = AdminPullRequest.safeParse(await readBody(request, "required"));
        if (!parsed.success)
          throw new CortexError("invalid_request", "expected {source, nodes?} or {profile, nodes?}");
        const result = await options.admin.pull(parsed.data);
        log.info(`admin: ${result.message}`);
        return json(result);
      } catch (error) {
        return renderError("openai", error);
      }
    })
    .get("/admin/models/pulls", async ({ request, server }) => {
      try {
        adminGuard(request, server);
        return json(await options.admin.pulls());
      } catch (error) {
        return renderError("openai", error);
      }
    })
    .onError(({ code, error, request }) => {
      const dialect: Dialect = new URL(request.url).pathname.startsWith("/v1/messages")
        ? "anthropic"
        : "openai";
      const cortex =
        code === "NOT_FOUND"
          ? new CortexError(
              "not_found",
              `no such endpoint: ${request.method} ${new URL(request.url).pathname}`,
            )
          : toCortexError(error);
      return renderError(dialect, cortex);
    });
}
