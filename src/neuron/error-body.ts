/**
 * The neuron's error envelope: OpenAI's, plus the error's details (prompt,
 * max_tokens, context counts, the node) that OpenAI's envelope has no field
 * for and the gateway needs to re-render the error in its client's dialect.
 */
import { toCortexError } from "../core/errors.ts";
import { renderOpenAIError } from "../dialects/openai/render-error.ts";

export function neuronError(error: unknown): {
  status: number;
  headers: Record<string, string>;
  body: unknown;
} {
  const cortex = toCortexError(error);
  const rendered = renderOpenAIError(cortex);
  const body =
    cortex.details === undefined
      ? rendered.body
      : { error: { ...rendered.body.error, details: cortex.details } };
  return { status: rendered.status, headers: rendered.headers, body };
}
