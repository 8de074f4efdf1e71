/**
 * A coding agent's request of a given size, for the gateway benches: what
 * Claude Code, Codex or opencode resend every turn (a system prompt, tool
 * definitions with JSON schemas, and the conversation so far: the user's
 * asks, the model's answers and tool calls, the tools' results), in OpenAI's
 * and Anthropic's shapes. Deterministic, so every target of a run gets the
 * same bytes.
 */
import { DEFAULT_DELTAS, FAKE_MODEL } from "./fake-upstream.ts";

interface Tool {
  name: string;
  description: string;
  parameters: Record<string, unknown>;
}

/** One step of the history: text from a side, or a tool call and its result. */
type Turn =
  | { kind: "user" | "assistant"; text: string }
  | { kind: "call"; id: string; name: string; input: Record<string, unknown>; result: string };

export interface AgentConversation {
  system: string;
  tools: Tool[];
  /** The history, ending on the user's turn. */
  turns: Turn[];
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

function tool(i: number): Tool {
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

/**
 * About `kib` KiB of JSON: a tenth system prompt, 12 tools, the rest a
 * history of ~2 KiB steps in which every third one is a tool call with its
 * result (a file read, mostly), as an agent's history is.
 */
export function agentConversation(kib: number): AgentConversation {
  const total = kib * 1024;
  const system = prose(Math.round(total / 10), 0);
  const tools = Array.from({ length: 12 }, (_, i) => tool(i));
  const stepBytes = 2048;
  const count = Math.max(1, Math.round((total - system.length - JSON.stringify(tools).length) / stepBytes));
  const turns: Turn[] = [];
  for (let i = 0; i < count; i++) {
    if (i % 3 === 2)
      turns.push({
        kind: "call",
        id: `call_${i}`,
        name: `tool_${i % 12}`,
        input: { path: `src/module_${i}.ts`, limit: 200 },
        result: prose(stepBytes - 200, i + 1),
      });
    else turns.push({ kind: i % 3 === 0 ? "user" : "assistant", text: prose(stepBytes, i + 1) });
  }
  if (turns.at(-1)?.kind !== "user") turns.push({ kind: "user", text: prose(stepBytes, count + 1) });
  return { system, tools, turns };
}

/** OpenAI Chat Completions' fields for the conversation (messages with the system first, tools). */
export function openAIConversation(conversation: AgentConversation): {
  messages: Array<Record<string, unknown>>;
  tools: Array<{ type: "function"; function: Tool }>;
} {
  const messages: Array<Record<string, unknown>> = [{ role: "system", content: conversation.system }];
  for (const turn of conversation.turns) {
    if (turn.kind !== "call") {
      messages.push({ role: turn.kind, content: turn.text });
      continue;
    }
    const call = {
      id: turn.id,
      type: "function",
      function: { name: turn.name, arguments: JSON.stringify(turn.input) },
    };
    // The call comes with the assistant's text before it, in one message.
    const last = messages.at(-1);
    if (last?.role === "assistant") last.tool_calls = [call];
    else messages.push({ role: "assistant", content: null, tool_calls: [call] });
    messages.push({ role: "tool", tool_call_id: turn.id, content: turn.result });
  }
  return { messages, tools: conversation.tools.map((fn) => ({ type: "function", function: fn })) };
}

/** Anthropic Messages' fields for the conversation (a top-level system, blocks, tools with input_schema). */
export function anthropicConversation(conversation: AgentConversation): {
  system: string;
  messages: Array<{ role: "user" | "assistant"; content: Array<Record<string, unknown>> }>;
  tools: Array<{ name: string; description: string; input_schema: Record<string, unknown> }>;
} {
  type Message = { role: "user" | "assistant"; content: Array<Record<string, unknown>> };
  const messages: Message[] = [];
  // Roles alternate: a block joins the message before it when that one is of the same side
  // (the assistant's text and its tool_use; a tool_result and the user's next words).
  const add = (role: Message["role"], block: Record<string, unknown>) => {
    const last = messages.at(-1);
    if (last?.role === role) last.content.push(block);
    else messages.push({ role, content: [block] });
  };
  for (const turn of conversation.turns) {
    if (turn.kind !== "call") add(turn.kind, { type: "text", text: turn.text });
    else {
      add("assistant", { type: "tool_use", id: turn.id, name: turn.name, input: turn.input });
      add("user", { type: "tool_result", tool_use_id: turn.id, content: turn.result });
    }
  }
  return {
    system: conversation.system,
    messages,
    tools: conversation.tools.map((fn) => ({
      name: fn.name,
      description: fn.description,
      input_schema: fn.parameters,
    })),
  };
}

/** How a gateway bench's client talks: OpenAI chat, plain or streamed, or Anthropic streamed through translation. */
export type BenchMode = "json" | "sse" | "anthropic";

/**
 * The body a gateway bench POSTs for `mode` (to /v1/chat/completions, or
 * /v1/messages for anthropic): one short message asking the fake neuron for
 * its canned completion, or, given a conversation, an agent's whole request.
 */
export function benchRequestBody(mode: BenchMode, conversation?: AgentConversation): string {
  const messages = [{ role: "user", content: "Say four words." }];
  if (mode === "anthropic")
    return JSON.stringify({
      model: FAKE_MODEL,
      ...(conversation === undefined ? { messages } : anthropicConversation(conversation)),
      max_tokens: DEFAULT_DELTAS,
      stream: true,
    });
  return JSON.stringify({
    model: FAKE_MODEL,
    ...(conversation === undefined ? { messages } : openAIConversation(conversation)),
    max_tokens: DEFAULT_DELTAS,
    stream: mode === "sse",
    ...(mode === "sse" ? { stream_options: { include_usage: true } } : {}),
  });
}
