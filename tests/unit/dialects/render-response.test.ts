import { describe, expect, test } from "bun:test";
import { renderAnthropicResponse } from "../../../src/dialects/anthropic/render-response.ts";
import type { CanonicalResponse } from "../../../src/dialects/canonical.ts";
import { renderOpenAIResponse } from "../../../src/dialects/openai/render-response.ts";

const response: CanonicalResponse = {
  id: "chatcmpl-1",
  model: "tiny",
  created: 1735689600,
  content: [
    { type: "text", text: "Checking." },
    { type: "tool_call", id: "call_9", name: "look", arguments: '{"q":"cats"}' },
    { type: "tool_call", id: "toolu_01keep", name: "broken", arguments: '{"q":' },
  ],
  finishReason: "tool_calls",
  usage: { inputTokens: 100, outputTokens: 20, cachedInputTokens: 60 },
};

describe("non-streamed rendering", () => {
  test("Anthropic: msg_ id, toolu_ ids, parsed input (malformed JSON degrades to {}), cached tokens apart", () => {
    const message = renderAnthropicResponse(response, { model: "public" });
    expect(message.id).toMatch(/^msg_01[A-Za-z0-9]{24}$/);
    expect(message).toMatchObject({
      type: "message",
      role: "assistant",
      model: "public",
      content: [
        { type: "text", text: "Checking." },
        { type: "tool_use", id: "toolu_call_9", name: "look", input: { q: "cats" } },
        { type: "tool_use", id: "toolu_01keep", name: "broken", input: {} },
      ],
      stop_reason: "tool_use",
      stop_sequence: null,
      usage: {
        input_tokens: 40,
        output_tokens: 20,
        cache_creation_input_tokens: 0,
        cache_read_input_tokens: 60,
      },
    });
  });

  test("Anthropic: stop_sequence names the sequence", () => {
    const message = renderAnthropicResponse({
      ...response,
      content: [{ type: "text", text: "a" }],
      finishReason: "stop_sequence",
      stopSequence: "END",
    });
    expect([message.stop_reason, message.stop_sequence]).toEqual(["stop_sequence", "END"]);
  });

  test("OpenAI: chat.completion with tool calls, null content only when there is no text", () => {
    const completion = renderOpenAIResponse(response);
    expect(completion.choices[0]).toEqual({
      index: 0,
      message: {
        role: "assistant",
        content: "Checking.",
        refusal: null,
        tool_calls: [
          { id: "call_9", type: "function", function: { name: "look", arguments: '{"q":"cats"}' } },
          { id: "toolu_01keep", type: "function", function: { name: "broken", arguments: '{"q":' } },
        ],
      },
      logprobs: null,
      finish_reason: "tool_calls",
    });
    expect(completion.usage).toEqual({
      prompt_tokens: 100,
      completion_tokens: 20,
      total_tokens: 120,
      prompt_tokens_details: { cached_tokens: 60 },
    });
    const toolsOnly = renderOpenAIResponse({ ...response, content: response.content.slice(1) });
    expect(toolsOnly.choices[0]?.message.content).toBeNull();
  });
});
