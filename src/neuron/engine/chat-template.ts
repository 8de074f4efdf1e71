/**
 * Renders OpenAI-style chat messages (and tools) into a prompt with the
 * model's own Jinja `tokenizer.chat_template`. Models without a template
 * fall back to llama.cpp's built-in templates (a Worker job, see
 * DevicePool.renderChat).
 */
import { Template } from "@huggingface/jinja";
import { CortexError } from "../../core/errors.ts";

export type ChatContentPart = { type: "text"; text: string } | { type: string; [key: string]: unknown };

export interface ChatToolCallInput {
  id?: string;
  type?: "function";
  function: { name: string; arguments: string };
}

export interface ChatMessageInput {
  role: "system" | "developer" | "user" | "assistant" | "tool";
  content: string | ChatContentPart[] | null;
  name?: string;
  tool_calls?: ChatToolCallInput[];
  tool_call_id?: string;
}

export interface ChatToolInput {
  type: "function";
  function: { name: string; description?: string; parameters?: Record<string, unknown> };
}

export interface ChatRenderInput {
  messages: ChatMessageInput[];
  tools?: ChatToolInput[];
  /** Default true: end with the assistant turn's opening. */
  addGenerationPrompt?: boolean;
}

/** Messages as Hugging Face templates expect them: string content, tool-call arguments as objects. */
export interface TemplateReadyMessage {
  role: string;
  content: string;
  name?: string;
  tool_call_id?: string;
  tool_calls?: ReadonlyArray<{ id?: string; type?: string; function: { name: string; arguments: unknown } }>;
}

export interface TemplateRenderInput {
  messages: readonly TemplateReadyMessage[];
  tools?: readonly ChatToolInput[];
  addGenerationPrompt?: boolean;
}

export interface TemplateTokens {
  bosToken: string;
  eosToken: string;
}

/** Flattens text parts; anything else (images, audio) is refused, not silently dropped. */
export function textContent(content: ChatMessageInput["content"], index: number): string {
  if (content === null) return "";
  if (typeof content === "string") return content;
  return content
    .map((part) => {
      if (part.type === "text" && typeof part.text === "string") return part.text;
      throw new CortexError(
        "unsupported_parameter",
        `message ${index}: content parts of type "${part.type}" are not supported`,
        {
          param: `messages[${index}].content`,
        },
      );
    })
    .join("");
}

function parseArguments(args: string): unknown {
  try {
    return JSON.parse(args);
  } catch {
    return args;
  }
}

/**
 * The message objects templates expect: string content, `developer` as
 * `system`, tool-call arguments as objects (templates apply `tojson`).
 */
export function templateMessages(messages: ChatMessageInput[]): TemplateReadyMessage[] {
  return messages.map((m, i) => ({
    role: m.role === "developer" ? "system" : m.role,
    content: textContent(m.content, i),
    ...(m.name === undefined ? {} : { name: m.name }),
    ...(m.tool_call_id === undefined ? {} : { tool_call_id: m.tool_call_id }),
    ...(m.tool_calls === undefined
      ? {}
      : {
          tool_calls: m.tool_calls.map((c) => ({
            ...(c.id === undefined ? {} : { id: c.id }),
            type: "function",
            function: { name: c.function.name, arguments: parseArguments(c.function.arguments) },
          })),
        }),
  }));
}

const compiled = new Map<string, Template>();

function compile(source: string): Template {
  let template = compiled.get(source);
  if (!template) {
    try {
      template = new Template(source);
    } catch (error) {
      throw new CortexError("internal", `the model's chat template does not parse: ${String(error)}`, {
        cause: error,
      });
    }
    if (compiled.size > 32) compiled.clear();
    compiled.set(source, template);
  }
  return template;
}

/** Renders with a Jinja chat template. Pure apart from a parse cache. */
export function renderChatTemplate(
  template: string,
  input: TemplateRenderInput,
  tokens: TemplateTokens,
): string {
  if (input.messages.length === 0)
    throw new CortexError("invalid_request", "messages must not be empty", { param: "messages" });
  const context: Record<string, unknown> = {
    messages: input.messages,
    add_generation_prompt: input.addGenerationPrompt ?? true,
    bos_token: tokens.bosToken,
    eos_token: tokens.eosToken,
  };
  if (input.tools && input.tools.length > 0) context.tools = input.tools;
  try {
    return compile(template).render(context);
  } catch (error) {
    if (error instanceof CortexError) throw error;
    // Templates reject unsupported conversations with raise_exception (e.g. roles out of order).
    throw new CortexError(
      "invalid_request",
      `the model's chat template rejected the messages: ${String(error)}`,
      {
        param: "messages",
        cause: error,
      },
    );
  }
}
