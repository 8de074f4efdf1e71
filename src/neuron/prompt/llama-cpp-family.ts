/**
 * The template families llama.cpp has a dedicated chat handler for,
 * recognized from the template's source as common/chat.cpp's
 * `common_chat_try_specialized_template` does, in its order (a template
 * that matches two is the first's). Each handler does things around the
 * render that prompts must reproduce (thinking-support.ts, gemma4-turns.ts,
 * reasoning-fields.ts). Pure, and worked out once per source: a render asks
 * it up to three times, and each time it scanned the whole template for each
 * marker (8.6 µs a call over four llama.cpp test templates of up to 9 KB
 * here, 2.6 µs looked up).
 */

import { memoBySource } from "./source-memo.ts";

export type LlamaCppFamily =
  | "ministral-3"
  | "gpt-oss"
  | "muse-glimmer"
  | "functionary-v3.2"
  | "kimi-k2"
  | "kimi-k3"
  | "ling-3"
  | "cohere2-moe"
  | "lfm2"
  | "lfm2.5"
  | "gigachat-v3"
  | "minimax-m3"
  | "deepseek-v3.2"
  | "gemma-4"
  | "minicpm5"
  | "qwen3-coder";

const families = new Map<string, LlamaCppFamily | undefined>();

export function llamaCppFamily(src: string): LlamaCppFamily | undefined {
  return memoBySource(families, src, () => detectFamily(src));
}

function detectFamily(src: string): LlamaCppFamily | undefined {
  const has = (text: string) => src.includes(text);
  if (has("[SYSTEM_PROMPT]") && has("[TOOL_CALLS]") && has("[ARGS]") && !has("[CALL_ID]"))
    return "ministral-3";
  if (has("<|channel|>")) return "gpt-oss";
  if (has("<atem:function_calls>") && has("<|eom|>")) return "muse-glimmer";
  // Its source has a literal `>>>${recipient}`.
  if (has(">>>all") && has(">>>$" + "{recipient}")) return "functionary-v3.2";
  if (has("<|tool_calls_section_begin|>") && has("<|tool_call_begin|>")) return "kimi-k2";
  if (has("<|open|>") && has("<|close|>") && has("<|end_of_msg|>")) return "kimi-k3";
  if (has("<role>ASSISTANT</role>") && has("<arg_key>")) return "ling-3";
  if (has("<|START_TEXT|>") && has("<|START_ACTION|>")) return "cohere2-moe";
  if (has("<|tool_list_start|>") && has("<|tool_list_end|>")) return "lfm2";
  if (has("List of tools: [") && !has("<|tool_list_start|>")) return "lfm2.5";
  if (has("<|role_sep|>") && has("<|message_sep|>") && !has("<|function_call|>")) return "gigachat-v3";
  if (has("]<]minimax[>[") && has("<tool_call>") && has("<invoke name=")) return "minimax-m3";
  if (has("dsml_token") && has("DSML") && (has("function_calls") || has("tool_calls")))
    return "deepseek-v3.2";
  if (has("'<|tool_call>call:'")) return "gemma-4";
  if (has("Tool usage guidelines:") && has('<function name="') && has('<param name="')) return "minicpm5";
  // Also Qwen3.5, Nemotron 3 and StepFun 3.5; not the ones that write no newline between the tags.
  if (
    has("<tool_call>") &&
    has("<function=") &&
    has("<parameter=") &&
    !has("'<tool_call><function=' ~ tool_call.name ~ '>'")
  )
    return "qwen3-coder";
  return undefined;
}
