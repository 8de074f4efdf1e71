/**
 * Observes a canonical stream as it passes, without buffering or re-parsing:
 * first-token time on the first content delta, decode rate from first to
 * last token, usage from the neuron's final event, and the outcome.
 */
import type { CanonicalStreamPart, CanonicalUsage, FinishReason } from "../../dialects/canonical.ts";

export interface StreamObservation {
  /** ms since the request arrived, at the first content delta. */
  firstTokenMs?: number;
  lastTokenMs?: number;
  usage?: CanonicalUsage;
  finishReason?: FinishReason;
  errorCode?: string;
  /** The client went away before the end. */
  cancelled: boolean;
}

export function observeStream(
  parts: ReadableStream<CanonicalStreamPart>,
  startedAt: number,
  onEnd: (observation: StreamObservation) => void,
  now: () => number = () => performance.now(),
): ReadableStream<CanonicalStreamPart> {
  const observation: StreamObservation = { cancelled: false };
  const reader = parts.getReader();
  let ended = false;
  const end = () => {
    if (ended) return;
    ended = true;
    onEnd(observation);
  };
  const markToken = () => {
    const t = now() - startedAt;
    observation.firstTokenMs ??= t;
    observation.lastTokenMs = t;
  };
  const see = (part: CanonicalStreamPart) => {
    switch (part.type) {
      case "text_delta":
      case "thinking_delta":
        // An empty delta carries no token: it must not start the first-token clock.
        if (part.text === "") break;
        markToken();
        break;
      case "tool_call_start":
      case "tool_call_delta":
        markToken();
        break;
      case "usage":
        observation.usage = part.usage;
        break;
      case "finish":
        observation.finishReason = part.reason;
        break;
      case "error":
        observation.errorCode = part.error.code;
        break;
      default:
        break;
    }
  };
  return new ReadableStream<CanonicalStreamPart>(
    {
      async pull(controller) {
        try {
          const next = await reader.read();
          if (next.done) {
            end();
            controller.close();
            return;
          }
          see(next.value);
          controller.enqueue(next.value);
        } catch (error) {
          observation.errorCode ??= "upstream_error";
          end();
          controller.error(error);
        }
      },
      cancel(reason) {
        observation.cancelled = true;
        end();
        return reader.cancel(reason);
      },
    },
    { highWaterMark: 0 },
  );
}

/** Output tokens per second from first to last token, when it can be measured. */
export function decodeRate(observation: StreamObservation): number | undefined {
  const { firstTokenMs, lastTokenMs, usage } = observation;
  if (firstTokenMs === undefined || lastTokenMs === undefined || usage === undefined) return undefined;
  const seconds = (lastTokenMs - firstTokenMs) / 1000;
  if (seconds <= 0 || usage.outputTokens < 2) return undefined;
  // The first token's time is the prefill's; rate counts the tokens after it.
  return (usage.outputTokens - 1) / seconds;
}
