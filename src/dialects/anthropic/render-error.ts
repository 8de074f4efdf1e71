import { type CortexError, toCortexError } from "../../core/errors.ts";
import { contextOverflowCounts } from "../context-overflow.ts";
import { type AnthropicErrorType, toAnthropicError } from "../map-anthropic-error.ts";
import type { RenderedError } from "../rendered-error.ts";

export interface AnthropicErrorBody {
  type: "error";
  /** `details` with an `error_code` the SDKs read (`thread_unsupported_request`), where there is one. */
  error: { type: AnthropicErrorType; message: string; details?: Record<string, unknown> };
}

/** Anything thrown → Anthropic's error body, with the status Anthropic pairs with its type. */
export function renderAnthropicError(thrown: unknown): RenderedError<AnthropicErrorBody> {
  const error = toCortexError(thrown);
  return {
    status: toAnthropicError(error.code).status,
    headers: error.retryAfterS === undefined ? {} : { "retry-after": String(Math.ceil(error.retryAfterS)) },
    body: anthropicErrorBody(error),
  };
}

export function anthropicErrorBody(error: CortexError): AnthropicErrorBody {
  const body: AnthropicErrorBody = {
    type: "error",
    error: { type: toAnthropicError(error.code).type, message: anthropicErrorMessage(error) },
  };
  // Only details meant for the client: others (token counts, free memory) are cortex's own.
  if (typeof error.details?.error_code === "string") body.error.details = error.details;
  return body;
}

function anthropicErrorMessage(error: CortexError): string {
  const counts = contextOverflowCounts(error);
  if (counts === undefined) return error.message;
  const { promptTokens, maxTokens, contextSize } = counts;
  // Anthropic's own texts, which clients match: the first marks a conversation over the
  // window; Claude Code parses the counts of the second to shrink max_tokens and retry.
  if (maxTokens === undefined) return `prompt is too long: ${promptTokens} tokens > ${contextSize} maximum`;
  return (
    `input length and \`max_tokens\` exceed context limit: ${promptTokens} + ${maxTokens} > ${contextSize}, ` +
    "decrease input length or `max_tokens` and try again"
  );
}
