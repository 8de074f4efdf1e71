/**
 * The hand-written check of each streamed upstream chunk: what the decoder
 * reads is validated (a bad chunk ends the stream with a clear error part,
 * never a crash), and what it does not read passes through.
 */
import { describe, expect, test } from "bun:test";
import type { CanonicalStreamPart } from "../../../src/dialects/canonical.ts";
import {
  parseUpstreamResponse,
  readUpstreamChunk,
  readUpstreamCompletion,
  UpstreamSseDecoder,
} from "../../../src/dialects/openai/upstream.ts";
import { decodeUpstream } from "./stream-harness.ts";

const sse = (...chunks: unknown[]) => chunks.map((chunk) => `data: ${JSON.stringify(chunk)}\n\n`).join("");

describe("readUpstreamChunk", () => {
  test.each([
    ["not an object", [1, 2], "expected object, got array"],
    ["id of the wrong type", { id: 7 }, "id: expected string, got number"],
    ["choices not an array", { choices: {} }, "choices: expected array or null, got object"],
    [
      "content a number",
      { choices: [{ delta: { content: 5 } }] },
      "choices[0].delta.content: expected string or null, got number",
    ],
    [
      "tool call index negative",
      { choices: [{ delta: { tool_calls: [{ index: -1 }] } }] },
      "choices[0].delta.tool_calls[0].index: expected a non-negative integer, got -1",
    ],
    [
      "tool call name a number",
      { choices: [{ delta: { tool_calls: [{ function: { name: 3 } }] } }] },
      "choices[0].delta.tool_calls[0].function.name: expected string or null, got number",
    ],
    ["usage without counts", { usage: {} }, "usage: expected prompt_tokens and completion_tokens"],
    [
      "usage with a fractional count",
      { usage: { prompt_tokens: 1.5, completion_tokens: 1 } },
      "usage.prompt_tokens: expected a non-negative integer, got 1.5",
    ],
    ["finish_reason an object", { choices: [{ finish_reason: {} }] }, "choices[0].finish_reason"],
  ])("%s is refused, naming the path", (_name, chunk, problem) => {
    const read = readUpstreamChunk(chunk);
    expect("problem" in read && read.problem).toContain(problem);
  });

  test("nulls where the API allows them and unknown keys are accepted", () => {
    const chunk = {
      id: "c",
      extra: { anything: true },
      choices: [
        {
          delta: { content: null, reasoning_content: null, tool_calls: null, role: "assistant" },
          finish_reason: null,
          stop_sequence: null,
          logprobs: null,
        },
      ],
      usage: null,
    };
    expect(readUpstreamChunk(chunk)).toEqual({ chunk });
  });
});

describe("a malformed chunk mid-stream", () => {
  test("ends the canonical stream with one upstream_error part after what came before", () => {
    const parts = decodeUpstream([
      sse(
        { id: "c1", model: "m", created: 1, choices: [{ delta: { content: "Hello" } }] },
        { choices: [{ delta: { content: 42 } }] },
        { choices: [{ delta: { content: "never" } }] },
      ),
    ]);
    expect(parts.map((part) => part.type)).toEqual(["message_start", "text_delta", "error"]);
    const error = parts.at(-1) as Extract<CanonicalStreamPart, { type: "error" }>;
    expect(error.error.code).toBe("upstream_error");
    expect(error.error.message).toBe(
      "upstream sent an unreadable chunk: choices[0].delta.content: expected string or null, got number",
    );
  });
});

describe("UpstreamSseDecoder", () => {
  test("bytes split anywhere decode to the same parts as the two decoders chained", () => {
    const text = sse(
      { id: "c1", model: "m", created: 1, choices: [{ delta: { content: "Hé" } }] },
      { choices: [{ delta: {}, finish_reason: "stop" }] },
      { choices: [], usage: { prompt_tokens: 3, completion_tokens: 1 } },
    ).concat("data: [DONE]\n\n");
    const bytes = new TextEncoder().encode(text);
    const whole = decodeUpstream([text]);
    for (let cut = 1; cut < bytes.length; cut += 7) {
      const decoder = new UpstreamSseDecoder("fallback-model");
      const parts = [
        ...decoder.push(bytes.subarray(0, cut)),
        ...decoder.push(bytes.subarray(cut)),
        ...decoder.end(),
      ];
      expect(parts).toEqual(whole);
    }
  });
});

describe("readUpstreamCompletion (non-streamed answers)", () => {
  const message = (extra: Record<string, unknown> = {}) => ({ role: "assistant", content: "hi", ...extra });
  test.each([
    ["not an object", "text", "expected object, got string"],
    ["no choices", { id: "c" }, "choices: expected array, got undefined"],
    ["empty choices", { choices: [] }, "choices: expected at least one choice"],
    [
      "a choice without a message",
      { choices: [{ finish_reason: "stop" }] },
      "choices[0].message: expected object",
    ],
    [
      "content a number",
      { choices: [{ message: message({ content: 5 }) }] },
      "choices[0].message.content: expected string or null, got number",
    ],
    [
      "a tool call without a function name",
      { choices: [{ message: message({ tool_calls: [{ id: "t", function: { arguments: "{}" } }] }) }] },
      "choices[0].message.tool_calls[0].function.name: expected string, got undefined",
    ],
    [
      "usage with a negative count",
      { choices: [{ message: message() }], usage: { prompt_tokens: -1, completion_tokens: 1 } },
      "usage.prompt_tokens: expected a non-negative integer, got -1",
    ],
  ])("%s is refused, naming the path", (_name, body, problem) => {
    const read = readUpstreamCompletion(body);
    expect("problem" in read && read.problem).toContain(problem);
    expect(() => parseUpstreamResponse(body)).toThrow(`upstream sent an unreadable completion: ${problem}`);
  });

  test("a whole answer with tool calls, a stop sequence, nulls and unknown keys reads as the canonical response", () => {
    const body = {
      id: "c9",
      model: "m",
      created: 5,
      system_fingerprint: null,
      choices: [
        {
          index: 0,
          message: message({
            content: null,
            reasoning_content: null,
            tool_calls: [
              { id: null, type: "function", function: { name: "look", arguments: '{"at":"sky"}' } },
            ],
          }),
          finish_reason: "tool_calls",
          stop_sequence: null,
          logprobs: null,
        },
      ],
      usage: { prompt_tokens: 3, completion_tokens: 4, prompt_tokens_details: { cached_tokens: 2 } },
      cortex: { first_token_ms: 1, last_token_ms: 2 },
    };
    expect(readUpstreamCompletion(body)).toEqual({ completion: body } as never);
    const response = parseUpstreamResponse(body);
    expect(response).toMatchObject({ id: "c9", model: "m", created: 5, finishReason: "tool_calls" });
    expect(response.content).toEqual([
      { type: "tool_call", id: expect.stringMatching(/^call_/), name: "look", arguments: '{"at":"sky"}' },
    ]);
    expect(response.usage).toEqual({ inputTokens: 3, outputTokens: 4, cachedInputTokens: 2 });
  });
});
