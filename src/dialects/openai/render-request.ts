/**
 * Canonical request → OpenAI Chat Completions body. The neuron speaks this
 * wire format, so `toUpstreamChatBody` is what the gateway sends upstream.
 */
import type { z } from "zod";
import type { NeuronChatExtensions } from "../../core/neuron-api.ts";
import {
  assertNever,
  type CanonicalMessage,
  type CanonicalRequest,
  type CanonicalResponseFormat,
  type CanonicalToolChoice,
  type ImagePart,
  type ReasoningEffort,
  type TextPart,
} from "../canonical.ts";
import { imageSourceToUrl } from "../images.ts";

export type OpenAIContentPart =
  | { type: "text"; text: string }
  | { type: "image_url"; image_url: { url: string } };

export type OpenAIMessage =
  | { role: "system"; content: string | Array<{ type: "text"; text: string }> }
  | { role: "user"; content: string | OpenAIContentPart[] }
  | {
      role: "assistant";
      content: string | Array<{ type: "text"; text: string }> | null;
      tool_calls?: Array<{ id: string; type: "function"; function: { name: string; arguments: string } }>;
      reasoning_content?: string;
    }
  | { role: "tool"; tool_call_id: string; content: string | OpenAIContentPart[] };

export interface OpenAIChatRequestBody {
  model: string;
  messages: OpenAIMessage[];
  tools?: Array<{
    type: "function";
    function: { name: string; description?: string; parameters: Record<string, unknown>; strict?: boolean };
  }>;
  tool_choice?: "none" | "auto" | "required" | { type: "function"; function: { name: string } };
  parallel_tool_calls?: boolean;
  max_completion_tokens?: number;
  max_tokens?: number;
  temperature?: number;
  top_p?: number;
  /** Not OpenAI: llama.cpp-style servers (the neuron included) accept it. */
  top_k?: number;
  stop?: string[];
  seed?: number;
  presence_penalty?: number;
  frequency_penalty?: number;
  logit_bias?: Record<string, number>;
  reasoning_effort?: ReasoningEffort;
  chat_template_kwargs?: Record<string, unknown>;
  response_format?:
    | { type: "text" }
    | { type: "json_object" }
    | {
        type: "json_schema";
        json_schema: {
          name: string;
          schema: Record<string, unknown>;
          description?: string;
          strict?: boolean;
        };
      };
  stream?: boolean;
  stream_options?: { include_usage: boolean };
  user?: string;
  metadata?: Record<string, string>;
}

/** The request as an OpenAI client would have sent it. */
export function renderOpenAIRequest(req: CanonicalRequest): OpenAIChatRequestBody {
  const body = renderCore(req, req.model, req.stream, req.includeUsage);
  if (req.maxTokens !== undefined) body.max_completion_tokens = req.maxTokens;
  if (req.user !== undefined) body.user = req.user;
  if (req.metadata !== undefined) body.metadata = req.metadata;
  return body;
}

export type UpstreamChatBody = OpenAIChatRequestBody & z.infer<typeof NeuronChatExtensions>;

export interface UpstreamOptions {
  /** The stored model id routing resolved (default: `req.model`). */
  model?: string;
  /** What the neuron does when prompt + max_tokens exceed the context (default: "error"). */
  contextOverflow?: "error" | "clamp";
  /** Ask the neuron to stream (default true; the gateway asks for what its client asked for). */
  stream?: boolean;
  /**
   * A stream the gateway relays to its OpenAI client as it is: usage only
   * when the client asked, and the neuron's trailer (`cortex_trailer`) for
   * the metrics instead.
   */
  relay?: boolean;
  /** Ask a translated stream for the prompt's token count on its first chunk (`cortex_prompt_tokens`). */
  promptTokens?: boolean;
}

/**
 * The body the gateway POSTs to a neuron's `/v1/chat/completions`. Usage is
 * always requested (or, for a relayed stream, comes in the neuron's trailer)
 * so metrics never depend on what the client asked for.
 * The end user's id and metadata are the gateway's business, not the
 * neuron's; every OpenAI-style server reads max_tokens, not all read
 * max_completion_tokens.
 */
export function toUpstreamChatBody(req: CanonicalRequest, options: UpstreamOptions = {}): UpstreamChatBody {
  const relay = options.relay === true;
  const body: UpstreamChatBody = renderCore(
    req,
    options.model ?? req.model,
    options.stream ?? true,
    relay ? req.includeUsage : true,
  );
  if (req.maxTokens !== undefined) body.max_tokens = req.maxTokens;
  body.context_overflow = options.contextOverflow ?? "error";
  if (relay) body.cortex_trailer = true;
  if (req.completion !== undefined) body.cortex_completion = req.completion;
  if (options.promptTokens === true && !relay && body.stream === true) body.cortex_prompt_tokens = true;
  return body;
}

/**
 * What both bodies share, built by assignment: this runs once per request
 * (and per failover attempt) on the gateway's hot path, where spreading
 * optional fields into fresh objects showed in profiles.
 */
function renderCore(
  req: CanonicalRequest,
  model: string,
  stream: boolean,
  includeUsage: boolean,
): OpenAIChatRequestBody {
  const messages: OpenAIMessage[] = [];
  for (const message of req.messages) for (const rendered of renderMessage(message)) messages.push(rendered);
  const body: OpenAIChatRequestBody = { model, messages };
  if (req.tools.length > 0)
    body.tools = req.tools.map((t) => ({
      type: "function" as const,
      function: {
        name: t.name,
        ...(t.description === undefined ? {} : { description: t.description }),
        parameters: t.parameters,
        ...(t.strict === undefined ? {} : { strict: t.strict }),
      },
    }));
  if (req.toolChoice !== undefined) body.tool_choice = renderToolChoice(req.toolChoice);
  if (req.parallelToolCalls !== undefined) body.parallel_tool_calls = req.parallelToolCalls;
  if (req.temperature !== undefined) body.temperature = req.temperature;
  if (req.topP !== undefined) body.top_p = req.topP;
  if (req.topK !== undefined) body.top_k = req.topK;
  if (req.stop.length > 0) body.stop = req.stop;
  if (req.seed !== undefined) body.seed = req.seed;
  if (req.presencePenalty !== undefined) body.presence_penalty = req.presencePenalty;
  if (req.frequencyPenalty !== undefined) body.frequency_penalty = req.frequencyPenalty;
  if (req.logitBias !== undefined) body.logit_bias = req.logitBias;
  if (req.responseFormat !== undefined) body.response_format = renderResponseFormat(req.responseFormat);
  if (req.reasoningEffort !== undefined) body.reasoning_effort = req.reasoningEffort;
  if (req.templateKwargs !== undefined) body.chat_template_kwargs = req.templateKwargs;
  body.stream = stream;
  if (stream && includeUsage) body.stream_options = { include_usage: true };
  return body;
}

function renderMessage(message: CanonicalMessage): OpenAIMessage[] {
  switch (message.role) {
    case "system":
      return [{ role: "system", content: textContent(message.content, message.asParts) }];
    case "user":
      return [{ role: "user", content: mixedContent(message.content, message.asParts) }];
    case "assistant": {
      const texts: TextPart[] = [];
      const calls: Array<{ id: string; type: "function"; function: { name: string; arguments: string } }> =
        [];
      let reasoning = "";
      for (const part of message.content) {
        if (part.type === "text") texts.push(part);
        else if (part.type === "tool_call")
          calls.push({
            id: part.id,
            type: "function",
            function: { name: part.name, arguments: part.arguments },
          });
        // Earlier reasoning goes along: the model's chat template decides whether to show it.
        else reasoning += part.text;
      }
      return [
        {
          role: "assistant",
          content: texts.length === 0 ? null : textContent(texts),
          ...(calls.length === 0 ? {} : { tool_calls: calls }),
          ...(reasoning === "" ? {} : { reasoning_content: reasoning }),
        },
      ];
    }
    case "tool":
      return message.content.map((result) => ({
        role: "tool" as const,
        tool_call_id: result.toolCallId,
        content: mixedContent(result.content),
      }));
    default:
      return assertNever(message, "message");
  }
}

function textContent(parts: TextPart[], asParts?: true): string | Array<{ type: "text"; text: string }> {
  if (parts.length === 1 && parts[0] && !asParts) return parts[0].text;
  return parts.map((p) => ({ type: "text" as const, text: p.text }));
}

function mixedContent(parts: Array<TextPart | ImagePart>, asParts?: true): string | OpenAIContentPart[] {
  if (parts.length === 1 && parts[0]?.type === "text" && !asParts) return parts[0].text;
  return parts.map((p) =>
    p.type === "text"
      ? { type: "text" as const, text: p.text }
      : { type: "image_url" as const, image_url: { url: imageSourceToUrl(p.source) } },
  );
}

function renderToolChoice(choice: CanonicalToolChoice): NonNullable<OpenAIChatRequestBody["tool_choice"]> {
  switch (choice.type) {
    case "auto":
      return "auto";
    case "any":
      return "required";
    case "none":
      return "none";
    case "tool":
      return { type: "function", function: { name: choice.name } };
    default:
      return assertNever(choice, "tool choice");
  }
}

function renderResponseFormat(
  format: CanonicalResponseFormat,
): NonNullable<OpenAIChatRequestBody["response_format"]> {
  switch (format.type) {
    case "text":
      return { type: "text" };
    case "json_object":
      return { type: "json_object" };
    case "json_schema":
      return {
        type: "json_schema",
        json_schema: {
          name: format.name,
          schema: format.schema,
          ...(format.description === undefined ? {} : { description: format.description }),
          ...(format.strict === undefined ? {} : { strict: format.strict }),
        },
      };
    default:
      return assertNever(format, "response format");
  }
}
