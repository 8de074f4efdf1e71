/**
 * A pull-based source of canonical parts, relayed as the client's SSE.
 *
 * This is the request path's only stream machinery: each pull reads the
 * neuron's bytes once, and parsing, decoding, observing and encoding run
 * synchronously on them (pure state machines from src/dialects), where a
 * chain of TransformStreams paid promise hops per part per layer and was the
 * gateway's largest cost at high request rates. Backpressure and cancel still
 * come from pulling: beyond the first batch (which the upstream call holds
 * already, to commit to a node), nothing is read from the neuron before the
 * client asks, and cancelling the client's stream cancels the neuron request.
 */
import type { CanonicalStreamPart } from "../dialects/canonical.ts";
import type { StreamObserver } from "./metrics/stream-observer.ts";

/** What `readNow` says when only `read` can tell what comes next. */
export const NOT_YET: unique symbol = Symbol("not yet");

export interface PartSource {
  /**
   * The next parts, in order (never an empty batch), or undefined once the
   * stream has ended. Failures arrive as an `error` part, not a rejection.
   * One read at a time.
   */
  read(): Promise<CanonicalStreamPart[] | undefined>;
  /**
   * `read` without waiting: the next parts when they are in hand already,
   * undefined when the stream has ended, NOT_YET otherwise. An answer that
   * has all arrived is relayed without a promise hop per read (each one
   * showed in the request rate).
   */
  readNow(): CanonicalStreamPart[] | undefined | typeof NOT_YET;
  /**
   * True when the next read resolves undefined without waiting on upstream
   * (the upstream said all it will, or the source was cancelled).
   */
  readonly done: boolean;
  /** Stops reading and cancels the upstream request; later reads end. */
  cancel(reason?: unknown): Promise<void>;
}

/** What a dialect's stream encoder offers (OpenAIStreamEncoder, AnthropicStreamEncoder). */
export interface SseEncoder {
  push(part: CanonicalStreamPart): string[];
  end(): string[];
}

/** `source`, with every part shown to `observer` and its end, cancel or failure reported. */
export function observeParts(source: PartSource, observer: StreamObserver): PartSource {
  const seen = (batch: CanonicalStreamPart[] | undefined) => {
    if (batch === undefined) observer.end();
    else for (const part of batch) observer.see(part);
    return batch;
  };
  return {
    get done() {
      return source.done;
    },
    async read() {
      let batch: CanonicalStreamPart[] | undefined;
      try {
        batch = await source.read();
      } catch (error) {
        observer.fail();
        throw error;
      }
      return seen(batch);
    },
    readNow() {
      const batch = source.readNow();
      return batch === NOT_YET ? batch : seen(batch);
    },
    cancel(reason) {
      observer.cancel();
      return source.cancel(reason);
    },
  };
}

const utf8 = new TextEncoder();

interface Frames {
  text: string;
  ended: boolean;
}

/**
 * Encodes one batch (the end, for undefined) after `text`; `send` says the
 * frames should leave now: at the end (the last frames and the end leave
 * together), or when there is text and the source may have more (a batch
 * that renders nothing, like tool_call_end or usage the client did not ask
 * for, is no reason to stop).
 */
function encodeStep(
  source: PartSource,
  encoder: SseEncoder,
  batch: CanonicalStreamPart[] | undefined,
  text: string,
): Frames & { send: boolean } {
  if (batch === undefined) {
    for (const frame of encoder.end()) text += frame;
    return { text, ended: true, send: true };
  }
  for (const part of batch) for (const frame of encoder.push(part)) text += frame;
  return { text, ended: false, send: text !== "" && !source.done };
}

/** Encodes what the source has in hand, after `text`, until frames should leave or only a read can go on (`wait`). */
function framesInHand(source: PartSource, encoder: SseEncoder, text: string): Frames & { wait: boolean } {
  for (;;) {
    const batch = source.readNow();
    if (batch === NOT_YET) return { text, ended: false, wait: true };
    const step = encodeStep(source, encoder, batch, text);
    if (step.send) return { text: step.text, ended: step.ended, wait: false };
    text = step.text;
  }
}

/** The next frames to send, reading from upstream only when nothing more is in hand. */
async function nextFrames(source: PartSource, encoder: SseEncoder): Promise<Frames> {
  let text = "";
  for (;;) {
    const inHand = framesInHand(source, encoder, text);
    if (!inHand.wait || inHand.text !== "") return { text: inHand.text, ended: inHand.ended };
    const step = encodeStep(source, encoder, await source.read(), inHand.text);
    if (step.send) return { text: step.text, ended: step.ended };
    text = step.text;
  }
}

/**
 * The client's SSE body. The first batch (in hand already: the upstream call
 * reads it before committing) is rendered before the body is made; when the
 * source is done by then, the body is those bytes, complete, which Bun sends
 * as one write. Otherwise it is a stream that starts with them and reads the
 * later batches one per pull (high-water mark 0), so nothing more is read
 * from upstream before the client asks for it.
 */
export async function relaySse(
  source: PartSource,
  encoder: SseEncoder,
): Promise<ReadableStream<Uint8Array> | Uint8Array> {
  let head: Frames;
  try {
    const inHand = framesInHand(source, encoder, "");
    head = inHand.wait && inHand.text === "" ? await nextFrames(source, encoder) : inHand;
  } catch (error) {
    await source.cancel(error).catch(() => {});
    throw error;
  }
  // Complete already: plain bytes cost Bun less than a stream that is closed at once (~5 % of
  // the rate in bench/gateway-overhead.ts).
  if (head.ended) return utf8.encode(head.text);
  let cancelled = false;
  return new ReadableStream<Uint8Array>(
    {
      start(controller) {
        if (head.text !== "") controller.enqueue(utf8.encode(head.text));
      },
      async pull(controller) {
        try {
          // A pull that enqueues nothing is not called again: nextFrames reads until it has text.
          const { text, ended } = await nextFrames(source, encoder);
          if (cancelled) return;
          if (text !== "") controller.enqueue(utf8.encode(text));
          if (ended) controller.close();
        } catch (error) {
          if (cancelled) return;
          cancelled = true;
          await source.cancel(error).catch(() => {});
          controller.error(error);
        }
      },
      cancel(reason) {
        cancelled = true;
        return source.cancel(reason);
      },
    },
    { highWaterMark: 0 },
  );
}
