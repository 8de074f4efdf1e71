/**
 * The neuron's behaviour behind its HTTP API: which models are loaded, their
 * lifecycle, and chat requests turned into engine generations. HTTP concerns
 * (routing, auth, status codes, SSE) stay in neuron-app.ts.
 */
import { statSync } from "node:fs";
import { hostname } from "node:os";
import type { NeuronSection } from "../core/config/config-schema.ts";
import { CortexError } from "../core/errors.ts";
import { requestGrammar } from "../core/grammar/request-grammar.ts";
import { detectOutputSyntax, type OutputSyntax } from "../core/grammar/tool-call-syntax.ts";
import { logger } from "../core/logger.ts";
import {
  type DeviceInfo,
  type HealthResponse,
  type LoadedModel,
  type LoadRequest,
  type LoadResponse,
  type ModelsResponse,
  NeuronChatExtensions,
  type PinRequest,
  type UnloadRequest,
} from "../core/neuron-api.ts";
import type { CanonicalRequest, CanonicalStreamPart } from "../dialects/canonical.ts";
import { parseEmbeddingsRequest, renderEmbeddingsResponse } from "../dialects/openai/embeddings.ts";
import { parseOpenAIRequest } from "../dialects/openai/parse-request.ts";
import type { EmbedInput, FimTokens } from "./engine/protocol.ts";
import type { GenerateParams, GenerationEvent, LoadOptions, ModelInfo } from "./engine/types.ts";
import { generationToCanonical, peekFirst, type StreamIdentity } from "./generation-stream.ts";
import type { ModelsDir } from "./models-dir.ts";
import { chatTemplateProblem } from "./prompt/chat-template.ts";
import { planPrompt } from "./prompt/prompt-plan.ts";
import { TemplateRenderer } from "./prompt/template-renderer.ts";
import {
  formatMarkers,
  needsParser,
  type OutputFormat,
  promptOpensReasoning,
} from "./tool-formats/output-format.ts";
import { reasoningKwargs } from "./tool-formats/reasoning-kwargs.ts";

const log = logger("neuron");

/** What the service needs from the engine (src/neuron/engine/device-pool.ts), which owns the models' state. */
export interface EnginePool {
  devices(): DeviceInfo[];
  models(): LoadedModel[];
  load(options: LoadOptions): Promise<{ info: ModelInfo; alreadyLoaded: boolean }>;
  ready(id: string): Promise<ModelInfo>;
  unload(id: string, options?: { force?: boolean }): Promise<void>;
  pin(id: string, pinned: boolean): void;
  generate(id: string, params: GenerateParams, signal: AbortSignal): ReadableStream<GenerationEvent>;
  countTokens(id: string, prompt: string): Promise<number>;
  fimTokens(id: string): Promise<FimTokens | null>;
  embed(
    id: string,
    inputs: EmbedInput[],
    dimensions?: number,
  ): Promise<{ embeddings: Float32Array[]; promptTokens: number }>;
  applyBuiltinTemplate(
    id: string,
    messages: ReadonlyArray<{ role: string; content: string }>,
    addAssistant: boolean,
  ): Promise<string>;
  modelStats(id: string): { inFlight: number; queued: number; lastUsed: number } | undefined;
  recycle(deviceId: string): Promise<void>;
  close(): Promise<void>;
  /** Why a node with GPUs serves on the CPU (neuron.allow_cpu_fallback); undefined otherwise. */
  readonly cpuFallback?: string | undefined;
}

export interface NeuronServiceOptions {
  pool: EnginePool;
  modelsDir: ModelsDir;
  config: Pick<NeuronSection, "default_context_size" | "default_slots" | "queue_size"> &
    Partial<Pick<NeuronSection, "node_name">>;
  version: string;
  /** Set when the neuron must exit for its supervisor to restart it (TP watchdog Stage 2). */
  unhealthyReason?: () => string | undefined;
  /** Renders chat templates off the main thread, within limits; default: 10 s, 64 Mi characters. */
  templates?: TemplateRenderer;
}

export interface ChatResult {
  request: CanonicalRequest;
  parts: ReadableStream<CanonicalStreamPart>;
}

/**
 * How long a freshly loaded copy that has served nothing yet is kept from a
 * non-forced unload: time for the gateway that loaded it to send the requests
 * it loaded it for (they follow the load's answer within milliseconds).
 */
const FRESH_LOAD_GRACE_MS = 10_000;

/**
 * Holds no model state of its own: every answer about models is read from
 * the engine, so what `/models` says is what a chat finds.
 */
export class NeuronService {
  readonly #pool: EnginePool;
  readonly #modelsDir: ModelsDir;
  readonly #options: NeuronServiceOptions;
  /** The file each model was loaded from, as it was then (see #checkFile). */
  readonly #files = new Map<string, FileIdentity & { path: string }>();
  readonly #templates: TemplateRenderer;
  readonly startedAt = Date.now();
  #draining = false;

  constructor(options: NeuronServiceOptions) {
    this.#pool = options.pool;
    this.#modelsDir = options.modelsDir;
    this.#options = options;
    this.#templates = options.templates ?? new TemplateRenderer(10_000, 64 * 1024 * 1024);
  }

  /** SIGTERM: from now on /health says draining and new work is refused (neuron-app.ts); never undone. */
  beginDrain(): void {
    this.#draining = true;
  }

  get draining(): boolean {
    return this.#draining;
  }

  /** The models directory this neuron serves (pulls write into it, removals delete from it). */
  get modelsDir(): ModelsDir {
    return this.#modelsDir;
  }

  health(): HealthResponse {
    const devices = this.#pool.devices();
    const unhealthy = this.#options.unhealthyReason?.();
    return {
      status: unhealthy
        ? "unhealthy"
        : this.#draining
          ? "draining"
          : devices.some((device) => device.poisoned)
            ? "degraded"
            : "ok",
      version: this.#options.version,
      node: this.#options.config.node_name ?? hostname(),
      startedAt: this.startedAt,
      devices,
      loaded: this.loaded(),
      ...(this.#pool.cpuFallback === undefined ? {} : { cpuFallback: this.#pool.cpuFallback }),
    };
  }

  async models(): Promise<ModelsResponse> {
    return { available: await this.#modelsDir.list(), loaded: this.loaded() };
  }

  loaded(): LoadedModel[] {
    return this.#pool.models();
  }

  #describe(id: string): LoadedModel {
    const model = this.#pool.models().find((m) => m.id === id);
    if (!model) throw new CortexError("model_not_found", `model ${id} is not loaded`);
    return model;
  }

  /** Idempotent: a model already loaded (or loading) under this id from the same file answers with it. */
  async load(request: LoadRequest): Promise<LoadResponse> {
    const id =
      request.id ??
      request.file
        .replace(/\.gguf$/i, "")
        .split("/")
        .at(-1) ??
      request.file;
    const path = this.#modelsDir.resolveFile(request.file);
    const available = await this.#modelsDir.list();
    const file = available.find((model) => this.#modelsDir.resolveFile(model.file) === path);
    if (file?.problem !== undefined) throw new CortexError("invalid_model_file", file.problem);
    if (path === undefined || file === undefined)
      throw new CortexError(
        "not_found",
        `no GGUF file ${JSON.stringify(request.file)} in ${this.#modelsDir.root}`,
      );
    const trained = file.contextLength ?? Number.POSITIVE_INFINITY;
    const contextSize = Math.min(request.contextSize ?? this.#options.config.default_context_size, trained);
    const slots = request.slots ?? this.#options.config.default_slots;
    const started = performance.now();
    // Taken before the load: a file that changes while it loads is caught at the first chat.
    const identity = fileIdentity(path);
    const { info, alreadyLoaded } = await this.#pool.load({
      id,
      path,
      file: file.file,
      contextSize,
      slots,
      maxQueue: this.#options.config.queue_size,
      pinned: request.pinned ?? false,
      priority: request.priority ?? 0,
      ...(request.devices === undefined ? {} : { deviceIds: request.devices }),
      ...(request.deviceCount === undefined ? {} : { deviceCount: request.deviceCount }),
      ...(request.memoryEstimateBytes === undefined
        ? {}
        : { memoryEstimateBytes: request.memoryEstimateBytes }),
    });
    const templateProblem = info.chatTemplate === null ? undefined : chatTemplateProblem(info.chatTemplate);
    if (templateProblem !== undefined) {
      if (!alreadyLoaded) await this.#pool.unload(id, { force: true }).catch(() => {});
      throw new CortexError("invalid_model_file", `${file.file}: ${templateProblem}`, {
        details: { file: file.file },
      });
    }
    if (!alreadyLoaded && identity !== undefined) this.#files.set(id, { path, ...identity });
    if (!alreadyLoaded)
      log.info(
        `loaded ${id} (${file.file}) on ${info.deviceIds.join(",")} in ${Math.round(performance.now() - started)} ms: ctx ${info.contextSize}, ${slots} slot(s)`,
      );
    return { model: this.#describe(id), alreadyLoaded };
  }

  /**
   * libllama maps the model file: a file truncated or rewritten in place
   * under a loaded model faults (SIGBUS) at the next page it touches, and
   * takes the whole process down. Before each chat the file is checked
   * against what was loaded (size, mtime, inode); a changed one is unloaded
   * (it loads again, from the new file, on demand) instead of used.
   */
  async #checkFile(id: string): Promise<void> {
    const loaded = this.#files.get(id);
    if (loaded === undefined) return;
    const now = fileIdentity(loaded.path);
    if (
      now !== undefined &&
      now.size === loaded.size &&
      now.mtimeMs === loaded.mtimeMs &&
      now.ino === loaded.ino
    )
      return;
    this.#files.delete(id);
    const how =
      now === undefined ? "was removed" : now.ino !== loaded.ino ? "was replaced" : "was changed in place";
    log.warn(`model ${id}: its file ${loaded.path} ${how} since it was loaded; unloading it`);
    await this.#pool.unload(id, { force: true }).catch(() => {});
    throw new CortexError(
      "unavailable",
      `model ${id} is unavailable: its file ${how} since it was loaded, so it was unloaded (it loads again on demand); replace model files by renaming a complete new file over the old one, never by writing in place`,
      { retryAfterS: 1 },
    );
  }

  async unload(request: UnloadRequest): Promise<void> {
    const stats = this.#pool.modelStats(request.id);
    if (!stats) throw new CortexError("model_not_found", `model ${request.id} is not loaded`);
    const busy = stats.inFlight + stats.queued;
    if (busy > 0 && !request.force)
      throw new CortexError(
        "conflict",
        `model ${request.id} has ${busy} request(s) in flight or queued; unload with force to cancel them`,
      );
    // A copy loaded for requests that have not arrived yet (a gateway loads, then sends them) is
    // no victim for another gateway replica: evicting it would send both into a load loop.
    const model = this.#pool.models().find((loaded) => loaded.id === request.id);
    const sinceLoad = model === undefined ? Number.POSITIVE_INFINITY : Date.now() - model.loadedAt;
    if (
      request.evict === true &&
      !request.force &&
      model !== undefined &&
      model.lastUsed <= model.loadedAt &&
      sinceLoad < FRESH_LOAD_GRACE_MS
    )
      throw new CortexError(
        "conflict",
        `model ${request.id} was loaded ${Math.round(sinceLoad)} ms ago for requests that have not arrived yet; not evicted`,
        { retryAfterS: Math.max(1, Math.ceil((FRESH_LOAD_GRACE_MS - sinceLoad) / 1000)) },
      );
    await this.#pool.unload(request.id, { force: request.force === true });
  }

  pin(request: PinRequest): LoadedModel {
    this.#pool.pin(request.id, request.pinned);
    return this.#describe(request.id);
  }

  async recycle(deviceId: string): Promise<void> {
    if (!this.#pool.devices().some((device) => device.id === deviceId))
      throw new CortexError("not_found", `no device ${deviceId} on this neuron`);
    await this.#pool.recycle(deviceId);
  }

  /**
   * The prompt for a request: the model's own chat template, or llama.cpp's
   * built-in ChatML when the GGUF has none (tools cannot be rendered then),
   * followed by a prefill the answer continues (prompt-plan.ts).
   */
  async #prompt(model: ModelInfo, request: CanonicalRequest): Promise<string> {
    const { messages, tools, prefill } = planPrompt(request, model.id);
    if (model.chatTemplate !== null) {
      const syntax = detectOutputSyntax(model.chatTemplate);
      // gpt-oss's template reads earlier reasoning from `thinking` (llama.cpp passes it so too).
      const history =
        syntax.reasoning === "harmony"
          ? messages.map((m) =>
              m.reasoning_content === undefined ? m : { ...m, thinking: m.reasoning_content },
            )
          : messages;
      return (
        (await this.#templates.render(
          model.chatTemplate,
          {
            messages: history,
            ...(tools.length > 0 ? { tools } : {}),
            kwargs: { ...reasoningKwargs(request.reasoningEffort), ...request.templateKwargs },
          },
          { bosToken: model.bosToken, eosToken: model.eosToken, addBos: model.addBos },
        )) + prefill
      );
    }
    if (request.templateKwargs !== undefined)
      throw new CortexError(
        "invalid_request",
        `chat_template_kwargs: ${model.id} has no chat template of its own (it is served with llama.cpp's built-in ChatML), so there is nothing to pass them to`,
        { param: "chat_template_kwargs" },
      );
    if (tools.length > 0)
      log.warn(`${model.id} has no chat template; tools are not rendered into the prompt`);
    return (await this.#pool.applyBuiltinTemplate(model.id, messages, true)) + prefill;
  }

  /** A text completion's prompt: as it is, or fill-in-the-middle with the model's FIM tokens. */
  async #completionPrompt(
    model: ModelInfo,
    completion: { prompt: string; suffix?: string },
  ): Promise<string> {
    if (completion.suffix === undefined) return completion.prompt;
    const fim = await this.#pool.fimTokens(model.id);
    if (fim === null)
      throw new CortexError(
        "invalid_request",
        `suffix: model ${model.id} has no fill-in-the-middle tokens; send the prompt without a suffix`,
        { param: "suffix" },
      );
    return `${fim.pre}${completion.prompt}${fim.suf}${completion.suffix}${fim.mid}`;
  }

  /**
   * Starts a chat completion. Failures known before any output (unknown
   * model, bad request, queue full, prompt too long) throw; later ones arrive
   * as an `error` part.
   */
  async chat(body: unknown, signal: AbortSignal): Promise<ChatResult> {
    const request = parseOpenAIRequest(body);
    const extras = readExtras(body);
    const entry = await this.#pool.ready(request.model);
    await this.#checkFile(entry.id);
    // response_format, tool_choice and parallel_tool_calls become a grammar (a 400 if they cannot).
    const syntax: OutputSyntax =
      entry.chatTemplate === null
        ? { tools: "hermes", reasoning: "none" }
        : detectOutputSyntax(entry.chatTemplate);
    const grammar = requestGrammar(request, syntax.tools);
    const prompt =
      extras.completion === undefined
        ? await this.#prompt(entry, request)
        : await this.#completionPrompt(entry, extras.completion);
    // A text completion is the model's raw continuation: nothing is split off it.
    const output: OutputFormat | undefined =
      extras.completion === undefined
        ? {
            ...syntax,
            parseCalls: request.tools.length > 0 && request.toolChoice?.type !== "none",
            schemas: request.tools.map((tool) => ({ name: tool.name, parameters: tool.parameters })),
            reasoningOpen: promptOpensReasoning(prompt, syntax.reasoning),
          }
        : undefined;
    const params: GenerateParams = {
      prompt,
      stop: request.stop,
      ...(output === undefined || !needsParser(output)
        ? {}
        : { output, preservedTokens: formatMarkers(output) }),
      contextOverflow: extras.contextOverflow ?? "error",
      ...(grammar === undefined ? {} : { grammar }),
      ...(request.maxTokens === undefined ? {} : { maxTokens: request.maxTokens }),
      ...(request.temperature === undefined ? {} : { temperature: request.temperature }),
      ...(request.topP === undefined ? {} : { topP: request.topP }),
      ...(request.topK === undefined ? {} : { topK: request.topK }),
      ...(extras.minP === undefined ? {} : { minP: extras.minP }),
      ...(extras.repeatPenalty === undefined ? {} : { repeatPenalty: extras.repeatPenalty }),
      ...(request.seed === undefined ? {} : { seed: request.seed }),
      ...(request.presencePenalty === undefined ? {} : { presencePenalty: request.presencePenalty }),
      ...(request.frequencyPenalty === undefined ? {} : { frequencyPenalty: request.frequencyPenalty }),
      ...(request.logitBias === undefined ? {} : { logitBias: request.logitBias }),
    };
    // The sequence's `start` (prompt size, reuse) is no output: the answer begins at the first token.
    const events = await peekFirst(
      this.#pool.generate(entry.id, params, signal),
      (event) => (event.type === "error" ? CortexError.fromWire(event.error) : undefined),
      (event) => event.type === "start",
    );
    const identity: StreamIdentity = {
      id: `chatcmpl-${crypto.randomUUID().replaceAll("-", "").slice(0, 24)}`,
      model: entry.id,
      created: Math.floor(Date.now() / 1000),
    };
    return { request, parts: events.pipeThrough(generationToCanonical(identity)) };
  }

  async countTokens(body: unknown): Promise<number> {
    const request = parseOpenAIRequest(body);
    const entry = await this.#pool.ready(request.model);
    return this.#pool.countTokens(entry.id, await this.#prompt(entry, request));
  }

  /** OpenAI's embeddings answer for an OpenAI embeddings body (mean-pooled unless the model pools its own way). */
  async embeddings(body: unknown): Promise<unknown> {
    const request = parseEmbeddingsRequest(body);
    const entry = await this.#pool.ready(request.model);
    const { embeddings, promptTokens } = await this.#pool.embed(entry.id, request.inputs, request.dimensions);
    return renderEmbeddingsResponse(embeddings, {
      model: entry.id,
      promptTokens,
      encodingFormat: request.encodingFormat,
    });
  }

  async close(): Promise<void> {
    this.#templates.close();
    await this.#pool.close();
  }
}

interface Extras {
  contextOverflow?: "error" | "clamp";
  completion?: { prompt: string; suffix?: string };
  minP?: number;
  repeatPenalty?: number;
}

/** llama.cpp-style sampling fields and our neuron extension, read beside the OpenAI body. */
function readExtras(body: unknown): Extras {
  if (typeof body !== "object" || body === null) return {};
  const record = body as Record<string, unknown>;
  const extras: Extras = {};
  if (record.context_overflow === "error" || record.context_overflow === "clamp")
    extras.contextOverflow = record.context_overflow;
  else if (record.context_overflow !== undefined)
    throw new CortexError("invalid_request", 'context_overflow: expected "error" or "clamp"', {
      param: "context_overflow",
    });
  const completion = NeuronChatExtensions.shape.cortex_completion.safeParse(record.cortex_completion);
  if (!completion.success)
    throw new CortexError("invalid_request", "cortex_completion: expected {prompt, suffix?}", {
      param: "cortex_completion",
    });
  if (completion.data !== undefined) extras.completion = completion.data;
  for (const [key, target] of [
    ["min_p", "minP"],
    ["repeat_penalty", "repeatPenalty"],
  ] as const) {
    const value = record[key];
    if (value === undefined || value === null) continue;
    if (typeof value !== "number" || !Number.isFinite(value))
      throw new CortexError("invalid_request", `${key}: expected a number`, { param: key });
    extras[target] = value;
  }
  return extras;
}

interface FileIdentity {
  size: number;
  mtimeMs: number;
  ino: number;
}

/** What identifies a file's content cheaply, or undefined when it is gone. */
function fileIdentity(path: string): FileIdentity | undefined {
  try {
    const info = statSync(path);
    return { size: info.size, mtimeMs: info.mtimeMs, ino: info.ino };
  } catch {
    return undefined;
  }
}
