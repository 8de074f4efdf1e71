/**
 * The client's reasoning effort as the chat-template kwargs reasoning
 * templates take: `enable_thinking` (Qwen3, DeepSeek V3.1, GLM, SmolLM3…)
 * and `reasoning_effort` (gpt-oss: low, medium or high). Templates that take
 * neither ignore them; without an effort the template's default stands.
 */
import type { ReasoningEffort } from "../../dialects/canonical.ts";

export type ReasoningKwargs = {
  enable_thinking?: boolean;
  reasoning_effort?: "low" | "medium" | "high";
};

export function reasoningKwargs(effort: ReasoningEffort | undefined): ReasoningKwargs {
  if (effort === undefined) return {};
  const level =
    effort === "none" || effort === "minimal" || effort === "low"
      ? "low"
      : effort === "medium"
        ? "medium"
        : "high";
  return { enable_thinking: effort !== "none", reasoning_effort: level };
}
