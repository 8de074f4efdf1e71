import { CortexError, type WireError } from "../core/errors.ts";
import {
  assertNever,
  type CanonicalResponse,
  type CanonicalStreamPart,
  type CanonicalUsage,
  type FinishReason,
  type TextPart,
  type ThinkingPart,
  type ToolCallPart,
} from "./canonical.ts";

/** Folds a canonical stream into the response a non-streamed call would have returned. */
export class CanonicalAccumulator {
  #id = "";
  #model = "";
  #created = 0;
  #content: CanonicalResponse["content"] = [];
  #tools = new Map<number, ToolCallPart>();
  #finish: { reason: FinishReason; stopSequence?: string } | undefined;
  #usage: CanonicalUsage = { inputTokens: 0, outputTokens: 0 };
  #error: WireError | undefined;

  push(part: CanonicalStreamPart): void {
    switch (part.type) {
      case "message_start":
        this.#id = part.id;
        this.#model = part.model;
        this.#created = part.created;
        break;
      case "text_delta":
      case "thinking_delta": {
        const kind = part.type === "text_delta" ? "text" : "thinking";
        const last = this.#content.at(-1);
        if (last && last.type === kind) {
          (last as TextPart | ThinkingPart).text += part.text;
        } else {
          this.#content.push({ type: kind, text: part.text });
        }
        break;
      }
      case "tool_call_start": {
        const call: ToolCallPart = { type: "tool_call", id: part.id, name: part.name, arguments: "" };
        this.#tools.set(part.index, call);
        this.#content.push(call);
        break;
      }
      case "tool_call_delta": {
        const call = this.#tools.get(part.index);
        if (call) call.arguments += part.argumentsDelta;
        break;
      }
      case "tool_call_end":
        break;
      case "finish":
        this.#finish = part.stopSequence
          ? { reason: part.reason, stopSequence: part.stopSequence }
          : { reason: part.reason };
        break;
      case "usage":
        this.#usage = part.usage;
        break;
      case "error":
        this.#error = part.error;
        break;
      default:
        assertNever(part, "stream part");
    }
  }

  /** The whole answer; throws the stream's error if it failed or never finished. */
  result(): CanonicalResponse {
    if (this.#error) throw CortexError.fromWire(this.#error);
    if (!this.#finish) throw new CortexError("upstream_error", "upstream stream ended before it finished");
    const response: CanonicalResponse = {
      id: this.#id,
      model: this.#model,
      created: this.#created,
      content: this.#content,
      finishReason: this.#finish.reason,
      usage: this.#usage,
    };
    if (this.#finish.stopSequence !== undefined) response.stopSequence = this.#finish.stopSequence;
    return response;
  }
}

/**
 * Drains a canonical stream into one response (for clients that did not ask
 * to stream); `onPart` sees each part as it arrives.
 */
export async function collectCanonicalStream(
  parts: ReadableStream<CanonicalStreamPart>,
  onPart?: (part: CanonicalStreamPart) => void,
): Promise<CanonicalResponse> {
  const accumulator = new CanonicalAccumulator();
  for await (const part of parts) {
    onPart?.(part);
    accumulator.push(part);
  }
  return accumulator.result();
}
