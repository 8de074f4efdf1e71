/**
 * The gateway's single relay stage: the client's SSE body reads upstream
 * only when the client reads (beyond the first batch, which the upstream
 * call holds already), cancelling it cancels upstream (and is reported as a
 * cancelled request), an answer that has all arrived is one complete body,
 * and a non-streamed answer is collected from the same source.
 */
import { describe, expect, test } from "bun:test";
import type { CanonicalStreamPart } from "../../src/dialects/canonical.ts";
import { OpenAIStreamEncoder } from "../../src/dialects/openai/stream-encoder.ts";
import { type StreamObservation, StreamObserver } from "../../src/gateway/metrics/stream-observer.ts";
import { observeParts, type PartSource, relaySse } from "../../src/gateway/part-source.ts";

function scripted(batches: CanonicalStreamPart[][]) {
  const state = { reads: 0, cancelled: undefined as unknown };
  const source: PartSource = {
    get done() {
      return state.reads >= batches.length;
    },
    async read() {
      const batch = batches[state.reads];
      state.reads += 1;
      return batch;
    },
    async cancel(reason) {
      state.cancelled = reason ?? "cancelled";
    },
  };
  return { source, state };
}

const BATCHES: CanonicalStreamPart[][] = [
  [{ type: "message_start", id: "c1", model: "m", created: 1 }],
  [{ type: "text_delta", text: "Hello" }],
  [{ type: "tool_call_end", index: 0 }],
  [
    { type: "text_delta", text: " world" },
    { type: "finish", reason: "stop" },
  ],
  [{ type: "usage", usage: { inputTokens: 2, outputTokens: 2 } }],
];

function observed(batches: CanonicalStreamPart[][]) {
  const { source, state } = scripted(batches);
  const seen: StreamObservation[] = [];
  const parts = observeParts(source, new StreamObserver(0, (observation) => seen.push(observation)));
  return { parts, state, seen };
}

/** The body relaySse makes for a stream still going. */
async function streamed(parts: PartSource) {
  const body = await relaySse(parts, new OpenAIStreamEncoder({ includeUsage: false }));
  if (body instanceof Uint8Array) throw new Error("expected a stream, got a complete body");
  return body.getReader();
}

describe("relaySse", () => {
  test("reads past the first batch only when the client reads, and skips batches that render nothing", async () => {
    const { parts, state, seen } = observed(BATCHES);
    const reader = await streamed(parts);
    const decoder = new TextDecoder();
    await Bun.sleep(5);
    expect(state.reads).toBe(1);
    const first = await reader.read();
    expect(decoder.decode(first.value)).toContain('"role":"assistant"');
    await Bun.sleep(5);
    expect(state.reads).toBe(1);
    const second = await reader.read();
    expect(decoder.decode(second.value)).toContain("Hello");
    await Bun.sleep(5);
    expect(state.reads).toBe(2);
    let text = "";
    for (let next = await reader.read(); !next.done; next = await reader.read())
      text += decoder.decode(next.value);
    expect(text).toContain(" world");
    expect(text.endsWith("data: [DONE]\n\n")).toBe(true);
    expect(seen).toHaveLength(1);
    expect(seen[0]).toMatchObject({ finishReason: "stop", cancelled: false, usage: { outputTokens: 2 } });
  });

  test("a client that goes away cancels upstream and is reported as cancelled", async () => {
    const { parts, state, seen } = observed(BATCHES);
    const reader = await streamed(parts);
    await reader.read();
    await reader.cancel("gone");
    expect(state.cancelled).toBe("gone");
    expect(seen).toEqual([expect.objectContaining({ cancelled: true })]);
    expect(state.reads).toBe(1);
  });

  test("an error part becomes the dialect's error event, with no [DONE]", async () => {
    const { parts } = observed([
      BATCHES[0] as CanonicalStreamPart[],
      [
        {
          type: "error",
          error: { code: "upstream_error", message: "node n failed mid-stream", status: 502 },
        },
      ],
    ]);
    const text = await new Response(
      await relaySse(parts, new OpenAIStreamEncoder({ includeUsage: false })),
    ).text();
    expect(text).toContain("node n failed mid-stream");
    expect(text).not.toContain("[DONE]");
  });

  test("an answer that has all arrived is one complete body, read from upstream no further", async () => {
    const { parts, state, seen } = observed([BATCHES.flat()]);
    const body = await relaySse(parts, new OpenAIStreamEncoder({ includeUsage: false }));
    expect(seen).toHaveLength(1);
    expect(state.reads).toBe(2);
    expect(body).toBeInstanceOf(Uint8Array);
    const text = await new Response(body).text();
    expect(text).toContain('"role":"assistant"');
    expect(text).toContain(" world");
    expect(text.endsWith("data: [DONE]\n\n")).toBe(true);
  });
});
