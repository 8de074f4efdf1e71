/**
 * One chat call to a neuron, as a stream of canonical parts.
 *
 * The call is "committed" only once the first event has arrived: anything
 * that fails before that (connection refused, 5xx, a neuron dying before its
 * first byte) throws a retryable CortexError so the router can fail over to
 * another node. After that, failures become an `error` part at the end of the
 * stream, which each dialect renders as its own mid-stream error event.
 * Cancelling the returned stream cancels the HTTP request, which cancels the
 * sequence on the neuron.
 */
import { CortexError } from "../core/errors.ts";
import type { CanonicalStreamPart } from "../dialects/canonical.ts";
import type { UpstreamChatBody } from "../dialects/openai/render-request.ts";
import { createUpstreamDecoder } from "../dialects/openai/upstream.ts";
import { createSseParser } from "../dialects/sse/sse-parser.ts";
import { errorFromResponse } from "./neuron-client.ts";

export interface UpstreamTarget {
  node: string;
  /** Full URL of the neuron's /v1/chat/completions. */
  url: string;
  /** Auth headers for that neuron. */
  headers: Record<string, string>;
}

export interface UpstreamCall {
  target: UpstreamTarget;
  body: UpstreamChatBody;
  requestId: string;
  signal: AbortSignal;
}

export async function callNeuronChat(call: UpstreamCall): Promise<ReadableStream<CanonicalStreamPart>> {
  const { target } = call;
  // Network errors propagate as they are: the router's classifier marks the node down.
  const response = await fetch(target.url, {
    method: "POST",
    headers: { ...target.headers, "content-type": "application/json", "x-request-id": call.requestId },
    body: JSON.stringify(call.body),
    signal: call.signal,
    // Upstream bytes are relayed as they arrive; never decompress-and-buffer.
    decompress: false,
  } as RequestInit);
  if (response.status !== 200 || response.body === null) {
    const text = await response.text().catch(() => "");
    let body: unknown = text;
    try {
      body = JSON.parse(text);
    } catch {
      // not JSON: parseUpstreamError falls back to the status
    }
    throw errorFromResponse(target.node, response.status, body, response.headers.get("retry-after"));
  }
  const parts = response.body
    .pipeThrough(createSseParser())
    .pipeThrough(createUpstreamDecoder(call.body.model));
  const reader = parts.getReader();
  let first: Awaited<ReturnType<typeof reader.read>>;
  try {
    first = await reader.read();
  } catch (error) {
    throw new CortexError(
      "upstream_error",
      `node ${target.node} failed before its first byte: ${describe(error)}`,
      {
        cause: error,
      },
    );
  }
  if (first.done)
    throw new CortexError("upstream_error", `node ${target.node} closed the stream before its first event`);
  let sentFirst = false;
  let finished = false;
  return new ReadableStream<CanonicalStreamPart>(
    {
      async pull(controller) {
        if (!sentFirst) {
          sentFirst = true;
          controller.enqueue(first.value);
          return;
        }
        if (finished) return;
        try {
          const next = await reader.read();
          if (next.done) {
            controller.close();
            return;
          }
          controller.enqueue(next.value);
        } catch (error) {
          // The node died mid-stream: end with an error part the dialect can render.
          finished = true;
          const wire = new CortexError(
            "upstream_error",
            `node ${target.node} failed mid-stream: ${describe(error)}`,
          ).toWire();
          controller.enqueue({ type: "error", error: wire });
          controller.close();
        }
      },
      cancel(reason) {
        return reader.cancel(reason);
      },
    },
    { highWaterMark: 0 },
  );
}

function describe(error: unknown): string {
  if (error instanceof Error)
    return "code" in error && error.code ? `${String(error.code)}: ${error.message}` : error.message;
  return String(error);
}
