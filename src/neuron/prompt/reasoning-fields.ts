/**
 * Where an earlier turn's reasoning goes for the families whose templates
 * read it from elsewhere than `reasoning_content`, as llama.cpp's dedicated
 * handlers put it (common/parsers/): gpt-oss and LFM2 read `thinking`;
 * Ministral 3 (and Devstral, which llama.cpp recognizes as the same) reads
 * a system or assistant message's content as blocks, the reasoning a
 * `thinking` block before the `text` one. Pure.
 */

import { llamaCppFamily } from "./llama-cpp-family.ts";

type Message = Record<string, unknown>;

export function placeReasoning(src: string, messages: readonly Message[]): readonly Message[] {
  const family = llamaCppFamily(src);
  if (family === "ministral-3") return messages.map(asBlocks);
  if (family === "gpt-oss" || family === "lfm2" || family === "lfm2.5")
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
