/**
 * The neuron's HTTP contract, shared by the neuron (which serves it) and the
 * gateway (which polls and calls it). Partial schemas on the reading side:
 * validate what is read, pass the rest through.
 */
import { z } from "zod";
import { PullStatus } from "./pull-api.ts";

export const DeviceKind = z.enum(["cpu", "cuda"]);
export type DeviceKind = z.infer<typeof DeviceKind>;

export const DeviceInfo = z.object({
  /** `cpu-0`, `cuda-dev-0`, … */
  id: z.string(),
  kind: DeviceKind,
  index: z.number().int(),
  name: z.string(),
  uuid: z.string().optional(),
  computeCapability: z.string().optional(),
  /** Bytes usable by cortex on this device (after any configured cap). */
  memoryTotal: z.number(),
  memoryFree: z.number(),
  poisoned: z.boolean(),
  poisonReason: z.string().optional(),
  /** Model load/unload cycles since this device's Worker started. */
  loadCycles: z.number().int().default(0),
  /** OS thread id (Linux TID) of the device's Worker: `top -H`, `gdb -p`; changes when the Worker is recycled. */
  threadId: z.number().int().optional(),
});
export type DeviceInfo = z.infer<typeof DeviceInfo>;

export const ModelState = z.enum(["loading", "ready", "unloading", "failed"]);
export type ModelState = z.infer<typeof ModelState>;

export const LoadedModel = z.object({
  /** The id requests use (the public model id the gateway asked for). */
  id: z.string(),
  /** GGUF file, relative to the neuron's models directory. */
  file: z.string(),
  state: ModelState,
  devices: z.array(z.string()),
  contextSize: z.number().int(),
  slots: z.number().int(),
  /** Epoch milliseconds of the last request start or finish. */
  lastUsed: z.number(),
  loadedAt: z.number(),
  inFlight: z.number().int(),
  queued: z.number().int().default(0),
  /** Bytes this model holds on its devices (weights + KV cache + compute). */
  memoryBytes: z.number(),
  /** Pinned models are never evicted; kept on the neuron so every gateway replica agrees. */
  pinned: z.boolean().default(false),
  /** Eviction priority of the profile it was loaded under (higher stays longer). */
  priority: z.number().default(0),
  error: z.string().optional(),
});
export type LoadedModel = z.infer<typeof LoadedModel>;

export const HealthResponse = z.object({
  /** `draining`: shutting down after SIGTERM; in-flight requests finish, new ones are refused. */
  status: z.enum(["ok", "degraded", "draining", "unhealthy"]),
  version: z.string(),
  node: z.string(),
  startedAt: z.number(),
  devices: z.array(DeviceInfo),
  loaded: z.array(LoadedModel),
  /** Present when a node with GPUs serves on the CPU (neuron.allow_cpu_fallback): why its CUDA backend is unusable. */
  cpuFallback: z.string().optional(),
});
export type HealthResponse = z.infer<typeof HealthResponse>;

export const AvailableModel = z.object({
  file: z.string(),
  sizeBytes: z.number(),
  architecture: z.string(),
  name: z.string().optional(),
  parameterCount: z.number().optional(),
  quantization: z.string().optional(),
  contextLength: z.number().int().optional(),
  hasChatTemplate: z.boolean(),
  /** Set when the file cannot be loaded (malformed, or past llama.cpp's limits): why. */
  problem: z.string().optional(),
});
export type AvailableModel = z.infer<typeof AvailableModel>;

export const ModelsResponse = z.object({
  available: z.array(AvailableModel),
  loaded: z.array(LoadedModel),
  /** Pulls in flight and lately finished (docs/MODELS-PULL.md); absent from older neurons. */
  pulls: z.array(PullStatus).optional(),
});
export type ModelsResponse = z.infer<typeof ModelsResponse>;

export const LoadRequest = z.object({
  /** Public id to serve the model under; defaults to the file name without `.gguf`. */
  id: z.string().min(1).optional(),
  file: z.string().min(1),
  contextSize: z.number().int().positive().optional(),
  /** Concurrent sequences decoded together. */
  slots: z.number().int().positive().max(64).optional(),
  /** Number of devices (a tensor-parallel group when > 1). */
  deviceCount: z.number().int().positive().optional(),
  /** Specific devices, overriding deviceCount. */
  devices: z.array(z.string()).optional(),
  /** Estimated bytes; the neuron refuses with 507 when no device has this much free. */
  memoryEstimateBytes: z.number().positive().optional(),
  pinned: z.boolean().optional(),
  priority: z.number().optional(),
});
export type LoadRequest = z.infer<typeof LoadRequest>;

export const LoadResponse = z.object({ model: LoadedModel, alreadyLoaded: z.boolean() });
export type LoadResponse = z.infer<typeof LoadResponse>;

export const PinRequest = z.object({ id: z.string().min(1), pinned: z.boolean() });
export type PinRequest = z.infer<typeof PinRequest>;

export const UnloadRequest = z.object({
  id: z.string().min(1),
  force: z.boolean().optional(),
  /**
   * A gateway evicting the copy to make room or for idleness (not an operator's unload): refused
   * (409) while the copy is fresh and has served nothing, since another gateway replica loaded it
   * for requests still on their way.
   */
  evict: z.boolean().optional(),
});
export type UnloadRequest = z.infer<typeof UnloadRequest>;

export const RecycleRequest = z.object({ device: z.string().min(1) });
export type RecycleRequest = z.infer<typeof RecycleRequest>;

/**
 * Chat requests to the neuron are OpenAI chat completions plus these
 * extension fields. `context_overflow` says what to do when prompt +
 * max_tokens exceed the context: fail with the counts, or clamp max_tokens.
 * `cortex_trailer` (streams only) asks for a stream the gateway relays to
 * an OpenAI client as it is: no `stop_sequence` extension on the finishing
 * choice, and a NeuronStreamTrailer comment before `data: [DONE]` (or last,
 * after an error event) that the gateway reads and strips.
 * `cortex_completion` makes it a text completion (`POST /v1/completions`):
 * the prompt goes to the model as it is, no chat template, or with `suffix`
 * as a fill-in-the-middle prompt of the model's FIM tokens (a 400 for a
 * model without them); `messages` are then ignored.
 * `cortex_prompt_tokens` (streams without `cortex_trailer` only) puts the
 * prompt's token count on the first chunk as `cortex_prompt_tokens`, and
 * how many of those were reused as `cortex_cached_tokens`, so the
 * gateway can tell an Anthropic client in `message_start` what the
 * non-streamed answer's usage says.
 */
export const NeuronChatExtensions = z.object({
  context_overflow: z.enum(["error", "clamp"]).optional(),
  cortex_trailer: z.boolean().optional(),
  cortex_completion: z.object({ prompt: z.string(), suffix: z.string().optional() }).optional(),
  cortex_prompt_tokens: z.boolean().optional(),
});

/** The comment line that carries a NeuronStreamTrailer: this prefix, the JSON, a blank line. */
export const STREAM_TRAILER_PREFIX = ": cortex ";

/**
 * Extension field of a non-streamed chat completion: when the first and the
 * last generated token came, in ms since the neuron received the request
 * (absent when nothing was generated). The gateway reads a non-streamed
 * answer whole, so these are how it measures time to first token and
 * decode rate for it (docs/METRICS.md).
 */
export const NeuronCompletionTimings = z.object({
  first_token_ms: z.number().nonnegative(),
  last_token_ms: z.number().nonnegative(),
});
export type NeuronCompletionTimings = z.infer<typeof NeuronCompletionTimings>;

export const NeuronCompletionExtensions = z.object({ cortex: NeuronCompletionTimings.optional() });
export type NeuronCompletionExtensions = z.infer<typeof NeuronCompletionExtensions>;

/**
 * What the gateway measures on a stream it relays without decoding it:
 * the token times as a completion reports them (absent when nothing was
 * generated), the usage in OpenAI's form (also when the client did not ask
 * for it), and the error code of a stream that ended in an error event.
 */
export const NeuronStreamTrailer = NeuronCompletionTimings.partial().extend({
  usage: z
    .object({
      prompt_tokens: z.number().int().nonnegative(),
      completion_tokens: z.number().int().nonnegative(),
      total_tokens: z.number().int().nonnegative(),
      prompt_tokens_details: z.object({ cached_tokens: z.number().int().nonnegative() }).optional(),
    })
    .optional(),
  finish_reason: z.string().optional(),
  error: z.string().optional(),
});
export type NeuronStreamTrailer = z.infer<typeof NeuronStreamTrailer>;

/** `POST /v1/chat/count_tokens`: an OpenAI chat request in, the prompt's token count out. */
export const CountTokensResponse = z.object({ prompt_tokens: z.number().int() });
export type CountTokensResponse = z.infer<typeof CountTokensResponse>;
