/**
 * GET /metrics on a real neuron: the counters move by what clients were
 * told (tokens generated = the usage they saw), the step and batch
 * histograms fill, per-model and per-device gauges follow the pool, and the
 * watchdog's counters count an injected hang and its recovery.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { NeuronSection } from "../../src/core/config/config-schema.ts";
import { ensureDemoModel, TINY_MODEL_FILE } from "../../src/neuron/gguf/tiny-model.ts";
import { type RunningNeuron, startNeuron } from "../../src/neuron/start-neuron.ts";
import { noEndBias } from "./helpers/real-fleet.ts";

const MODELS = `${import.meta.dir}/../.tmp/models`;
let neuron: RunningNeuron;
let noEnd: Record<string, number> = {};

function api(path: string, body?: unknown): Promise<Response> {
  return fetch(`${neuron.url}${path}`, {
    method: body === undefined ? "GET" : "POST",
    headers: { "content-type": "application/json" },
    ...(body === undefined ? {} : { body: JSON.stringify(body) }),
  });
}

/** Samples of one scrape, keyed `name{label="v",…}` as exposed. */
async function scrape(): Promise<Map<string, number>> {
  const response = await api("/metrics");
  expect(response.status).toBe(200);
  expect(response.headers.get("content-type")).toContain("text/plain");
  const samples = new Map<string, number>();
  for (const line of (await response.text()).split("\n")) {
    if (line === "" || line.startsWith("#")) continue;
    const at = line.lastIndexOf(" ");
    samples.set(line.slice(0, at), Number(line.slice(at + 1)));
  }
  return samples;
}

const value = (samples: Map<string, number>, key: string) => samples.get(key) ?? 0;

async function complete(
  model: string,
  maxTokens: number,
): Promise<{ prompt: number; completion: number; cached: number }> {
  const response = await api("/v1/chat/completions", {
    model,
    messages: [{ role: "user", content: "Tell me about the garden." }],
    temperature: 0,
    max_tokens: maxTokens,
    logit_bias: noEnd,
  });
  expect(response.status).toBe(200);
  const { usage } = (await response.json()) as {
    usage: {
      prompt_tokens: number;
      completion_tokens: number;
      prompt_tokens_details: { cached_tokens: number };
    };
  };
  return {
    prompt: usage.prompt_tokens,
    completion: usage.completion_tokens,
    cached: usage.prompt_tokens_details.cached_tokens,
  };
}

beforeAll(async () => {
  noEnd = await noEndBias(await ensureDemoModel(MODELS));
  neuron = await startNeuron({
    config: NeuronSection.parse({
      models_dir: MODELS,
      cpu_devices: 3,
      step_timeout_s: 1,
      stage2_grace_s: 10,
    }),
    listen: { hostname: "127.0.0.1", port: 0 },
    // Each group's step 6 hangs on rank 1; the single-device model is not a group and never hangs.
    faultInjection: "hang-collective:rank=1,step=6",
    pool: { tpLogger: { error: () => {}, warn: () => {}, info: () => {}, debug: () => {} } },
  });
  for (const body of [
    { id: "tiny-tp", file: TINY_MODEL_FILE, deviceCount: 2, contextSize: 512, slots: 1 },
    { id: "tiny", file: TINY_MODEL_FILE, contextSize: 256, slots: 2 },
  ])
    expect((await api("/models/load", body)).status).toBe(201);
}, 60_000);

afterAll(async () => {
  await neuron?.stop();
});

describe("neuron /metrics", () => {
  test("tokens generated equal the usage clients saw; steps, batches, KV and devices are exposed", async () => {
    const before = await scrape();
    expect(value(before, 'cortex_neuron_model_load_duration_seconds_count{model="tiny-tp"}')).toBe(1);
    expect(value(before, 'cortex_neuron_model_load_duration_seconds_count{model="tiny"}')).toBe(1);
    expect(value(before, 'cortex_neuron_kv_cache_size_tokens{model="tiny-tp"}')).toBe(512);
    expect(value(before, 'cortex_neuron_kv_cache_size_tokens{model="tiny"}')).toBe(512);
    for (const device of ["cpu-0", "cpu-1", "cpu-2"]) {
      expect(value(before, `cortex_neuron_device_memory_total_bytes{device="${device}"}`)).toBeGreaterThan(0);
      expect(before.has(`cortex_neuron_device_memory_free_bytes{device="${device}"}`)).toBe(true);
      expect(value(before, `cortex_neuron_device_poisoned{device="${device}"}`)).toBe(0);
    }

    const seen = { "tiny-tp": 0, tiny: 0 };
    const prompt = { "tiny-tp": { computed: 0, reused: 0 }, tiny: { computed: 0, reused: 0 } };
    const count = (
      model: keyof typeof seen,
      usage: { prompt: number; completion: number; cached: number },
    ) => {
      seen[model] += usage.completion;
      prompt[model].computed += usage.prompt - usage.cached;
      prompt[model].reused += usage.cached;
    };
    // Two requests on the group: steps 1–2 and 3–4 (each: prefill + first token, then one more).
    for (const model of ["tiny-tp", "tiny-tp", "tiny", "tiny"] as const)
      count(model, await complete(model, 2));
    const [a, b] = await Promise.all([complete("tiny", 3), complete("tiny", 4)]);
    count("tiny", a);
    count("tiny", b);
    // The same prompt again and again: every repeat reuses its prefix.
    expect(prompt.tiny.reused).toBeGreaterThan(0);
    // KV use is reported by the step after a sequence's last token, a message behind its `done`: wait for it.
    await neuron.pool.untilModels(() => neuron.pool.kvUsage().every((m) => m.usedTokens === 0));
    const after = await scrape();

    for (const model of ["tiny-tp", "tiny"] as const) {
      const delta = (key: string) => value(after, key) - value(before, key);
      expect(delta(`cortex_neuron_tokens_generated_total{model="${model}"}`)).toBe(seen[model]);
      expect(delta(`cortex_neuron_prompt_tokens_computed_total{model="${model}"}`)).toBe(
        prompt[model].computed,
      );
      expect(delta(`cortex_neuron_prompt_tokens_reused_total{model="${model}"}`)).toBe(prompt[model].reused);
      expect(value(after, `cortex_neuron_prefix_reuse_fallbacks_total{model="${model}"}`)).toBe(0);
      expect(delta(`cortex_neuron_sequences_finished_total{model="${model}"}`)).toBe(
        model === "tiny" ? 4 : 2,
      );
      expect(delta(`cortex_neuron_step_duration_seconds_count{model="${model}"}`)).toBeGreaterThanOrEqual(
        model === "tiny-tp" ? 4 : 3,
      );
      expect(delta(`cortex_neuron_step_batch_size_count{model="${model}"}`)).toBe(
        delta(`cortex_neuron_step_duration_seconds_count{model="${model}"}`),
      );
      expect(value(after, `cortex_neuron_active_sequences{model="${model}"}`)).toBe(0);
      expect(value(after, `cortex_neuron_kv_cache_used_tokens{model="${model}"}`)).toBe(0);
    }
    expect(seen["tiny-tp"]).toBe(4);
    // One request at a time on the group: every step decoded exactly one sequence.
    expect(value(after, 'cortex_neuron_step_batch_size_sum{model="tiny-tp"}')).toBe(
      value(after, 'cortex_neuron_step_batch_size_count{model="tiny-tp"}'),
    );
    expect(value(after, "cortex_neuron_tp_step_timeouts_total")).toBe(0);
  });

  test("an injected hang moves the watchdog counters: one timeout, one abort, one Stage 1 recovery", async () => {
    const before = await scrape();
    // Step 5 decodes, step 6 hangs on rank 1.
    const response = await api("/v1/chat/completions", {
      model: "tiny-tp",
      messages: [{ role: "user", content: "Tell me about the garden." }],
      temperature: 0,
      max_tokens: 10,
      logit_bias: noEnd,
    });
    expect(response.status).toBe(503);
    await neuron.pool.untilModels((models) => !models.some((m) => m.id === "tiny-tp"));
    const after = await scrape();
    const delta = (key: string) => value(after, key) - value(before, key);
    expect(delta("cortex_neuron_tp_step_timeouts_total")).toBe(1);
    expect(delta("cortex_neuron_tp_aborts_total")).toBe(1);
    expect(delta("cortex_neuron_tp_aborts_hung_total")).toBe(0);
    expect(delta('cortex_neuron_tp_recoveries_total{stage="1",result="started"}')).toBe(1);
    expect(delta('cortex_neuron_tp_recoveries_total{stage="1",result="recovered"}')).toBe(1);
    expect(value(after, 'cortex_neuron_tp_recoveries_total{stage="2",result="fatal"}')).toBe(0);
    // The group's model is gone from the per-model gauges; the other one stays; no device stays poisoned.
    expect(after.has('cortex_neuron_kv_cache_size_tokens{model="tiny-tp"}')).toBe(false);
    expect(after.has('cortex_neuron_kv_cache_size_tokens{model="tiny"}')).toBe(true);
    for (const device of ["cpu-0", "cpu-1", "cpu-2"])
      expect(value(after, `cortex_neuron_device_poisoned{device="${device}"}`)).toBe(0);
  }, 30_000);
});
