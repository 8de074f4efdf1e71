/**
 * Canonical messages → the message shape chat templates are written for
 * (Hugging Face convention: `content` as a string, `tool_calls` with
 * `function.arguments` as an object since templates apply `tojson`, tool
 * results as role `tool`). The one path from a request to a prompt's
 * messages, for every dialect.
 */
import { CortexError } from "../../core/errors.ts";
import type { CanonicalMessage, CanonicalTool } from "../../dialects/canonical.ts";
import { assertNever } from "../../dialects/canonical.ts";

export interface TemplateToolCall {
  id: string;
  type: "function";
  /** The arguments as parsed JSON (a string only when the text was not JSON). */
  function: { name: string; arguments: unknown };
}

export interface TemplateMessage {
  role: "system" | "user" | "assistant" | "tool";
  content: string;
  tool_calls?: TemplateToolCall[];
  tool_call_id?: string;
  name?: string;
  /**
   * An assistant turn's reasoning (the llama.cpp / vLLM convention templates
   * read; reasoning-fields.ts moves it where other families read it).
   */
  reasoning_content?: string;
  /**
   * A system or user message's text parts when it came as a list of parts
   * (the multimodal shape); `content` is them joined by newlines. The template
   * gets one or the other as it takes content (content-shape.ts).
   */
  textParts?: string[];
}

export interface TemplateTool {
  type: "function";
  function: { name: string; description?: string; parameters: Record<string, unknown> };
}

export function toTemplateMessages(
  messages: readonly CanonicalMessage[],
  modelId: string,
): TemplateMessage[] {
  const out: TemplateMessage[] = [];
  for (const message of messages) {
    switch (message.role) {
      case "system":
        out.push(
          withParts(
            "system",
            message.content.map((part) => part.text),
            message.asParts,
          ),
        );
        break;
      case "user": {
        const text: string[] = [];
        for (const part of message.content) {
          if (part.type === "image") throw imagesUnsupported(modelId);
          text.push(part.text);
        }
        out.push(withParts("user", text, message.asParts));
        break;
      }
      case "assistant": {
        const text: string[] = [];
        const calls: TemplateToolCall[] = [];
        let reasoning: string | undefined;
        for (const part of message.content) {
          if (part.type === "text") text.push(part.text);
          else if (part.type === "thinking") reasoning = (reasoning ?? "") + part.text;
          else if (part.type === "tool_call") {
            calls.push({
              id: part.id,
              type: "function",
              function: { name: part.name, arguments: parseArguments(part.arguments) },
            });
          }
        }
        // Earlier reasoning goes to the template, which decides whether to show it (most keep
        // only the reasoning since the last user turn).
        out.push({
          role: "assistant",
          content: text.join(""),
          ...(calls.length > 0 ? { tool_calls: calls } : {}),
          ...(reasoning === undefined ? {} : { reasoning_content: reasoning }),
        });
        break;
      }
      case "tool":
        for (const result of message.content) {
          const parts = result.content.map((part) => {
            if (part.type === "image") throw imagesUnsupported(modelId);
            return part.text;
          });
          out.push({
            role: "tool",
            content: (result.isError ? "Error: " : "") + parts.join("\n"),
            // No `name`: llama.cpp passes none either (templates that want it look up tool_call_id).
            tool_call_id: result.toolCallId,
          });
        }
        break;
      default:
        assertNever(message, "message role");
    }
  }
  return out;
}

export function toTemplateTools(tools: readonly CanonicalTool[]): TemplateTool[] {
  return tools.map((tool) => ({
    type: "function",
    function: {
      name: tool.name,
      ...(tool.description === undefined ? {} : { description: tool.description }),
      parameters: tool.parameters,
    },
  }));
}

function withParts(role: "system" | "user", text: string[], asParts: true | undefined): TemplateMessage {
  return { role, content: text.join("\n"), ...(asParts || text.length > 1 ? { textParts: text } : {}) };
}

function parseArguments(args: string): unknown {
  try {
    return JSON.parse(args);
  } catch {
    return args;
  }
}

function imagesUnsupported(modelId: string): CortexError {
  return new CortexError("invalid_request", `model ${modelId} does not take images; send text only`, {
    param: "messages",
  });
}
