/**
 * Renders template messages (template-messages.ts) and tools into a prompt
 * with the model's own Jinja `tokenizer.chat_template`, byte for byte as
 * llama.cpp renders it (tests/integration/template-fidelity.test.ts): the
 * same context (`enable_thinking` as llama-server defaults it unless the
 * request's kwargs say otherwise, thinking-support.ts; the date), the same
 * leniencies (jinja-runtime.ts), the messages shaped as llama.cpp shapes
 * them for the template (system role, tool-call arguments, content parts in
 * content-shape.ts, its dedicated handlers' rewrites in gemma4-turns.ts and
 * reasoning-fields.ts), and the leading BOS dropped when the tokenizer adds
 * one. Models without a template fall back to llama.cpp's built-in ChatML
 * (a Worker job; see NeuronService). Pure apart from the parse and probe
 * caches.
 */
import { Template } from "@huggingface/jinja";
import { CortexError } from "../../core/errors.ts";
import { type ContentCaps, contentCaps, shapeContent } from "./content-shape.ts";
import { foldToolResponses, isGemma4Template, openModelTurn, wantsToolResponses } from "./gemma4-turns.ts";
import { runTemplate, TemplateRaised } from "./jinja-runtime.ts";
import { placeReasoning } from "./reasoning-fields.ts";
import { memoBySource } from "./source-memo.ts";
import type { TemplateMessage, TemplateTool } from "./template-messages.ts";
import { supportsThinking } from "./thinking-support.ts";

export interface TemplateRenderInput {
  messages: readonly TemplateMessage[];
  tools?: readonly TemplateTool[];
  /** Default true: end with the assistant turn's opening. */
  addGenerationPrompt?: boolean;
  /**
   * Template variables beyond the messages (`chat_template_kwargs`:
   * `enable_thinking`, `reasoning_effort`, `documents`, …); they override
   * the defaults, as in llama.cpp.
   */
  kwargs?: Readonly<Record<string, unknown>>;
  /** The time `strftime_now` and the date variables see (ms since the epoch; default: now). */
  now?: number;
}

export interface TemplateTokens {
  bosToken: string;
  eosToken: string;
  /** The tokenizer adds BOS itself: a BOS the template printed first is dropped (no double BOS). */
  addBos?: boolean;
}

const compiled = new Map<string, Template>();

/**
 * llama-server keeps earlier turns' reasoning by default (`preserve_reasoning`,
 * and the names templates read it by: DeepSeek V4's `drop_thinking`, GLM's
 * `clear_thinking`, …).
 */
const PRESERVE_REASONING = {
  preserve_reasoning: true,
  preserve_thinking: true,
  clear_thinking: false,
  truncate_history_thinking: false,
  drop_thinking: false,
};

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
  return memoBySource(compiled, source, () => {
    try {
      return new Template(source);
    } catch (error) {
      throw new CortexError("internal", `the model's chat template does not parse: ${String(error)}`, {
        cause: error,
      });
    }
  });
}

/** Renders with a Jinja chat template. */
export function renderChatTemplate(
  template: string,
  input: TemplateRenderInput,
  tokens: TemplateTokens,
): string {
  if (input.messages.length === 0)
    throw new CortexError("invalid_request", "messages must not be empty", { param: "messages" });
  const parsed = compile(template).parsed;
  const context: Record<string, unknown> = {
    // llama-server's default (thinking on where the template supports it, thinking-support.ts); a
    // request sets it through the kwargs (reasoning effort "none" turns it off).
    enable_thinking: thinkingDefault(template, parsed, tokens),
    ...PRESERVE_REASONING,
    ...input.kwargs,
    messages: messagesFor(template, parsed, input.messages),
    bos_token: tokens.bosToken,
    eos_token: tokens.eosToken,
    ...(input.tools && input.tools.length > 0 ? { tools: input.tools } : {}),
  };
  // llama.cpp leaves add_generation_prompt undefined rather than false; some templates test `is defined`.
  const addGenerationPrompt = input.addGenerationPrompt ?? true;
  if (addGenerationPrompt) context.add_generation_prompt = true;
  let text: string;
  try {
    text = runTemplate(parsed, context, new Date(input.now ?? Date.now()));
  } catch (error) {
    if (error instanceof CortexError) throw error;
    // Templates reject unsupported conversations with raise_exception (e.g. roles out of order).
    const message = error instanceof TemplateRaised ? error.message : String(error);
    throw new CortexError("invalid_request", `the model's chat template rejected the messages: ${message}`, {
      param: "messages",
      cause: error,
    });
  }
  if (isGemma4Template(template)) text = openModelTurn(text, addGenerationPrompt);
  return tokens.addBos && tokens.bosToken !== "" && text.startsWith(tokens.bosToken)
    ? text.slice(tokens.bosToken.length)
    : text;
}

/** The messages as llama.cpp hands them to this template, after its per-template workarounds. */
function messagesFor(
  template: string,
  parsed: Template["parsed"],
  messages: readonly TemplateMessage[],
): readonly unknown[] {
  const prepared = withArgumentsFor(
    template,
    parsed,
    supportsSystemRole(template, parsed) ? messages : foldSystemIntoUser(messages),
  );
  const shaped = shapeContent(
    wantsToolResponses(template) ? foldToolResponses(prepared) : prepared,
    contentCapsOf(template, parsed),
  );
  return placeReasoning(template, shaped as Array<Record<string, unknown>>);
}

const contentCapsCache = new Map<string, ContentCaps>();

/** How the template takes message content (llama.cpp's probe, with its context: no tokens, no tools). */
function contentCapsOf(template: string, parsed: Template["parsed"]): ContentCaps {
  return memoBySource(contentCapsCache, template, () =>
    contentCaps((messages, ops) => {
      try {
        return runTemplate(
          parsed,
          { messages, tools: [], bos_token: "", eos_token: "", add_generation_prompt: true },
          new Date(0),
          { pick: (env) => firstContent(env.lookupVariable("messages")), ops },
        );
      } catch {
        return undefined;
      }
    }),
  );
}

/** `messages[0].content` as the render holds it (the value whose uses the probe records). */
function firstContent(messages: { value: unknown }): unknown {
  const first = (messages.value as Array<{ value: Map<string, unknown> }>)[0];
  return first?.value.get("content");
}

const systemRole = new Map<string, boolean>();
const thinking = new Map<string, boolean>();
const objectArguments = new Map<string, boolean>();

/** A capability probe, once per template source; one that throws says no. */
function probed(cache: Map<string, boolean>, template: string, probe: () => boolean): boolean {
  return memoBySource(cache, template, () => {
    try {
      return probe();
    } catch {
      return false;
    }
  });
}

/** llama-server's `enable_thinking` when the request does not set it. */
function thinkingDefault(template: string, parsed: Template["parsed"], tokens: TemplateTokens): boolean {
  const key = `${tokens.bosToken}\u0000${tokens.eosToken}\u0000${template}`;
  return probed(thinking, key, () =>
    supportsThinking(template, (context) => {
      try {
        return runTemplate(
          parsed,
          { ...context, bos_token: tokens.bosToken, eos_token: tokens.eosToken },
          new Date(0),
        );
      } catch {
        return undefined;
      }
    }),
  );
}

/**
 * Tool-call arguments as the template reads them (llama.cpp's capability
 * probe): an object where the template looks inside it (`arguments|tojson`,
 * `arguments.items()`), else the JSON text, which templates print as it is.
 */
function withArgumentsFor(
  template: string,
  parsed: Template["parsed"],
  messages: readonly TemplateMessage[],
): readonly TemplateMessage[] {
  if (!messages.some((m) => m.tool_calls !== undefined)) return messages;
  const objects = probed(objectArguments, template, () => {
    const probe = "cortex-argument-probe";
    const call = { id: "call_1", type: "function", function: { name: "tool1", arguments: { arg: probe } } };
    return runTemplate(
      parsed,
      {
        messages: [
          { role: "user", content: "User message" },
          { role: "assistant", content: "", tool_calls: [call] },
        ],
        bos_token: "",
        eos_token: "",
      },
      new Date(0),
    ).includes(probe);
  });
  if (objects) return messages;
  return messages.map((m) =>
    m.tool_calls === undefined
      ? m
      : {
          ...m,
          tool_calls: m.tool_calls.map((c) => ({
            ...c,
            function: {
              ...c.function,
              arguments:
                typeof c.function.arguments === "string"
                  ? c.function.arguments
                  : JSON.stringify(c.function.arguments),
            },
          })),
        },
  );
}

/**
 * Whether the template prints a system message's text (llama.cpp's
 * capability probe): Gemma 2's raises on one, others drop it silently.
 */
function supportsSystemRole(template: string, parsed: Template["parsed"]): boolean {
  return probed(systemRole, template, () => {
    const probe = "<cortex system probe>";
    return runTemplate(
      parsed,
      {
        messages: [
          { role: "system", content: probe },
          { role: "user", content: "hi" },
        ],
        bos_token: "",
        eos_token: "",
        add_generation_prompt: true,
      },
      new Date(0),
    ).includes(probe);
  });
}

/** llama.cpp's workaround for such templates: a leading system message opens the next message (or goes). */
function foldSystemIntoUser(messages: readonly TemplateMessage[]): readonly TemplateMessage[] {
  const [first, second, ...rest] = messages;
  if (first?.role !== "system") return messages;
  if (second === undefined) return [];
  // Joined as text (llama.cpp joins the two contents as strings).
  const { textParts: _, ...next } = second;
  return [{ ...next, content: `${first.content}\n${second.content}` }, ...rest];
}
