/**
 * Engine generation events → canonical stream parts, and the non-streamed
 * answer folded from the same parts, so a streamed answer and a plain one
 * can never disagree.
 */
import type { CortexError } from "../core/errors.ts";
import type { CanonicalStreamPart, FinishReason } from "../dialects/canonical.ts";
import { assertNever } from "../dialects/canonical.ts";
import type { GenerationEvent } from "./engine/types.ts";

export interface StreamIdentity {
  id: string;
  model: string;
  created: number;
}

export function generationToCanonical(
  identity: StreamIdentity,
): TransformStream<GenerationEvent, CanonicalStreamPart> {
  let toolIndex = 0;
  // message_start waits for the first output (or the end), so the answer still begins at its
  // first token; it carries the prompt's size from the sequence's `start` event.
  let started = false;
  let prompt: { inputTokens: number; cachedInputTokens: number } | undefined;
  const start = (controller: TransformStreamDefaultController<CanonicalStreamPart>) => {
    if (started) return;
    started = true;
    controller.enqueue({ type: "message_start", ...identity, ...prompt });
  };
  return new TransformStream({
    flush(controller) {
      start(controller);
    },
    transform(event, controller) {
      if (event.type === "start") {
        prompt = { inputTokens: event.promptTokens, cachedInputTokens: event.cachedTokens };
        return;
      }
      start(controller);
      switch (event.type) {
        case "text":
          if (event.text !== "") controller.enqueue({ type: "text_delta", text: event.text });
          break;
        case "reasoning":
          if (event.text !== "") controller.enqueue({ type: "thinking_delta", text: event.text });
          break;
        case "tool_calls":
          for (const call of event.calls) {
            const index = toolIndex++;
            controller.enqueue({ type: "tool_call_start", index, id: call.id, name: call.function.name });
            controller.enqueue({ type: "tool_call_delta", index, argumentsDelta: call.function.arguments });
            controller.enqueue({ type: "tool_call_end", index });
          }
          break;
        case "tool_call_start":
          controller.enqueue({ type: "tool_call_start", index: toolIndex, id: event.id, name: event.name });
          break;
        case "tool_call_delta":
          controller.enqueue({
            type: "tool_call_delta",
            index: toolIndex,
            argumentsDelta: event.argumentsDelta,
          });
          break;
        case "tool_call_end":
          controller.enqueue({ type: "tool_call_end", index: toolIndex++ });
          break;
        case "done": {
          const reason: FinishReason =
            event.stopSequence === undefined ? event.finishReason : "stop_sequence";
          controller.enqueue({
            type: "finish",
            reason,
            ...(event.stopSequence === undefined ? {} : { stopSequence: event.stopSequence }),
          });
          controller.enqueue({
            type: "usage",
            usage: {
              inputTokens: event.usage.promptTokens,
              outputTokens: event.usage.completionTokens,
              cachedInputTokens: event.usage.cachedTokens,
              ...(event.usage.reasoningTokens === undefined
                ? {}
                : { reasoningTokens: event.usage.reasoningTokens }),
            },
          });
          break;
        }
        case "error":
          controller.enqueue({ type: "error", error: event.error });
          break;
        default:
          assertNever(event, "generation event");
      }
    },
  });
}

/**
 * Waits for the first event so that failures known before any output
 * (queue full, prompt too long) become an HTTP error status instead of a
 * 200 stream that fails at once. Returns a stream that replays that event.
 */
export async function peekFirst<T extends { type: string }>(
  stream: ReadableStream<T>,
  isError: (event: T) => CortexError | undefined,
  /** Events that do not count as the first (a sequence's `start`): read past and replayed. */
  passOver: (event: T) => boolean = () => false,
): Promise<ReadableStream<T>> {
  const reader = stream.getReader();
  const head: T[] = [];
  let first = await reader.read();
  while (!first.done && passOver(first.value)) {
    head.push(first.value);
    first = await reader.read();
  }
  if (!first.done) {
    const error = isError(first.value);
    if (error) {
      reader.releaseLock();
      await stream.cancel().catch(() => {});
      throw error;
    }
    head.push(first.value);
  }
  const ended = first.done;
  return new ReadableStream<T>({
    async pull(controller) {
      const held = head.shift();
      if (held !== undefined) {
        controller.enqueue(held);
        return;
      }
      if (ended) {
        controller.close();
        return;
      }
      const next = await reader.read();
      if (next.done) controller.close();
      else controller.enqueue(next.value);
    },
    cancel(reason) {
      return reader.cancel(reason);
    },
  });
}
