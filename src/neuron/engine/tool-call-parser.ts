/**
 * Turns model output into OpenAI `tool_calls`. Two forms are recognised:
 * Hermes/Qwen `<tool_call>{"name":…,"arguments":…}</tool_call>` blocks and
 * Llama 3's bare JSON `{"name":…,"parameters":…}` (the whole reply, or
 * several separated by `;`).
 */
import { longestStopPrefixSuffix } from "./stop-matcher.ts";
import type { GenerationEvent, ToolCall } from "./types.ts";

export interface ParsedOutput {
  /** Text outside tool calls (trimmed), or "" when there is none. */
  content: string;
  calls: ToolCall[];
}

const HERMES_OPEN = "<tool_call>";
const HERMES_BLOCK = /<tool_call>\s*([\s\S]*?)\s*(?:<\/tool_call>|$)/g;

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

function toCall(value: unknown, index: number, idPrefix: string): ToolCall | undefined {
  if (!isRecord(value)) return undefined;
  // Some models wrap the call as {"function": {...}} or {"type":"function", ...}.
  const body = isRecord(value.function) ? value.function : value;
  const name = body.name;
  if (typeof name !== "string" || name.length === 0) return undefined;
  const args = body.arguments ?? body.parameters ?? {};
  return {
    id: `${idPrefix}${index}`,
    type: "function",
    function: { name, arguments: typeof args === "string" ? args : JSON.stringify(args) },
  };
}

function parseJson(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return undefined;
  }
}

/** Parses complete model output; `idPrefix` makes call ids unique per response. */
export function parseToolCalls(output: string, idPrefix = "call_"): ParsedOutput {
  if (output.includes(HERMES_OPEN)) {
    const calls: ToolCall[] = [];
    for (const match of output.matchAll(HERMES_BLOCK)) {
      const call = toCall(parseJson(match[1] ?? ""), calls.length, idPrefix);
      if (call) calls.push(call);
    }
    if (calls.length > 0) return { content: output.replace(HERMES_BLOCK, "").trim(), calls };
    return { content: output, calls: [] };
  }
  const trimmed = output.trim();
  if (trimmed.startsWith("{")) {
    const whole = parseJson(trimmed);
    const parts = whole === undefined ? trimmed.split(/;\s*(?=\{)/).map(parseJson) : [whole];
    const calls = parts.map((p, i) => toCall(p, i, idPrefix));
    if (calls.length > 0 && calls.every((c) => c !== undefined)) return { content: "", calls };
  }
  return { content: output, calls: [] };
}

/** Whether streamed text so far may be the start of a tool call, so must be held back. */
export function mayBeToolCall(textSoFar: string): boolean {
  const t = textSoFar.trimStart();
  if (t.length === 0) return true;
  if (t.startsWith("{")) return true;
  return HERMES_OPEN.startsWith(t.slice(0, HERMES_OPEN.length)) || t.includes(HERMES_OPEN);
}

/**
 * Stream stage for requests with tools: text passes through until it may be
 * a tool call, then the rest is held and parsed at `done`, which becomes
 * `tool_calls` + done("tool_calls") when calls are found.
 */
export function toolCallTransform(idPrefix: string): TransformStream<GenerationEvent, GenerationEvent> {
  let held = "";
  let holding = true;
  return new TransformStream<GenerationEvent, GenerationEvent>({
    transform(event, controller) {
      switch (event.type) {
        case "text": {
          held += event.text;
          if (holding) {
            if (mayBeToolCall(held)) return;
            holding = false;
          }
          const at = held.indexOf(HERMES_OPEN);
          if (at >= 0) {
            if (at > 0) controller.enqueue({ type: "text", text: held.slice(0, at) });
            held = held.slice(at);
            holding = true;
            return;
          }
          // Keep a tail that may grow into "<tool_call>" with the next piece.
          const keep = longestStopPrefixSuffix(held, [HERMES_OPEN]);
          if (held.length > keep)
            controller.enqueue({ type: "text", text: held.slice(0, held.length - keep) });
          held = held.slice(held.length - keep);
          return;
        }
        case "done": {
          const parsed = parseToolCalls(held, idPrefix);
          if (parsed.calls.length > 0) {
            if (parsed.content) controller.enqueue({ type: "text", text: parsed.content });
            controller.enqueue({ type: "tool_calls", calls: parsed.calls });
            controller.enqueue({ ...event, finishReason: "tool_calls" });
            return;
          }
          if (held) controller.enqueue({ type: "text", text: held });
          controller.enqueue(event);
          return;
        }
        case "tool_calls":
        case "error":
          controller.enqueue(event);
          return;
        default: {
          const unknown: never = event;
          throw new Error(`unknown event ${JSON.stringify(unknown)}`);
        }
      }
    },
  });
}
