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

/** The opening of a call as the Hermes template writes it, up to the name. */
const HERMES_HEAD = '<tool_call>\n{"name": "';
const HERMES_ARGS = '", "arguments": ';
const HERMES_CLOSE = "}\n</tool_call>";

type Head = { state: "partial" } | { state: "fail" } | { state: "ok"; name: string; rest: string };

/** Reads `<tool_call>\n{"name": "NAME", "arguments": ` off the front of `text`. */
function matchHead(text: string): Head {
  if (text.length < HERMES_HEAD.length)
    return HERMES_HEAD.startsWith(text) ? { state: "partial" } : { state: "fail" };
  if (!text.startsWith(HERMES_HEAD)) return { state: "fail" };
  const name = /^((?:[^"\\\n]|\\.)*)/.exec(text.slice(HERMES_HEAD.length))![1]!;
  const after = text.slice(HERMES_HEAD.length + name.length);
  if (after.length < HERMES_ARGS.length)
    return HERMES_ARGS.startsWith(after) ? { state: "partial" } : { state: "fail" };
  if (!after.startsWith(HERMES_ARGS)) return { state: "fail" };
  const decoded = parseJson(`"${name}"`);
  if (typeof decoded !== "string" || decoded.length === 0) return { state: "fail" };
  return { state: "ok", name: decoded, rest: after.slice(HERMES_ARGS.length) };
}

/**
 * Stream stage for requests with tools. Text passes through until it may be
 * a tool call. A Hermes call in the exact form the template (and the tool
 * grammar) writes is streamed as it is generated: `tool_call_start` once its
 * name is known, its arguments as `tool_call_delta`s, `tool_call_end` at
 * `</tool_call>`. Anything else that may be a call is held and parsed at
 * `done` into one `tool_calls` event. Calls found make the finish
 * `tool_calls`, unless the answer was cut (`length`): then the last call's
 * arguments are what was generated, and the finish says it was cut.
 * `syntax` "hermes" never reads bare JSON as a call (a JSON answer is not one).
 */
export function toolCallTransform(
  idPrefix: string,
  syntax?: "hermes" | "llama3",
): TransformStream<GenerationEvent, GenerationEvent> {
  let held = "";
  let mode: "text" | "head" | "args" | "legacy" = "text";
  let holding = true;
  let streamed = 0;
  const mayBeCall = (text: string) =>
    syntax === "hermes"
      ? HERMES_OPEN.startsWith(text.trimStart().slice(0, HERMES_OPEN.length)) || text.includes(HERMES_OPEN)
      : mayBeToolCall(text);
  return new TransformStream<GenerationEvent, GenerationEvent>({
    transform(event, controller) {
      switch (event.type) {
        case "text": {
          held += event.text;
          for (;;) {
            if (mode === "legacy") return;
            if (mode === "args") {
              const end = held.indexOf(HERMES_CLOSE);
              if (end < 0) {
                const keep = longestStopPrefixSuffix(held, [HERMES_CLOSE]);
                if (held.length > keep)
                  controller.enqueue({
                    type: "tool_call_delta",
                    argumentsDelta: held.slice(0, held.length - keep),
                  });
                held = held.slice(held.length - keep);
                return;
              }
              if (end > 0)
                controller.enqueue({ type: "tool_call_delta", argumentsDelta: held.slice(0, end) });
              controller.enqueue({ type: "tool_call_end" });
              held = held.slice(end + HERMES_CLOSE.length);
              mode = "text";
              holding = true;
              continue;
            }
            if (mode === "head") {
              const head = matchHead(held);
              if (head.state === "partial") return;
              if (head.state === "fail") {
                mode = "legacy";
                return;
              }
              controller.enqueue({
                type: "tool_call_start",
                id: `${idPrefix}${streamed++}`,
                name: head.name,
              });
              held = head.rest;
              mode = "args";
              continue;
            }
            if (holding) {
              if (mayBeCall(held)) {
                const at = held.indexOf(HERMES_OPEN);
                if (at >= 0 && held.slice(0, at).trim() === "") {
                  held = held.slice(at);
                  mode = "head";
                  continue;
                }
                if (at < 0) return;
              }
              holding = false;
            }
            const at = held.indexOf(HERMES_OPEN);
            if (at >= 0) {
              if (at > 0) controller.enqueue({ type: "text", text: held.slice(0, at) });
              held = held.slice(at);
              mode = "head";
              continue;
            }
            // Keep a tail that may grow into "<tool_call>" with the next piece.
            const keep = longestStopPrefixSuffix(held, [HERMES_OPEN]);
            if (held.length > keep)
              controller.enqueue({ type: "text", text: held.slice(0, held.length - keep) });
            held = held.slice(held.length - keep);
            return;
          }
        }
        case "done": {
          if (mode === "args") {
            // Cut mid-call: what was generated, and the finish reason says so.
            if (held) controller.enqueue({ type: "tool_call_delta", argumentsDelta: held });
            controller.enqueue({ type: "tool_call_end" });
            controller.enqueue(event);
            return;
          }
          const rest =
            mode === "head" || mode === "legacy" || syntax !== "hermes" || held.includes(HERMES_OPEN)
              ? held
              : "";
          const parsed = rest
            ? parseToolCalls(rest, streamed === 0 ? idPrefix : `${idPrefix}${streamed}_`)
            : { content: held, calls: [] };
          const calls = streamed + parsed.calls.length;
          const content = streamed > 0 && parsed.calls.length === 0 ? parsed.content.trim() : parsed.content;
          if (content) controller.enqueue({ type: "text", text: content });
          if (parsed.calls.length > 0) controller.enqueue({ type: "tool_calls", calls: parsed.calls });
          controller.enqueue(
            calls > 0 && event.finishReason === "stop" && event.stopSequence === undefined
              ? { ...event, finishReason: "tool_calls" }
              : event,
          );
          return;
        }
        case "tool_calls":
        case "tool_call_start":
        case "tool_call_delta":
        case "tool_call_end":
        case "start":
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
