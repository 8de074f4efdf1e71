/**
 * The neuron's chat answers: as usual when they are quick, and with a
 * heartbeat (spaces before a JSON completion, SSE comments before a stream's
 * first event) when they are slow to begin or, not streamed, to finish; an
 * error after the headers is the answer's last word. "Slow" is a gate the
 * test opens once it has seen the heartbeat, so no timing decides a result.
 */
import { describe, expect, test } from "bun:test";
import { CortexError } from "../../src/core/errors.ts";
import type { CanonicalStreamPart } from "../../src/dialects/canonical.ts";
import { UpstreamSseDecoder } from "../../src/dialects/openai/upstream.ts";
import { completionAnswer, type StartedChat, streamAnswer } from "../../src/neuron/chat-answer.ts";

const START: CanonicalStreamPart = { type: "message_start", id: "c1", model: "tiny", created: 1 };
const ANSWER: CanonicalStreamPart[] = [
  START,
  { type: "text_delta", text: "" },
  { type: "text_delta", text: "one" },
  { type: "text_delta", text: " two" },
  { type: "finish", reason: "stop" },
  { type: "usage", usage: { inputTokens: 3, outputTokens: 2 } },
];

/** A promise the test settles: `open()` once it has seen what it waits for. */
function gate() {
  const { promise, resolve } = Promise.withResolvers<void>();
  return { promise, open: () => resolve() };
}

const OPEN = Promise.resolve();

/** `before`, then (once `hold` settles) `after`, then the end (or `failWith`). */
function heldParts(
  before: CanonicalStreamPart[],
  hold: Promise<void>,
  after: CanonicalStreamPart[] = [],
  failWith?: Error,
) {
  const queue = [...before];
  let held = true;
  return new ReadableStream<CanonicalStreamPart>({
    async pull(controller) {
      if (queue.length === 0 && held) {
        await hold;
        held = false;
        queue.push(...after);
      }
      const part = queue.shift();
      if (part !== undefined) controller.enqueue(part);
      else if (failWith !== undefined) controller.error(failWith);
      else controller.close();
    },
  });
}

/** A chat that starts (its first event) once `hold` settles, or fails then with `error`. */
async function chatWhen(hold: Promise<void>, parts: ReadableStream<CanonicalStreamPart>, error?: Error) {
  await hold;
  if (error !== undefined) throw error;
  return { request: { includeUsage: true }, parts } satisfies StartedChat;
}

type Outcome = { error?: unknown; cancelled?: boolean };

function options(heartbeatMs: number, ends: Outcome[] = [], signal = new AbortController().signal) {
  return { signal, heartbeatMs, onEnd: (outcome: Outcome) => ends.push(outcome) };
}

/** A clock that moves on by 1 ms each time it is read. */
function tickingClock() {
  let ms = 0;
  return () => ++ms;
}

const utf8 = new TextDecoder();

describe("a non-streamed answer", () => {
  test("a slow one is preceded by heartbeats and parses as the completion with its token times", async () => {
    const tokens = gate();
    const ends: Outcome[] = [];
    const now = tickingClock();
    // The empty delta comes before the gate and carries no token; "one" and " two" after it.
    const response = await completionAnswer(
      chatWhen(OPEN, heldParts(ANSWER.slice(0, 2), tokens.promise, ANSWER.slice(2))),
      0,
      { ...options(10, ends), now },
    );
    expect(response.status).toBe(200);
    expect(response.headers.get("content-type")).toBe("application/json");
    const reader = response.body?.getReader();
    if (reader === undefined) throw new Error("no body");
    let text = "";
    // Two heartbeats before the answer is ready.
    while (text.length < 2) text += utf8.decode((await reader.read()).value);
    expect(text).toMatch(/^ +$/);
    const openedAt = now();
    tokens.open();
    for (let next = await reader.read(); !next.done; next = await reader.read())
      text += utf8.decode(next.value);
    expect(text).toMatch(/^ {2,}\{/);
    const body = JSON.parse(text) as {
      choices: Array<{ message: { content: string } }>;
      usage: { completion_tokens: number };
      cortex: { first_token_ms: number; last_token_ms: number };
    };
    expect(body.choices[0]?.message.content).toBe("one two");
    expect(body.usage.completion_tokens).toBe(2);
    // The first token came after the gate opened, the last after the first.
    expect(body.cortex.first_token_ms).toBeGreaterThan(openedAt);
    expect(body.cortex.last_token_ms).toBeGreaterThan(body.cortex.first_token_ms);
    expect(ends).toEqual([{}]);
  });

  test("a quick one has no heartbeat; one without tokens has no token times", async () => {
    const response = await completionAnswer(
      chatWhen(OPEN, heldParts([START, { type: "finish", reason: "stop" }], OPEN)),
      performance.now(),
      options(10_000),
    );
    const text = await response.text();
    expect(text.startsWith("{")).toBe(true);
    expect(JSON.parse(text)).not.toHaveProperty("cortex");
  });

  test("a failure before the first heartbeat is the caller's to answer with its status", async () => {
    const fault = new CortexError("context_length_exceeded", "too long");
    const ends: Outcome[] = [];
    const answer = completionAnswer(
      chatWhen(OPEN, heldParts([], OPEN), fault),
      performance.now(),
      options(10_000, ends),
    );
    await expect(answer).rejects.toBe(fault);
    expect(ends).toEqual([]);
  });

  test("a failure after the headers ends the body with the error envelope, details included", async () => {
    const ends: Outcome[] = [];
    const fault = new CortexError("device_fault", "cuda-0 stopped answering", {
      details: { device: "cuda-0" },
    });
    const failure = gate();
    const response = await completionAnswer(
      chatWhen(OPEN, heldParts([START], failure.promise, [], fault)),
      performance.now(),
      options(2, ends),
    );
    // The headers went out with the first heartbeat; only then does the answer fail.
    expect(response.status).toBe(200);
    failure.open();
    const body = JSON.parse(await response.text()) as { error: Record<string, unknown> };
    expect(body.error).toMatchObject({ code: "device_fault", message: "cuda-0 stopped answering" });
    expect(body.error.details).toEqual({ device: "cuda-0" });
    expect(ends).toEqual([{ error: fault }]);
  });

  test("a client that went away gets nothing more and is reported as cancelled", async () => {
    const controller = new AbortController();
    const ended = Promise.withResolvers<Outcome>();
    const ends: Outcome[] = [];
    const leave = gate();
    const response = await completionAnswer(
      chatWhen(OPEN, heldParts([START], leave.promise, [], new Error("cancelled"))),
      performance.now(),
      {
        ...options(5, ends, controller.signal),
        onEnd: (outcome: Outcome) => {
          ends.push(outcome);
          ended.resolve(outcome);
        },
      },
    );
    const reader = response.body?.getReader();
    await reader?.read(); // a heartbeat
    controller.abort();
    await reader?.cancel();
    // The engine ends the cancelled sequence; the answer reports how it ended.
    leave.open();
    expect(await ended.promise).toEqual({ cancelled: true });
    expect(ends).toEqual([{ cancelled: true }]);
  });
});

/** The text a stream carries, read the way the gateway reads a neuron. */
function streamedText(sse: string): { text: string; parts: CanonicalStreamPart[] } {
  const decoder = new UpstreamSseDecoder("tiny");
  const parts = [...decoder.push(sse), ...decoder.end()];
  const text = parts.map((part) => (part.type === "text_delta" ? part.text : "")).join("");
  return { text, parts };
}

describe("a streamed answer", () => {
  test("a slow first token is preceded by SSE comments, which readers skip", async () => {
    const ends: Outcome[] = [];
    const first = gate();
    const response = await streamAnswer(chatWhen(first.promise, heldParts(ANSWER, OPEN)), options(10, ends));
    expect(response.status).toBe(200);
    expect(response.headers.get("content-type")).toStartWith("text/event-stream");
    const reader = response.body?.getReader();
    if (reader === undefined) throw new Error("no body");
    let sse = utf8.decode((await reader.read()).value);
    expect(sse).toBe(": waiting for the first token\n\n");
    first.open();
    for (let next = await reader.read(); !next.done; next = await reader.read())
      sse += utf8.decode(next.value);
    expect(sse.endsWith("data: [DONE]\n\n")).toBe(true);
    const { text, parts } = streamedText(sse);
    expect(text).toBe("one two");
    expect(parts.at(-1)).toEqual({ type: "usage", usage: { inputTokens: 3, outputTokens: 2 } });
    expect(ends).toEqual([{}]);
  });

  test("a quick first token starts the stream as usual", async () => {
    const response = await streamAnswer(chatWhen(OPEN, heldParts(ANSWER, OPEN)), options(10_000));
    const sse = await response.text();
    expect(sse.startsWith("data: ")).toBe(true);
    expect(streamedText(sse).text).toBe("one two");
  });

  test("a failure before the first token but after the headers ends the stream with the error event", async () => {
    const ends: Outcome[] = [];
    const fault = new CortexError("device_fault", "cuda-0 stopped answering");
    const failure = gate();
    const response = await streamAnswer(
      chatWhen(failure.promise, heldParts([], OPEN), fault),
      options(10, ends),
    );
    expect(response.status).toBe(200);
    failure.open();
    const { parts } = streamedText(await response.text());
    const error = parts.find((part) => part.type === "error");
    expect(error).toMatchObject({ error: { code: "device_fault", message: "cuda-0 stopped answering" } });
    expect(ends).toEqual([{ error: fault }]);
  });

  test("a failure before the first heartbeat is the caller's to answer with its status", async () => {
    const fault = new CortexError("rate_limited", "queue full");
    await expect(streamAnswer(chatWhen(OPEN, heldParts([], OPEN), fault), options(10_000))).rejects.toBe(
      fault,
    );
  });
});

describe("a streamed answer for the gateway to relay (cortex_trailer)", () => {
  const relayed = (
    parts: CanonicalStreamPart[],
    includeUsage: boolean,
    hold: Promise<void> = OPEN,
    error?: Error,
  ) => {
    const chat = (async () => {
      await hold;
      if (error !== undefined) throw error;
      return { request: { includeUsage }, parts: heldParts(parts, OPEN) } satisfies StartedChat;
    })();
    return streamAnswer(chat, { ...options(10), now: tickingClock(), trailer: { receivedAt: 0 } });
  };
  const trailerOf = (sse: string) => {
    const line = sse.split("\n\n").find((frame) => frame.startsWith(": cortex "));
    return line === undefined ? undefined : JSON.parse(line.slice(": cortex ".length));
  };

  test("the client's stream (usage only when asked, no stop-sequence extension), the trailer just before [DONE]", async () => {
    const answer = ANSWER.map((part) =>
      part.type === "finish"
        ? { type: "finish" as const, reason: "stop_sequence" as const, stopSequence: "three" }
        : part,
    );
    const sse = await (await relayed(answer, false)).text();
    // What the client will see, once the gateway has cut the trailer out.
    const client = sse.replace(/: cortex [^\n]*\n\n/, "");
    expect(client).not.toContain("stop_sequence");
    expect(client).not.toContain('"usage":{');
    expect(streamedText(sse).text).toBe("one two");
    const frames = sse.split("\n\n");
    expect(frames.at(-3)?.startsWith(": cortex ")).toBe(true);
    expect(frames.at(-2)).toBe("data: [DONE]");
    const trailer = trailerOf(sse);
    expect(trailer).toMatchObject({
      usage: { prompt_tokens: 3, completion_tokens: 2 },
      finish_reason: "stop_sequence",
    });
    expect(trailer.first_token_ms).toBeGreaterThan(0);
    expect(trailer.last_token_ms).toBeGreaterThan(trailer.first_token_ms);

    expect(await (await relayed(ANSWER, true)).text()).toContain('"usage":{"prompt_tokens":3');
  });

  test("an error mid-stream: the client's error event, then the trailer with its code, and no [DONE]", async () => {
    const fault = new CortexError("device_fault", "cuda-0 stopped answering", { details: { node: "n1" } });
    const sse = await (
      await relayed([...ANSWER.slice(0, 3), { type: "error", error: fault.toWire() }], false)
    ).text();
    expect(sse).not.toContain("[DONE]");
    expect(sse).not.toContain('"details"');
    expect(streamedText(sse).parts.find((part) => part.type === "error")).toMatchObject({
      error: { code: "device_fault" },
    });
    expect(trailerOf(sse)).toMatchObject({ error: "device_fault", first_token_ms: expect.any(Number) });
  });

  test("a failure after the headers, before the first token: the error event and the trailer", async () => {
    const fault = new CortexError("device_fault", "cuda-0 stopped answering");
    const failure = gate();
    const response = await relayed([], false, failure.promise, fault);
    // The headers and a heartbeat went out; then the chat fails.
    failure.open();
    const sse = await response.text();
    expect(sse.startsWith(": waiting for the first token\n\n")).toBe(true);
    expect(trailerOf(sse)).toEqual({ error: "device_fault" });
    expect(sse.endsWith(`: cortex ${JSON.stringify({ error: "device_fault" })}\n\n`)).toBe(true);
  });
});
