import type { CortexError } from "../core/errors.ts";

export interface ContextOverflowCounts {
  promptTokens: number;
  maxTokens: number;
  contextSize: number;
}

/** The counts a context_length_exceeded error carries in `details`, when all three are there. */
export function contextOverflowCounts(error: CortexError): ContextOverflowCounts | undefined {
  if (error.code !== "context_length_exceeded" || error.details === undefined) return undefined;
  const { prompt_tokens: promptTokens, max_tokens: maxTokens, context_size: contextSize } = error.details;
  if (typeof promptTokens !== "number" || typeof maxTokens !== "number" || typeof contextSize !== "number")
    return undefined;
  return { promptTokens, maxTokens, contextSize };
}
