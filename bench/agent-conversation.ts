/**
 * A coding agent's request of a given size, for the gateway benches: what
 * Claude Code, Codex or opencode resend every turn (a system prompt, tool
 * definitions with JSON schemas, and the conversation so far, mostly long
 * text), in OpenAI's and Anthropic's shapes. Deterministic, so every target
 * of a run gets the same bytes.
 */

export interface AgentConversation {
  system: string;
  tools: Array<{ name: string; description: string; parameters: Record<string, unknown> }>;
  /** Alternating user / assistant turns, the last one the user's. */
  turns: Array<{ role: "user" | "assistant"; content: string }>;
}

const PROSE =
  "The build fails in src/gateway/routing/failover.ts because the retry classifier reads the status before the body; " +
  "move the read after the check, keep the error's message, and run the unit tests again before the integration ones. ";

function prose(bytes: number, seed: number): string {
  return `[${seed}] ${PROSE.repeat(Math.max(1, Math.ceil(bytes / PROSE.length)))}`.slice(
    0,
    Math.max(16, bytes),
  );
}

function tool(i: number): AgentConversation["tools"][number] {
  return {
    name: `tool_${i}`,
    description: prose(300, 1000 + i),
    parameters: {
      type: "object",
      properties: {
        path: { type: "string", description: "A path inside the repository." },
        pattern: { type: "string", description: "What to look for." },
        limit: { type: "integer", minimum: 1, maximum: 1000 },
        options: { type: "object", properties: { ignoreCase: { type: "boolean" } } },
      },
      required: ["path"],
    },
  };
}

/** About `kib` KiB of JSON: a tenth system prompt, 12 tools, the rest turns of ~2 KiB. */
export function agentConversation(kib: number): AgentConversation {
  const total = kib * 1024;
  const system = prose(Math.round(total / 10), 0);
  const tools = Array.from({ length: 12 }, (_, i) => tool(i));
  const toolBytes = JSON.stringify(tools).length;
  const turnBytes = 2048;
  const count = Math.max(1, Math.round((total - system.length - toolBytes) / turnBytes));
  // An odd count: the conversation ends on the user's turn.
  const turns = Array.from({ length: count % 2 === 1 ? count : count + 1 }, (_, i) => ({
    role: i % 2 === 0 ? ("user" as const) : ("assistant" as const),
    content: prose(turnBytes, i + 1),
  }));
  return { system, tools, turns };
}

/** OpenAI Chat Completions' fields for the conversation (messages with the system first, tools). */
export function openAIConversation(conversation: AgentConversation): {
  messages: Array<{ role: string; content: string }>;
  tools: Array<{ type: "function"; function: AgentConversation["tools"][number] }>;
} {
  return {
    messages: [{ role: "system", content: conversation.system }, ...conversation.turns],
    tools: conversation.tools.map((fn) => ({ type: "function", function: fn })),
  };
}

/** Anthropic Messages' fields for the conversation (a top-level system, tools with input_schema). */
export function anthropicConversation(conversation: AgentConversation): {
  system: string;
  messages: AgentConversation["turns"];
  tools: Array<{ name: string; description: string; input_schema: Record<string, unknown> }>;
} {
  return {
    system: conversation.system,
    messages: conversation.turns,
    tools: conversation.tools.map((fn) => ({
      name: fn.name,
      description: fn.description,
      input_schema: fn.parameters,
    })),
  };
}
