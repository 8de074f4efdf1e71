import { createHash } from "node:crypto";
import { assertNever, type CanonicalResponse, type CanonicalUsage } from "../canonical.ts";
import { newId } from "../ids.ts";
import { type AnthropicStopReason, toAnthropicStopReason } from "../map-anthropic-stop-reason.ts";
import { toAnthropicToolId, toolInputFromArguments } from "./tool-input.ts";

export type AnthropicContentBlock =
  | { type: "text"; text: string }
  | { type: "thinking"; thinking: string; signature: string }
  | { type: "tool_use"; id: string; name: string; input: Record<string, unknown> };

export interface AnthropicUsage {
  input_tokens: number;
  output_tokens: number;
  cache_read_input_tokens?: number;
  cache_creation_input_tokens?: number;
}

export interface AnthropicMessage {
  id: string;
  type: "message";
  role: "assistant";
  model: string;
  content: AnthropicContentBlock[];
  stop_reason: AnthropicStopReason;
  stop_sequence: string | null;
  usage: AnthropicUsage;
}

export interface AnthropicRenderOptions {
  /** The client enabled extended thinking: reasoning is shown as `thinking` blocks (dropped otherwise). */
  thinking?: boolean;
  /** The `msg_…` id to use (default: a fresh one). */
  messageId?: string;
  /** The model id to show the client (default: the upstream's). */
  model?: string;
}

/**
 * Anthropic counts cached prompt tokens apart from `input_tokens`; the three
 * add up to the prompt. Prefix reuse reads a cache nobody asked to write, so
 * nothing is ever counted as cache creation.
 */
export function renderAnthropicUsage(usage: CanonicalUsage): AnthropicUsage {
  if (usage.cachedInputTokens === undefined)
    return { input_tokens: usage.inputTokens, output_tokens: usage.outputTokens };
  return {
    input_tokens: Math.max(0, usage.inputTokens - usage.cachedInputTokens),
    output_tokens: usage.outputTokens,
    cache_creation_input_tokens: 0,
    cache_read_input_tokens: usage.cachedInputTokens,
  };
}

/**
 * A thinking block's `signature`. Anthropic's is an opaque proof that the
 * block came from the model; cortex gives a digest of the text, which a
 * client sends back unchanged with the block (it is not checked: the
 * reasoning only goes to the chat template).
 */
export function thinkingSignature(text: string): string {
  return createHash("sha256").update(text).digest("base64");
}

/** Canonical response → Anthropic `message` object. */
export function renderAnthropicResponse(
  res: CanonicalResponse,
  options: AnthropicRenderOptions = {},
): AnthropicMessage {
  return {
    id: options.messageId ?? newId("msg_01"),
    type: "message",
    role: "assistant",
    model: options.model ?? res.model,
    content: res.content.flatMap((part): AnthropicContentBlock[] => {
      switch (part.type) {
        case "text":
          return [{ type: "text", text: part.text }];
        case "thinking":
          return options.thinking === true
            ? [{ type: "thinking", thinking: part.text, signature: thinkingSignature(part.text) }]
            : [];
        case "tool_call":
          return [
            {
              type: "tool_use",
              id: toAnthropicToolId(part.id),
              name: part.name,
              input: toolInputFromArguments(part.arguments),
            },
          ];
        default:
          return assertNever(part, "content part");
      }
    }),
    stop_reason: toAnthropicStopReason(res.finishReason),
    stop_sequence: res.finishReason === "stop_sequence" ? (res.stopSequence ?? null) : null,
    usage: renderAnthropicUsage(res.usage),
  };
}
