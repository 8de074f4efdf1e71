/**
 * What llama.cpp does around a Gemma 4 template (llama-cpp-family.ts;
 * common/parsers/gemma4.cpp):
 *
 * - the templates older than Google's OpenAI-compatible one (no
 *   `{#- OpenAI Chat Completions:` comment) read tool results from the
 *   assistant turn's `tool_responses` rather than from role `tool`
 *   messages, so an assistant turn's tool calls, the tool results after
 *   them and a plain answer after those become one assistant message:
 *   `{tool_calls, tool_responses: [{name, response}], content}`, each
 *   response parsed as JSON where it is JSON, named by its call's position;
 * - a prompt that ends with a closed turn (`<turn|>\n`) gets the model's
 *   turn opened when a generation prompt was asked for.
 *
 * Pure.
 */
import { llamaCppFamily } from "./llama-cpp-family.ts";
import type { TemplateMessage, TemplateToolCall } from "./template-messages.ts";

/** A Gemma 4 template, as llama.cpp recognizes one. */
export function isGemma4Template(source: string): boolean {
  return llamaCppFamily(source) === "gemma-4";
}

/** A Gemma 4 template that wants tool results inside the assistant turn. */
export function wantsToolResponses(source: string): boolean {
  return isGemma4Template(source) && !source.includes("{#- OpenAI Chat Completions:");
}

export interface ToolResponse {
  name: string;
  response: unknown;
}

/** An assistant turn that carries its tool results (`tool_responses`), as the older templates read it. */
interface FoldedTurn {
  role: "assistant";
  tool_calls: TemplateToolCall[];
  tool_responses?: ToolResponse[];
  content?: string;
  reasoning_content?: string;
}

export type Gemma4Message = TemplateMessage | FoldedTurn;

/** Folds each assistant tool-call turn, its tool results and its plain answer into one message. */
export function foldToolResponses(messages: readonly TemplateMessage[]): Gemma4Message[] {
  const out: Gemma4Message[] = [];
  let i = 0;
  while (i < messages.length) {
    const message = messages[i] as TemplateMessage;
    i++;
    if (message.role !== "assistant" || !message.tool_calls || message.tool_calls.length === 0) {
      out.push(message);
      continue;
    }
    const calls = message.tool_calls;
    const responses: ToolResponse[] = [];
    for (let next = messages[i]; next?.role === "tool"; next = messages[++i]) {
      const name = calls[responses.length]?.function.name || next.tool_call_id || "";
      responses.push({ name, response: parsedOrText(next.content) });
    }
    const answer = messages[i];
    const answerText =
      answer?.role === "assistant" && (answer.tool_calls ?? []).length === 0 && answer.content !== ""
        ? answer.content
        : undefined;
    if (answerText !== undefined) i++;
    // No content at all (not ""), as llama.cpp builds it, unless a plain answer followed.
    const folded: FoldedTurn = {
      role: "assistant",
      tool_calls: calls,
      ...(responses.length > 0 ? { tool_responses: responses } : {}),
      ...(answerText === undefined ? {} : { content: answerText }),
      ...(message.reasoning_content === undefined ? {} : { reasoning_content: message.reasoning_content }),
    };
    out.push(folded);
  }
  return out;
}

/** llama.cpp opens the model's turn after a prompt that ends with a closed one. */
export function openModelTurn(prompt: string, addGenerationPrompt: boolean): string {
  return addGenerationPrompt && prompt.endsWith("<turn|>\n") ? `${prompt}<|turn>model\n` : prompt;
}

function parsedOrText(content: string): unknown {
  try {
    return JSON.parse(content);
  } catch {
    return content;
  }
}
