/**
 * The TOML configuration file, as zod schemas. One file may hold both the
 * gateway's sections and the neuron's; each mode reads its own. Objects are
 * strict: an unknown key is an error, never silently ignored.
 * Every key and default is documented in cortex.example.toml.
 */
import { z } from "zod";
import { parseModelSource } from "../model-source.ts";
import { DEFAULT_BODY_TIMEOUT_S } from "../read-body.ts";
import { parseListen } from "./parse-listen.ts";
import { parseSize } from "./parse-size.ts";

const SIZE_EXPECTED = 'expected a size: a number of bytes or a string like "6GiB"';

export const Size = z.union([z.number(), z.string()]).transform((value, ctx) => {
  const bytes = parseSize(value);
  if (bytes === undefined) {
    ctx.addIssue({ code: "custom", message: SIZE_EXPECTED, input: value });
    return z.NEVER;
  }
  return bytes;
});

export const Listen = z.string().refine((value) => parseListen(value) !== undefined, {
  message: 'expected an address like "0.0.0.0:31313" or ":31313"',
});

export const LogLevel = z.enum(["silent", "fatal", "error", "warn", "info", "debug", "trace"]);
export type LogLevel = z.infer<typeof LogLevel>;
export const LogFormat = z.enum(["text", "json"]);
export type LogFormat = z.infer<typeof LogFormat>;

const Url = z.string().refine((value) => URL.canParse(value) && /^https?:/.test(value), {
  message: 'expected an http(s) URL like "http://beast.internal:13131"',
});

function isModelSource(value: string): boolean {
  if (!/^hf:/i.test(value)) return false;
  try {
    parseModelSource(value);
    return true;
  } catch {
    return false;
  }
}

const ModelId = z.string().regex(/^[A-Za-z0-9][A-Za-z0-9._:/@+-]*$/, {
  message: "expected a model id of letters, digits and . _ : / @ + -",
});

// Bun's idleTimeout: whole seconds, at most 255. Keep it above the neurons' 15 s heartbeat
// (src/neuron/chat-answer.ts): a stream's longest silence.
const IdleTimeout = z.number().int().min(1).max(255).default(75);
const BodyTimeout = z.number().positive().default(DEFAULT_BODY_TIMEOUT_S);

export const LogSection = z.strictObject({
  level: LogLevel.default("info"),
  format: LogFormat.default("text"),
});

export const GatewaySection = z.strictObject({
  // Loopback by default, as llama-server and Ollama: a wider address is a decision (see exposure.ts).
  listen: Listen.default("127.0.0.1:31313"),
  metrics_listen: Listen.default("127.0.0.1:31314"),
  metrics: z.boolean().default(true),
  metrics_token: z.string().default(""),
  docs: z.enum(["open", "api_key", "off"]).default("open"),
  api_keys: z
    .array(z.string().min(1, "expected a non-empty key (an empty one would leave the API open)"))
    .default([]),
  admin_token: z.string().default(""),
  /** Serve an open API on a non-loopback address on purpose (refused otherwise, exposure.ts). */
  allow_unauthenticated: z.boolean().default(false),
  /** After SIGTERM: how long /health says draining while requests are still taken (load balancers catch up). */
  drain_delay_s: z.number().nonnegative().default(0),
  /** After SIGTERM: how long in-flight requests and streams may take to finish before the gateway exits. */
  shutdown_grace_s: z.number().nonnegative().default(30),
  models_file: z.string().optional(),
  poll_interval_ms: z.number().int().min(100).default(2000),
  request_timeout_s: z.number().positive().default(600),
  upstream_read_timeout_s: z.number().positive().default(60),
  idle_timeout_s: IdleTimeout,
  body_timeout_s: BodyTimeout,
  load_timeout_s: z.number().positive().default(300),
  max_concurrency_per_model: z.number().int().positive().default(32),
  queue_size_per_model: z.number().int().nonnegative().default(128),
  queue_timeout_s: z.number().positive().default(120),
  /** Keep Claude Code's per-request billing block in `system` (it defeats prefix caching; dropped by default). */
  keep_billing_header: z.boolean().default(false),
  context_overflow: z.enum(["clamp", "error"]).default("clamp"),
});

/** How the gateway picks among nodes that have a model loaded. */
export const RoutingSection = z.strictObject({
  /** Send a request to the node that served its prompt prefix lately (its KV cache likely holds it). */
  cache_affinity: z.boolean().default(true),
  /** The preferred node may have at most this many more requests in flight and queued than the least busy one. */
  cache_affinity_max_imbalance: z.number().int().nonnegative().default(4),
  /** Prefix-chain links remembered per node (one per message of each request served). */
  cache_affinity_entries: z.number().int().positive().default(65536),
});

export const EvictionSection = z.strictObject({
  strategy: z.enum(["lru", "priority"]).default("lru"),
  idle_ttl_s: z.number().nonnegative().default(0),
  defrag_after_cycles: z.number().int().nonnegative().default(50),
});

export const ResponsesSection = z.strictObject({
  /** Unset: "redis" when `[state] redis_url` is set, else "memory". */
  store: z.enum(["memory", "redis"]).optional(),
  max_entries: z.number().int().positive().default(10_000),
  max_bytes: Size.default(256 * 1024 * 1024),
  /** Largest single stored answer (with its conversation); a bigger one is answered but not kept. */
  max_entry_bytes: Size.default(32 * 1024 * 1024),
  ttl_s: z.number().positive().default(86_400),
});

/** Neurons found in DNS, beside (or instead of) the static `[[neurons]]` list. */
export const DiscoverySection = z.strictObject({
  /**
   * "name:port" (A/AAAA records, every address on that port) or "_service._tcp.name" (SRV
   * records: targets and ports). Unset: no discovery.
   */
  dns: z
    .string()
    .regex(/^(_[^:\s]+|[^:\s_][^:\s]*:\d{1,5})$/, {
      message: 'expected "name:port" or an SRV name starting with "_"',
    })
    .optional(),
  /** Seconds between resolutions. */
  interval_s: z.number().positive().default(10),
  /** "host:port" of a DNS server to ask instead of the system resolver (tests; Consul's DNS on 8600). */
  dns_server: Listen.optional(),
  /** Bearer token for the discovered neurons (their neuron.auth_token). */
  token: z.string().default(""),
});

/** State the gateway replicas share (stored responses, message threads): one connection per gateway. */
export const StateSection = z.strictObject({
  redis_url: z
    .string()
    .refine((value) => /^(redis|rediss|valkey|valkeys)(\+tls)?(\+unix)?:\/\/./.test(value), {
      message:
        'expected a URL like "redis://host:6379", "rediss://host:6380" or "redis+unix:///path/redis.sock"',
    })
    .optional(),
  /** Every key cortex writes starts with this, so one Redis can serve several deployments. */
  key_prefix: z.string().default("cortex:"),
  /** One connection attempt, or one command, at most: past it the request is a 503. */
  timeout_s: z.number().positive().default(5),
});

export const NeuronRef = z.strictObject({
  name: z
    .string()
    .regex(/^[A-Za-z0-9][A-Za-z0-9._-]*$/, { message: "expected a name of letters, digits and . _ -" }),
  endpoint: Url,
  token: z.string().default(""),
});

export const ModelProfile = z.strictObject({
  id: ModelId,
  aliases: z.array(ModelId).default([]),
  /** Relative to the neurons' models directories; optional with `source` (the pulled file then). */
  file: z.string().min(1).optional(),
  /** Where nodes pull the model from when they lack it (`hf:org/repo:Q4_K_M`; docs/MODELS-PULL.md). */
  source: z
    .string()
    .refine((value) => isModelSource(value), {
      message: 'expected a model source like "hf:org/repo:Q4_K_M" or "hf:org/repo/file.gguf"',
    })
    .optional(),
  /** Per-node file names where they differ from `file`. */
  files: z.record(z.string(), z.string().min(1)).default({}),
  context_size: z.number().int().positive().default(8192),
  slots: z.number().int().positive().max(64).default(4),
  devices: z.number().int().positive().default(1),
  vram_estimate: Size.optional(),
  affinity: z.array(z.string()).default([]),
  priority: z.number().int().default(0),
  pinned: z.boolean().default(false),
  vision: z.boolean().default(false),
});
export type ModelProfile = z.infer<typeof ModelProfile>;

/** `neuron.prompt_cache_bytes` unless set: 2 GiB of host memory per device for saved prompt states. */
export const DEFAULT_PROMPT_CACHE_BYTES = 2 * 2 ** 30;

export const NeuronSection = z.strictObject({
  listen: Listen.default("127.0.0.1:13131"),
  models_dir: z.string().optional(),
  devices: z.union([z.literal("all"), z.array(z.string())]).default("all"),
  step_timeout_s: z.number().positive().default(120),
  stage2_grace_s: z.number().positive().default(30),
  abort_timeout_s: z.number().positive().default(10),
  auth_token: z.string().default(""),
  /**
   * The node's name in /health, which gateways know it by: its identity across restarts and
   * address changes (Kubernetes: the node name from the downward API). Unset: the host name.
   */
  node_name: z
    .string()
    .regex(/^[A-Za-z0-9][A-Za-z0-9._-]*$/, { message: "expected a name of letters, digits and . _ -" })
    .optional(),
  /** Serve an open neuron API on a non-loopback address on purpose (refused otherwise, exposure.ts). */
  allow_unauthenticated: z.boolean().default(false),
  /** After SIGTERM: how long in-flight requests may take to finish before the neuron exits. */
  shutdown_grace_s: z.number().nonnegative().default(30),
  idle_timeout_s: IdleTimeout,
  body_timeout_s: BodyTimeout,
  stall_timeout_s: z.number().positive().default(60),
  template_timeout_s: z.number().positive().default(10),
  template_max_chars: z
    .number()
    .int()
    .positive()
    .default(64 * 1024 * 1024),
  memory_limit: Size.optional(),
  default_slots: z.number().int().positive().max(64).default(4),
  default_context_size: z.number().int().positive().default(32768),
  queue_size: z.number().int().nonnegative().default(64),
  threads: z.number().int().nonnegative().default(0),
  /** CPU mode: how many CPU devices (`cpu-0` …) to expose, each its own Worker (tensor-parallel groups on CPU). */
  cpu_devices: z.number().int().positive().max(64).default(1),
  /** Host memory for saved prompt states (per device Worker, shared by its models); 0 = off. */
  prompt_cache_bytes: Size.default(DEFAULT_PROMPT_CACHE_BYTES),
  /** A node with GPUs whose CUDA backend did not come up: run as a CPU node (WARN, /health) instead of exit 2. */
  allow_cpu_fallback: z.boolean().default(false),
  /** Where model pulls download from (env HF_ENDPOINT). */
  hf_endpoint: Url.default("https://huggingface.co"),
  /** Hugging Face token for gated and private repositories (env HF_TOKEN); empty = anonymous. */
  hf_token: z.string().default(""),
  /** Disk space a model pull must leave free in the models directory. */
  pull_keep_free: Size.default(2 ** 30),
});

export type NeuronSection = z.infer<typeof NeuronSection>;
export type GatewaySection = z.infer<typeof GatewaySection>;
export type EvictionSection = z.infer<typeof EvictionSection>;
export type ResponsesSection = z.infer<typeof ResponsesSection>;
export type StateSection = z.infer<typeof StateSection>;
export type NeuronRef = z.infer<typeof NeuronRef>;
export type DiscoverySection = z.infer<typeof DiscoverySection>;

export const ConfigFile = z.strictObject({
  log: LogSection.default({ level: "info", format: "text" }),
  gateway: GatewaySection.default(GatewaySection.parse({})),
  eviction: EvictionSection.default(EvictionSection.parse({})),
  responses: ResponsesSection.default(ResponsesSection.parse({})),
  state: StateSection.default(StateSection.parse({})),
  routing: RoutingSection.default(RoutingSection.parse({})),
  discovery: DiscoverySection.default(DiscoverySection.parse({})),
  neurons: z.array(NeuronRef).default([]),
  models: z.array(ModelProfile).default([]),
  neuron: NeuronSection.default(NeuronSection.parse({})),
});
export type ConfigFile = z.infer<typeof ConfigFile>;

/** A separate models file (`gateway.models_file`) holds only `[[models]]`. */
export const ModelsFile = z.strictObject({ models: z.array(ModelProfile).default([]) });
