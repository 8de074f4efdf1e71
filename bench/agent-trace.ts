/**
 * The agent trace of the prefix benchmarks: conversations with their own
 * fixed system prompt (an agent's instructions and tools) and a few new
 * tokens of user text per turn, as deterministic English-looking words.
 */

/** Plain English words (about one token each for a BPE tokenizer). */
const WORDS =
  "the agent reads files and runs tools to change code in the project while the user waits for a short answer about tests build errors types functions modules imports exports classes methods values strings numbers arrays objects maps sets loops branches calls returns promises streams buffers bytes lines words pages docs notes plans steps tasks goals checks reviews commits branches merges patches diffs hunks".split(
    " ",
  );

function words(seed: number, count: number): string {
  let state = seed >>> 0 || 1;
  const out: string[] = [];
  for (let i = 0; i < count; i++) {
    state = (Math.imul(state, 1664525) + 1013904223) >>> 0;
    out.push(WORDS[state % WORDS.length] ?? "the");
  }
  return out.join(" ");
}

export interface TraceMessage {
  role: "system" | "user" | "assistant";
  content: string;
}

/** The fixed prefix of conversation `c`: distinct from its first words on, like two agents' system prompts. */
export function systemPrompt(c: number, tokens: number): string {
  return `You are agent number ${c + 1}. Tools and rules follow. ${words(1000 + c, Math.round(tokens * 0.95))}`;
}

/** The user's text of turn `t` of conversation `c`. */
export function userTurn(c: number, t: number, tokens: number): string {
  return `Turn ${t + 1}: ${words(7919 * (c + 1) + t, Math.round(tokens * 0.95))}`;
}
