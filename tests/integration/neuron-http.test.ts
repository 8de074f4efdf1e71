/**
 * The neuron's HTTP API with real libllama on the tiny model: what a gateway
 * or a curl user sees.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { NeuronSection } from "../../src/core/config/config-schema.ts";
import { ensureDemoModel, TINY_MODEL_FILE } from "../../src/neuron/gguf/tiny-model.ts";
import { type RunningNeuron, startNeuron } from "../../src/neuron/start-neuron.ts";
import { noEndBias } from "./helpers/real-fleet.ts";

const MODELS = `${import.meta.dir}/../.tmp/models`;
const TOKEN = "neuron-secret";
let neuron: RunningNeuron;
/** Bans end-of-generation so a stream runs until max_tokens: a request that holds its slot. */
let noEnd: Record<string, number> = {};

function api(path: string, body?: unknown, init: RequestInit = {}): Promise<Response> {
  return fetch(`${neuron.url}${path}`, {
    method: body === undefined ? "GET" : "POST",
    headers: { authorization: `Bearer ${TOKEN}`, "content-type": "application/json" },
    ...(body === undefined ? {} : { body: JSON.stringify(body) }),
    ...init,
  });
}

const chat = (extra: Record<string, unknown> = {}) => ({
  model: "tiny",
  messages: [{ role: "user", content: "Tell me about the garden." }],
  temperature: 0,
  ...extra,
});

async function sseEvents(response: Response): Promise<Array<Record<string, unknown>>> {
  const text = await response.text();
  return (
    text
      .split("\n\n")
      // Comments (`: …`, the heartbeat before a slow first token) are for proxies, not readers.
      .filter((frame) => !frame.startsWith(":"))
      .map((frame) => frame.replace(/^data: /, "").trim())
      .filter((data) => data !== "" && data !== "[DONE]")
      .map((data) => JSON.parse(data) as Record<string, unknown>)
  );
}

beforeAll(async () => {
  noEnd = await noEndBias(await ensureDemoModel(MODELS));
  neuron = await startNeuron({
    config: NeuronSection.parse({
      models_dir: MODELS,
      auth_token: TOKEN,
      default_context_size: 2048,
      queue_size: 1,
    }),
    listen: { hostname: "127.0.0.1", port: 0 },
    // Answers slower than this to begin (or, not streamed, to finish) go out with heartbeats. Well above
    // what any quick answer or refusal here takes, so statuses stay what they are, even on a loaded machine.
    answerHeartbeatMs: 100,
  });
  const load = await api("/models/load", { id: "tiny", file: TINY_MODEL_FILE, slots: 2 });
  expect(load.status).toBe(201);
}, 60_000);

afterAll(async () => {
  await neuron?.stop();
});

describe("lifecycle", () => {
  test("/health needs no token and reports devices and loaded models", async () => {
    const response = await fetch(`${neuron.url}/health`);
    expect(response.status).toBe(200);
    const health = (await response.json()) as {
      status: string;
      devices: Array<{ id: string }>;
      loaded: Array<{ id: string; state: string }>;
    };
    expect(health.status).toBe("ok");
    expect(health.devices.map((d) => d.id)).toEqual(["cpu-0"]);
    expect(health.loaded).toContainEqual(expect.objectContaining({ id: "tiny", state: "ready" }));
  });

  test("everything else needs the bearer token, in OpenAI's error envelope", async () => {
    const response = await fetch(`${neuron.url}/models`);
    expect(response.status).toBe(401);
    expect(((await response.json()) as { error: { type: string } }).error.type).toBe("authentication_error");
  });

  test("/models reads GGUF metadata from the header", async () => {
    const models = (await (await api("/models")).json()) as {
      available: Array<{
        file: string;
        architecture: string;
        contextLength: number;
        hasChatTemplate: boolean;
        sizeBytes: number;
      }>;
    };
    const tiny = models.available.find((m) => m.file === TINY_MODEL_FILE);
    expect(tiny).toMatchObject({ architecture: "llama", contextLength: 131072, hasChatTemplate: true });
    expect(tiny?.sizeBytes).toBeGreaterThan(0);
  });

  test("load is idempotent; unknown files are 404; unknown models 404 on unload", async () => {
    const again = await api("/models/load", { id: "tiny", file: TINY_MODEL_FILE });
    expect(again.status).toBe(200);
    expect(((await again.json()) as { alreadyLoaded: boolean }).alreadyLoaded).toBe(true);
    expect((await api("/models/load", { file: "nope.gguf" })).status).toBe(404);
    expect((await api("/models/load", { file: "../../etc/passwd" })).status).toBe(404);
    expect((await api("/models/unload", { id: "ghost" })).status).toBe(404);
  });
});

describe("chat completions", () => {
  test("temperature 0 is deterministic, and the stream adds up to the plain answer", async () => {
    const a = (await (await api("/v1/chat/completions", chat())).json()) as {
      choices: Array<{ message: { content: string }; finish_reason: string }>;
      usage: { prompt_tokens: number; completion_tokens: number };
    };
    const b = (await (await api("/v1/chat/completions", chat())).json()) as typeof a;
    expect(a.choices[0]?.message.content.length).toBeGreaterThan(0);
    expect(b.choices[0]?.message.content).toBe(a.choices[0]?.message.content);
    expect(a.choices[0]?.finish_reason).toBe("stop");
    const events = await sseEvents(
      await api("/v1/chat/completions", chat({ stream: true, stream_options: { include_usage: true } })),
    );
    const text = events
      .flatMap((e) => (e.choices as Array<{ delta: { content?: string } }>) ?? [])
      .map((c) => c.delta.content ?? "")
      .join("");
    expect(text).toBe(a.choices[0]!.message.content);
    expect(events.at(-1)?.usage).toEqual(
      expect.objectContaining({ completion_tokens: a.usage.completion_tokens }),
    );
  });

  test("max_tokens ends with finish_reason length and exact usage", async () => {
    const body = (await (await api("/v1/chat/completions", chat({ max_tokens: 2 }))).json()) as {
      choices: Array<{ finish_reason: string }>;
      usage: { completion_tokens: number };
    };
    expect(body.choices[0]?.finish_reason).toBe("length");
    expect(body.usage.completion_tokens).toBe(2);
  });

  test("a long non-streamed answer starts with heartbeats and reports when its first and last tokens came", async () => {
    const sent = performance.now();
    const answer = await api(
      "/v1/chat/completions",
      chat({ max_tokens: 1900, logit_bias: noEnd, context_overflow: "clamp" }),
    );
    expect(answer.status).toBe(200);
    const text = await answer.text();
    expect(text.startsWith(" ")).toBe(true);
    const body = JSON.parse(text) as {
      usage: { completion_tokens: number };
      cortex?: { first_token_ms: number; last_token_ms: number };
    };
    const elapsed = performance.now() - sent;
    expect(body.usage.completion_tokens).toBeGreaterThan(1);
    const timings = body.cortex;
    if (timings === undefined) throw new Error("no cortex timings on the completion");
    expect(timings.first_token_ms).toBeGreaterThan(0);
    expect(timings.last_token_ms).toBeGreaterThan(timings.first_token_ms);
    expect(timings.last_token_ms).toBeLessThan(elapsed);
  });

  test("a stop string is never emitted and is reported on the choice", async () => {
    const plain = (await (await api("/v1/chat/completions", chat())).json()) as {
      choices: Array<{ message: { content: string } }>;
    };
    const words = plain.choices[0]!.message.content.trim().split(/\s+/);
    const stop = words[Math.min(2, words.length - 1)]!;
    const body = (await (await api("/v1/chat/completions", chat({ stop: [stop] }))).json()) as {
      choices: Array<{ message: { content: string }; finish_reason: string; stop_sequence?: string }>;
    };
    expect(body.choices[0]?.message.content).not.toContain(stop);
    expect(body.choices[0]?.finish_reason).toBe("stop");
    expect(body.choices[0]?.stop_sequence).toBe(stop);
  });

  test("bad requests get a 400 in OpenAI's envelope naming the problem", async () => {
    const response = await api("/v1/chat/completions", { model: "tiny", messages: [], temperature: "hot" });
    expect(response.status).toBe(400);
    const body = (await response.json()) as { error: { type: string; message: string } };
    expect(body.error.type).toBe("invalid_request_error");
    expect((await api("/v1/chat/completions", { ...chat(), n: 2 })).status).toBe(400);
    const notJson = await fetch(`${neuron.url}/v1/chat/completions`, {
      method: "POST",
      headers: { authorization: `Bearer ${TOKEN}` },
      body: "{nope",
    });
    expect(notJson.status).toBe(400);
  });

  test("an unknown model is a 404", async () => {
    const response = await api("/v1/chat/completions", { ...chat(), model: "ghost" });
    expect(response.status).toBe(404);
  });

  test("prompt + max_tokens over the context: 400 with the counts, or clamped on request", async () => {
    const overflow = await api("/v1/chat/completions", chat({ max_tokens: 5000 }));
    expect(overflow.status).toBe(400);
    const body = (await overflow.json()) as { error: { code: string; details: Record<string, number> } };
    expect(body.error.code).toBe("context_length_exceeded");
    expect(body.error.details).toMatchObject({ max_tokens: 5000, context_size: 2048 });
    expect(body.error.details.prompt_tokens).toBeGreaterThan(0);
    const clamped = await api("/v1/chat/completions", chat({ max_tokens: 5000, context_overflow: "clamp" }));
    expect(clamped.status).toBe(200);
  });

  test("count_tokens counts the rendered prompt with the model's tokenizer", async () => {
    const counted = (await (await api("/v1/chat/count_tokens", chat())).json()) as { prompt_tokens: number };
    const ran = (await (await api("/v1/chat/completions", chat({ max_tokens: 1 }))).json()) as {
      usage: { prompt_tokens: number };
    };
    expect(counted.prompt_tokens).toBe(ran.usage.prompt_tokens);
  });
});

/** Resolves once the neuron's engine reports tiny with this many requests running and queued (no polling). */
async function untilBusy(inFlight: number, queued: number): Promise<void> {
  await neuron.pool.untilModels((models) =>
    models.some((m) => m.id === "tiny" && m.inFlight === inFlight && m.queued === queued),
  );
}

describe("concurrency", () => {
  test("beyond slots + queue, requests get 429 with Retry-After; a disconnect frees the slot", async () => {
    // 2 slots + queue of 1: hold three long streams, the fourth is refused.
    const controllers = [0, 1, 2].map(() => new AbortController());
    const long = chat({ stream: true, max_tokens: 1900, context_overflow: "clamp", logit_bias: noEnd });
    // The third waits in the queue, so its response headers only come once it runs: don't await them.
    const streams = controllers.map((c) =>
      api("/v1/chat/completions", long, { signal: c.signal }).catch(() => undefined),
    );
    await untilBusy(2, 1);
    const fourth = await api("/v1/chat/completions", chat());
    expect(fourth.status).toBe(429);
    expect(fourth.headers.get("retry-after")).not.toBeNull();
    for (const c of controllers) c.abort();
    await Promise.allSettled(streams.map(async (s) => (await s)?.body?.cancel()));
    // The slots come back, and /models says so.
    await untilBusy(0, 0);
    const models = (await (await api("/models")).json()) as {
      loaded: Array<{ id: string; inFlight: number; queued: number }>;
    };
    expect(models.loaded.find((m) => m.id === "tiny")).toMatchObject({ inFlight: 0, queued: 0 });
    expect((await api("/v1/chat/completions", chat())).status).toBe(200);
  });

  test("unload refuses while requests are in flight, unless forced", async () => {
    const controller = new AbortController();
    const stream = await api(
      "/v1/chat/completions",
      chat({ stream: true, max_tokens: 1900, context_overflow: "clamp", logit_bias: noEnd }),
      { signal: controller.signal },
    );
    expect(stream.status).toBe(200);
    const refused = await api("/models/unload", { id: "tiny" });
    expect(refused.status).toBe(409);
    const forced = await api("/models/unload", { id: "tiny", force: true });
    expect(forced.status).toBe(200);
    controller.abort();
    await stream.body?.cancel().catch(() => {});
    const models = (await (await api("/models")).json()) as { loaded: unknown[] };
    expect(models.loaded).toEqual([]);
    expect((await api("/models/load", { id: "tiny", file: TINY_MODEL_FILE, slots: 2 })).status).toBe(201);
  });
});
