import { assertNever, type FinishReason } from "./canonical.ts";

/** OpenAI has no separate "stop sequence" reason: a matched stop sequence is a plain "stop". */
export function toOpenAIFinishReason(reason: FinishReason): "stop" | "length" | "tool_calls" {
  switch (reason) {
    case "stop":
    case "stop_sequence":
      return "stop";
    case "length":
      return "length";
    case "tool_calls":
      return "tool_calls";
    default:
      return assertNever(reason, "finish reason");
  }
}

/**
 * Reads an upstream finish_reason. A stop sequence reported by the neuron
 * (extension field `stop_sequence`) turns "stop" into "stop_sequence";
 * reasons the fleet never produces on purpose (content_filter) read as "stop".
 */
export function fromOpenAIFinishReason(
  reason: string | null | undefined,
  stopSequence?: string | null,
): FinishReason {
  switch (reason) {
    case "length":
      return "length";
    case "tool_calls":
    case "function_call":
      return "tool_calls";
    default:
      return typeof stopSequence === "string" ? "stop_sequence" : "stop";
  }
}
