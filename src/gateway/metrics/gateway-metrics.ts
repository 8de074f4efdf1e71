/**
 * The gateway's Prometheus metrics (prom-client), served on
 * `gateway.metrics_listen`. Names and labels are documented in
 * docs/METRICS.md. Label values are bounded: models are configured profile
 * ids or ids some node has loaded (anything else, e.g. a client's typo, is
 * "unknown"), nodes the configured names, the rest fixed enums or error codes.
 */
import { Counter, collectDefaultMetrics, Gauge, Histogram, Registry } from "prom-client";
import { FastCounter, FastHistogram } from "./fast-metrics.ts";

/** Latency buckets for LLM requests: from a cached 50 ms answer to a 10-minute generation. */
const LATENCY_BUCKETS = [0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 20, 30, 60, 120, 300, 600];
const TTFT_BUCKETS = [0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60];
const RATE_BUCKETS = [1, 2, 5, 10, 20, 30, 50, 75, 100, 150, 200, 300, 500, 1000];
const WAIT_BUCKETS = [0.001, 0.01, 0.05, 0.1, 0.5, 1, 2, 5, 10, 30, 60, 120, 300];

export type Dialect = "openai" | "anthropic" | "responses";

export class GatewayMetrics {
  readonly registry = new Registry();
  readonly requests: FastCounter<"model" | "node" | "dialect" | "stream" | "status_class" | "error_type">;
  readonly requestDuration: FastHistogram<"model" | "dialect" | "stream">;
  readonly timeToFirstToken: FastHistogram<"model" | "node" | "dialect">;
  readonly decodeRate: FastHistogram<"model" | "node">;
  readonly queueWait: FastHistogram<"model">;
  readonly loadWait: FastHistogram<"model">;
  readonly promptTokens: FastCounter<"model" | "node">;
  readonly completionTokens: FastCounter<"model" | "node">;
  readonly cachedPromptTokens: FastCounter<"model" | "node">;
  readonly inFlight: Gauge<"model">;
  readonly queueDepth: Gauge<"model">;
  readonly nodeState: Gauge<"node" | "state">;
  readonly deviceMemoryUsed: Gauge<"node" | "device">;
  readonly deviceMemoryTotal: Gauge<"node" | "device">;
  readonly modelsLoaded: Gauge<"node">;
  readonly modelLoads: Counter<"model" | "node" | "result">;
  readonly modelLoadDuration: Histogram<"model" | "node">;
  readonly evictions: Counter<"reason">;
  readonly retries: Counter<"model" | "from_node">;
  readonly billingHeadersDropped: Counter;
  #isKnownModel: (model: string) => boolean = () => false;

  constructor(options: { defaultMetrics?: boolean } = {}) {
    const registers = [this.registry];
    if (options.defaultMetrics !== false) {
      collectDefaultMetrics({ register: this.registry, prefix: "cortex_gateway_" });
      // Bun answers v8.getHeapSpaceStatistics by walking the heap: ~20 ms per scrape with the
      // event loop blocked, for per-space figures JavaScriptCore does not really have. The
      // heap totals (nodejs_heap_size_*) stay.
      for (const kind of ["total", "used", "available"])
        this.registry.removeSingleMetric(`cortex_gateway_nodejs_heap_space_size_${kind}_bytes`);
    }
    this.requests = new FastCounter({
      name: "cortex_gateway_requests_total",
      help: "Chat requests by model, node, client dialect, streaming, status class and error type",
      labelNames: ["model", "node", "dialect", "stream", "status_class", "error_type"],
    });
    this.requestDuration = new FastHistogram({
      name: "cortex_gateway_request_duration_seconds",
      help: "End-to-end request latency, from arrival to the last byte",
      labelNames: ["model", "dialect", "stream"],
      buckets: LATENCY_BUCKETS,
    });
    this.timeToFirstToken = new FastHistogram({
      name: "cortex_gateway_time_to_first_token_seconds",
      help: "From arrival to the first content delta",
      labelNames: ["model", "node", "dialect"],
      buckets: TTFT_BUCKETS,
    });
    this.decodeRate = new FastHistogram({
      name: "cortex_gateway_decode_tokens_per_second",
      help: "Output tokens per second, measured from the first to the last token",
      labelNames: ["model", "node"],
      buckets: RATE_BUCKETS,
    });
    this.queueWait = new FastHistogram({
      name: "cortex_gateway_queue_wait_seconds",
      help: "Time a request waited for a concurrency slot at the gateway",
      labelNames: ["model"],
      buckets: WAIT_BUCKETS,
    });
    this.loadWait = new FastHistogram({
      name: "cortex_gateway_load_wait_seconds",
      help: "Time a request waited for its model to be loaded",
      labelNames: ["model"],
      buckets: WAIT_BUCKETS,
    });
    this.promptTokens = new FastCounter({
      name: "cortex_gateway_prompt_tokens_total",
      help: "Prompt tokens, as reported by the neuron's usage",
      labelNames: ["model", "node"],
    });
    this.cachedPromptTokens = new FastCounter({
      name: "cortex_gateway_prompt_tokens_cached_total",
      help: "Prompt tokens the neuron read from its KV or prompt cache (a part of cortex_gateway_prompt_tokens_total)",
      labelNames: ["model", "node"],
    });
    this.completionTokens = new FastCounter({
      name: "cortex_gateway_completion_tokens_total",
      help: "Completion tokens, as reported by the neuron's usage",
      labelNames: ["model", "node"],
    });
    this.inFlight = new Gauge({
      name: "cortex_gateway_in_flight_requests",
      help: "Requests holding a gateway concurrency slot, by model",
      labelNames: ["model"],
      registers,
    });
    this.queueDepth = new Gauge({
      name: "cortex_gateway_queue_depth",
      help: "Requests waiting for a concurrency slot, by model",
      labelNames: ["model"],
      registers,
    });
    this.nodeState = new Gauge({
      name: "cortex_gateway_node_state",
      help: "1 for the node's current state (up, degraded, down, unknown), 0 for the others",
      labelNames: ["node", "state"],
      registers,
    });
    this.deviceMemoryUsed = new Gauge({
      name: "cortex_gateway_device_memory_used_bytes",
      help: "Device memory in use, as last polled",
      labelNames: ["node", "device"],
      registers,
    });
    this.deviceMemoryTotal = new Gauge({
      name: "cortex_gateway_device_memory_total_bytes",
      help: "Device memory usable by cortex, as last polled",
      labelNames: ["node", "device"],
      registers,
    });
    this.modelsLoaded = new Gauge({
      name: "cortex_gateway_models_loaded",
      help: "Models loaded per node, as last polled",
      labelNames: ["node"],
      registers,
    });
    this.modelLoads = new Counter({
      name: "cortex_gateway_model_loads_total",
      help: "Model loads started by the gateway, by result (ok, failed)",
      labelNames: ["model", "node", "result"],
      registers,
    });
    this.modelLoadDuration = new Histogram({
      name: "cortex_gateway_model_load_duration_seconds",
      help: "How long a model load took on the neuron",
      labelNames: ["model", "node"],
      buckets: [0.1, 0.5, 1, 2, 5, 10, 20, 30, 60, 120, 300],
      registers,
    });
    this.evictions = new Counter({
      name: "cortex_gateway_evictions_total",
      help: "Models unloaded by the gateway, by reason (make_room, idle_ttl, admin)",
      labelNames: ["reason"],
      registers,
    });
    this.retries = new Counter({
      name: "cortex_gateway_retries_total",
      help: "Requests sent to another node after `from_node` failed before the first byte",
      labelNames: ["model", "from_node"],
      registers,
    });
    this.billingHeadersDropped = new Counter({
      name: "cortex_gateway_billing_headers_dropped_total",
      help: "Claude Code billing blocks dropped from Anthropic requests' system prompt (they defeat prefix caching)",
      registers,
    });
  }

  /**
   * Decides which model ids may appear as label values (asked on every
   * request, so keep it cheap); anything else is "unknown".
   */
  setKnownModels(isKnown: (model: string) => boolean): void {
    this.#isKnownModel = isKnown;
  }

  modelLabel(model: string | undefined): string {
    return model !== undefined && this.#isKnownModel(model) ? model : "unknown";
  }

  /** The per-request metrics, kept outside prom-client for speed (see fast-metrics.ts). */
  #fast(): Array<FastCounter<string> | FastHistogram<string>> {
    return [
      this.requests,
      this.requestDuration,
      this.timeToFirstToken,
      this.decodeRate,
      this.queueWait,
      this.loadWait,
      this.promptTokens,
      this.cachedPromptTokens,
      this.completionTokens,
    ];
  }

  /** The whole scrape: the per-request metrics, then the prom-client registry (fleet, lifecycle, process). */
  async render(): Promise<{ body: string; contentType: string }> {
    const fast = this.#fast()
      .map((metric) => metric.render())
      .join("\n\n");
    return { body: `${fast}\n\n${await this.registry.metrics()}`, contentType: this.registry.contentType };
  }
}
