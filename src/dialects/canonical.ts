/**
 * The canonical model every dialect translates to and from. The gateway
 * routes, meters and forwards only canonical values; OpenAI and Anthropic
 * wire shapes never leak past src/dialects.
 */
import type { WireError } from "../core/errors.ts";

export interface TextPart {
  type: "text";
  text: string;
}

/** An image, either fetched by URL (http(s)) or carried inline as base64. */
export type ImageSource = { kind: "url"; url: string } | { kind: "base64"; mediaType: string; data: string };

export interface ImagePart {
  type: "image";
  source: ImageSource;
}

export interface ToolCallPart {
  type: "tool_call";
  id: string;
  name: string;
  /** The arguments as JSON text, exactly as the model produced them. */
  arguments: string;
}

export interface ToolResultPart {
  type: "tool_result";
  toolCallId: string;
  content: Array<TextPart | ImagePart>;
  isError: boolean;
}

export interface ThinkingPart {
  type: "thinking";
  text: string;
}

export interface SystemMessage {
  role: "system";
  content: TextPart[];
  /**
   * One part sent as a list of parts (OpenAI's multimodal shape), which a
   * string cannot tell apart: llama.cpp hands templates that take lists the
   * list. (Several parts are a list anyway.)
   */
  asParts?: true;
}
export interface UserMessage {
  role: "user";
  content: Array<TextPart | ImagePart>;
  /** As for SystemMessage. */
  asParts?: true;
}
export interface AssistantMessage {
  role: "assistant";
  content: Array<TextPart | ToolCallPart | ThinkingPart>;
}
/** Results of earlier tool calls. Consecutive tool messages are always merged into one. */
export interface ToolMessage {
  role: "tool";
  content: ToolResultPart[];
}

export type CanonicalMessage = SystemMessage | UserMessage | AssistantMessage | ToolMessage;

export interface CanonicalTool {
  name: string;
  description?: string;
  /** JSON schema of the arguments object. */
  parameters: Record<string, unknown>;
  strict?: boolean;
}

export type CanonicalToolChoice =
  | { type: "auto" }
  /** The model must call some tool (OpenAI "required", Anthropic "any"). */
  | { type: "any" }
  | { type: "none" }
  | { type: "tool"; name: string };

export type CanonicalResponseFormat =
  | { type: "text" }
  | { type: "json_object" }
  | {
      type: "json_schema";
      name: string;
      schema: Record<string, unknown>;
      description?: string;
      strict?: boolean;
    };

/**
 * How hard the model should think: OpenAI `reasoning_effort`, Responses
 * `reasoning.effort`, Anthropic `output_config.effort` (`max` → `xhigh`) or
 * `thinking` (`disabled` → `none`). The neuron maps it to the chat template's
 * kwargs (`enable_thinking`, `reasoning_effort`).
 */
export type ReasoningEffort = "none" | "minimal" | "low" | "medium" | "high" | "xhigh";

export interface CanonicalRequest {
  model: string;
  messages: CanonicalMessage[];
  tools: CanonicalTool[];
  toolChoice?: CanonicalToolChoice;
  parallelToolCalls?: boolean;
  /** Upper bound on generated tokens; absent means "until the context is full". */
  maxTokens?: number;
  temperature?: number;
  topP?: number;
  topK?: number;
  stop: string[];
  seed?: number;
  presencePenalty?: number;
  frequencyPenalty?: number;
  /** Token id (as a decimal string) → bias. */
  logitBias?: Record<string, number>;
  responseFormat?: CanonicalResponseFormat;
  reasoningEffort?: ReasoningEffort;
  /**
   * `chat_template_kwargs` (the llama-server and vLLM convention): variables
   * for the model's chat template, over the ones the reasoning effort sets.
   */
  templateKwargs?: Record<string, unknown>;
  /**
   * The Anthropic client enabled extended thinking (`thinking.type` enabled
   * or adaptive): only then are `thinking` blocks shown to it.
   */
  thinking?: boolean;
  stream: boolean;
  /** The client wants usage reported in the stream (OpenAI `stream_options.include_usage`). */
  includeUsage: boolean;
  /** End-user id for abuse tracking (OpenAI `user`, Anthropic `metadata.user_id`). */
  user?: string;
  /**
   * The client's own name for the conversation this request continues: OpenAI
   * `prompt_cache_key` (Codex sends one), the `session_id` Claude Code puts in
   * Anthropic's `metadata.user_id`, or its `x-claude-code-session-id` header.
   * The gateway keeps a session on one node (routing/prefix-chain.ts).
   */
  sessionKey?: string;
  metadata?: Record<string, string>;
  /**
   * A text completion (`/v1/completions`): the prompt is sent to the model
   * as it is, without the chat template, or fill-in-the-middle with
   * `suffix`. `messages` then hold the prompt as one user message, for the
   * checks that read them.
   */
  completion?: { prompt: string; suffix?: string };
}

export type FinishReason = "stop" | "length" | "tool_calls" | "stop_sequence";

export interface CanonicalUsage {
  inputTokens: number;
  outputTokens: number;
  /** Prompt tokens served from a cache, where the upstream reports them. */
  cachedInputTokens?: number;
  /** Of outputTokens, those spent reasoning, where known. */
  reasoningTokens?: number;
}

export interface CanonicalResponse {
  id: string;
  model: string;
  /** Unix seconds. */
  created: number;
  content: Array<TextPart | ToolCallPart | ThinkingPart>;
  finishReason: FinishReason;
  /** The stop sequence that ended generation, when finishReason is "stop_sequence". */
  stopSequence?: string;
  usage: CanonicalUsage;
}

/**
 * One step of a streamed answer. Order: `message_start`, then any mix of
 * deltas (a tool call's deltas sit between its start and end), then
 * `finish`, then `usage` (when known), or `error` at any point, after which
 * nothing follows.
 */
export type CanonicalStreamPart =
  /**
   * `inputTokens` (and of those `cachedInputTokens`): the prompt's tokens,
   * where they are known before the answer; the final count comes with `usage`.
   */
  | {
      type: "message_start";
      id: string;
      model: string;
      created: number;
      inputTokens?: number;
      cachedInputTokens?: number;
    }
  | { type: "text_delta"; text: string }
  | { type: "thinking_delta"; text: string }
  /** `index` counts tool calls within this answer, from 0. */
  | { type: "tool_call_start"; index: number; id: string; name: string }
  | { type: "tool_call_delta"; index: number; argumentsDelta: string }
  | { type: "tool_call_end"; index: number }
  | { type: "finish"; reason: FinishReason; stopSequence?: string }
  | { type: "usage"; usage: CanonicalUsage }
  | { type: "error"; error: WireError };

/**
 * Whether a part carries generated tokens, for first-token and decode-rate
 * clocks: an empty delta carries none and must not start the clock.
 */
export function carriesToken(part: CanonicalStreamPart): boolean {
  switch (part.type) {
    case "text_delta":
    case "thinking_delta":
      return part.text !== "";
    case "tool_call_start":
    case "tool_call_delta":
      return true;
    default:
      return false;
  }
}

/** Compile-time exhaustiveness for switches over the unions above. */
export function assertNever(value: never, what = "value"): never {
  throw new Error(`unexpected ${what}: ${JSON.stringify(value)}`);
}
