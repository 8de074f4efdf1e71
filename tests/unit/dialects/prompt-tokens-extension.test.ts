/**
 * `cortex_prompt_tokens`: the neuron's first chunk carries the prompt's
 * token count only when its encoder is asked to report it, the gateway's
 * decoder turns it into `message_start.inputTokens`, and Anthropic's
 * message_start shows it. An OpenAI client's stream never carries it.
 */
import { describe, expect, test } from "bun:test";
import { AnthropicStreamEncoder } from "../../../src/dialects/anthropic/stream-encoder.ts";
import type { CanonicalStreamPart } from "../../../src/dialects/canonical.ts";
import { OpenAIStreamEncoder } from "../../../src/dialects/openai/stream-encoder.ts";
import { decodeUpstream } from "./stream-harness.ts";

const start: CanonicalStreamPart = {
  type: "message_start",
  id: "chatcmpl-1",
  model: "m",
  created: 1,
  inputTokens: 42,
  cachedInputTokens: 40,
};

describe("cortex_prompt_tokens", () => {
  test("only an encoder asked to report it writes it, on the first chunk; the JSON stays valid", () => {
    for (const includeUsage of [false, true]) {
      const plain = new OpenAIStreamEncoder({ includeUsage }).push(start).join("");
      expect(plain).not.toContain("cortex_prompt_tokens");
      const [frame] = new OpenAIStreamEncoder({ includeUsage, reportPromptTokens: true }).push(start);
      const chunk = JSON.parse((frame ?? "").replace(/^data: /, ""));
      expect(chunk.cortex_prompt_tokens).toBe(42);
      expect(chunk.cortex_cached_tokens).toBe(40);
      expect(chunk.choices[0].delta.role).toBe("assistant");
      expect(chunk.usage).toEqual(includeUsage ? null : undefined);
    }
  });

  test("the decoder reads it into message_start, and Anthropic's message_start shows it", () => {
    const encoder = new OpenAIStreamEncoder({ includeUsage: true, reportPromptTokens: true });
    const text = [
      ...encoder.push(start),
      ...encoder.push({ type: "text_delta", text: "hi" }),
      ...encoder.push({ type: "finish", reason: "stop" }),
      ...encoder.push({ type: "usage", usage: { inputTokens: 42, outputTokens: 1 } }),
      ...encoder.end(),
    ].join("");
    const parts = decodeUpstream([text]);
    expect(parts[0]).toMatchObject({ type: "message_start", inputTokens: 42, cachedInputTokens: 40 });
    const anthropic = new AnthropicStreamEncoder({}).push(parts[0] as CanonicalStreamPart).join("");
    // Anthropic counts cache reads apart: the same split as the answer's final usage.
    expect(anthropic).toContain('"input_tokens":2,');
    expect(anthropic).toContain('"cache_read_input_tokens":40');
  });
});
