import { type CortexError, toCortexError } from "../../core/errors.ts";
import { contextOverflowCounts } from "../context-overflow.ts";
import { toOpenAIErrorType } from "../map-openai-error.ts";
import type { RenderedError } from "../rendered-error.ts";

export interface OpenAIErrorBody {
  error: { message: string; type: string; param: string | null; code: string | null };
}

/** Anything thrown → OpenAI's error envelope, its HTTP status and headers. */
export function renderOpenAIError(thrown: unknown): RenderedError<OpenAIErrorBody> {
  const error = toCortexError(thrown);
  return {
    status: error.status,
    headers: error.retryAfterS === undefined ? {} : { "retry-after": String(Math.ceil(error.retryAfterS)) },
    body: openAIErrorBody(error),
  };
}

export function openAIErrorBody(error: CortexError): OpenAIErrorBody {
  return {
    error: {
      message: openAIErrorMessage(error),
      type: toOpenAIErrorType(error.code),
      param: error.param ?? (error.code === "context_length_exceeded" ? "messages" : null),
      code: error.code,
    },
  };
}

function openAIErrorMessage(error: CortexError): string {
  const counts = contextOverflowCounts(error);
  if (counts === undefined) return error.message;
  const { promptTokens, maxTokens, contextSize } = counts;
  if (maxTokens === undefined)
    return (
      `This model's maximum context length is ${contextSize} tokens. However, your messages resulted in ` +
      `${promptTokens} tokens. Please reduce the length of the messages.`
    );
  return (
    `This model's maximum context length is ${contextSize} tokens. However, you requested ` +
    `${promptTokens + maxTokens} tokens (${promptTokens} in the messages, ${maxTokens} in the completion). ` +
    "Please reduce the length of the messages or completion."
  );
}
