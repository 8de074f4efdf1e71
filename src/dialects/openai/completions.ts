/**
 * OpenAI's legacy text completions (`POST /v1/completions`), as code
 * completion plugins use them: the request as canonical requests (one per
 * prompt) that carry the raw prompt past the chat template, and the answer
 * as a `text_completion` object or its SSE chunks. Fields that would change
 * the answer and cannot be honoured (`echo`, `logprobs`, `best_of`, `n`) are
 * a 400 naming them.
 */
import { z } from "zod";
import { CortexError } from "../../core/errors.ts";
import {
  assertNever,
  type CanonicalRequest,
  type CanonicalResponse,
  type CanonicalStreamPart,
} from "../canonical.ts";
import { newId } from "../ids.ts";
import { toOpenAIFinishReason } from "../map-openai-finish-reason.ts";
import { parseOrThrow, unsupported } from "../zod-boundary.ts";
import { type OpenAIUsage, renderOpenAIUsage } from "./render-response.ts";
import { openAIErrorEvent } from "./stream-encoder.ts";

const CompletionsRequestSchema = z.looseObject({
  model: z.string().min(1),
  prompt: z.union([z.string(), z.array(z.string()).min(1), z.array(z.unknown())]),
  suffix: z.string().nullish(),
  max_tokens: z.number().int().nonnegative().nullish(),
  temperature: z.number().min(0).max(2).nullish(),
  top_p: z.number().min(0).max(1).nullish(),
  stop: z.union([z.string(), z.array(z.string()).max(4)]).nullish(),
  stream: z.boolean().nullish(),
  stream_options: z.object({ include_usage: z.boolean().optional() }).nullish(),
  seed: z.number().int().nullish(),
  presence_penalty: z.number().min(-2).max(2).nullish(),
  frequency_penalty: z.number().min(-2).max(2).nullish(),
  logit_bias: z.record(z.string(), z.number()).nullish(),
  user: z.string().optional(),
  n: z.number().int().positive().nullish(),
  best_of: z.number().int().positive().nullish(),
  echo: z.boolean().nullish(),
  logprobs: z.number().int().nullish(),
});

/** OpenAI's default for `/v1/completions` when `max_tokens` is absent. */
export const COMPLETIONS_DEFAULT_MAX_TOKENS = 16;

const KNOWN_KEYS = new Set(Object.keys(CompletionsRequestSchema.shape));

/**
 * One canonical request per prompt, in order; they differ only in the
 * prompt. Fields it does not know are told to `onUnknownField`.
 */
export function parseCompletionsRequest(
  body: unknown,
  options: { onUnknownField?: (name: string) => void } = {},
): CanonicalRequest[] {
  const parsed = parseOrThrow(CompletionsRequestSchema, body, "");
  if (options.onUnknownField)
    for (const key of Object.keys(parsed)) if (!KNOWN_KEYS.has(key)) options.onUnknownField(key);
  if (parsed.echo === true)
    throw unsupported("echo", "echo: true is not supported; the answer never repeats the prompt");
  if (parsed.logprobs !== undefined && parsed.logprobs !== null)
    throw unsupported("logprobs", "logprobs are not supported");
  if ((parsed.n ?? 1) !== 1) throw unsupported("n", "n: only one completion per prompt is supported");
  if ((parsed.best_of ?? 1) !== 1) throw unsupported("best_of", "best_of: only 1 is supported");
  const { prompt } = parsed;
  if (typeof prompt !== "string" && !prompt.every((item) => typeof item === "string"))
    throw unsupported("prompt", "prompt: token arrays are not supported; send text");
  const prompts = typeof prompt === "string" ? [prompt] : (prompt as string[]);
  const stream = parsed.stream === true;
  if (stream && prompts.length > 1)
    throw unsupported("prompt", "prompt: a streamed completion takes one prompt; send several requests");
  const suffix = parsed.suffix ?? undefined;
  const stop = parsed.stop === undefined || parsed.stop === null ? [] : [parsed.stop].flat();
  return prompts.map((text) => {
    const request: CanonicalRequest = {
      model: parsed.model,
      messages: [{ role: "user", content: [{ type: "text", text }] }],
      tools: [],
      stop,
      stream,
      includeUsage: parsed.stream_options?.include_usage === true,
      maxTokens: parsed.max_tokens ?? COMPLETIONS_DEFAULT_MAX_TOKENS,
      completion: suffix === undefined ? { prompt: text } : { prompt: text, suffix },
    };
    if (parsed.temperature !== undefined && parsed.temperature !== null)
      request.temperature = parsed.temperature;
    if (parsed.top_p !== undefined && parsed.top_p !== null) request.topP = parsed.top_p;
    if (parsed.seed !== undefined && parsed.seed !== null) request.seed = parsed.seed;
    if (parsed.presence_penalty !== undefined && parsed.presence_penalty !== null)
      request.presencePenalty = parsed.presence_penalty;
    if (parsed.frequency_penalty !== undefined && parsed.frequency_penalty !== null)
      request.frequencyPenalty = parsed.frequency_penalty;
    if (parsed.logit_bias !== undefined && parsed.logit_bias !== null) request.logitBias = parsed.logit_bias;
    if (parsed.user !== undefined) request.user = parsed.user;
    return request;
  });
}

interface TextCompletionChoice {
  text: string;
  index: number;
  logprobs: null;
  finish_reason: "stop" | "length" | null;
}

interface TextCompletion {
  id: string;
  object: "text_completion";
  created: number;
  model: string;
  choices: TextCompletionChoice[];
  usage?: OpenAIUsage;
}

function finishReason(response: CanonicalResponse["finishReason"]): "stop" | "length" {
  const reason = toOpenAIFinishReason(response);
  return reason === "length" ? "length" : "stop";
}

/** The answers to one request's prompts, in order, as one `text_completion`. */
export function renderCompletionsResponse(
  responses: readonly CanonicalResponse[],
  model: string,
): TextCompletion {
  const usage = { inputTokens: 0, outputTokens: 0 };
  const choices = responses.map((response, index): TextCompletionChoice => {
    usage.inputTokens += response.usage.inputTokens;
    usage.outputTokens += response.usage.outputTokens;
    const text = response.content.map((part) => (part.type === "text" ? part.text : "")).join("");
    return { text, index, logprobs: null, finish_reason: finishReason(response.finishReason) };
  });
  return {
    id: newId("cmpl-"),
    object: "text_completion",
    created: responses[0]?.created ?? Math.floor(Date.now() / 1000),
    model,
    choices,
    usage: renderOpenAIUsage(usage),
  };
}

/** Canonical parts → `text_completion` SSE chunks, ending in `data: [DONE]` (none after an error event). */
export class CompletionsStreamEncoder {
  readonly #model: string;
  readonly #includeUsage: boolean;
  #id = newId("cmpl-");
  #created = Math.floor(Date.now() / 1000);
  #closed = false;

  constructor(options: { model: string; includeUsage: boolean }) {
    this.#model = options.model;
    this.#includeUsage = options.includeUsage;
  }

  push(part: CanonicalStreamPart): string[] {
    if (this.#closed) return [];
    switch (part.type) {
      case "message_start":
        this.#created = part.created;
        return [];
      case "text_delta":
        return part.text === ""
          ? []
          : [this.#chunk({ text: part.text, index: 0, logprobs: null, finish_reason: null })];
      case "finish":
        return [
          this.#chunk({ text: "", index: 0, logprobs: null, finish_reason: finishReason(part.reason) }),
        ];
      case "usage":
        return this.#includeUsage
          ? [this.#frame({ ...this.#envelope([]), usage: renderOpenAIUsage(part.usage) })]
          : [];
      case "error":
        this.#closed = true;
        return [openAIErrorEvent(CortexError.fromWire(part.error))];
      case "thinking_delta":
      case "tool_call_start":
      case "tool_call_delta":
      case "tool_call_end":
        // A text completion has no tools and no chat template to reason in.
        return [];
      default:
        return assertNever(part, "stream part");
    }
  }

  end(): string[] {
    if (this.#closed) return [];
    this.#closed = true;
    return ["data: [DONE]\n\n"];
  }

  #envelope(choices: TextCompletionChoice[]): TextCompletion {
    return { id: this.#id, object: "text_completion", created: this.#created, model: this.#model, choices };
  }

  #chunk(choice: TextCompletionChoice): string {
    return this.#frame(this.#envelope([choice]));
  }

  #frame(body: TextCompletion): string {
    return `data: ${JSON.stringify(body)}\n\n`;
  }
}
