/**
 * The neuron's answers (OpenAI chat completions, streamed or not) → canonical.
 * Partial schemas: what is read is validated, the rest passes through.
 */
import { z } from "zod";
import { CortexError, ERROR_CODES, isErrorCode } from "../../core/errors.ts";
import { isJsonObject, jsonKind } from "../../core/json-object.ts";
import type { CanonicalResponse, CanonicalStreamPart, CanonicalUsage, FinishReason } from "../canonical.ts";
import { newId } from "../ids.ts";
import { fromOpenAIFinishReason } from "../map-openai-finish-reason.ts";
import { SseDecoder, type SseEvent } from "../sse/sse-parser.ts";

const ErrorBodySchema = z.looseObject({
  message: z.string().optional(),
  type: z.string().nullish(),
  code: z.union([z.string(), z.number()]).nullish(),
  param: z.string().nullish(),
  details: z.record(z.string(), z.unknown()).nullish(),
});

interface ToolCallDelta {
  index?: number;
  id?: string | null;
  function?: { name?: string | null; arguments?: string | null } | null;
}

export interface UpstreamUsage {
  prompt_tokens: number;
  completion_tokens: number;
  prompt_tokens_details?: { cached_tokens?: number | null } | null;
  completion_tokens_details?: { reasoning_tokens?: number | null } | null;
}

/** The neuron reports which stop sequence matched on the finishing choice (`stop_sequence`). */
export interface UpstreamChunk {
  id?: string;
  model?: string;
  created?: number;
  choices?: Array<{
    delta?: {
      content?: string | null;
      reasoning_content?: string | null;
      tool_calls?: ToolCallDelta[] | null;
    } | null;
    finish_reason?: string | null;
    stop_sequence?: string | null;
  }> | null;
  usage?: UpstreamUsage | null;
  /** The neuron's extension on its first chunk, when asked (`cortex_prompt_tokens`): the prompt's tokens, and of those the reused ones. */
  cortex_prompt_tokens?: number;
  cortex_cached_tokens?: number;
  error?: unknown;
}

// The chunk check runs once per streamed token, so it is written out by hand: a zod
// parse copies every object it passes (loose objects keep unknown keys) and was the
// single biggest cost of relaying a stream. It validates exactly what the decoder
// reads, as the schema did, and names the first bad path.

type Json = Record<string, unknown>;

/** undefined when fine, else `path: expected …, got …`. */
function badField(
  object: Json,
  key: string,
  path: string,
  type: "string" | "number" | "count",
  nullable: boolean,
): string | undefined {
  const value = object[key];
  if (value === undefined || (nullable && value === null)) return undefined;
  if (type === "string" ? typeof value === "string" : typeof value === "number" && Number.isFinite(value)) {
    if (type !== "count" || (Number.isInteger(value) && (value as number) >= 0)) return undefined;
    return `${path}${key}: expected a non-negative integer, got ${String(value)}`;
  }
  const want = type === "string" ? "string" : type === "number" ? "number" : "non-negative integer";
  return `${path}${key}: expected ${want}${nullable ? " or null" : ""}, got ${jsonKind(value)}`;
}

function badToolCall(call: unknown, path: string): string | undefined {
  if (!isJsonObject(call)) return `${path}: expected object, got ${jsonKind(call)}`;
  const fn = call.function;
  const fnBad =
    fn === undefined || fn === null
      ? undefined
      : isJsonObject(fn)
        ? (badField(fn, "name", `${path}.function.`, "string", true) ??
          badField(fn, "arguments", `${path}.function.`, "string", true))
        : `${path}.function: expected object or null, got ${jsonKind(fn)}`;
  return (
    badField(call, "index", `${path}.`, "count", false) ??
    badField(call, "id", `${path}.`, "string", true) ??
    fnBad
  );
}

function badDelta(delta: unknown, path: string): string | undefined {
  if (delta === undefined || delta === null) return undefined;
  if (!isJsonObject(delta)) return `${path}: expected object or null, got ${jsonKind(delta)}`;
  const bad =
    badField(delta, "content", `${path}.`, "string", true) ??
    badField(delta, "reasoning_content", `${path}.`, "string", true);
  if (bad !== undefined) return bad;
  const calls = delta.tool_calls;
  if (calls === undefined || calls === null) return undefined;
  if (!Array.isArray(calls)) return `${path}.tool_calls: expected array or null, got ${jsonKind(calls)}`;
  for (let i = 0; i < calls.length; i++) {
    const callBad = badToolCall(calls[i], `${path}.tool_calls[${i}]`);
    if (callBad !== undefined) return callBad;
  }
  return undefined;
}

/** What is wrong with an OpenAI usage object (absent or null is fine), for the checks here and the gateway's relay. */
export function badUsage(usage: unknown): string | undefined {
  if (usage === undefined || usage === null) return undefined;
  if (!isJsonObject(usage)) return `usage: expected object or null, got ${jsonKind(usage)}`;
  const bad =
    badField(usage, "prompt_tokens", "usage.", "count", false) ??
    badField(usage, "completion_tokens", "usage.", "count", false);
  if (bad !== undefined) return bad;
  if (usage.prompt_tokens === undefined || usage.completion_tokens === undefined)
    return "usage: expected prompt_tokens and completion_tokens";
  const details = usage.prompt_tokens_details;
  if (details === undefined || details === null) return undefined;
  if (!isJsonObject(details))
    return `usage.prompt_tokens_details: expected object or null, got ${jsonKind(details)}`;
  const cached = details.cached_tokens;
  if (cached === undefined || cached === null || Number.isInteger(cached)) return undefined;
  return `usage.prompt_tokens_details.cached_tokens: expected integer or null, got ${jsonKind(cached)}`;
}

/** The envelope fields streamed chunks and whole completions share: id, model, created, usage. */
function badEnvelope(json: Json): string | undefined {
  return (
    badField(json, "id", "", "string", false) ??
    badField(json, "model", "", "string", false) ??
    badField(json, "created", "", "number", false) ??
    badUsage(json.usage)
  );
}

/** One streamed chunk checked against what the decoder reads: the chunk, or what is wrong with it. */
export function readUpstreamChunk(json: unknown): { chunk: UpstreamChunk } | { problem: string } {
  if (!isJsonObject(json)) return { problem: `expected object, got ${jsonKind(json)}` };
  let problem =
    badEnvelope(json) ??
    (json.cortex_prompt_tokens === undefined
      ? undefined
      : (badField(json, "cortex_prompt_tokens", "", "count", false) ??
        badField(json, "cortex_cached_tokens", "", "count", false)));
  const choices = json.choices;
  if (problem === undefined && choices !== undefined && choices !== null) {
    if (!Array.isArray(choices)) problem = `choices: expected array or null, got ${jsonKind(choices)}`;
    else
      for (let i = 0; i < choices.length && problem === undefined; i++) {
        const choice: unknown = choices[i];
        const path = `choices[${i}]`;
        problem = isJsonObject(choice)
          ? (badDelta(choice.delta, `${path}.delta`) ??
            badField(choice, "finish_reason", `${path}.`, "string", true) ??
            badField(choice, "stop_sequence", `${path}.`, "string", true))
          : `${path}: expected object, got ${jsonKind(choice)}`;
      }
  }
  if (problem === undefined && json.error !== undefined) {
    const error = ErrorBodySchema.safeParse(json.error);
    if (!error.success) problem = `error: ${error.error.issues[0]?.message ?? "unreadable"}`;
  }
  return problem === undefined ? { chunk: json as UpstreamChunk } : { problem };
}

/** A non-streamed completion, as far as parseUpstreamResponse reads it. */
interface UpstreamCompletionBody {
  id?: string;
  model?: string;
  created?: number;
  choices: Array<{
    message: {
      content?: string | null;
      reasoning_content?: string | null;
      tool_calls?: Array<{
        id?: string | null;
        function: { name: string; arguments?: string | null };
      }> | null;
    };
    finish_reason?: string | null;
    stop_sequence?: string | null;
  }>;
  usage?: UpstreamUsage | null;
}

function badCompletionToolCall(call: unknown, path: string): string | undefined {
  if (!isJsonObject(call)) return `${path}: expected object, got ${jsonKind(call)}`;
  const fn = call.function;
  if (!isJsonObject(fn)) return `${path}.function: expected object, got ${jsonKind(fn)}`;
  if (typeof fn.name !== "string") return `${path}.function.name: expected string, got ${jsonKind(fn.name)}`;
  return (
    badField(call, "id", `${path}.`, "string", true) ??
    badField(fn, "arguments", `${path}.function.`, "string", true)
  );
}

function badCompletionChoice(choice: unknown, path: string): string | undefined {
  if (!isJsonObject(choice)) return `${path}: expected object, got ${jsonKind(choice)}`;
  const message = choice.message;
  if (!isJsonObject(message)) return `${path}.message: expected object, got ${jsonKind(message)}`;
  const bad =
    badField(message, "content", `${path}.message.`, "string", true) ??
    badField(message, "reasoning_content", `${path}.message.`, "string", true) ??
    badField(choice, "finish_reason", `${path}.`, "string", true) ??
    badField(choice, "stop_sequence", `${path}.`, "string", true);
  if (bad !== undefined) return bad;
  const calls = message.tool_calls;
  if (calls === undefined || calls === null) return undefined;
  if (!Array.isArray(calls))
    return `${path}.message.tool_calls: expected array or null, got ${jsonKind(calls)}`;
  for (let i = 0; i < calls.length; i++) {
    const callBad = badCompletionToolCall(calls[i], `${path}.message.tool_calls[${i}]`);
    if (callBad !== undefined) return callBad;
  }
  return undefined;
}

/**
 * A non-streamed completion checked against what parseUpstreamResponse
 * reads (by hand, as readUpstreamChunk, for the same reason: it runs once
 * per request on the gateway's hot path): the body, or its first problem.
 */
export function readUpstreamCompletion(
  json: unknown,
): { completion: UpstreamCompletionBody } | { problem: string } {
  if (!isJsonObject(json)) return { problem: `expected object, got ${jsonKind(json)}` };
  let problem = badEnvelope(json);
  const choices = json.choices;
  if (problem === undefined) {
    if (!Array.isArray(choices)) problem = `choices: expected array, got ${jsonKind(choices)}`;
    else if (choices.length === 0) problem = "choices: expected at least one choice";
    else
      for (let i = 0; i < choices.length && problem === undefined; i++)
        problem = badCompletionChoice(choices[i], `choices[${i}]`);
  }
  return problem === undefined ? { completion: json as unknown as UpstreamCompletionBody } : { problem };
}

export function toUsage(usage: UpstreamUsage): CanonicalUsage {
  const cached = usage.prompt_tokens_details?.cached_tokens;
  const reasoning = usage.completion_tokens_details?.reasoning_tokens;
  return {
    inputTokens: usage.prompt_tokens,
    outputTokens: usage.completion_tokens,
    ...(cached == null ? {} : { cachedInputTokens: cached }),
    ...(typeof reasoning === "number" ? { reasoningTokens: reasoning } : {}),
  };
}

function nowS(): number {
  return Math.floor(Date.now() / 1000);
}

/** A neuron error envelope (`{error:{…}}`, or the error object itself) as a CortexError. */
export function parseUpstreamError(status: number, body: unknown): CortexError {
  const envelope = z.looseObject({ error: ErrorBodySchema }).safeParse(body);
  const direct = ErrorBodySchema.safeParse(body);
  const error = envelope.success ? envelope.data.error : direct.success ? direct.data : undefined;
  const code =
    typeof error?.code === "string" && isErrorCode(error.code) ? error.code : codeForStatus(status);
  const message = error?.message ?? `upstream answered HTTP ${status}`;
  return new CortexError(code, message, {
    ...(error?.param == null ? {} : { param: error.param }),
    ...(error?.details == null ? {} : { details: error.details }),
  });
}

function codeForStatus(status: number): keyof typeof ERROR_CODES {
  const match = (Object.keys(ERROR_CODES) as Array<keyof typeof ERROR_CODES>).find(
    (code) => ERROR_CODES[code].status === status,
  );
  // A neuron's 4xx without a known code is still the client's problem; anything else is the upstream's.
  if (match) return match;
  return status >= 400 && status < 500 ? "invalid_request" : "upstream_error";
}

/** A non-streamed upstream completion → canonical response. */
export function parseUpstreamResponse(body: unknown): CanonicalResponse {
  const read = readUpstreamCompletion(body);
  if ("problem" in read)
    throw new CortexError("upstream_error", `upstream sent an unreadable completion: ${read.problem}`);
  const res = read.completion;
  const choice = res.choices[0]!;
  const content: CanonicalResponse["content"] = [];
  if (choice.message.reasoning_content)
    content.push({ type: "thinking", text: choice.message.reasoning_content });
  if (choice.message.content) content.push({ type: "text", text: choice.message.content });
  for (const call of choice.message.tool_calls ?? []) {
    content.push({
      type: "tool_call",
      id: call.id || newId("call_"),
      name: call.function.name,
      arguments: call.function.arguments ?? "",
    });
  }
  let finishReason = fromOpenAIFinishReason(choice.finish_reason, choice.stop_sequence);
  if (finishReason === "stop" && content.some((p) => p.type === "tool_call")) finishReason = "tool_calls";
  return {
    id: res.id ?? newId("chatcmpl-"),
    model: res.model ?? "",
    created: res.created ?? nowS(),
    content,
    finishReason,
    ...(finishReason === "stop_sequence" && choice.stop_sequence
      ? { stopSequence: choice.stop_sequence }
      : {}),
    usage: res.usage ? toUsage(res.usage) : { inputTokens: 0, outputTokens: 0 },
  };
}

interface ToolCallState {
  index: number;
  open: boolean;
}

/**
 * Upstream SSE events → canonical stream parts. Pure state machine: `push`
 * and `end` return the parts each step produces. Guarantees the canonical
 * order (message_start first, tool calls closed before finish, nothing
 * after an error) whatever order the upstream used, and reports a stream
 * that ends before its finish as an error.
 */
export class UpstreamStreamDecoder {
  #started = false;
  #done = false;
  #finished = false;
  #usageSent = false;
  #tools = new Map<number, ToolCallState>();
  #openTool: ToolCallState | undefined;
  #sawToolCall = false;
  readonly #fallbackModel: string;

  constructor(fallbackModel = "") {
    this.#fallbackModel = fallbackModel;
  }

  /** True once the upstream has said all it will (`[DONE]`, an error): later events are ignored. */
  get done(): boolean {
    return this.#done;
  }

  push(event: SseEvent): CanonicalStreamPart[] {
    if (this.#done) return [];
    if (event.data === "[DONE]") {
      this.#done = true;
      return this.#closeOut();
    }
    let json: unknown;
    try {
      json = JSON.parse(event.data);
    } catch {
      return this.#fail(new CortexError("upstream_error", "upstream sent a stream event that is not JSON"));
    }
    const read = readUpstreamChunk(json);
    if ("problem" in read)
      return this.#fail(
        new CortexError("upstream_error", `upstream sent an unreadable chunk: ${read.problem}`),
      );
    const chunk = read.chunk;
    if (chunk.error !== undefined || event.event === "error")
      return this.#fail(parseUpstreamError(502, json));
    return this.#chunk(chunk);
  }

  /** End of the upstream byte stream. */
  end(): CanonicalStreamPart[] {
    if (this.#done) return [];
    return this.#closeOut();
  }

  #chunk(chunk: UpstreamChunk): CanonicalStreamPart[] {
    const parts: CanonicalStreamPart[] = [];
    if (!this.#started) {
      const start = this.#start(chunk);
      if (chunk.cortex_prompt_tokens !== undefined) {
        start.inputTokens = chunk.cortex_prompt_tokens;
        if (chunk.cortex_cached_tokens !== undefined) start.cachedInputTokens = chunk.cortex_cached_tokens;
      }
      parts.push(start);
    }
    const choice = chunk.choices?.[0];
    const delta = choice?.delta;
    if (delta && !this.#finished) {
      if (delta.reasoning_content) parts.push({ type: "thinking_delta", text: delta.reasoning_content });
      if (delta.content) parts.push({ type: "text_delta", text: delta.content });
      for (const call of delta.tool_calls ?? []) parts.push(...this.#toolDelta(call));
    }
    if (choice?.finish_reason && !this.#finished) {
      parts.push(...this.#closeTool());
      this.#finished = true;
      let reason: FinishReason = fromOpenAIFinishReason(choice.finish_reason, choice.stop_sequence);
      if (reason === "stop" && this.#sawToolCall) reason = "tool_calls";
      parts.push({
        type: "finish",
        reason,
        ...(reason === "stop_sequence" && choice.stop_sequence ? { stopSequence: choice.stop_sequence } : {}),
      });
    }
    if (chunk.usage && !this.#usageSent) {
      this.#usageSent = true;
      parts.push({ type: "usage", usage: toUsage(chunk.usage) });
    }
    return parts;
  }

  #start(
    chunk: Pick<UpstreamChunk, "id" | "model" | "created">,
  ): Extract<CanonicalStreamPart, { type: "message_start" }> {
    this.#started = true;
    return {
      type: "message_start",
      id: chunk.id ?? newId("chatcmpl-"),
      model: chunk.model ?? this.#fallbackModel,
      created: chunk.created ?? nowS(),
    };
  }

  #toolDelta(call: ToolCallDelta): CanonicalStreamPart[] {
    const parts: CanonicalStreamPart[] = [];
    const upstreamIndex = call.index ?? this.#openTool?.index ?? 0;
    let tool = this.#tools.get(upstreamIndex);
    if (!tool) {
      parts.push(...this.#closeTool());
      tool = { index: this.#tools.size, open: true };
      this.#tools.set(upstreamIndex, tool);
      this.#openTool = tool;
      this.#sawToolCall = true;
      parts.push({
        type: "tool_call_start",
        index: tool.index,
        id: call.id || newId("call_"),
        name: call.function?.name ?? "",
      });
    }
    const args = call.function?.arguments;
    if (args) parts.push({ type: "tool_call_delta", index: tool.index, argumentsDelta: args });
    return parts;
  }

  #closeTool(): CanonicalStreamPart[] {
    const tool = this.#openTool;
    if (!tool?.open) return [];
    tool.open = false;
    this.#openTool = undefined;
    return [{ type: "tool_call_end", index: tool.index }];
  }

  /** `[DONE]` or end of bytes after a finish: nothing more to say. */
  #closeOut(): CanonicalStreamPart[] {
    if (this.#finished) return [];
    this.#done = true;
    const parts = this.#started ? [] : [this.#start({})];
    return [
      ...parts,
      this.#errorPart(new CortexError("upstream_error", "upstream stream ended before it finished")),
    ];
  }

  #fail(error: CortexError): CanonicalStreamPart[] {
    this.#done = true;
    const parts: CanonicalStreamPart[] = this.#started ? [] : [this.#start({})];
    parts.push(this.#errorPart(error));
    return parts;
  }

  #errorPart(error: CortexError): CanonicalStreamPart {
    return { type: "error", error: error.toWire() };
  }
}

/**
 * The neuron's SSE bytes → canonical parts in one synchronous step (the SSE
 * parser and UpstreamStreamDecoder together), for a relay that pulls bytes
 * and wants no stream stage per layer.
 */
export class UpstreamSseDecoder {
  readonly #sse = new SseDecoder();
  readonly #decoder: UpstreamStreamDecoder;

  constructor(fallbackModel = "") {
    this.#decoder = new UpstreamStreamDecoder(fallbackModel);
  }

  /** See UpstreamStreamDecoder.done: no later bytes can add a part. */
  get done(): boolean {
    return this.#decoder.done;
  }

  push(bytes: Uint8Array | string): CanonicalStreamPart[] {
    return this.#decode(this.#sse.push(bytes), false);
  }

  /** End of the upstream bytes. */
  end(): CanonicalStreamPart[] {
    return this.#decode(this.#sse.end(), true);
  }

  #decode(events: SseEvent[], end: boolean): CanonicalStreamPart[] {
    let parts: CanonicalStreamPart[] = [];
    for (const event of events) {
      const more = this.#decoder.push(event);
      if (parts.length === 0) parts = more;
      else for (const part of more) parts.push(part);
    }
    if (end) for (const part of this.#decoder.end()) parts.push(part);
    return parts;
  }
}

/** Parsed upstream SSE events in, canonical parts out (see UpstreamStreamDecoder). */
export function createUpstreamDecoder(fallbackModel = ""): TransformStream<SseEvent, CanonicalStreamPart> {
  const decoder = new UpstreamStreamDecoder(fallbackModel);
  return new TransformStream({
    transform(event, controller) {
      for (const part of decoder.push(event)) controller.enqueue(part);
    },
    flush(controller) {
      for (const part of decoder.end()) controller.enqueue(part);
    },
  });
}
