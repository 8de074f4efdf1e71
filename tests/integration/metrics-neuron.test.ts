/**
 * Both /metrics endpoints after the same requests: a neuron on the tiny
 * model behind a gateway ([[neurons]]), both dialects, streaming and not.
 * The neuron's generated-token counter, the gateway's completion-token
 * counter and the usage the clients saw must agree exactly.
 */
import { afterAll, beforeAll, expect, test } from "bun:test";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { NeuronSection } from "../../src/core/config/config-schema.ts";
import { loadConfig } from "../../src/core/config/load-config.ts";
import { configureLogging } from "../../src/core/logger.ts";
import { parseExposition, type Sample, sumSamples } from "../../src/gateway/metrics/parse-exposition.ts";
import { type RunningGateway, startGateway } from "../../src/gateway/run-gateway.ts";
import { ensureDemoModel, TINY_MODEL_FILE } from "../../src/neuron/gguf/tiny-model.ts";
import { type RunningNeuron, startNeuron } from "../../src/neuron/start-neuron.ts";

const MODEL = "tiny";
const TOKEN = "neuron-metrics-secret";
let dir: string;
let neuron: RunningNeuron;
let gateway: RunningGateway;

async function scrape(url: string, token?: string): Promise<Sample[]> {
  const response = await fetch(
    url,
    token === undefined ? {} : { headers: { authorization: `Bearer ${token}` } },
  );
  expect(response.status).toBe(200);
  return parseExposition(await response.text());
}

const scrapeNeuron = () => scrape(`${neuron.url}/metrics`, TOKEN);
const scrapeGateway = () => scrape(gateway.metricsUrl ?? "");

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), "cortex-neuron-metrics-"));
  const modelsDir = join(dir, "models");
  await ensureDemoModel(modelsDir);
  neuron = await startNeuron({
    config: NeuronSection.parse({ models_dir: modelsDir, auth_token: TOKEN, threads: 1 }),
    listen: { hostname: "127.0.0.1", port: 0 },
  });
  const path = join(dir, "cortex.toml");
  writeFileSync(
    path,
    [
      "[log]",
      'level = "error"',
      "[gateway]",
      'listen = "127.0.0.1:0"',
      'metrics_listen = "127.0.0.1:0"',
      "poll_interval_ms = 200",
      "[[neurons]]",
      'name = "solo"',
      `endpoint = "${neuron.url}"`,
      `token = "${TOKEN}"`,
      "[[models]]",
      `id = "${MODEL}"`,
      `file = "${TINY_MODEL_FILE}"`,
      "context_size = 2048",
      "",
    ].join("\n"),
  );
  const config = loadConfig({ path, env: {} });
  configureLogging(config.file.log);
  gateway = await startGateway(config);
  await gateway.whenFleet((nodes) => nodes.some((node) => node.name === "solo" && node.state === "up"));
}, 60_000);

afterAll(async () => {
  await gateway?.stop();
  await neuron?.stop();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

/** One request through the gateway; returns the usage the client saw. */
async function send(dialect: "openai" | "anthropic", stream: boolean) {
  const body = {
    model: MODEL,
    messages: [{ role: "user", content: "Tell me about the garden in the evening light." }],
    max_tokens: 10,
    temperature: 0,
    stream,
    ...(stream && dialect === "openai" ? { stream_options: { include_usage: true } } : {}),
  };
  const response = await fetch(
    `${gateway.url}${dialect === "openai" ? "/v1/chat/completions" : "/v1/messages"}`,
    {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify(body),
    },
  );
  expect(response.status).toBe(200);
  if (!stream) {
    const usage = ((await response.json()) as { usage: Record<string, number> }).usage;
    return dialect === "openai"
      ? { prompt: usage.prompt_tokens ?? -1, completion: usage.completion_tokens ?? -1 }
      : // Anthropic's input_tokens leaves out the prompt tokens read from a cache.
        {
          prompt: (usage.input_tokens ?? -1) + (usage.cache_read_input_tokens ?? 0),
          completion: usage.output_tokens ?? -1,
        };
  }
  const events = (await response.text())
    .split("\n")
    .filter((line) => line.startsWith("data: ") && line !== "data: [DONE]")
    .map((line) => JSON.parse(line.slice(6)) as Record<string, unknown>);
  if (dialect === "openai") {
    const usage = events.findLast((event) => event.usage != null)?.usage as Record<string, number>;
    return { prompt: usage.prompt_tokens ?? -1, completion: usage.completion_tokens ?? -1 };
  }
  const start = events.find((event) => event.type === "message_start") as {
    message: { usage: { input_tokens: number } };
  };
  const end = events.findLast((event) => event.type === "message_delta") as {
    usage: { output_tokens: number; input_tokens?: number; cache_read_input_tokens?: number };
  };
  return {
    prompt:
      end.usage.input_tokens === undefined
        ? start.message.usage.input_tokens
        : end.usage.input_tokens + (end.usage.cache_read_input_tokens ?? 0),
    completion: end.usage.output_tokens,
  };
}

test("neuron and gateway count the same tokens the clients saw", async () => {
  const neuronBefore = await scrapeNeuron();
  const gatewayBefore = await scrapeGateway();
  const usages: Array<{ prompt: number; completion: number }> = [];
  for (const dialect of ["openai", "anthropic"] as const)
    for (const stream of [false, true]) usages.push(await send(dialect, stream));
  const neuronAfter = await scrapeNeuron();
  const gatewayAfter = await scrapeGateway();
  const delta = (before: Sample[], after: Sample[], name: string, match: Record<string, string> = {}) =>
    sumSamples(after, name, match) - sumSamples(before, name, match);
  const completion = usages.reduce((sum, usage) => sum + usage.completion, 0);
  const prompt = usages.reduce((sum, usage) => sum + usage.prompt, 0);
  expect(completion).toBeGreaterThan(0);

  const labels = { model: MODEL };
  expect(delta(neuronBefore, neuronAfter, "cortex_neuron_tokens_generated_total", labels)).toBe(completion);
  expect(delta(neuronBefore, neuronAfter, "cortex_neuron_prompt_tokens_total", labels)).toBe(prompt);
  expect(delta(neuronBefore, neuronAfter, "cortex_neuron_sequences_finished_total", labels)).toBe(4);
  expect(delta(gatewayBefore, gatewayAfter, "cortex_gateway_completion_tokens_total", labels)).toBe(
    completion,
  );
  expect(delta(gatewayBefore, gatewayAfter, "cortex_gateway_prompt_tokens_total", labels)).toBe(prompt);

  // Every prompt and generated token went through a decode step, in batches of at least one.
  const steps = delta(neuronBefore, neuronAfter, "cortex_neuron_step_duration_seconds_count", labels);
  expect(steps).toBeGreaterThanOrEqual(4);
  expect(delta(neuronBefore, neuronAfter, "cortex_neuron_step_batch_size_count", labels)).toBe(steps);
  // Prompt tokens reused from the KV cache are not decoded again.
  const computed = delta(neuronBefore, neuronAfter, "cortex_neuron_prompt_tokens_computed_total", labels);
  expect(
    computed + delta(neuronBefore, neuronAfter, "cortex_neuron_prompt_tokens_reused_total", labels),
  ).toBe(prompt);
  expect(
    delta(neuronBefore, neuronAfter, "cortex_neuron_decoded_tokens_total", labels),
  ).toBeGreaterThanOrEqual(computed);
  expect(sumSamples(neuronAfter, "cortex_neuron_active_sequences", labels)).toBe(0);
  expect(sumSamples(neuronAfter, "cortex_neuron_tp_step_timeouts_total")).toBe(0);
  // The neuron's load was the gateway's load: both saw exactly one.
  expect(sumSamples(neuronAfter, "cortex_neuron_model_load_duration_seconds_count", labels)).toBe(1);
  expect(sumSamples(gatewayAfter, "cortex_gateway_model_loads_total", { ...labels, result: "ok" })).toBe(1);
});

test("the neuron's /metrics needs its bearer token like the rest of its API", async () => {
  expect((await fetch(`${neuron.url}/metrics`)).status).toBe(401);
});
