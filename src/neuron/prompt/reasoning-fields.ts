/**
 * Where an earlier turn's reasoning goes for the families whose templates
 * read it from elsewhere than `reasoning_content`, as llama.cpp's dedicated
 * handlers put it (common/parsers/): gpt-oss and LFM2 read `thinking`;
 * Ministral 3 (and Devstral, which llama.cpp recognizes as the same) reads
 * a system or assistant message's content as blocks, the reasoning a
 * `thinking` block before the `text` one. Pure.
 */

type Message = Record<string, unknown>;

/** A template llama.cpp handles as Ministral 3's. */
function isMinistral3(src: string): boolean {
  return (
    src.includes("[SYSTEM_PROMPT]") &&
    src.includes("[TOOL_CALLS]") &&
    src.includes("[ARGS]") &&
    !src.includes("[CALL_ID]")
  );
}

/** gpt-oss's and LFM2's (LFM2.5's) templates, which read reasoning from `thinking`. */
function readsThinking(src: string): boolean {
  return (
    src.includes("<|channel|>") ||
    (src.includes("<|tool_list_start|>") && src.includes("<|tool_list_end|>")) ||
    (src.includes("List of tools: [") && !src.includes("<|tool_list_start|>"))
  );
}

export function placeReasoning(src: string, messages: readonly Message[]): readonly Message[] {
  // Checked in llama.cpp's order: a template that is Ministral 3's is handled as that.
  if (isMinistral3(src)) return messages.map(asBlocks);
  if (readsThinking(src))
    return messages.map((m) =>
      typeof m.reasoning_content === "string" ? { ...m, thinking: m.reasoning_content } : m,
    );
  return messages;
}

function asBlocks(message: Message): Message {
  if (message.role !== "system" && message.role !== "assistant") return message;
  const { reasoning_content: reasoning, ...rest } = message;
  const blocks: unknown[] = [];
  if (typeof reasoning === "string") blocks.push({ type: "thinking", thinking: reasoning });
  if (typeof rest.content === "string") blocks.push({ type: "text", text: rest.content });
  else if (Array.isArray(rest.content)) blocks.push(...rest.content);
  return { ...rest, content: blocks };
}
