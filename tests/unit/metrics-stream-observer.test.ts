/**
 * StreamObserver over a part source: the request figures come from the
 * canonical parts as they pass (first-token time at the first content delta,
 * usage from the final event), with nothing changed on the way.
 */
import { describe, expect, test } from "bun:test";
import type { CanonicalResponse, CanonicalStreamPart } from "../../src/dialects/canonical.ts";
import {
  decodeRate,
  observeCompletion,
  type StreamObservation,
  StreamObserver,
} from "../../src/gateway/metrics/stream-observer.ts";
import { NOT_YET, observeParts, type PartSource } from "../../src/gateway/part-source.ts";

const START: CanonicalStreamPart = { type: "message_start", id: "m1", model: "tiny", created: 1 };
const text = (t: string): CanonicalStreamPart => ({ type: "text_delta", text: t });

/** A source that hands out one part per read, with a clock the test moves. */
function scripted(parts: CanonicalStreamPart[], clock: { t: number }, stepMs: number) {
  const state = { read: 0, cancelled: false };
  const source: PartSource = {
    get done() {
      return state.cancelled || state.read >= parts.length;
    },
    async read() {
      const next = parts[state.read];
      if (next === undefined || state.cancelled) return undefined;
      state.read += 1;
      clock.t += stepMs;
      return [next];
    },
    readNow: () => NOT_YET,
    async cancel() {
      state.cancelled = true;
    },
  };
  return { source, state };
}

function observed(
  source: PartSource,
  startedAt: number,
  onEnd: (o: StreamObservation) => void,
  clock?: { t: number },
): PartSource {
  return observeParts(source, new StreamObserver(startedAt, onEnd, clock ? () => clock.t : undefined));
}

async function drain(source: PartSource): Promise<CanonicalStreamPart[]> {
  const out: CanonicalStreamPart[] = [];
  for (let batch = await source.read(); batch !== undefined; batch = await source.read()) out.push(...batch);
  return out;
}

describe("StreamObserver over a part source", () => {
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
    const { source } = scripted(parts, clock, 10);
    const seen: StreamObservation[] = [];
    const out = await drain(observed(source, 1000, (o) => seen.push(o), clock));
    expect(out).toEqual(parts);
    expect(seen).toHaveLength(1);
    // The empty delta (2nd read, t=1020) does not count: the first token is the 3rd part at t=1030.
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
    const { source } = scripted(parts, clock, 5);
    let seen: StreamObservation | undefined;
    await drain(observed(source, 0, (o) => (seen = o), clock));
    expect(seen).toMatchObject({ firstTokenMs: 10, lastTokenMs: 15, errorCode: "upstream_error" });
    expect(seen?.usage).toBeUndefined();
  });

  test("a client that goes away is reported as cancelled, and upstream is cancelled", async () => {
    const clock = { t: 0 };
    const { source, state } = scripted([START, text("a"), text("b")], clock, 1);
    let seen: StreamObservation | undefined;
    const watched = observed(source, 0, (o) => (seen = o), clock);
    await watched.read();
    await watched.read();
    await watched.cancel("client left");
    expect(state.cancelled).toBe(true);
    expect(seen).toMatchObject({ cancelled: true, firstTokenMs: 2 });
  });

  test("an upstream failure ends the observation with an error code", async () => {
    let calls = 0;
    const failing: PartSource = {
      done: false,
      async read() {
        calls += 1;
        if (calls === 1) return [START];
        throw new Error("socket closed");
      },
      readNow: () => NOT_YET,
      async cancel() {},
    };
    let seen: StreamObservation | undefined;
    await expect(drain(observed(failing, 0, (o) => (seen = o)))).rejects.toThrow("socket closed");
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

describe("observeCompletion", () => {
  const response: CanonicalResponse = {
    id: "c1",
    model: "tiny",
    created: 1,
    content: [{ type: "text", text: "one two three" }],
    finishReason: "length",
    usage: { inputTokens: 4, outputTokens: 21 },
  };

  test("token times the neuron reported count from when the request was sent", () => {
    const observation = observeCompletion(response, 3, { firstMs: 7, lastMs: 207 });
    expect(observation).toEqual({
      cancelled: false,
      usage: response.usage,
      finishReason: "length",
      firstTokenMs: 10,
      lastTokenMs: 210,
    });
    // 20 tokens after the first in 200 ms.
    expect(decodeRate(observation)).toBe(100);
  });

  test("without reported times there is no first-token time or rate, only usage and finish", () => {
    const observation = observeCompletion(response, 3, undefined);
    expect(observation.firstTokenMs).toBeUndefined();
    expect(decodeRate(observation)).toBeUndefined();
    expect(observation.usage).toEqual(response.usage);
  });
});
