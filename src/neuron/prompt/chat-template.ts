/**
 * Renders template messages (template-messages.ts) and tools into a prompt
 * with the model's own Jinja `tokenizer.chat_template`. Models without a
 * template fall back to llama.cpp's built-in ChatML (a Worker job; see
 * NeuronService). Pure apart from a parse cache.
 */
import { Template } from "@huggingface/jinja";
import { CortexError } from "../../core/errors.ts";
import type { TemplateMessage, TemplateTool } from "./template-messages.ts";

export interface TemplateRenderInput {
  messages: readonly TemplateMessage[];
  tools?: readonly TemplateTool[];
  /** Default true: end with the assistant turn's opening. */
  addGenerationPrompt?: boolean;
  /** Extra template variables reasoning templates read (`enable_thinking`, `reasoning_effort`). */
  kwargs?: Readonly<Record<string, unknown>>;
}

export interface TemplateTokens {
  bosToken: string;
  eosToken: string;
}

const compiled = new Map<string, Template>();

/**
 * The reason a chat template does not parse, or undefined when it does:
 * checked at load, so a broken template is a failed load, not a 500 on
 * every chat.
 */
export function chatTemplateProblem(source: string): string | undefined {
  try {
    compile(source);
    return undefined;
  } catch (error) {
    return error instanceof Error ? error.message : String(error);
  }
}

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

/** Renders with a Jinja chat template. */
export function renderChatTemplate(
  template: string,
  input: TemplateRenderInput,
  tokens: TemplateTokens,
): string {
  if (input.messages.length === 0)
    throw new CortexError("invalid_request", "messages must not be empty", { param: "messages" });
  const context: Record<string, unknown> = {
    ...input.kwargs,
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
