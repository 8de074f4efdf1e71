/**
 * Observes a canonical stream as it passes, without buffering or re-parsing:
 * first-token time on the first content delta, decode rate from first to
 * last token, usage from the neuron's final event, and the outcome.
 */
import {
  type CanonicalResponse,
  type CanonicalStreamPart,
  type CanonicalUsage,
  carriesToken,
  type FinishReason,
} from "../../dialects/canonical.ts";

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

const performanceNow = (): number => performance.now();

/**
 * Push-style: `see` each part as it is relayed, then exactly one of `end`
 * (the stream finished), `cancel` (the client went away) or `fail` (the
 * relay broke); `onEnd` runs once, at the first of them.
 */
export class StreamObserver {
  readonly observation: StreamObservation = { cancelled: false };
  readonly #startedAt: number;
  readonly #onEnd: (observation: StreamObservation) => void;
  readonly #now: () => number;
  #ended = false;

  constructor(
    startedAt: number,
    onEnd: (observation: StreamObservation) => void,
    now: () => number = performanceNow,
  ) {
    this.#startedAt = startedAt;
    this.#onEnd = onEnd;
    this.#now = now;
  }

  see(part: CanonicalStreamPart): void {
    const observation = this.observation;
    if (carriesToken(part)) {
      this.#markToken();
      return;
    }
    switch (part.type) {
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
  }

  end(): void {
    if (this.#ended) return;
    this.#ended = true;
    this.#onEnd(this.observation);
  }

  cancel(): void {
    if (this.#ended) return;
    this.observation.cancelled = true;
    this.end();
  }

  fail(): void {
    if (this.#ended) return;
    this.observation.errorCode ??= "upstream_error";
    this.end();
  }

  #markToken(): void {
    const t = this.#now() - this.#startedAt;
    this.observation.firstTokenMs ??= t;
    this.observation.lastTokenMs = t;
  }
}

/**
 * What a non-streamed answer shows: the response itself, and the token
 * times the neuron reported (ms since it received the request, which is
 * `sentMs` after the gateway's own arrival clock: the hop between them is
 * not counted).
 */
export function observeCompletion(
  response: CanonicalResponse,
  sentMs: number,
  tokens: { firstMs: number; lastMs: number } | undefined,
): StreamObservation {
  const observation: StreamObservation = {
    cancelled: false,
    usage: response.usage,
    finishReason: response.finishReason,
  };
  if (tokens !== undefined) {
    observation.firstTokenMs = sentMs + tokens.firstMs;
    observation.lastTokenMs = sentMs + tokens.lastMs;
  }
  return observation;
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
