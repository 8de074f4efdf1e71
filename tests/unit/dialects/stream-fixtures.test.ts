import { describe, expect, test } from "bun:test";
import { renderAnthropicResponse } from "../../../src/dialects/anthropic/render-response.ts";
import { CanonicalAccumulator } from "../../../src/dialects/collect-stream.ts";
import { renderOpenAIResponse } from "../../../src/dialects/openai/render-response.ts";
import { createOpenAIStreamEncoder } from "../../../src/dialects/openai/stream-encoder.ts";
import { createUpstreamDecoder } from "../../../src/dialects/openai/upstream.ts";
import { createSseParser } from "../../../src/dialects/sse/sse-parser.ts";
import {
  accumulateAnthropic,
  accumulateOpenAI,
  decodeUpstream,
  encodeAnthropic,
  encodeOpenAI,
  fixture,
  sseEvents,
} from "./stream-harness.ts";

function collect(parts: ReturnType<typeof decodeUpstream>) {
  const acc = new CanonicalAccumulator();
  for (const p of parts) acc.push(p);
  return acc.result();
}

describe("upstream transcripts → canonical parts", () => {
  test("text answer: start, deltas, finish, usage", async () => {
    const parts = decodeUpstream([await fixture("openai-upstream-text.chunks.txt")]);
    expect(parts[0]).toEqual({
      type: "message_start",
      id: "chatcmpl-9xYz",
      model: "tiny-bigram",
      created: 1735689600,
    });
    expect(parts.slice(1)).toEqual([
      ...["The", " quick", " brown", " fox", " jumps", "."].map((text) => ({
        type: "text_delta" as const,
        text,
      })),
      { type: "finish", reason: "stop" },
      { type: "usage", usage: { inputTokens: 18, outputTokens: 6 } },
    ]);
  });

  test("parallel tool calls are started, fed and ended in order, with cached tokens in usage", async () => {
    const parts = decodeUpstream([await fixture("openai-upstream-tool-calls.chunks.txt")]);
    const kinds = parts.map((p) => p.type);
    expect(kinds).toEqual([
      "message_start",
      "text_delta",
      "tool_call_start",
      ...Array(6).fill("tool_call_delta"),
      "tool_call_end",
      "tool_call_start",
      "tool_call_delta",
      "tool_call_delta",
      "tool_call_end",
      "finish",
      "usage",
    ]);
    const response = collect(parts);
    expect(response.content).toEqual([
      { type: "text", text: "Let me check." },
      {
        type: "tool_call",
        id: "call_DdmO9pD3xa9XTPNJ32zg2hcA",
        name: "get_weather",
        arguments: '{"location":"Paris, France"}',
      },
      {
        type: "tool_call",
        id: "call_ABcd1234efGH5678ijKL9012",
        name: "get_time",
        arguments: '{"tz": "Europe/Paris"}',
      },
    ]);
    expect(response.usage).toEqual({ inputTokens: 82, outputTokens: 41, cachedInputTokens: 64 });
  });

  test("CRLF transcript with the neuron's stop_sequence extension", async () => {
    const parts = decodeUpstream([await fixture("openai-upstream-stop-sequence.chunks.txt")]);
    expect(parts.find((p) => p.type === "finish")).toEqual({
      type: "finish",
      reason: "stop_sequence",
      stopSequence: "\n\n",
    });
    expect(collect(parts).content).toEqual([{ type: "text", text: "one, two, three" }]);
  });

  test("an error event mid-stream ends the stream with the neuron's error code", async () => {
    const parts = decodeUpstream([await fixture("openai-upstream-error.chunks.txt")]);
    expect(parts.at(-1)).toEqual({
      type: "error",
      error: {
        code: "device_fault",
        status: 503,
        message: "device fault on cuda-dev-1: collective timed out",
      },
    });
    expect(() => collect(parts)).toThrow("device fault");
  });

  test("a stream cut off without finish or [DONE] ends in an upstream_error part", async () => {
    const text = await fixture("openai-upstream-text.chunks.txt");
    const parts = decodeUpstream([text.slice(0, text.indexOf('"finish_reason":"stop"') - 200)]);
    expect(parts.at(-1)).toMatchObject({ type: "error", error: { code: "upstream_error" } });
  });
});

describe("canonical parts → Anthropic SSE", () => {
  test("tool-use answer has the event sequence of the documented Anthropic stream", async () => {
    const docs = sseEvents(await fixture("anthropic-docs-tool-use.sse.txt")).map((e) => e.event);
    const parts = decodeUpstream([await fixture("openai-upstream-tool-calls.chunks.txt")]);
    // The docs' example has one tool call; compare against ours up to the second tool call.
    const firstTool = parts.filter((p) => !("index" in p) || p.index === 0);
    const ours = sseEvents(encodeAnthropic(firstTool, { messageId: "msg_01x" })).map((e) => e.event);
    const squash = (events: string[]) =>
      events.filter((e, i) => !(e === "content_block_delta" && events[i - 1] === e));
    expect(squash(ours)).toEqual(squash(docs));
  });

  test.each([
    "openai-upstream-text.chunks.txt",
    "openai-upstream-tool-calls.chunks.txt",
    "openai-upstream-stop-sequence.chunks.txt",
  ])("%s: the stream adds up to the non-streamed message", async (name) => {
    const parts = decodeUpstream([await fixture(name)]);
    const streamed = accumulateAnthropic(
      encodeAnthropic(parts, { messageId: "msg_01abc", model: "public-id" }),
    );
    expect(streamed).toEqual(
      renderAnthropicResponse(collect(parts), {
        messageId: "msg_01abc",
        model: "public-id",
      }) as unknown as Record<string, unknown>,
    );
  });

  test("stop sequence and usage land in message_delta", async () => {
    const parts = decodeUpstream([await fixture("openai-upstream-stop-sequence.chunks.txt")]);
    const frames = sseEvents(encodeAnthropic(parts, {}));
    expect(JSON.parse(frames.at(-2)!.data)).toEqual({
      type: "message_delta",
      delta: { stop_reason: "stop_sequence", stop_sequence: "\n\n" },
      usage: { input_tokens: 9, output_tokens: 4 },
    });
  });

  test("an upstream failure mid-stream becomes an Anthropic error event, and nothing follows it", async () => {
    const parts = decodeUpstream([await fixture("openai-upstream-error.chunks.txt")]);
    const frames = sseEvents(encodeAnthropic(parts, {}));
    expect(frames.map((f) => f.event)).toEqual([
      "message_start",
      "content_block_start",
      "ping",
      "content_block_delta",
      "content_block_delta",
      "error",
    ]);
    expect(JSON.parse(frames.at(-1)!.data)).toEqual({
      type: "error",
      error: { type: "overloaded_error", message: "device fault on cuda-dev-1: collective timed out" },
    });
  });
});

describe("canonical parts → OpenAI SSE", () => {
  test.each([
    "openai-upstream-text.chunks.txt",
    "openai-upstream-tool-calls.chunks.txt",
    "openai-upstream-stop-sequence.chunks.txt",
  ])("%s: the chunks add up to the non-streamed completion", async (name) => {
    const parts = decodeUpstream([await fixture(name)]);
    const streamed = accumulateOpenAI(encodeOpenAI(parts, { includeUsage: true }));
    const expected = renderOpenAIResponse(collect(parts));
    const normalize = (c: unknown) => JSON.parse(JSON.stringify(c).replace(/"content":""/, '"content":null'));
    expect(normalize(streamed)).toEqual(normalize(expected));
  });

  test("without include_usage no usage chunk is sent; the stream still ends in [DONE]", async () => {
    const parts = decodeUpstream([await fixture("openai-upstream-text.chunks.txt")]);
    const events = sseEvents(encodeOpenAI(parts, { includeUsage: false }));
    expect(events.some((e) => e.data.includes('"usage"'))).toBe(false);
    expect(events.at(-1)?.data).toBe("[DONE]");
  });

  test("an upstream failure mid-stream ends with OpenAI's error envelope and no [DONE]", async () => {
    const parts = decodeUpstream([await fixture("openai-upstream-error.chunks.txt")]);
    const events = sseEvents(encodeOpenAI(parts, { includeUsage: true }));
    expect(JSON.parse(events.at(-1)!.data)).toEqual({
      error: {
        message: "device fault on cuda-dev-1: collective timed out",
        type: "server_error",
        param: null,
        code: "device_fault",
      },
    });
  });

  test("the TransformStream pipeline bytes → SSE → canonical → OpenAI SSE is pull-based and propagates cancel", async () => {
    const text = await fixture("openai-upstream-text.chunks.txt");
    let cancelled: unknown;
    let pulls = 0;
    const bytes = new TextEncoder().encode(text);
    const upstream = new ReadableStream<Uint8Array>(
      {
        pull(controller) {
          pulls++;
          const at = (pulls - 1) * 64;
          if (at >= bytes.length) controller.close();
          else controller.enqueue(bytes.slice(at, at + 64));
        },
        cancel(reason) {
          cancelled = reason;
        },
      },
      { highWaterMark: 0 },
    );
    const out = upstream
      .pipeThrough(createSseParser())
      .pipeThrough(createUpstreamDecoder())
      .pipeThrough(createOpenAIStreamEncoder({ includeUsage: true }))
      .pipeThrough(new TextEncoderStream());
    const reader = out.getReader();
    const first = await reader.read();
    expect(new TextDecoder().decode(first.value)).toContain('"role":"assistant"');
    expect(pulls).toBeLessThan(Math.ceil(bytes.length / 64));
    await reader.cancel("client went away");
    // Each pipe forwards the cancel on its own turn of the event loop.
    for (let turn = 0; turn < 10 && cancelled === undefined; turn++)
      await new Promise((r) => setImmediate(r));
    expect(cancelled).toBe("client went away");
  });
});
