/**
 * A neuron's stream relayed to an OpenAI client byte for byte. When the
 * client speaks OpenAI and names the model by its id, the chunks the neuron
 * writes (asked with `cortex_trailer`) are the ones the gateway's own
 * encoder would write, so decoding and re-encoding every event is work
 * without a purpose (it was a fifth of the gateway's time per streamed
 * request in bench/gateway-overhead.ts). What the gateway needs from the
 * stream, the token times, the usage and the outcome, comes in the neuron's
 * trailer (NeuronStreamTrailer), which is cut out of the bytes.
 *
 * The same guarantees as the translating path (upstream-call.ts,
 * part-source.ts): the call commits to a node only at its first event (what
 * fails before that may go to another node); bytes are forwarded in whole
 * events, one upstream read per pull, so a slow client holds back the neuron;
 * cancelling cancels the neuron's request; a neuron that dies or closes
 * mid-stream ends the client's stream with an error event.
 */
import { CortexError } from "../core/errors.ts";
import { type NeuronStreamTrailer, STREAM_TRAILER_PREFIX } from "../core/neuron-api.ts";
import { openAIErrorEvent } from "../dialects/openai/stream-encoder.ts";
import { badUsage, toUsage } from "../dialects/openai/upstream.ts";
import type { StreamObservation } from "./metrics/stream-observer.ts";
import {
  accepted,
  describe,
  drain,
  failedAnswer,
  fetchUpstream,
  readUpstream,
  type UpstreamCall,
} from "./upstream-call.ts";

// Needles as bytes: searching with a string needle encodes it on every call.
const BLANK_LINE = Buffer.from("\n\n");
const DONE = Buffer.from("data: [DONE]\n\n");
const BLANK_DONE = Buffer.from("\n\ndata: [DONE]\n\n");
const TRAILER = Buffer.from(STREAM_TRAILER_PREFIX);
const BLANK_TRAILER = Buffer.from(`\n\n${STREAM_TRAILER_PREFIX}`);
const DATA = Buffer.from("data:");
const BLANK_DATA = Buffer.from("\n\ndata:");

// Buffer's native searches work on any Uint8Array: no Buffer view (and no `.buffer`) per chunk.
type Search = (this: Uint8Array, value: Uint8Array, byteOffset?: number) => number;
const indexOf = Buffer.prototype.indexOf as unknown as Search;
const lastIndexOf = Buffer.prototype.lastIndexOf as unknown as Search;
const toText = Buffer.prototype.toString as unknown as (
  this: Uint8Array,
  encoding: "utf8",
  start: number,
  end: number,
) => string;

function hasAt(bytes: Uint8Array, at: number, what: Uint8Array): boolean {
  if (at < 0 || at + what.length > bytes.length) return false;
  for (let i = 0; i < what.length; i++) if (bytes[at + i] !== what[i]) return false;
  return true;
}

/** Where an event starting with `event` begins in `bytes` (at 0 or right after a blank line), or -1. */
export function eventAt(bytes: Uint8Array, event: Uint8Array, blankThenEvent: Uint8Array): number {
  if (hasAt(bytes, 0, event)) return 0;
  const at = indexOf.call(bytes, blankThenEvent);
  return at === -1 ? -1 : at + 2;
}

/** The `[DONE]` event's start: the neuron writes it last, so the tail is checked before any search. */
function doneAt(bytes: Uint8Array): number {
  const tail = bytes.length - DONE.length;
  if (hasAt(bytes, tail, DONE) && (tail === 0 || hasAt(bytes, tail - 2, BLANK_LINE))) return tail;
  return eventAt(bytes, DONE, BLANK_DONE);
}

/** A trailer as far as the metrics read it; anything malformed is no trailer. */
function readTrailer(json: unknown): NeuronStreamTrailer | undefined {
  if (typeof json !== "object" || json === null) return undefined;
  const record = json as Record<string, unknown>;
  const trailer: NeuronStreamTrailer = {};
  const { first_token_ms: first, last_token_ms: last, usage, finish_reason: finish, error } = record;
  if (typeof first === "number") trailer.first_token_ms = first;
  if (typeof last === "number") trailer.last_token_ms = last;
  if (typeof finish === "string") trailer.finish_reason = finish;
  if (typeof error === "string") trailer.error = error;
  if (usage !== undefined && usage !== null) {
    if (badUsage(usage) !== undefined) return undefined;
    trailer.usage = usage as NeuronStreamTrailer["usage"];
  }
  return trailer;
}

/**
 * Pure state machine over the neuron's bytes: `push` returns the whole
 * events a chunk completes, with the trailer cut out, and keeps a partial
 * event for the next chunk. The stream has ended cleanly at `data: [DONE]`,
 * or at its end when the trailer reported an error (no `[DONE]` follows an
 * error event). Chunks are the caller's to give away: the trailer is cut out
 * in place.
 */
export class RelayScanner {
  #carry: Uint8Array | undefined;
  #trailer: NeuronStreamTrailer | undefined;
  #done = false;

  /** What the trailer said, once it was seen (a malformed one is ignored). */
  get trailer(): NeuronStreamTrailer | undefined {
    return this.#trailer;
  }

  /** True once `data: [DONE]` was seen: later bytes are ignored. */
  get done(): boolean {
    return this.#done;
  }

  push(chunk: Uint8Array): Uint8Array {
    if (this.#done) return EMPTY;
    let bytes = this.#carry === undefined ? chunk : Buffer.concat([this.#carry, chunk]);
    this.#carry = undefined;
    const done = doneAt(bytes);
    if (done !== -1) {
      this.#done = true;
      bytes = bytes.subarray(0, done + DONE.length);
    } else if (!hasAt(bytes, bytes.length - 2, BLANK_LINE)) {
      // A partial event waits for the rest.
      const cut = lastIndexOf.call(bytes, BLANK_LINE);
      const whole = cut === -1 ? 0 : cut + 2;
      this.#carry = bytes.slice(whole);
      bytes = bytes.subarray(0, whole);
    }
    return this.#cutTrailer(bytes, done === -1 ? bytes.length : done);
  }

  /** Whether the stream, now at its end, ended as the neuron meant it to. */
  endedCleanly(): boolean {
    return this.#done || this.#trailer?.error !== undefined;
  }

  /** `bytes` without the trailer event, if it is before `before`. */
  #cutTrailer(bytes: Uint8Array, before: number): Uint8Array {
    let at: number;
    if (hasAt(bytes, 0, TRAILER)) at = 0;
    else {
      // Searched backwards from `before`: the neuron writes it just before [DONE].
      const blank = lastIndexOf.call(bytes, BLANK_TRAILER, before);
      if (blank === -1) return bytes;
      at = blank + 2;
    }
    const end = indexOf.call(bytes, BLANK_LINE, at);
    try {
      this.#trailer = readTrailer(JSON.parse(toText.call(bytes, "utf8", at + TRAILER.length, end)));
    } catch {
      // not JSON: measured as a stream without a trailer
    }
    const after = end + 2;
    bytes.copyWithin(at, after);
    return bytes.subarray(0, bytes.length - (after - at));
  }
}

const EMPTY = new Uint8Array(0);
const utf8 = new TextEncoder();

/** A relayed stream, committed to its node. */
export interface RelayedStream {
  /** The first whole events (at least one `data:` event), to send at once. */
  head: Uint8Array;
  /** True when `head` is all of it. */
  readonly ended: boolean;
  /** The next whole events, or undefined at the end; a failure arrives as an error event, never a rejection. */
  read(): Promise<Uint8Array | undefined>;
  cancel(reason?: unknown): Promise<void>;
  /** How it went, for the metrics: valid once read() returned undefined. */
  readonly trailer: NeuronStreamTrailer | undefined;
  /** The error code of a failure the gateway saw itself (the node died or closed mid-stream). */
  readonly failure: string | undefined;
  /** performance.now() when the request was sent. */
  readonly sentAt: number;
}

/**
 * Sends a streamed chat for relaying (`call.body.cortex_trailer`), reading
 * until the first event: a failure before it throws (retryable where it is),
 * as callNeuronChat does.
 */
export async function callNeuronRelay(call: UpstreamCall): Promise<RelayedStream> {
  const sentAt = performance.now();
  const node = call.target.node;
  const response = await fetchUpstream(call);
  if (!accepted(response)) throw await failedAnswer(node, response);
  const reader = (response.body as ReadableStream<Uint8Array>).getReader();
  const scanner = new RelayScanner();
  let ended = false;
  let failure: string | undefined;
  let head: Uint8Array = EMPTY;
  const fail = (error: CortexError): Uint8Array => {
    ended = true;
    failure = error.code;
    reader.cancel().catch(() => {});
    return utf8.encode(openAIErrorEvent(error));
  };
  // One upstream read → its whole events; at the end of the bytes, an error event unless the neuron ended it.
  const step = (chunk: Awaited<ReturnType<typeof reader.read>>): Uint8Array => {
    if (chunk.done) {
      ended = true;
      return scanner.endedCleanly()
        ? EMPTY
        : fail(new CortexError("upstream_error", `node ${node}'s stream ended before it finished`));
    }
    const bytes = scanner.push(chunk.value);
    if (scanner.done) {
      ended = true;
      drain(reader).catch(() => {});
    }
    return bytes;
  };
  // Where the first event starts in `head`, searched again only when bytes were added.
  let first = -1;
  try {
    while (first === -1 && !ended) {
      const chunk = await readUpstream(call, reader);
      if (chunk.done) break;
      const bytes = step(chunk);
      if (bytes.byteLength === 0) continue;
      head = head.byteLength === 0 ? bytes : Buffer.concat([head, bytes]);
      first = eventAt(head, DATA, BLANK_DATA);
    }
  } catch (error) {
    reader.cancel().catch(() => {});
    if (error instanceof CortexError) throw error;
    throw new CortexError("upstream_error", `node ${node} failed before its first byte: ${describe(error)}`, {
      cause: error,
    });
  }
  if (first === -1) {
    reader.cancel().catch(() => {});
    throw new CortexError("upstream_error", `node ${node} closed the stream before its first event`);
  }
  // Heartbeat comments before the first event kept nobody waiting (nothing was sent yet): dropped.
  head = head.subarray(first);
  return {
    head,
    get ended() {
      return ended;
    },
    async read() {
      while (!ended) {
        let bytes: Uint8Array;
        try {
          bytes = step(await readUpstream(call, reader));
        } catch (error) {
          if (ended) return undefined;
          return fail(
            error instanceof CortexError
              ? error
              : new CortexError("upstream_error", `node ${node} failed mid-stream: ${describe(error)}`),
          );
        }
        if (bytes.byteLength > 0) return bytes;
      }
      return undefined;
    },
    cancel(reason) {
      ended = true;
      return reader.cancel(reason);
    },
    get trailer() {
      return scanner.trailer;
    },
    get failure() {
      return failure;
    },
    sentAt,
  };
}

/**
 * The client's body: the head, then one upstream read per pull (high-water
 * mark 0); plain bytes when the head is all of it. `end` gets the outcome
 * once: the stream's end, a cancel or a failure.
 */
export function relayBody(
  stream: RelayedStream,
  end: (outcome: { cancelled: boolean }) => void,
): Uint8Array | ReadableStream<Uint8Array> {
  if (stream.ended) {
    end({ cancelled: false });
    return stream.head;
  }
  let open = true;
  const finish = (cancelled: boolean) => {
    if (!open) return;
    open = false;
    end({ cancelled });
  };
  return new ReadableStream<Uint8Array>(
    {
      start(controller) {
        controller.enqueue(stream.head);
      },
      async pull(controller) {
        const bytes = await stream.read();
        if (!open) return;
        if (bytes !== undefined) controller.enqueue(bytes);
        if (stream.ended) {
          controller.close();
          finish(false);
        }
      },
      cancel(reason) {
        finish(true);
        return stream.cancel(reason);
      },
    },
    { highWaterMark: 0 },
  );
}

/** What a relayed stream shows the metrics: the trailer's times (ms since the neuron got the request, which is `sentMs` after the gateway's arrival clock). */
export function observeRelay(stream: RelayedStream, sentMs: number, cancelled: boolean): StreamObservation {
  const { trailer } = stream;
  const observation: StreamObservation = { cancelled };
  if (trailer?.first_token_ms !== undefined) observation.firstTokenMs = sentMs + trailer.first_token_ms;
  if (trailer?.last_token_ms !== undefined) observation.lastTokenMs = sentMs + trailer.last_token_ms;
  if (trailer?.usage !== undefined) observation.usage = toUsage(trailer.usage);
  const errorCode = stream.failure ?? trailer?.error;
  if (errorCode !== undefined) observation.errorCode = errorCode;
  return observation;
}
