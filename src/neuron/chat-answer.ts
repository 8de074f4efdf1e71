/**
 * A chat's HTTP answer, streamed or not, with a heartbeat while the client
 * would otherwise hear nothing.
 *
 * An answer that is ready within `heartbeatMs` of the request (a streamed
 * one: its first token; a non-streamed one: all of it) is answered as usual:
 * the body, or the error with its status. A slower one gets status 200 and
 * its headers once `heartbeatMs` has passed, then a heartbeat every
 * `heartbeatMs` until it is ready: a space before a JSON completion (JSON
 * allows whitespace before a value), an SSE comment before a stream's first
 * event (clients and the gateway's SSE parser skip comments).
 *
 * Why: waiting in the queue, a long prompt's prefill and a non-streamed
 * generation can each leave the connection silent for minutes, and idle
 * timers on the way cut it (Bun's fetch, which the gateway uses, gives up
 * after 5 minutes of silence; proxies and load balancers often after one).
 * The heartbeat keeps the connection provably alive, so a silent one still
 * means a dead neuron.
 *
 * What fails after the headers (a device fault mid-generation, a queue wait
 * that ends in an error) cannot change the status any more: a non-streamed
 * answer is then the error envelope instead of a completion, a stream ends
 * with the error event, which the gateway reads as the error it is.
 */

import { toCortexError } from "../core/errors.ts";
import {
  type NeuronCompletionExtensions,
  type NeuronCompletionTimings,
  type NeuronStreamTrailer,
  STREAM_TRAILER_PREFIX,
} from "../core/neuron-api.ts";
import { type CanonicalStreamPart, carriesToken } from "../dialects/canonical.ts";
import { collectCanonicalStream } from "../dialects/collect-stream.ts";
import {
  type OpenAIChatCompletion,
  renderOpenAIResponse,
  renderOpenAIUsage,
} from "../dialects/openai/render-response.ts";
import { OpenAIStreamEncoder, openAIErrorEvent } from "../dialects/openai/stream-encoder.ts";
import { encodeSseComment, encodeSseJson } from "../dialects/sse/sse-parser.ts";
import { neuronError } from "./error-body.ts";

/** Between heartbeats: well under the one-minute idle timeouts common in proxies. */
export const ANSWER_HEARTBEAT_MS = 15_000;

export interface AnswerOptions {
  /** The request's signal: once it aborts, nobody reads the answer. */
  signal: AbortSignal;
  heartbeatMs?: number;
  /**
   * How an answer that outlived its first heartbeat ended: its error when it
   * failed after the headers, `cancelled` when the client left. (Earlier
   * outcomes are the caller's: the returned promise resolves or rejects.)
   */
  onEnd?: (outcome: { error?: unknown; cancelled?: boolean }) => void;
  /** The clock `receivedAt` and the token times are read on; default performance.now. */
  now?: () => number;
}

/** A chat as NeuronService.chat gives it: resolves at its first event, rejects before. */
export interface StartedChat {
  request: { includeUsage: boolean };
  parts: ReadableStream<CanonicalStreamPart>;
}

const utf8 = new TextEncoder();
const JSON_HEADERS = { "content-type": "application/json" } as const;
const SSE_HEADERS = {
  "content-type": "text/event-stream; charset=utf-8",
  "cache-control": "no-cache",
  connection: "keep-alive",
  "x-accel-buffering": "no",
} as const;

/** A non-streamed answer: the completion with its token times (NeuronCompletionTimings). */
export function completionAnswer(
  chat: Promise<StartedChat>,
  receivedAt: number,
  options: AnswerOptions,
): Promise<Response> {
  const completion = chat.then(({ parts }) => collectTimed(parts, receivedAt, options.now));
  return answer(completion, options, {
    headers: JSON_HEADERS,
    heartbeat: utf8.encode(" "),
    body: (body) => utf8.encode(JSON.stringify(body)),
    error: (error) => utf8.encode(JSON.stringify(neuronError(error).body)),
  });
}

/**
 * A streamed answer: OpenAI's SSE, with the stop sequence the gateway reads;
 * or, with `trailer` (the request's `cortex_trailer`), the stream as an
 * OpenAI client gets it, which the gateway relays as it is, plus the
 * NeuronStreamTrailer it measures the stream by (times since `receivedAt`).
 */
export function streamAnswer(
  chat: Promise<StartedChat>,
  options: AnswerOptions & { trailer?: { receivedAt: number }; reportPromptTokens?: boolean },
): Promise<Response> {
  const trailer = options.trailer;
  return answer(chat, options, {
    headers: SSE_HEADERS,
    heartbeat: utf8.encode(encodeSseComment("waiting for the first token")),
    body: ({ request, parts }) =>
      parts.pipeThrough(
        trailer === undefined
          ? sseBytes(
              new OpenAIStreamEncoder({
                includeUsage: request.includeUsage,
                reportStopSequence: true,
                reportPromptTokens: options.reportPromptTokens === true,
              }),
            )
          : trailedEncoder(request.includeUsage, trailer.receivedAt, options.now),
      ),
    error: (error) => {
      if (trailer === undefined) return utf8.encode(encodeSseJson(JSON.stringify(neuronError(error).body)));
      const cortex = toCortexError(error);
      return utf8.encode(openAIErrorEvent(cortex) + streamTrailer({ error: cortex.code }));
    },
  });
}

/**
 * Canonical parts to SSE bytes in one stage: each part's frames as one
 * chunk, encoded once (a stage of its own for the UTF-8 encoding cost a
 * pipe hop and an enqueue per token).
 */
function sseBytes(encoder: {
  push(part: CanonicalStreamPart): string[];
  end(): string[];
}): TransformStream<CanonicalStreamPart, Uint8Array> {
  const emit = (frames: string[], controller: TransformStreamDefaultController<Uint8Array>) => {
    if (frames.length > 0)
      controller.enqueue(utf8.encode(frames.length === 1 ? frames[0]! : frames.join("")));
  };
  return new TransformStream({
    transform(part, controller) {
      emit(encoder.push(part), controller);
    },
    flush(controller) {
      emit(encoder.end(), controller);
    },
  });
}

function streamTrailer(trailer: NeuronStreamTrailer): string {
  return `${STREAM_TRAILER_PREFIX}${JSON.stringify(trailer)}\n\n`;
}

/**
 * The OpenAI encoder a client would get from the gateway (no stop-sequence
 * extension, usage only when asked), with the trailer before `[DONE]`, or
 * last after an error event.
 */
function trailedEncoder(
  includeUsage: boolean,
  receivedAt: number,
  now?: () => number,
): TransformStream<CanonicalStreamPart, Uint8Array> {
  const encoder = new OpenAIStreamEncoder({ includeUsage });
  const clock = tokenClock(receivedAt, now);
  const trailer: NeuronStreamTrailer = {};
  return sseBytes({
    push(part) {
      clock.see(part);
      if (part.type === "usage") trailer.usage = renderOpenAIUsage(part.usage);
      else if (part.type === "finish") trailer.finish_reason = part.reason;
      else if (part.type === "error") trailer.error = part.error.code;
      return encoder.push(part);
    },
    end() {
      return [streamTrailer({ ...clock.timings, ...trailer }), ...encoder.end()];
    },
  });
}

async function collectTimed(
  parts: ReadableStream<CanonicalStreamPart>,
  receivedAt: number,
  now?: () => number,
): Promise<OpenAIChatCompletion & NeuronCompletionExtensions> {
  const clock = tokenClock(receivedAt, now);
  const response = await collectCanonicalStream(parts, clock.see);
  const body: OpenAIChatCompletion & NeuronCompletionExtensions = renderOpenAIResponse(response, {
    reportStopSequence: true,
  });
  if (clock.timings !== undefined) body.cortex = clock.timings;
  return body;
}

/**
 * When the first and the last generated token came, in ms since
 * `receivedAt`, for a completion's `cortex` field and a stream's trailer:
 * `see` each part; `timings` is undefined until one carried a token.
 */
function tokenClock(
  receivedAt: number,
  now: () => number = () => performance.now(),
): {
  see: (part: CanonicalStreamPart) => void;
  readonly timings: NeuronCompletionTimings | undefined;
} {
  let timings: NeuronCompletionTimings | undefined;
  return {
    see(part) {
      if (!carriesToken(part)) return;
      const at = now() - receivedAt;
      timings ??= { first_token_ms: at, last_token_ms: at };
      timings.last_token_ms = at;
    },
    get timings() {
      return timings;
    },
  };
}

interface Rendering<T> {
  headers: Record<string, string>;
  heartbeat: Uint8Array;
  body: (value: T) => Uint8Array | ReadableStream<Uint8Array>;
  /** The error as the last bytes of an answer whose status went out already. */
  error: (error: unknown) => Uint8Array;
}

/** Resolves when `ready` settles or the first heartbeat is due; rejects with an error that came before. */
function answer<T>(ready: Promise<T>, options: AnswerOptions, rendering: Rendering<T>): Promise<Response> {
  const heartbeatMs = options.heartbeatMs ?? ANSWER_HEARTBEAT_MS;
  return new Promise<Response>((resolve, reject) => {
    let late = false;
    const timer = setTimeout(() => {
      late = true;
      resolve(
        new Response(heartbeatBody(ready, options, rendering, heartbeatMs), { headers: rendering.headers }),
      );
    }, heartbeatMs);
    ready.then(
      (value) => {
        // Late: heartbeatBody renders it and reports the outcome.
        if (late) return;
        clearTimeout(timer);
        resolve(new Response(rendering.body(value), { headers: rendering.headers }));
      },
      (error: unknown) => {
        if (late) return;
        clearTimeout(timer);
        reject(error);
      },
    );
  });
}

/**
 * Heartbeats until `ready` settles, then its body (pulled as the client
 * reads, for a stream) or its error.
 */
function heartbeatBody<T>(
  ready: Promise<T>,
  options: AnswerOptions,
  rendering: Rendering<T>,
  heartbeatMs: number,
): ReadableStream<Uint8Array> {
  let heartbeat: ReturnType<typeof setInterval> | undefined;
  let open = true;
  let inner:
    | { read(): Promise<{ done: boolean; value?: Uint8Array }>; cancel(reason?: unknown): Promise<void> }
    | undefined;
  const stopBeating = () => clearInterval(heartbeat);
  const end = (outcome: { error?: unknown; cancelled?: boolean }) => {
    if (!open) return;
    open = false;
    stopBeating();
    options.onEnd?.(outcome);
  };
  // What pulls wait on: the body's reader once `ready` resolved, or undefined when the answer is complete.
  let body: Promise<typeof inner> | undefined;
  return new ReadableStream<Uint8Array>({
    start(controller) {
      controller.enqueue(rendering.heartbeat);
      heartbeat = setInterval(() => {
        if (open && inner === undefined) controller.enqueue(rendering.heartbeat);
      }, heartbeatMs);
      body = ready.then(
        (value) => {
          stopBeating();
          const rendered = rendering.body(value);
          if (!open) {
            if (!(rendered instanceof Uint8Array)) rendered.cancel().catch(() => {});
            return undefined;
          }
          if (rendered instanceof Uint8Array) {
            controller.enqueue(rendered);
            controller.close();
            end({});
            return undefined;
          }
          inner = rendered.getReader();
          return inner;
        },
        (error: unknown) => {
          if (!open) return undefined;
          if (options.signal.aborted) {
            end({ cancelled: true });
            controller.close();
            return undefined;
          }
          controller.enqueue(rendering.error(error));
          controller.close();
          end({ error });
          return undefined;
        },
      );
    },
    async pull(controller) {
      const reader = await body;
      if (reader === undefined || !open) return;
      try {
        const chunk = await reader.read();
        if (!open) return;
        if (chunk.done) {
          controller.close();
          end({});
        } else controller.enqueue(chunk.value);
      } catch (error) {
        if (!open) return;
        controller.enqueue(rendering.error(error));
        controller.close();
        end({ error });
      }
    },
    cancel(reason) {
      // The client went away; its request's signal cancels the sequence.
      end({ cancelled: true });
      inner?.cancel(reason).catch(() => {});
    },
  });
}
