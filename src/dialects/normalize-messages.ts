import type { CanonicalMessage } from "./canonical.ts";

/** Joins runs of tool messages into one, the canonical form (OpenAI sends one message per result). */
export function mergeToolMessages(messages: CanonicalMessage[]): CanonicalMessage[] {
  const out: CanonicalMessage[] = [];
  for (const message of messages) {
    const last = out.at(-1);
    if (message.role === "tool" && last?.role === "tool") {
      out[out.length - 1] = { role: "tool", content: [...last.content, ...message.content] };
    } else {
      out.push(message);
    }
  }
  return out;
}
