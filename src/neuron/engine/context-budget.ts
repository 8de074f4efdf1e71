/**
 * How many tokens a sequence may generate, given its prompt and the model's
 * per-sequence context. Pure, so the overflow rules are tested on their own.
 */
import { CortexError } from "../../core/errors.ts";

export interface BudgetInput {
  promptTokens: number;
  contextSize: number;
  maxTokens: number | undefined;
  overflow: "error" | "clamp";
}

/** Returns the completion-token limit, or throws context_length_exceeded (400). */
export function completionBudget(input: BudgetInput): number {
  const { promptTokens, contextSize, maxTokens, overflow } = input;
  if (maxTokens !== undefined && !(Number.isInteger(maxTokens) && maxTokens >= 1))
    throw new CortexError("invalid_request", `max_tokens must be a positive integer, got ${maxTokens}`, {
      param: "max_tokens",
    });
  // At least one cell must remain for the first sampled token.
  if (promptTokens >= contextSize)
    throw new CortexError(
      "context_length_exceeded",
      `the prompt is ${promptTokens} tokens, but the model's context is ${contextSize} tokens`,
      { details: { prompt_tokens: promptTokens, context_size: contextSize } },
    );
  const left = contextSize - promptTokens;
  if (maxTokens === undefined) return left;
  if (maxTokens <= left) return maxTokens;
  if (overflow === "clamp") return left;
  throw new CortexError(
    "context_length_exceeded",
    `prompt (${promptTokens} tokens) + max_tokens (${maxTokens}) exceed the model's context of ${contextSize} tokens`,
    {
      param: "max_tokens",
      details: { prompt_tokens: promptTokens, max_tokens: maxTokens, context_size: contextSize },
    },
  );
}
