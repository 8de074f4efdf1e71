/**
 * observeStream: the request figures come from the canonical parts as they
 * pass (first-token time at the first content delta, usage from the final
 * event), with nothing read ahead of the client and nothing changed.
 */
import { describe, expect, test } from "bun:test";
import type { CanonicalStreamPart } from "../../src/dialects/canonical.ts";
import {
  decodeRate,
  observeStream,
  type StreamObservation,
} from "../../src/gateway/metrics/stream-observer.ts";

const START: CanonicalStreamPart = { type: "message_start", id: "m1", model: "tiny", created: 1 };
const text = (t: string): CanonicalStreamPart => ({ type: "text_delta", text: t });

/** A source that records how many parts were pulled from it, with a clock the test moves. */
function scripted(parts: CanonicalStreamPart[], clock: { t: number }, stepMs: number) {
  const state = { pulled: 0, cancelled: false };
  const stream = new ReadableStream<CanonicalStreamPart>(
    {
      pull(controller) {
        const next = parts[state.pulled];
        if (next === undefined) {
          controller.close();
          return;
        }
        state.pulled += 1;
        clock.t += stepMs;
        controller.enqueue(next);
      },
      cancel() {
        state.cancelled = true;
      },
    },
    { highWaterMark: 0 },
  );
  return { stream, state };
}

async function drain(stream: ReadableStream<CanonicalStreamPart>): Promise<CanonicalStreamPart[]> {
  const out: CanonicalStreamPart[] = [];
  for await (const part of stream) out.push(part);
  return out;
}

describe("observeStream", () => {
  test("passes every part through unchanged and reports once at the end", async () => {
    const clock = { t: 1000 };
    const parts: CanonicalStreamPart[] = [
      START,
      text(""),
      text("Hello"),
      text(" there"),
      text(" friend"),
      { type: "finish", reason: "stop" },
      { type: "usage", usage: { inputTokens: 7, outputTokens: 3 } },
    ];
    const { stream } = scripted(parts, clock, 10);
    const seen: StreamObservation[] = [];
    const out = await drain(
      observeStream(
        stream,
        1000,
        (o) => seen.push(o),
        () => clock.t,
      ),
    );
    expect(out).toEqual(parts);
    expect(seen).toHaveLength(1);
    // The empty delta (3rd pull, t=1020) does not count: the first token is the 3rd part at t=1030.
    expect(seen[0]).toEqual({
      firstTokenMs: 30,
      lastTokenMs: 50,
      usage: { inputTokens: 7, outputTokens: 3 },
      finishReason: "stop",
      cancelled: false,
    });
    // 2 tokens after the first, over 20 ms.
    expect(decodeRate(seen[0] as StreamObservation)).toBeCloseTo(100, 6);
  });

  test("tool calls count as output; errors are recorded", async () => {
    const clock = { t: 0 };
    const parts: CanonicalStreamPart[] = [
      START,
      { type: "tool_call_start", index: 0, id: "c1", name: "f" },
      { type: "tool_call_delta", index: 0, argumentsDelta: "{}" },
      { type: "error", error: { code: "upstream_error", message: "boom", status: 502 } },
    ];
    const { stream } = scripted(parts, clock, 5);
    let seen: StreamObservation | undefined;
    await drain(
      observeStream(
        stream,
        0,
        (o) => (seen = o),
        () => clock.t,
      ),
    );
    expect(seen).toMatchObject({ firstTokenMs: 10, lastTokenMs: 15, errorCode: "upstream_error" });
    expect(seen?.usage).toBeUndefined();
  });

  test("reads nothing ahead of its consumer", async () => {
    const clock = { t: 0 };
    const { stream, state } = scripted([START, text("a"), text("b"), text("c")], clock, 1);
    const reader = observeStream(
      stream,
      0,
      () => {},
      () => clock.t,
    ).getReader();
    await reader.read();
    await Bun.sleep(5);
    expect(state.pulled).toBe(1);
    await reader.read();
    await Bun.sleep(5);
    expect(state.pulled).toBe(2);
    await reader.cancel();
  });

  test("a client that goes away is reported as cancelled, and upstream is cancelled", async () => {
    const clock = { t: 0 };
    const { stream, state } = scripted([START, text("a"), text("b")], clock, 1);
    let seen: StreamObservation | undefined;
    const reader = observeStream(
      stream,
      0,
      (o) => (seen = o),
      () => clock.t,
    ).getReader();
    await reader.read();
    await reader.read();
    await reader.cancel("client left");
    expect(state.cancelled).toBe(true);
    expect(seen).toMatchObject({ cancelled: true, firstTokenMs: 2 });
  });

  test("an upstream failure ends the observation with an error code", async () => {
    let calls = 0;
    const failing = new ReadableStream<CanonicalStreamPart>({
      pull(controller) {
        calls += 1;
        if (calls === 1) controller.enqueue(START);
        else controller.error(new Error("socket closed"));
      },
    });
    let seen: StreamObservation | undefined;
    await expect(drain(observeStream(failing, 0, (o) => (seen = o)))).rejects.toThrow("socket closed");
    expect(seen).toMatchObject({ errorCode: "upstream_error", cancelled: false });
  });
});

describe("decodeRate", () => {
  test("needs two tokens and some time between the first and the last", () => {
    const base = { cancelled: false, usage: { inputTokens: 1, outputTokens: 1 } };
    expect(decodeRate({ ...base, firstTokenMs: 10, lastTokenMs: 10 })).toBeUndefined();
    expect(
      decodeRate({ ...base, firstTokenMs: 10, lastTokenMs: 10, usage: { inputTokens: 1, outputTokens: 5 } }),
    ).toBeUndefined();
    expect(
      decodeRate({
        ...base,
        firstTokenMs: 0,
        lastTokenMs: 1000,
        usage: { inputTokens: 1, outputTokens: 51 },
      }),
    ).toBe(50);
    expect(decodeRate({ cancelled: false, firstTokenMs: 0, lastTokenMs: 1000 })).toBeUndefined();
  });
});
