/**
 * The gateway's /metrics and request log after real requests: a gateway with
 * no [[neurons]] (so a neuron in its own process serves the tiny model from a
 * temp models directory), both dialects, streaming and not. Counters must
 * move by exactly what the clients saw.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { startLocalNeuron } from "../../src/cli/local-neuron.ts";
import { loadConfig } from "../../src/core/config/load-config.ts";
import { configureLogging } from "../../src/core/logger.ts";
import { parseExposition, type Sample, sumSamples } from "../../src/gateway/metrics/parse-exposition.ts";
import { type RunningGateway, startGateway } from "../../src/gateway/run-gateway.ts";
import { ensureDemoModel, TINY_MODEL_FILE } from "../../src/neuron/gguf/tiny-model.ts";

const MODEL = "tiny";
const PROMPT = "Tell me about the garden in the evening light.";
let dir: string;
let gateway: RunningGateway;
const logLines: string[] = [];

interface Usage {
  prompt: number;
  completion: number;
  /** Prompt tokens the client was told came from the cache. */
  cached: number;
}

interface Sent {
  requestId: string;
  dialect: "openai" | "anthropic";
  stream: boolean;
  status: number;
  usage?: Usage;
}

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), "cortex-metrics-"));
  const modelsDir = join(dir, "models");
  await ensureDemoModel(modelsDir);
  const path = join(dir, "cortex.toml");
  writeFileSync(
    path,
    [
      "[log]",
      'level = "info"',
      'format = "json"',
      "[gateway]",
      'listen = "127.0.0.1:0"',
      'metrics_listen = "127.0.0.1:0"',
      "poll_interval_ms = 200",
      "request_timeout_s = 60",
      "load_timeout_s = 60",
      "[neuron]",
      `models_dir = ${JSON.stringify(modelsDir)}`,
      "threads = 1",
      "default_context_size = 2048",
      "[[models]]",
      `id = "${MODEL}"`,
      `file = "${TINY_MODEL_FILE}"`,
      "context_size = 2048",
      "slots = 2",
      "",
    ].join("\n"),
  );
  const config = loadConfig({ path, env: {} });
  configureLogging({ ...config.file.log, write: (line) => logLines.push(line) });
  gateway = await startGateway(config, { startLocalNeuron });
  // Until a poll has seen the neuron up the gateway answers 503: wait for that change.
  await gateway.whenFleet((nodes) => nodes.some((node) => node.name === "local" && node.state === "up"));
}, 60_000);

afterAll(async () => {
  await gateway?.stop();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

async function scrape(): Promise<Sample[]> {
  if (gateway.metricsUrl === undefined) throw new Error("metrics are off");
  const response = await fetch(gateway.metricsUrl);
  expect(response.status).toBe(200);
  expect(response.headers.get("content-type")).toContain("text/plain");
  return parseExposition(await response.text());
}

function sseData(text: string): Array<Record<string, unknown>> {
  return text
    .split("\n\n")
    .flatMap((frame) => frame.split("\n").filter((line) => line.startsWith("data: ")))
    .map((line) => line.slice("data: ".length))
    .filter((data) => data !== "[DONE]")
    .map((data) => JSON.parse(data) as Record<string, unknown>);
}

async function send(dialect: "openai" | "anthropic", stream: boolean, model = MODEL): Promise<Sent> {
  const requestId = `metrics-${dialect}-${stream}-${crypto.randomUUID().slice(0, 8)}`;
  const body =
    dialect === "openai"
      ? {
          model,
          messages: [{ role: "user", content: PROMPT }],
          max_tokens: 12,
          temperature: 0,
          stream,
          ...(stream ? { stream_options: { include_usage: true } } : {}),
        }
      : { model, messages: [{ role: "user", content: PROMPT }], max_tokens: 12, temperature: 0, stream };
  const response = await fetch(
    `${gateway.url}${dialect === "openai" ? "/v1/chat/completions" : "/v1/messages"}`,
    {
      method: "POST",
      headers: { "content-type": "application/json", "x-request-id": requestId },
      body: JSON.stringify(body),
    },
  );
  const sent: Sent = { requestId, dialect, stream, status: response.status };
  if (!response.ok) {
    await response.text();
    return sent;
  }
  if (!stream) {
    const json = (await response.json()) as {
      usage: {
        prompt_tokens?: number;
        completion_tokens?: number;
        input_tokens?: number;
        output_tokens?: number;
        cache_read_input_tokens?: number;
        prompt_tokens_details?: { cached_tokens?: number };
      };
    };
    // Anthropic's input_tokens leaves out the prompt tokens read from a cache.
    sent.usage =
      dialect === "openai"
        ? {
            prompt: json.usage.prompt_tokens ?? -1,
            completion: json.usage.completion_tokens ?? -1,
            cached: json.usage.prompt_tokens_details?.cached_tokens ?? 0,
          }
        : {
            prompt: (json.usage.input_tokens ?? -1) + (json.usage.cache_read_input_tokens ?? 0),
            completion: json.usage.output_tokens ?? -1,
            cached: json.usage.cache_read_input_tokens ?? 0,
          };
    return sent;
  }
  const events = sseData(await response.text());
  if (dialect === "openai") {
    const last = events.findLast((event) => event.usage != null) as
      | {
          usage: {
            prompt_tokens: number;
            completion_tokens: number;
            prompt_tokens_details?: { cached_tokens?: number };
          };
        }
      | undefined;
    if (last === undefined) throw new Error("no usage chunk in the OpenAI stream");
    sent.usage = {
      prompt: last.usage.prompt_tokens,
      completion: last.usage.completion_tokens,
      cached: last.usage.prompt_tokens_details?.cached_tokens ?? 0,
    };
  } else {
    const start = events.find((event) => event.type === "message_start") as
      | { message: { usage: { input_tokens: number } } }
      | undefined;
    const delta = events.findLast((event) => event.type === "message_delta") as
      | { usage: { output_tokens: number; input_tokens?: number; cache_read_input_tokens?: number } }
      | undefined;
    if (start === undefined || delta === undefined) throw new Error("no usage in the Anthropic stream");
    sent.usage = {
      prompt:
        delta.usage.input_tokens === undefined
          ? start.message.usage.input_tokens
          : delta.usage.input_tokens + (delta.usage.cache_read_input_tokens ?? 0),
      completion: delta.usage.output_tokens,
      cached: delta.usage.cache_read_input_tokens ?? 0,
    };
  }
  return sent;
}

const delta = (before: Sample[], after: Sample[], name: string, match: Record<string, string> = {}) =>
  sumSamples(after, name, match) - sumSamples(before, name, match);

describe("gateway /metrics after real requests", () => {
  let before: Sample[];
  let after: Sample[];
  const sent: Sent[] = [];

  beforeAll(async () => {
    before = await scrape();
    // Sequential, so exactly the first one waits for the model to load.
    for (const dialect of ["openai", "anthropic"] as const)
      for (const stream of [false, true]) sent.push(await send(dialect, stream));
    sent.push(await send("openai", false, "no-such-model-3f9a"));
    sent.push(await send("anthropic", true, "another typo"));
    after = await scrape();
  }, 60_000);

  test("the clients got their answers", () => {
    expect(sent.map((s) => s.status)).toEqual([200, 200, 200, 200, 404, 404]);
    for (const s of sent.slice(0, 4)) {
      expect(s.usage?.prompt).toBeGreaterThan(0);
      expect(s.usage?.completion).toBeGreaterThan(0);
    }
  });

  test("requests_total moved once per request, by dialect, stream and outcome", () => {
    for (const dialect of ["openai", "anthropic"])
      for (const stream of ["false", "true"])
        expect(
          delta(before, after, "cortex_gateway_requests_total", {
            model: MODEL,
            node: "local",
            dialect,
            stream,
            status_class: "2xx",
            error_type: "",
          }),
        ).toBe(1);
    expect(delta(before, after, "cortex_gateway_requests_total")).toBe(6);
  });

  test("unknown models collapse to one label value and never become labels", () => {
    expect(
      delta(before, after, "cortex_gateway_requests_total", {
        model: "unknown",
        status_class: "4xx",
        error_type: "model_not_found",
      }),
    ).toBe(2);
    const values = new Set(after.flatMap((sample) => Object.values(sample.labels)));
    expect(values.has("no-such-model-3f9a")).toBe(false);
    expect(values.has("another typo")).toBe(false);
  });

  test("token counters equal the usage the clients saw", () => {
    const total = (key: keyof Usage) => sent.reduce((sum, s) => sum + (s.usage?.[key] ?? 0), 0);
    const labels = { model: MODEL, node: "local" };
    expect(delta(before, after, "cortex_gateway_prompt_tokens_total", labels)).toBe(total("prompt"));
    expect(delta(before, after, "cortex_gateway_completion_tokens_total", labels)).toBe(total("completion"));
    // The same prompt four times in a row: all but the first read it from the neuron's cache.
    expect(total("cached")).toBeGreaterThan(0);
    expect(delta(before, after, "cortex_gateway_prompt_tokens_cached_total", labels)).toBe(total("cached"));
  });

  test("latency histograms counted every request; first-token time only the answered ones", () => {
    expect(delta(before, after, "cortex_gateway_request_duration_seconds_count")).toBe(6);
    expect(delta(before, after, "cortex_gateway_request_duration_seconds_count", { model: MODEL })).toBe(4);
    expect(delta(before, after, "cortex_gateway_time_to_first_token_seconds_count", { model: MODEL })).toBe(
      4,
    );
    expect(delta(before, after, "cortex_gateway_queue_wait_seconds_count", { model: MODEL })).toBe(4);
    // The +Inf bucket holds every observation.
    expect(
      delta(before, after, "cortex_gateway_time_to_first_token_seconds_bucket", { model: MODEL, le: "+Inf" }),
    ).toBe(4);
    const ttftSum = delta(before, after, "cortex_gateway_time_to_first_token_seconds_sum", { model: MODEL });
    const durationSum = delta(before, after, "cortex_gateway_request_duration_seconds_sum", { model: MODEL });
    expect(ttftSum).toBeGreaterThan(0);
    expect(ttftSum).toBeLessThanOrEqual(durationSum);
  });

  test("the first request waited for the load; later ones did not", () => {
    expect(delta(before, after, "cortex_gateway_load_wait_seconds_count", { model: MODEL })).toBe(1);
    expect(
      delta(before, after, "cortex_gateway_model_loads_total", { model: MODEL, node: "local", result: "ok" }),
    ).toBe(1);
    expect(delta(before, after, "cortex_gateway_model_load_duration_seconds_count", { model: MODEL })).toBe(
      1,
    );
  });

  test("in-flight is back to 0; fleet gauges show the node and its model", () => {
    expect(sumSamples(after, "cortex_gateway_in_flight_requests", { model: MODEL })).toBe(0);
    expect(sumSamples(after, "cortex_gateway_queue_depth", { model: MODEL })).toBe(0);
    expect(sumSamples(after, "cortex_gateway_node_state", { node: "local", state: "up" })).toBe(1);
    expect(sumSamples(after, "cortex_gateway_node_state", { node: "local" })).toBe(1);
    expect(sumSamples(after, "cortex_gateway_models_loaded", { node: "local" })).toBe(1);
    expect(sumSamples(after, "cortex_gateway_device_memory_total_bytes", { node: "local" })).toBeGreaterThan(
      0,
    );
    for (const reason of ["make_room", "idle_ttl", "admin"])
      expect(
        after.some((s) => s.name === "cortex_gateway_evictions_total" && s.labels.reason === reason),
      ).toBe(true);
    expect(after.some((s) => s.name.startsWith("cortex_gateway_process_"))).toBe(true);
  });

  test("one JSON log line per request, with the request's figures", () => {
    const lines = logLines
      .map((line) => JSON.parse(line) as Record<string, unknown>)
      .filter((line) => line.msg === "chat");
    for (const s of sent) {
      const mine = lines.filter((line) => line.request_id === s.requestId);
      expect(mine).toHaveLength(1);
      const line = mine[0] as Record<string, unknown>;
      expect(line).toMatchObject({ level: "info", tag: "gateway", dialect: s.dialect, status: s.status });
      expect(typeof line.duration_ms).toBe("number");
      if (s.usage === undefined) {
        expect(line.error).toBe("model_not_found");
        continue;
      }
      expect(line).toMatchObject({
        model: MODEL,
        node: "local",
        stream: s.stream,
        prompt_tokens: s.usage.prompt,
        completion_tokens: s.usage.completion,
      });
      expect(line.ttft_ms as number).toBeLessThanOrEqual(line.duration_ms as number);
      if (s.usage.completion > 1) expect(line.tok_s as number).toBeGreaterThan(0);
    }
  });
});

describe("an OpenAI stream relayed as the neuron writes it", () => {
  test("is counted from the neuron's trailer even when its client did not ask for usage", async () => {
    // The same request, not streamed: what the counters must move by (temperature 0 decodes the same tokens).
    const whole = await send("openai", false);
    const before = await scrape();
    const response = await fetch(`${gateway.url}/v1/chat/completions`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({
        model: MODEL,
        messages: [{ role: "user", content: PROMPT }],
        max_tokens: 12,
        temperature: 0,
        stream: true,
      }),
    });
    const events = sseData(await response.text());
    expect(response.status).toBe(200);
    expect(events.some((event) => event.usage != null)).toBe(false);
    const after = await scrape();
    const labels = { model: MODEL, node: "local" };
    expect(delta(before, after, "cortex_gateway_prompt_tokens_total", labels)).toBe(
      whole.usage?.prompt ?? -1,
    );
    expect(delta(before, after, "cortex_gateway_completion_tokens_total", labels)).toBe(
      whole.usage?.completion ?? -1,
    );
    expect(delta(before, after, "cortex_gateway_time_to_first_token_seconds_count", labels)).toBe(1);
    expect(delta(before, after, "cortex_gateway_decode_tokens_per_second_count", labels)).toBe(1);
    expect(
      delta(before, after, "cortex_gateway_requests_total", {
        ...labels,
        stream: "true",
        status_class: "2xx",
      }),
    ).toBe(1);
  });
});
