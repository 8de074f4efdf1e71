/**
 * What a chat request's prompt is made of: the template messages and tools,
 * and a prefill. A conversation that ends with an assistant turn of plain
 * text is a prefill (Anthropic's convention, and llama-server's for OpenAI
 * chat): the prompt is the conversation before it with the generation prompt
 * open, followed by that text, so the answer continues it instead of
 * starting a new turn. The answer carries only the continuation.
 */
import type { CanonicalRequest } from "../../dialects/canonical.ts";
import {
  type TemplateMessage,
  type TemplateTool,
  toTemplateMessages,
  toTemplateTools,
} from "./template-messages.ts";

export interface PromptPlan {
  messages: TemplateMessage[];
  tools: TemplateTool[];
  /** Text the answer continues ("" when the conversation ends with another role). */
  prefill: string;
}

export function planPrompt(
  request: Pick<CanonicalRequest, "messages" | "tools">,
  modelId: string,
): PromptPlan {
  const last = request.messages.at(-1);
  const prefill =
    last?.role === "assistant" && last.content.every((part) => part.type !== "tool_call")
      ? last.content.map((part) => (part.type === "text" ? part.text : "")).join("")
      : undefined;
  const conversation = prefill === undefined ? request.messages : request.messages.slice(0, -1);
  return {
    messages: toTemplateMessages(conversation, modelId),
    tools: toTemplateTools(request.tools),
    prefill: prefill ?? "",
  };
}
