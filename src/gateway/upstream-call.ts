/**
 * One chat call to a neuron: streamed, as a pull-based source of canonical
 * parts (callNeuronChat), or not, as the whole answer (callNeuronCompletion).
 *
 * A streamed call is "committed" only once the first event has arrived:
 * anything that fails before that (connection refused, 5xx, a neuron dying
 * before its first byte) throws a retryable CortexError so the router can
 * fail over to another node. After that, failures become an `error` part at
 * the end of the stream, which each dialect renders as its own mid-stream
 * error event. Cancelling the returned source cancels the HTTP request, which
 * cancels the sequence on the neuron; for a non-streamed call the request's
 * signal does the same.
 */
import { CortexError } from "../core/errors.ts";
import type { NeuronCompletionTimings } from "../core/neuron-api.ts";
import type { CanonicalResponse, CanonicalStreamPart } from "../dialects/canonical.ts";
import type { UpstreamChatBody } from "../dialects/openai/render-request.ts";
import { parseUpstreamResponse, UpstreamSseDecoder } from "../dialects/openai/upstream.ts";
import { errorFromResponse } from "./neuron-client.ts";
import { NOT_YET, type PartSource } from "./part-source.ts";
import { boundReason } from "./upstream-guard.ts";

export interface UpstreamTarget {
  node: string;
  /** Full URL of the neuron's /v1/chat/completions. */
  url: string;
  /** Auth headers for that neuron. */
  headers: Readonly<Record<string, string>>;
}

export interface UpstreamCall {
  target: UpstreamTarget;
  body: UpstreamChatBody;
  requestId: string;
  signal: AbortSignal;
  /** A read from the node starts (`true`) or returns (`false`): the read timeout's clock (upstream-guard.ts). */
  onRead?: (pending: boolean) => void;
}

/**
 * Reads one chunk with `onRead` told; a read ended by one of our bounds
 * (upstream-guard.ts) rejects with that bound's CortexError.
 */
export async function readUpstream<T>(call: UpstreamCall, reader: { read(): Promise<T> }): Promise<T> {
  call.onRead?.(true);
  try {
    return await reader.read();
  } catch (error) {
    throw boundReason(call.signal) ?? error;
  } finally {
    call.onRead?.(false);
  }
}

/**
 * The fetch of a chat. Callers await fetch themselves and hand a non-200
 * answer to `failedAnswer` (an extra async frame here cost a promise hop per
 * request on the hot path).
 */
export function chatRequest(call: UpstreamCall): RequestInit {
  return {
    method: "POST",
    headers: upstreamHeaders(call.target.headers, call.requestId),
    body: JSON.stringify(call.body),
    signal: call.signal,
    // Upstream bytes are relayed as they arrive; never decompress-and-buffer.
    decompress: false,
  } as RequestInit;
}

/** Whether the neuron took the chat (status 200, a body to read). */
export function accepted(response: Response): boolean {
  return response.status === 200 && response.body !== null;
}

/**
 * A refused chat as the error to throw: `errorFromResponse` (retryable where
 * the neuron's code is). Network errors never get here: they propagate from
 * fetch as they are, and the router's classifier marks the node down.
 */
export async function failedAnswer(node: string, response: Response): Promise<CortexError> {
  const text = await response.text().catch(() => "");
  let body: unknown = text;
  try {
    body = JSON.parse(text);
  } catch {
    // not JSON: parseUpstreamError falls back to the status
  }
  return errorFromResponse(node, response.status, body, response.headers.get("retry-after"));
}

/** A non-streamed answer and the token times the neuron reported. */
export interface UpstreamCompletion {
  response: CanonicalResponse;
  /** ms since the request was sent (its own clock: performance.now()). */
  sentAt: number;
  /** ms since the neuron received the request; undefined when it generated nothing or did not say. */
  tokens: { firstMs: number; lastMs: number } | undefined;
}

/**
 * A non-streamed chat (`body.stream` false): the whole answer, read in one
 * go (the neuron sends whitespace while it generates, to keep the connection
 * alive: src/neuron/chat-answer.ts). Nothing reaches the client before
 * it is complete, so every failure, also one while the body arrives or an
 * error envelope in place of the completion, is "before the first byte" and
 * may be retried on another node.
 */
export async function callNeuronCompletion(call: UpstreamCall): Promise<UpstreamCompletion> {
  const sentAt = performance.now();
  const node = call.target.node;
  const answer = await fetchUpstream(call);
  // The status alone: `response.body` would make a JS stream that `text()` does not need.
  if (answer.status !== 200) throw await failedAnswer(node, answer);
  let text: string;
  try {
    text = await readText(call, answer);
  } catch (error) {
    const bound = boundReason(call.signal);
    if (bound !== undefined) throw bound;
    throw new CortexError("upstream_error", `node ${node} failed mid-answer: ${describe(error)}`, {
      cause: error,
      details: { node },
    });
  }
  // A 200 without a body: refused as `accepted` refuses one on the streamed path.
  if (text === "") throw errorFromResponse(node, answer.status, "", answer.headers.get("retry-after"));
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    throw new CortexError("upstream_error", `node ${node} answered with a completion that is not JSON`, {
      details: { node },
    });
  }
  // A neuron that failed after its headers (src/neuron/chat-answer.ts) sends its error envelope instead.
  if (typeof json === "object" && json !== null && "error" in json && !("choices" in json))
    throw errorFromResponse(node, 502, json);
  let response: CanonicalResponse;
  try {
    response = parseUpstreamResponse(json);
  } catch (error) {
    throw new CortexError("upstream_error", `node ${node}: ${describe(error)}`, {
      cause: error,
      details: { node },
    });
  }
  // Read when present (a neuron always sends it once a token was generated); a malformed one is ignored.
  const cortex = (json as { cortex?: unknown }).cortex;
  return { response, sentAt, tokens: cortex === undefined ? undefined : tokenTimes(cortex) };
}

/**
 * The neuron's token times (NeuronCompletionTimings) checked by hand: a zod
 * parse per answer showed in the profile, and a malformed value is only
 * ignored, so there is no error message to keep.
 */
function tokenTimes(cortex: unknown): { firstMs: number; lastMs: number } | undefined {
  if (typeof cortex !== "object" || cortex === null) return undefined;
  const { first_token_ms: firstMs, last_token_ms: lastMs } = cortex as Partial<NeuronCompletionTimings>;
  return typeof firstMs === "number" && firstMs >= 0 && typeof lastMs === "number" && lastMs >= 0
    ? { firstMs, lastMs }
    : undefined;
}

/**
 * The fetch, with the read timeout counting while the headers are awaited;
 * a fetch ended by one of our bounds rejects with that bound's CortexError.
 */
export async function fetchUpstream(call: UpstreamCall): Promise<Response> {
  call.onRead?.(true);
  try {
    return await fetch(call.target.url, chatRequest(call));
  } catch (error) {
    throw boundReason(call.signal) ?? error;
  } finally {
    call.onRead?.(false);
  }
}

/**
 * A whole body as text. An answer with a Content-Length was ready when its
 * headers went out (the neuron sends heartbeats only in a chunked answer), so
 * it is read natively in one go: a JS stream reader per request cost more CPU
 * than the rest of the gateway's work on the answer. A chunked one is read
 * chunk by chunk, so the read timeout sees the neuron's heartbeats.
 */
async function readText(call: UpstreamCall, answer: Response): Promise<string> {
  if (answer.headers.get("content-length") !== null) return readUpstream(call, { read: () => answer.text() });
  const reader = (answer.body as ReadableStream<Uint8Array>).getReader();
  const decoder = new TextDecoder();
  let text = "";
  for (;;) {
    const chunk = await readUpstream(call, reader);
    if (chunk.done) return text + decoder.decode();
    text += decoder.decode(chunk.value, { stream: true });
  }
}

/** A streamed chat (`body.stream` true), as canonical parts (see the top of this file). */
export async function callNeuronChat(call: UpstreamCall): Promise<PartSource> {
  const { target } = call;
  const response = await fetchUpstream(call);
  if (!accepted(response)) throw await failedAnswer(target.node, response);
  const body = response.body as ReadableStream<Uint8Array>;
  const reader = body.getReader();
  const decoder = new UpstreamSseDecoder(call.body.model);
  let ended = false;
  // One read of the body → its parts (often none: a chunk may end mid-event).
  const decode = (chunk: Awaited<ReturnType<typeof reader.read>>): CanonicalStreamPart[] => {
    if (chunk.done) ended = true;
    const parts = chunk.done ? decoder.end() : decoder.push(chunk.value);
    if (!ended && decoder.done) {
      // `[DONE]` (or an error) said it all: end now instead of waiting for the end of the
      // bytes, so the last frames and the end of the client's answer leave together.
      ended = true;
      drain(reader).catch(() => {});
    }
    return parts;
  };
  // Reads until the bytes yield parts (one upstream chunk usually holds whole events).
  const next = async (): Promise<CanonicalStreamPart[] | undefined> => {
    while (!ended) {
      const chunk = await readUpstream(call, reader);
      if (ended) return undefined;
      const parts = decode(chunk);
      if (parts.length > 0) return parts;
    }
    return undefined;
  };
  let pending: CanonicalStreamPart[] | undefined;
  try {
    // The same loop as next(), inline: one promise hop less per request.
    while (pending === undefined && !ended) {
      const parts = decode(await readUpstream(call, reader));
      if (parts.length > 0) pending = parts;
    }
  } catch (error) {
    reader.cancel().catch(() => {});
    if (error instanceof CortexError) throw error;
    throw new CortexError(
      "upstream_error",
      `node ${target.node} failed before its first byte: ${describe(error)}`,
      {
        cause: error,
      },
    );
  }
  if (pending === undefined)
    throw new CortexError("upstream_error", `node ${target.node} closed the stream before its first event`);
  return {
    get done() {
      return pending === undefined && ended;
    },
    async read() {
      if (pending !== undefined) {
        const batch = pending;
        pending = undefined;
        return batch;
      }
      try {
        return await next();
      } catch (error) {
        if (ended) return undefined;
        // The node died mid-stream (or a bound ended it): end with an error part the dialect can render.
        ended = true;
        reader.cancel().catch(() => {});
        const wire = (
          error instanceof CortexError
            ? error
            : new CortexError("upstream_error", `node ${target.node} failed mid-stream: ${describe(error)}`)
        ).toWire();
        return [{ type: "error", error: wire }];
      }
    },
    readNow() {
      if (pending !== undefined) {
        const batch = pending;
        pending = undefined;
        return batch;
      }
      return ended ? undefined : NOT_YET;
    },
    cancel(reason) {
      ended = true;
      pending = undefined;
      return reader.cancel(reason);
    },
  };
}

/** The neuron's auth headers plus ours, built without an object spread (a hot path). */
function upstreamHeaders(auth: Readonly<Record<string, string>>, requestId: string): Record<string, string> {
  const headers: Record<string, string> = { "content-type": "application/json", "x-request-id": requestId };
  for (const name in auth) headers[name] = auth[name] as string;
  return headers;
}

/** Bytes a neuron may still send after `[DONE]` (normally none) before the drain gives up. */
const DRAIN_LIMIT_BYTES = 64 * 1024;

/**
 * Reads what is left of a finished answer (the end of the chunked body) in
 * the background, so its keep-alive connection goes back to the pool; a
 * neuron that keeps talking after `[DONE]` is cut off.
 */
export async function drain(reader: ByteReader): Promise<void> {
  let left = DRAIN_LIMIT_BYTES;
  for (;;) {
    const chunk = await reader.read();
    if (chunk.done) return;
    left -= chunk.value?.byteLength ?? 0;
    if (left < 0) return reader.cancel();
  }
}

interface ByteReader {
  read(): Promise<{ done: boolean; value?: { byteLength: number } | undefined }>;
  cancel(reason?: unknown): Promise<void>;
}

export function describe(error: unknown): string {
  if (error instanceof Error) {
    const code = "code" in error && error.code ? String(error.code) : "";
    return code === "" || error.message.startsWith(code) ? error.message : `${code}: ${error.message}`;
  }
  return String(error);
}
