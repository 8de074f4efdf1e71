/**
 * The neuron's non-streamed answer: headers at once, whitespace while the
 * answer is generated, then the completion with its token times, or the
 * error envelope when generation fails after the headers.
 */
import { describe, expect, test } from "bun:test";
import { CortexError } from "../../src/core/errors.ts";
import type { CanonicalStreamPart } from "../../src/dialects/canonical.ts";
import { completionResponse } from "../../src/neuron/completion-body.ts";

const START: CanonicalStreamPart = { type: "message_start", id: "c1", model: "tiny", created: 1 };

/** Parts that arrive `gapMs` apart, then end (or fail with `failWith`). */
function slowParts(parts: CanonicalStreamPart[], gapMs: number, failWith?: Error) {
  let i = 0;
  return new ReadableStream<CanonicalStreamPart>({
    async pull(controller) {
      await Bun.sleep(gapMs);
      const part = parts[i++];
      if (part !== undefined) controller.enqueue(part);
      else if (failWith !== undefined) controller.error(failWith);
      else controller.close();
    },
  });
}

const ANSWER: CanonicalStreamPart[] = [
  START,
  { type: "text_delta", text: "" },
  { type: "text_delta", text: "one" },
  { type: "text_delta", text: " two" },
  { type: "finish", reason: "stop" },
  { type: "usage", usage: { inputTokens: 3, outputTokens: 2 } },
];

describe("completionResponse", () => {
  test("a slow answer is preceded by heartbeats and parses as the completion with its token times", async () => {
    const receivedAt = performance.now();
    const ends: unknown[] = [];
    const response = await completionResponse(slowParts(ANSWER, 15), {
      receivedAt,
      signal: new AbortController().signal,
      heartbeatMs: 10,
      onEnd: (outcome) => ends.push(outcome),
    });
    expect(response.status).toBe(200);
    expect(response.headers.get("content-type")).toBe("application/json");
    const text = await response.text();
    const elapsed = performance.now() - receivedAt;
    expect(text.startsWith(" ")).toBe(true);
    const body = JSON.parse(text) as {
      choices: Array<{ message: { content: string }; finish_reason: string }>;
      usage: { completion_tokens: number };
      cortex: { first_token_ms: number; last_token_ms: number };
    };
    expect(body.choices[0]?.message.content).toBe("one two");
    expect(body.usage.completion_tokens).toBe(2);
    // The empty delta carries no token; the first one came with the third part (~45 ms).
    expect(body.cortex.first_token_ms).toBeGreaterThanOrEqual(40);
    expect(body.cortex.last_token_ms).toBeGreaterThan(body.cortex.first_token_ms);
    expect(body.cortex.last_token_ms).toBeLessThan(elapsed);
    expect(ends).toEqual([{}]);
  });

  test("a failure before the first heartbeat is the caller's to answer with its status", async () => {
    const fault = new CortexError("context_length_exceeded", "too long");
    const ends: unknown[] = [];
    const answer = completionResponse(slowParts([], 1, fault), {
      receivedAt: performance.now(),
      signal: new AbortController().signal,
      heartbeatMs: 10_000,
      onEnd: (outcome) => ends.push(outcome),
    });
    await expect(answer).rejects.toBe(fault);
    expect(ends).toEqual([]);
  });

  test("a quick answer has no heartbeat; one without tokens has no token times", async () => {
    const response = await completionResponse(slowParts([START, { type: "finish", reason: "stop" }], 0), {
      receivedAt: performance.now(),
      signal: new AbortController().signal,
      heartbeatMs: 10_000,
    });
    const text = await response.text();
    expect(text.startsWith("{")).toBe(true);
    expect(JSON.parse(text)).not.toHaveProperty("cortex");
  });

  test("a failure after the headers ends the body with the error envelope, details included", async () => {
    const ends: Array<{ error?: unknown; cancelled?: boolean }> = [];
    const fault = new CortexError("device_fault", "cuda-0 stopped answering", {
      details: { device: "cuda-0" },
    });
    const response = await completionResponse(slowParts([START], 5, fault), {
      receivedAt: performance.now(),
      signal: new AbortController().signal,
      heartbeatMs: 2,
      onEnd: (outcome) => ends.push(outcome),
    });
    expect(response.status).toBe(200);
    const body = JSON.parse(await response.text()) as {
      error: { code: string; message: string; details: unknown };
    };
    expect(body.error).toMatchObject({
      code: "device_fault",
      message: "cuda-0 stopped answering",
      details: { device: "cuda-0" },
    });
    expect(ends).toEqual([{ error: fault }]);
  });

  test("a client that went away gets nothing more and is reported as cancelled", async () => {
    const controller = new AbortController();
    const ends: Array<{ error?: unknown; cancelled?: boolean }> = [];
    const response = await completionResponse(slowParts([START], 20, new Error("cancelled")), {
      receivedAt: performance.now(),
      signal: controller.signal,
      heartbeatMs: 5,
      onEnd: (outcome) => ends.push(outcome),
    });
    const reader = response.body?.getReader();
    await reader?.read(); // a heartbeat
    controller.abort();
    await reader?.cancel();
    await Bun.sleep(60);
    expect(ends).toEqual([{ cancelled: true }]);
  });
});
