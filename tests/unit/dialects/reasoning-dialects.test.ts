/**
 * Reasoning in and out of each dialect: the effort a client asks for becomes
 * the canonical effort (then the template's kwargs), and the reasoning a
 * model writes reaches each client in its own shape, counted in usage;
 * Anthropic clients see thinking only when they enabled it.
 */
import { describe, expect, test } from "bun:test";
import { parseAnthropicRequest } from "../../../src/dialects/anthropic/parse-request.ts";
import {
  renderAnthropicResponse,
  thinkingSignature,
} from "../../../src/dialects/anthropic/render-response.ts";
import { AnthropicStreamEncoder } from "../../../src/dialects/anthropic/stream-encoder.ts";
import type { CanonicalStreamPart } from "../../../src/dialects/canonical.ts";
import { parseOpenAIRequest } from "../../../src/dialects/openai/parse-request.ts";
import { toUpstreamChatBody } from "../../../src/dialects/openai/render-request.ts";
import { renderOpenAIUsage } from "../../../src/dialects/openai/render-response.ts";
import { parseResponsesRequest } from "../../../src/dialects/responses/parse-request.ts";
import { renderResponsesUsage } from "../../../src/dialects/responses/render-response.ts";
import { reasoningKwargs } from "../../../src/neuron/tool-formats/reasoning-kwargs.ts";

const user = [{ role: "user", content: "hi" }];

describe("reasoning effort in", () => {
  test("OpenAI reasoning_effort and earlier reasoning_content reach the neuron's body", () => {
    const req = parseOpenAIRequest({
      model: "m",
      reasoning_effort: "high",
      messages: [...user, { role: "assistant", content: "Hello", reasoning_content: "greet" }, ...user],
    });
    expect(req.reasoningEffort).toBe("high");
    expect(req.messages[1]).toEqual({
      role: "assistant",
      content: [
        { type: "thinking", text: "greet" },
        { type: "text", text: "Hello" },
      ],
    });
    const body = toUpstreamChatBody(req);
    expect(body.reasoning_effort).toBe("high");
    expect(body.messages[1]).toMatchObject({
      role: "assistant",
      content: "Hello",
      reasoning_content: "greet",
    });
    expect(() => parseOpenAIRequest({ model: "m", messages: user, reasoning_effort: "huge" })).toThrow(
      "reasoning_effort",
    );
  });

  test("Responses reasoning.effort", () => {
    const req = parseResponsesRequest({
      model: "m",
      input: "hi",
      reasoning: { effort: "low", summary: "auto" },
    });
    expect(req.toCanonical([]).reasoningEffort).toBe("low");
  });

  test.each([
    [{ type: "disabled" }, undefined, "none", undefined],
    [{ type: "enabled", budget_tokens: 2048 }, undefined, "low", true],
    [{ type: "enabled", budget_tokens: 10000 }, undefined, "medium", true],
    [{ type: "enabled", budget_tokens: 32000 }, undefined, "high", true],
    [{ type: "adaptive" }, "max", "xhigh", true],
    [undefined, "medium", "medium", undefined],
    [undefined, undefined, undefined, undefined],
  ])("Anthropic thinking %j with effort %s → %s", (thinking, effort, want, shown) => {
    const req = parseAnthropicRequest({
      model: "m",
      max_tokens: 64,
      messages: user,
      ...(thinking === undefined ? {} : { thinking }),
      ...(effort === undefined ? {} : { output_config: { effort } }),
    });
    expect(req.reasoningEffort).toBe(want as never);
    expect(req.thinking).toBe(shown as never);
  });

  test("the effort as the template's kwargs", () => {
    expect(reasoningKwargs(undefined)).toEqual({});
    expect(reasoningKwargs("none")).toEqual({ enable_thinking: false, reasoning_effort: "low" });
    expect(reasoningKwargs("medium")).toEqual({ enable_thinking: true, reasoning_effort: "medium" });
    expect(reasoningKwargs("xhigh")).toEqual({ enable_thinking: true, reasoning_effort: "high" });
  });
});

describe("reasoning out", () => {
  const parts: CanonicalStreamPart[] = [
    { type: "message_start", id: "x", model: "m", created: 1 },
    { type: "thinking_delta", text: "Let me " },
    { type: "thinking_delta", text: "think." },
    { type: "text_delta", text: "Paris." },
    { type: "finish", reason: "stop" },
    { type: "usage", usage: { inputTokens: 3, outputTokens: 5, reasoningTokens: 3 } },
  ];
  const events = (encoder: AnthropicStreamEncoder) =>
    parts
      .flatMap((part) => encoder.push(part))
      .map(
        (frame) => JSON.parse(frame.split("data: ")[1]!) as { type: string; delta?: Record<string, string> },
      );

  test("Anthropic streams thinking, then its signature, only when thinking is enabled", () => {
    const shown = events(new AnthropicStreamEncoder({ thinking: true }));
    const deltas = shown.filter((e) => e.type === "content_block_delta").map((e) => e.delta);
    expect(deltas).toEqual([
      { type: "thinking_delta", thinking: "Let me " },
      { type: "thinking_delta", thinking: "think." },
      { type: "signature_delta", signature: thinkingSignature("Let me think.") },
      { type: "text_delta", text: "Paris." },
    ]);
    const hidden = events(new AnthropicStreamEncoder({}));
    expect(hidden.filter((e) => e.type === "content_block_delta").map((e) => e.delta)).toEqual([
      { type: "text_delta", text: "Paris." },
    ]);
  });

  test("Anthropic's whole message: a thinking block with a signature only when enabled", () => {
    const response = {
      id: "x",
      model: "m",
      created: 1,
      content: [
        { type: "thinking" as const, text: "Hmm." },
        { type: "text" as const, text: "Paris." },
      ],
      finishReason: "stop" as const,
      usage: { inputTokens: 1, outputTokens: 2 },
    };
    expect(renderAnthropicResponse(response, { thinking: true }).content).toEqual([
      { type: "thinking", thinking: "Hmm.", signature: thinkingSignature("Hmm.") },
      { type: "text", text: "Paris." },
    ]);
    expect(renderAnthropicResponse(response).content).toEqual([{ type: "text", text: "Paris." }]);
  });

  test("reasoning tokens in OpenAI and Responses usage", () => {
    const usage = { inputTokens: 3, outputTokens: 5, reasoningTokens: 3 };
    expect(renderOpenAIUsage(usage).completion_tokens_details).toEqual({ reasoning_tokens: 3 });
    expect(renderOpenAIUsage({ inputTokens: 3, outputTokens: 5 }).completion_tokens_details).toBeUndefined();
    expect(renderResponsesUsage(usage).output_tokens_details).toEqual({ reasoning_tokens: 3 });
  });
});
