/**
 * A scripted fake neuron for the gateway benchmarks: answers the neuron
 * contract (`GET /health`, `GET /models` with one model loaded and ready)
 * and `POST /v1/chat/completions` at once, from precomputed bytes, so that
 * whatever sits in front of it is what a benchmark measures. A chat for any
 * other model is refused with 404 `model_not_found`, as a real neuron does;
 * it serves no loads, unloads, pins or recycles (404, no such endpoint).
 *
 * A completion has `max_tokens` content deltas (default 4) of one short word
 * each: a JSON completion when `stream` is false, otherwise SSE chunks (a
 * role chunk, the deltas, a finish chunk, a usage chunk, `[DONE]`; with
 * the neuron's trailer before `[DONE]` when the request asks for
 * `cortex_trailer`, as the gateway does for streams it relays), written in
 * one go so the consumer's per-event cost is the bottleneck.
 *
 * Run as its own process so it never shares an event loop with what is
 * measured: `bun bench/fake-upstream.ts [--model ID]` prints one line
 * `{"url": "http://127.0.0.1:PORT"}` once it listens, and exits when its
 * stdin closes (so it never outlives the benchmark).
 */
import type { HealthResponse, LoadedModel, ModelsResponse } from "../src/core/neuron-api.ts";

export const FAKE_MODEL = "bench-model";
/** Deltas in a completion when the request does not set max_tokens. */
export const DEFAULT_DELTAS = 4;
/** Upper bound on deltas per completion, so a request cannot make the fake allocate without limit. */
export const MAX_DELTAS = 100_000;
const WORD = "tok ";

/** The text a completion of `deltas` deltas carries, for checking that a stream arrived whole. */
export function expectedText(deltas: number): string {
  return WORD.repeat(deltas);
}

function loadedModel(model: string, now: number): LoadedModel {
  return {
    id: model,
    file: `${model}.gguf`,
    state: "ready",
    devices: ["cpu-0"],
    contextSize: 8192,
    slots: 64,
    lastUsed: now,
    loadedAt: now,
    inFlight: 0,
    queued: 0,
    memoryBytes: 1 << 20,
    pinned: true,
    priority: 0,
  };
}

export function healthBody(model: string, now = Date.now()): HealthResponse {
  return {
    status: "ok",
    version: "fake",
    node: "fake",
    startedAt: now,
    devices: [
      {
        id: "cpu-0",
        kind: "cpu",
        index: 0,
        name: "fake cpu",
        memoryTotal: 64 * 2 ** 30,
        memoryFree: 63 * 2 ** 30,
        poisoned: false,
        loadCycles: 0,
      },
    ],
    loaded: [loadedModel(model, now)],
  };
}

export function modelsBody(model: string, now = Date.now()): ModelsResponse {
  return {
    available: [
      {
        file: `${model}.gguf`,
        sizeBytes: 1 << 20,
        architecture: "llama",
        hasChatTemplate: true,
      },
    ],
    loaded: [loadedModel(model, now)],
  };
}

/** A non-streamed chat completion of `deltas` words. */
export function completionBody(model: string, deltas: number): string {
  return JSON.stringify({
    id: "chatcmpl-bench",
    object: "chat.completion",
    created: 0,
    model,
    choices: [
      {
        index: 0,
        message: { role: "assistant", content: expectedText(deltas) },
        finish_reason: "stop",
      },
    ],
    usage: { prompt_tokens: 8, completion_tokens: deltas, total_tokens: 8 + deltas },
    // As a neuron reports them (src/core/neuron-api.ts), so the gateway's metrics do their usual work.
    cortex: { first_token_ms: 0.05, last_token_ms: 0.05 * deltas },
  });
}

/**
 * The SSE bytes of a streamed chat completion of `deltas` words; `trailed`:
 * as a neuron writes it for the gateway to relay (`cortex_trailer`), with
 * the trailer comment before `[DONE]`.
 */
export function streamBody(model: string, deltas: number, trailed = false): string {
  const chunk = (choices: unknown[], extra: Record<string, unknown> = {}) =>
    `data: ${JSON.stringify({ id: "chatcmpl-bench", object: "chat.completion.chunk", created: 0, model, choices, ...extra })}\n\n`;
  const delta = chunk([{ index: 0, delta: { content: WORD }, finish_reason: null }]);
  return [
    chunk([{ index: 0, delta: { role: "assistant", content: "" }, finish_reason: null }]),
    delta.repeat(deltas),
    chunk([{ index: 0, delta: {}, finish_reason: "stop" }]),
    chunk([], { usage: { prompt_tokens: 8, completion_tokens: deltas, total_tokens: 8 + deltas } }),
    trailed
      ? `: cortex ${JSON.stringify({ first_token_ms: 0.05, last_token_ms: 0.05 * deltas, usage: { prompt_tokens: 8, completion_tokens: deltas, total_tokens: 8 + deltas }, finish_reason: "stop" })}\n\n`
      : "",
    "data: [DONE]\n\n",
  ].join("");
}

function deltasOf(body: unknown): number {
  if (typeof body !== "object" || body === null) return DEFAULT_DELTAS;
  const max = (body as { max_tokens?: unknown; max_completion_tokens?: unknown }).max_tokens;
  const alt = (body as { max_completion_tokens?: unknown }).max_completion_tokens;
  const value = typeof max === "number" ? max : typeof alt === "number" ? alt : DEFAULT_DELTAS;
  return Math.max(1, Math.min(MAX_DELTAS, Math.floor(value)));
}

/** Starts the fake on 127.0.0.1 (a free port unless one is given). */
export function serveFakeUpstream(options: { model?: string; port?: number } = {}) {
  const model = options.model ?? FAKE_MODEL;
  const streams = new Map<number, Uint8Array>();
  const trailedStreams = new Map<number, Uint8Array>();
  const completions = new Map<number, Uint8Array>();
  const cached = (cache: Map<number, Uint8Array>, deltas: number, render: () => string) => {
    let bytes = cache.get(deltas);
    if (bytes === undefined) {
      bytes = new TextEncoder().encode(render());
      if (cache.size < 64) cache.set(deltas, bytes);
    }
    return bytes;
  };
  return Bun.serve({
    hostname: "127.0.0.1",
    port: options.port ?? 0,
    idleTimeout: 0,
    async fetch(request) {
      const path = new URL(request.url).pathname;
      if (request.method === "GET" && path === "/health") return Response.json(healthBody(model));
      if (request.method === "GET" && path === "/models") return Response.json(modelsBody(model));
      if (request.method === "POST" && path.endsWith("/chat/completions")) {
        const body: unknown = await request.json().catch(() => undefined);
        const asked = (body as { model?: unknown } | undefined)?.model;
        if (asked !== model)
          return Response.json(
            {
              error: {
                code: "model_not_found",
                message: `model ${String(asked)} is not loaded on this neuron`,
                type: "invalid_request_error",
                param: "model",
              },
            },
            { status: 404 },
          );
        const deltas = deltasOf(body);
        const stream = (body as { stream?: unknown } | undefined)?.stream === true;
        const trailed = (body as { cortex_trailer?: unknown } | undefined)?.cortex_trailer === true;
        if (stream)
          return new Response(
            trailed
              ? cached(trailedStreams, deltas, () => streamBody(model, deltas, true))
              : cached(streams, deltas, () => streamBody(model, deltas)),
            { headers: { "content-type": "text/event-stream", "cache-control": "no-cache" } },
          );
        return new Response(
          cached(completions, deltas, () => completionBody(model, deltas)),
          { headers: { "content-type": "application/json" } },
        );
      }
      return Response.json({ error: { code: "not_found", message: path } }, { status: 404 });
    },
  });
}

if (import.meta.main) {
  const args = process.argv.slice(2);
  const modelAt = args.indexOf("--model");
  const server = serveFakeUpstream(modelAt >= 0 && args[modelAt + 1] ? { model: args[modelAt + 1] } : {});
  process.stdout.write(`${JSON.stringify({ url: `http://127.0.0.1:${server.port}` })}\n`);
  // The parent holds our stdin open for as long as it wants us; EOF means it is gone.
  for await (const _ of Bun.stdin.stream()) {
    // nothing to read; just wait for EOF
  }
  server.stop(true);
  process.exit(0);
}
