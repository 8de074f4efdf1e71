/**
 * Stream stage between the engine and the answer: generated text goes
 * through the model's output parser, so reasoning, answer text and tool
 * calls (their arguments as they are generated) come out as their own
 * events. Calls found make the finish `tool_calls`, unless the answer was
 * cut (`length`) or hit a stop sequence: then the last call holds what was
 * generated, and the finish says why it ended.
 */
import type { GenerationEvent } from "../engine/types.ts";
import { type OutputFormat, outputParser } from "./output-format.ts";
import type { ParsedEvent } from "./output-parser.ts";

export function outputTransform(
  idPrefix: string,
  format: OutputFormat,
): TransformStream<GenerationEvent, GenerationEvent> {
  const parser = outputParser(format);
  let calls = 0;
  let reasoningTokens = 0;
  const emit = (events: ParsedEvent[], controller: TransformStreamDefaultController<GenerationEvent>) => {
    let reasoned = false;
    for (const event of events) {
      switch (event.type) {
        case "text":
          controller.enqueue({ type: "text", text: event.text });
          break;
        case "reasoning":
          reasoned = true;
          controller.enqueue({ type: "reasoning", text: event.text });
          break;
        case "call_start":
          controller.enqueue({ type: "tool_call_start", id: `${idPrefix}${calls++}`, name: event.name });
          break;
        case "call_delta":
          controller.enqueue({ type: "tool_call_delta", argumentsDelta: event.args });
          break;
        case "call_end":
          controller.enqueue({ type: "tool_call_end" });
          break;
      }
    }
    return reasoned;
  };
  return new TransformStream<GenerationEvent, GenerationEvent>({
    transform(event, controller) {
      switch (event.type) {
        case "text":
          // One text event per sampled token: those that produced reasoning are reasoning tokens.
          if (emit(parser.push(event.text), controller)) reasoningTokens++;
          return;
        case "done": {
          emit(parser.end(), controller);
          const usage = reasoningTokens > 0 ? { ...event.usage, reasoningTokens } : event.usage;
          const finishReason =
            calls > 0 && event.finishReason === "stop" && event.stopSequence === undefined
              ? "tool_calls"
              : event.finishReason;
          controller.enqueue({ ...event, finishReason, usage });
          return;
        }
        default:
          controller.enqueue(event);
      }
    },
  });
}
