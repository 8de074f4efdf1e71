/**
 * The neuron's Prometheus metrics (prom-client), served at GET /metrics.
 * Work is observed as it happens through the engine's observer hooks; state
 * (devices, loaded models, KV use, watchdog counters) is read from the pool
 * at scrape time, so an unloaded model's gauges disappear. Labels stay
 * bounded: model ids, device ids, recovery stage. Its own registry, so a
 * neuron inside the gateway's process does not collide with the gateway's.
 */
import { Counter, Gauge, Histogram, Registry } from "prom-client";
import type { DeviceInfo } from "../core/neuron-api.ts";
import type { PrefixReuseStats } from "./engine/slot-kv.ts";
import type { EngineObserver } from "./engine/types.ts";
import type { PullObserver } from "./pull/pull-manager.ts";
import type { TpCounters } from "./tp/step-watchdog.ts";

/** What the scrape reads; the device pool provides all of it. */
export interface NeuronMetricsSource {
  devices(): DeviceInfo[];
  models(): Array<{ id: string; inFlight: number; queued: number }>;
  kvUsage(): Array<{ id: string; usedTokens: number; sizeTokens: number }>;
  readonly tpCounters: TpCounters;
}

export interface NeuronMetrics {
  readonly registry: Registry;
  /** Pass to the device pool (DevicePoolOptions.observer). */
  readonly observer: EngineObserver;
  /** Where the scrape-time gauges read from (set once the pool exists). */
  bind(source: NeuronMetricsSource): void;
  /** Pass to the pull manager (src/neuron/pull/pull-manager.ts). */
  readonly pulls: PullObserver;
  /** The exposition for GET /metrics. */
  render(): Promise<{ body: string; contentType: string }>;
}

const STEP_SECONDS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 120];
const BATCH_SIZES = [1, 2, 4, 8, 16, 32, 64, 128, 256, 512];
const LOAD_SECONDS = [0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300];
const PULL_SECONDS = [0.1, 1, 5, 15, 60, 300, 900, 1800, 3600, 7200];

export function createNeuronMetrics(): NeuronMetrics {
  const registry = new Registry();
  let source: NeuronMetricsSource | undefined;
  const registers = [registry];

  const stepSeconds = new Histogram({
    name: "cortex_neuron_step_duration_seconds",
    help: "Duration of one decode step (llama_decode over the batch; a tensor-parallel group's lockstep collective included)",
    labelNames: ["model"],
    buckets: STEP_SECONDS,
    registers,
  });
  const batchSize = new Histogram({
    name: "cortex_neuron_step_batch_size",
    help: "Sequences decoded together in one step",
    labelNames: ["model"],
    buckets: BATCH_SIZES,
    registers,
  });
  const stepTokens = new Counter({
    name: "cortex_neuron_decoded_tokens_total",
    help: "Tokens run through llama_decode (prompt prefill and generated tokens fed back)",
    labelNames: ["model"],
    registers,
  });
  const generated = new Counter({
    name: "cortex_neuron_tokens_generated_total",
    help: "Completion tokens generated, as reported in each finished request's usage",
    labelNames: ["model"],
    registers,
  });
  const promptTokens = new Counter({
    name: "cortex_neuron_prompt_tokens_total",
    help: "Prompt tokens of finished requests",
    labelNames: ["model"],
    registers,
  });
  const promptComputed = new Counter({
    name: "cortex_neuron_prompt_tokens_computed_total",
    help: "Prompt tokens of finished requests that were prefilled (not reused from a KV cache)",
    labelNames: ["model"],
    registers,
  });
  const promptReused = new Counter({
    name: "cortex_neuron_prompt_tokens_reused_total",
    help: "Prompt tokens of finished requests whose KV was reused from a slot or the host-memory prompt cache (usage cached tokens)",
    labelNames: ["model"],
    registers,
  });
  const finished = new Counter({
    name: "cortex_neuron_sequences_finished_total",
    help: "Requests (sequences) that finished normally",
    labelNames: ["model"],
    registers,
  });
  const loadSeconds = new Histogram({
    name: "cortex_neuron_model_load_duration_seconds",
    help: "Time to load a model (a tensor-parallel group's formation included)",
    labelNames: ["model"],
    buckets: LOAD_SECONDS,
    registers,
  });

  new Gauge({
    name: "cortex_neuron_active_sequences",
    help: "Requests being decoded, per loaded model",
    labelNames: ["model"],
    registers,
    collect() {
      this.reset();
      for (const m of source?.models() ?? []) this.set({ model: m.id }, m.inFlight);
    },
  });
  new Gauge({
    name: "cortex_neuron_queued_requests",
    help: "Requests waiting for a slot, per loaded model",
    labelNames: ["model"],
    registers,
    collect() {
      this.reset();
      for (const m of source?.models() ?? []) this.set({ model: m.id }, m.queued);
    },
  });
  new Gauge({
    name: "cortex_neuron_kv_cache_used_tokens",
    help: "KV-cache cells held by a model's live sequences",
    labelNames: ["model"],
    registers,
    collect() {
      this.reset();
      for (const kv of source?.kvUsage() ?? []) this.set({ model: kv.id }, kv.usedTokens);
    },
  });
  new Gauge({
    name: "cortex_neuron_kv_cache_size_tokens",
    help: "KV-cache capacity of a model (context size × slots)",
    labelNames: ["model"],
    registers,
    collect() {
      this.reset();
      for (const kv of source?.kvUsage() ?? []) this.set({ model: kv.id }, kv.sizeTokens);
    },
  });
  new Gauge({
    name: "cortex_neuron_device_memory_total_bytes",
    help: "Memory of a device as cortex may use it",
    labelNames: ["device"],
    registers,
    collect() {
      this.reset();
      for (const d of source?.devices() ?? []) this.set({ device: d.id }, d.memoryTotal);
    },
  });
  new Gauge({
    name: "cortex_neuron_device_memory_free_bytes",
    help: "Memory of a device not held by loaded models",
    labelNames: ["device"],
    registers,
    collect() {
      this.reset();
      for (const d of source?.devices() ?? []) this.set({ device: d.id }, d.memoryFree);
    },
  });
  new Gauge({
    name: "cortex_neuron_device_poisoned",
    help: "1 while a device is poisoned by a fault (until recycled or recovered)",
    labelNames: ["device"],
    registers,
    collect() {
      this.reset();
      for (const d of source?.devices() ?? []) this.set({ device: d.id }, d.poisoned ? 1 : 0);
    },
  });

  /** Latest prefix-reuse figures per model, cumulative since its load; read at scrape time for loaded models only. */
  const prefix = new Map<string, PrefixReuseStats>();
  const eachPrefix = (read: (stats: PrefixReuseStats) => number | undefined) => {
    const out: Array<[string, number]> = [];
    for (const m of source?.models() ?? []) {
      const stats = prefix.get(m.id);
      const value = stats === undefined ? undefined : read(stats);
      if (value !== undefined) out.push([m.id, value]);
    }
    return out;
  };
  const prefixMetric = (
    Kind: typeof Counter | typeof Gauge,
    name: string,
    help: string,
    read: (stats: PrefixReuseStats) => number | undefined,
  ) =>
    new Kind({
      name,
      help,
      labelNames: ["model"],
      registers,
      collect(this: Counter | Gauge) {
        this.reset();
        for (const [model, value] of eachPrefix(read)) this.inc({ model }, value);
      },
    });
  prefixMetric(
    Counter,
    "cortex_neuron_prefix_reuse_fallbacks_total",
    "Requests that shared a prefix with a slot but prefilled it all: the model's memory cannot be cut there (recurrent, hybrid, or a sliding window past the start)",
    (s) => s.fallbacks,
  );
  prefixMetric(
    Gauge,
    "cortex_neuron_prompt_cache_bytes",
    "Bytes of saved sequence states in the host-memory prompt cache",
    (s) => s.hostCache?.bytes,
  );
  prefixMetric(
    Gauge,
    "cortex_neuron_prompt_cache_entries",
    "Saved sequence states in the host-memory prompt cache",
    (s) => s.hostCache?.entries,
  );
  prefixMetric(
    Counter,
    "cortex_neuron_prompt_cache_hits_total",
    "Requests that restored a saved state from the host-memory prompt cache into their slot",
    (s) => s.hostCache?.hits,
  );
  prefixMetric(
    Counter,
    "cortex_neuron_prompt_cache_misses_total",
    "Requests whose slot did not hold their prompt and the host-memory prompt cache had nothing better",
    (s) => s.hostCache?.misses,
  );
  prefixMetric(
    Counter,
    "cortex_neuron_prompt_cache_evictions_total",
    "Saved states dropped to keep the host-memory prompt cache within neuron.prompt_cache_bytes",
    (s) => s.hostCache?.evictions,
  );

  const tp = (name: keyof TpCounters) => source?.tpCounters[name] ?? 0;
  /** A counter that mirrors one of the watchdog's plain counters at scrape time. */
  const mirror = (name: string, help: string, read: () => number) =>
    new Counter({
      name,
      help,
      registers,
      collect() {
        this.reset();
        this.inc(read());
      },
    });
  mirror(
    "cortex_neuron_tp_step_timeouts_total",
    "Tensor-parallel steps that ran past the step timeout (NEURON_TP_STEP_TIMEOUT_S)",
    () => tp("stepTimeouts"),
  );
  mirror(
    "cortex_neuron_tp_step_device_faults_total",
    "Tensor-parallel steps that failed with a device error",
    () => tp("stepDeviceFaults"),
  );
  mirror("cortex_neuron_tp_aborts_total", "Times a group's communicators were aborted (ncclCommAbort)", () =>
    tp("abortsIssued"),
  );
  mirror(
    "cortex_neuron_tp_aborts_hung_total",
    "Aborts that did not return in time (each leads to Stage 2)",
    () => tp("abortsHung"),
  );
  new Counter({
    name: "cortex_neuron_tp_recoveries_total",
    help: 'Watchdog recoveries by stage: stage="1" result started|recovered, stage="2" result fatal (exit 70)',
    labelNames: ["stage", "result"],
    registers,
    collect() {
      this.reset();
      this.inc({ stage: "1", result: "started" }, tp("stage1Started"));
      this.inc({ stage: "1", result: "recovered" }, tp("stage1Recovered"));
      this.inc({ stage: "2", result: "fatal" }, tp("stage2Fatal"));
    },
  });

  const pullBytes = new Counter({
    name: "cortex_neuron_pull_bytes_total",
    help: "Bytes of model files downloaded by pulls (resumed bytes count once, when they arrive)",
    registers,
  });
  const pullsFinished = new Counter({
    name: "cortex_neuron_pulls_total",
    help: "Model pulls finished, by outcome: downloaded, present (nothing to download), failed",
    labelNames: ["outcome"],
    registers,
  });
  const pullSeconds = new Histogram({
    name: "cortex_neuron_pull_duration_seconds",
    help: "Time from a pull's start to its end (listing, downloads and checksums), by outcome",
    labelNames: ["outcome"],
    buckets: PULL_SECONDS,
    registers,
  });
  const pulls: PullObserver = {
    bytesReceived(bytes) {
      pullBytes.inc(bytes);
    },
    pullFinished(outcome, seconds) {
      pullsFinished.inc({ outcome });
      pullSeconds.observe({ outcome }, seconds);
    },
  };

  const observer: EngineObserver = {
    step(step) {
      if (step.tokens === 0) return;
      const labels = { model: step.modelId };
      stepSeconds.observe(labels, step.ms / 1000);
      batchSize.observe(labels, step.batchSize);
      stepTokens.inc(labels, step.tokens);
    },
    sequenceDone(modelId, usage) {
      const labels = { model: modelId };
      generated.inc(labels, usage.completionTokens);
      promptTokens.inc(labels, usage.promptTokens);
      promptComputed.inc(labels, usage.promptTokens - usage.cachedTokens);
      promptReused.inc(labels, usage.cachedTokens);
      finished.inc(labels);
    },
    prefixReuse(modelId, stats) {
      prefix.set(modelId, stats);
    },
    modelLoaded(modelId, ms) {
      loadSeconds.observe({ model: modelId }, ms / 1000);
    },
  };

  return {
    registry,
    observer,
    pulls,
    bind(next) {
      source = next;
    },
    async render() {
      return { body: await registry.metrics(), contentType: registry.contentType };
    },
  };
}
