import type { CortexError } from "../core/errors.ts";

export interface ContextOverflowCounts {
  promptTokens: number;
  /** Absent when the prompt alone does not fit. */
  maxTokens?: number;
  contextSize: number;
}

/**
 * The counts a context_length_exceeded error carries in `details`: prompt and
 * context always, max_tokens when it was the prompt plus max_tokens that
 * overflowed rather than the prompt alone.
 */
export function contextOverflowCounts(error: CortexError): ContextOverflowCounts | undefined {
  if (error.code !== "context_length_exceeded" || error.details === undefined) return undefined;
  const { prompt_tokens: promptTokens, max_tokens: maxTokens, context_size: contextSize } = error.details;
  if (typeof promptTokens !== "number" || typeof contextSize !== "number") return undefined;
  return { promptTokens, contextSize, ...(typeof maxTokens === "number" ? { maxTokens } : {}) };
}
