/**
 * A non-streamed chat completion as an HTTP answer. One that is ready
 * within `heartbeatMs` is answered as usual: the completion, or the error
 * with its status. A longer one gets status and headers once `heartbeatMs`
 * has passed, then a space every `heartbeatMs` while it is generated (JSON
 * allows whitespace before a value), then the completion.
 *
 * Why: a long generation would leave the connection silent for minutes, and
 * idle timers on the way cut it (Bun's fetch, which the gateway uses, gives
 * up after 5 minutes of silence; proxies and load balancers often after
 * one). The heartbeat keeps the connection provably alive, so a silent one
 * still means a dead neuron.
 *
 * What fails after the headers (a device fault mid-generation) cannot change
 * the status any more: the body is then the error envelope instead of a
 * completion, which the gateway reads as the error it is.
 */
import type { NeuronCompletionExtensions, NeuronCompletionTimings } from "../core/neuron-api.ts";
import { type CanonicalStreamPart, carriesToken } from "../dialects/canonical.ts";
import { collectCanonicalStream } from "../dialects/collect-stream.ts";
import { type OpenAIChatCompletion, renderOpenAIResponse } from "../dialects/openai/render-response.ts";
import { neuronError } from "./error-body.ts";

/** Between heartbeats: well under the one-minute idle timeouts common in proxies. */
export const COMPLETION_HEARTBEAT_MS = 15_000;

export interface CompletionBodyOptions {
  /** performance.now() when the request arrived: token times count from it. */
  receivedAt: number;
  /** The request's signal: once it aborts, nobody reads the answer. */
  signal: AbortSignal;
  heartbeatMs?: number;
  /**
   * How an answer that outlived its first heartbeat ended: its error when
   * generation failed after the headers, `cancelled` when the client left.
   * (Earlier outcomes are the caller's: the promise resolves or rejects.)
   */
  onEnd?: (outcome: { error?: unknown; cancelled?: boolean }) => void;
}

const utf8 = new TextEncoder();
const SPACE = utf8.encode(" ");

/** The completion, with the token times the gateway reads (NeuronCompletionTimings). */
async function collectTimed(
  parts: ReadableStream<CanonicalStreamPart>,
  receivedAt: number,
): Promise<OpenAIChatCompletion & NeuronCompletionExtensions> {
  let tokens: NeuronCompletionTimings | undefined;
  const response = await collectCanonicalStream(parts, (part) => {
    if (!carriesToken(part)) return;
    const at = performance.now() - receivedAt;
    tokens ??= { first_token_ms: at, last_token_ms: at };
    tokens.last_token_ms = at;
  });
  const body: OpenAIChatCompletion & NeuronCompletionExtensions = renderOpenAIResponse(response, {
    reportStopSequence: true,
  });
  if (tokens !== undefined) body.cortex = tokens;
  return body;
}

/** Resolves when the answer is ready or its first heartbeat is due; rejects with an error that came before. */
export function completionResponse(
  parts: ReadableStream<CanonicalStreamPart>,
  options: CompletionBodyOptions,
): Promise<Response> {
  const heartbeatMs = options.heartbeatMs ?? COMPLETION_HEARTBEAT_MS;
  const completion = collectTimed(parts, options.receivedAt);
  return new Promise<Response>((resolve, reject) => {
    const timer = setTimeout(() => resolve(heartbeatResponse(completion, options, heartbeatMs)), heartbeatMs);
    // Once the timer has fired these settle nothing: heartbeatResponse reports the outcome.
    completion.then(
      (body) => {
        clearTimeout(timer);
        resolve(new Response(JSON.stringify(body), { headers: JSON_HEADERS }));
      },
      (error: unknown) => {
        clearTimeout(timer);
        reject(error);
      },
    );
  });
}

const JSON_HEADERS = { "content-type": "application/json" } as const;

function heartbeatResponse(
  completion: Promise<unknown>,
  options: CompletionBodyOptions,
  heartbeatMs: number,
): Response {
  let heartbeat: ReturnType<typeof setInterval> | undefined;
  let open = true;
  const stop = () => {
    open = false;
    clearInterval(heartbeat);
  };
  const body = new ReadableStream<Uint8Array>({
    start(controller) {
      controller.enqueue(SPACE);
      heartbeat = setInterval(() => {
        if (open) controller.enqueue(SPACE);
      }, heartbeatMs);
      completion.then(
        (answer) => {
          if (!open) return;
          stop();
          controller.enqueue(utf8.encode(JSON.stringify(answer)));
          controller.close();
          options.onEnd?.({});
        },
        (error: unknown) => {
          const wasOpen = open;
          stop();
          if (!wasOpen || options.signal.aborted) {
            options.onEnd?.({ cancelled: true });
            return;
          }
          controller.enqueue(utf8.encode(JSON.stringify(neuronError(error).body)));
          controller.close();
          options.onEnd?.({ error });
        },
      );
    },
    cancel() {
      // The client went away; its request's signal cancels the sequence.
      stop();
    },
  });
  return new Response(body, { headers: JSON_HEADERS });
}
