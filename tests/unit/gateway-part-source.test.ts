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
import { NOT_YET, observeParts, type PartSource, relaySse } from "../../src/gateway/part-source.ts";

/**
 * An upstream of `batches`; the first `inHand` of them are in hand already
 * (readNow gives them), the rest only come from read().
 */
function scripted(batches: CanonicalStreamPart[][], inHand = 0, log: string[] = []) {
  const state = { reads: 0, taken: 0, cancelled: undefined as unknown };
  const source: PartSource = {
    get done() {
      return state.taken >= batches.length;
    },
    async read() {
      state.reads += 1;
      log.push("upstream read");
      const batch = batches[state.taken];
      state.taken += 1;
      return batch;
    },
    readNow() {
      if (state.taken >= batches.length) return undefined;
      if (state.taken >= inHand) return NOT_YET;
      const batch = batches[state.taken];
      state.taken += 1;
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

function observed(batches: CanonicalStreamPart[][], inHand = 0, log: string[] = []) {
  const { source, state } = scripted(batches, inHand, log);
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
    // Reads in the order they happen: an upstream read ahead of the client would show up as an
    // "upstream read" before the client's next "client read", whenever it came.
    const log: string[] = [];
    const { parts, seen } = observed(BATCHES, 0, log);
    const reader = await streamed(parts);
    const decoder = new TextDecoder();
    const clientRead = () => {
      log.push("client read");
      return reader.read();
    };
    const first = await clientRead();
    expect(decoder.decode(first.value)).toContain('"role":"assistant"');
    const second = await clientRead();
    expect(decoder.decode(second.value)).toContain("Hello");
    const third = await clientRead();
    expect(decoder.decode(third.value)).toContain(" world");
    expect(log).toEqual([
      "upstream read", // the first batch, before the body exists
      "client read", // served from the first batch
      "client read",
      "upstream read",
      "client read",
      "upstream read", // tool_call_end renders nothing: read on
      "upstream read",
    ]);
    let text = "";
    for (let next = await reader.read(); !next.done; next = await reader.read())
      text += decoder.decode(next.value);
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
    // One read for the batch; that the source is done then is known without another.
    expect(state.reads).toBe(1);
    expect(body).toBeInstanceOf(Uint8Array);
    const text = await new Response(body).text();
    expect(text).toContain('"role":"assistant"');
    expect(text.endsWith("data: [DONE]\n\n")).toBe(true);
  });

  test("batches in hand are encoded without a read; reading starts where they end", async () => {
    // The upstream call holds the answer's first batch; a short answer is all in it.
    const all = observed([BATCHES.flat()], 1);
    const whole = await relaySse(all.parts, new OpenAIStreamEncoder({ includeUsage: false }));
    expect(all.state.reads).toBe(0);
    expect(all.seen).toHaveLength(1);
    expect(all.seen[0]?.usage).toEqual({ inputTokens: 2, outputTokens: 2 });
    const text = await new Response(whole).text();
    expect(text.endsWith("data: [DONE]\n\n")).toBe(true);

    // Only the first batch in hand: it is sent at once, the rest waits for the client.
    const some = observed(BATCHES, 1);
    const reader = await streamed(some.parts);
    expect(some.state.reads).toBe(0);
    const first = new TextDecoder().decode((await reader.read()).value);
    expect(first).toContain('"role":"assistant"');
    expect(some.state.reads).toBe(0);
    let rest = "";
    for (let chunk = await reader.read(); !chunk.done; chunk = await reader.read())
      rest += new TextDecoder().decode(chunk.value);
    expect(rest).toContain(" world");
    expect(rest.endsWith("data: [DONE]\n\n")).toBe(true);
    expect(some.state.reads).toBeGreaterThan(0);
    expect(some.seen).toHaveLength(1);
  });
});
