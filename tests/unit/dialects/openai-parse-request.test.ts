import { describe, expect, test } from "bun:test";
import { CortexError } from "../../../src/core/errors.ts";
import { parseOpenAIRequest } from "../../../src/dialects/openai/parse-request.ts";
import { toUpstreamChatBody } from "../../../src/dialects/openai/render-request.ts";

function rejection(body: unknown): CortexError {
  try {
    parseOpenAIRequest(body);
  } catch (error) {
    if (error instanceof CortexError) return error;
    throw error;
  }
  throw new Error("expected a rejection");
}

const base = { model: "tiny", messages: [{ role: "user", content: "hi" }] };

describe("parseOpenAIRequest", () => {
  test("a full request maps every field", () => {
    const req = parseOpenAIRequest({
      model: "tiny",
      messages: [
        { role: "developer", content: "be brief" },
        {
          role: "user",
          content: [
            { type: "text", text: "what is this?" },
            { type: "image_url", image_url: { url: "data:image/png;base64,AAAA", detail: "low" } },
            { type: "image_url", image_url: { url: "https://x.test/a.png" } },
          ],
        },
        {
          role: "assistant",
          content: null,
          tool_calls: [{ id: "call_1", type: "function", function: { name: "look", arguments: '{"q":1}' } }],
        },
        { role: "tool", tool_call_id: "call_1", content: "a cat" },
      ],
      tools: [{ type: "function", function: { name: "look", parameters: { type: "object" }, strict: true } }],
      tool_choice: { type: "function", function: { name: "look" } },
      parallel_tool_calls: false,
      response_format: { type: "json_schema", json_schema: { name: "out", schema: { type: "object" } } },
      stop: "END",
      max_tokens: 10,
      max_completion_tokens: 20,
      seed: 7,
      temperature: 0.5,
      top_p: 0.9,
      presence_penalty: 0.1,
      frequency_penalty: -0.1,
      logit_bias: { "42": -100 },
      user: "u-1",
      stream: true,
      stream_options: { include_usage: true },
      n: 1,
      store: false,
      service_tier: "auto",
    });
    expect(req).toEqual({
      model: "tiny",
      messages: [
        { role: "system", content: [{ type: "text", text: "be brief" }] },
        {
          role: "user",
          content: [
            { type: "text", text: "what is this?" },
            { type: "image", source: { kind: "base64", mediaType: "image/png", data: "AAAA" } },
            { type: "image", source: { kind: "url", url: "https://x.test/a.png" } },
          ],
        },
        {
          role: "assistant",
          content: [{ type: "tool_call", id: "call_1", name: "look", arguments: '{"q":1}' }],
        },
        {
          role: "tool",
          content: [
            {
              type: "tool_result",
              toolCallId: "call_1",
              content: [{ type: "text", text: "a cat" }],
              isError: false,
            },
          ],
        },
      ],
      tools: [{ name: "look", parameters: { type: "object" }, strict: true }],
      toolChoice: { type: "tool", name: "look" },
      parallelToolCalls: false,
      responseFormat: { type: "json_schema", name: "out", schema: { type: "object" } },
      stop: ["END"],
      maxTokens: 20,
      seed: 7,
      temperature: 0.5,
      topP: 0.9,
      presencePenalty: 0.1,
      frequencyPenalty: -0.1,
      logitBias: { "42": -100 },
      user: "u-1",
      stream: true,
      includeUsage: true,
    });
  });

  test("consecutive tool messages become one canonical tool message", () => {
    const req = parseOpenAIRequest({
      model: "m",
      messages: [
        { role: "tool", tool_call_id: "a", content: "1" },
        { role: "tool", tool_call_id: "b", content: [{ type: "text", text: "2" }] },
      ],
    });
    expect(req.messages).toHaveLength(1);
    expect(req.messages[0]?.role).toBe("tool");
  });

  test("one text part sent as a list stays a list on the way to the neuron (templates that take lists get it)", () => {
    const req = parseOpenAIRequest({
      model: "m",
      messages: [
        { role: "system", content: [{ type: "text", text: "Be brief." }] },
        { role: "user", content: "hi" },
      ],
    });
    expect(req.messages[0]).toEqual({
      role: "system",
      content: [{ type: "text", text: "Be brief." }],
      asParts: true,
    });
    expect(req.messages[1]).toEqual({ role: "user", content: [{ type: "text", text: "hi" }] });
    expect(toUpstreamChatBody(req).messages).toEqual([
      { role: "system", content: [{ type: "text", text: "Be brief." }] },
      { role: "user", content: "hi" },
    ]);
  });

  test.each([
    ["n", { n: 2 }],
    ["logprobs", { logprobs: true }],
    ["top_logprobs", { top_logprobs: 3 }],
    ["modalities", { modalities: ["text", "audio"] }],
    ["audio", { audio: { voice: "alloy", format: "wav" } }],
    ["functions", { functions: [{ name: "f" }] }],
    ["web_search_options", { web_search_options: {} }],
    ["tools.0.type", { tools: [{ type: "custom", custom: { name: "x" } }] }],
    ["tool_choice", { tool_choice: { type: "allowed_tools", allowed_tools: {} } }],
    ["response_format", { response_format: { type: "grammar" } }],
  ])("refuses %s with a 400 naming it", (param, extra) => {
    const error = rejection({ ...base, ...extra });
    expect(error.code).toBe("unsupported_parameter");
    expect(error.status).toBe(400);
    expect(error.param).toBe(param);
  });

  test("refuses audio input parts and unknown roles", () => {
    expect(
      rejection({
        model: "m",
        messages: [
          { role: "user", content: [{ type: "input_audio", input_audio: { data: "", format: "wav" } }] },
        ],
      }).param,
    ).toBe("messages.0.content.0.type");
    expect(rejection({ model: "m", messages: [{ role: "robot", content: "x" }] }).code).toBe(
      "invalid_request",
    );
  });

  test("malformed fields are 400 invalid_request naming the path", () => {
    const error = rejection({ model: "m", messages: [{ role: "user", content: "x" }], temperature: "hot" });
    expect(error.code).toBe("invalid_request");
    expect(error.param).toBe("temperature");
    expect(rejection({ model: "m", messages: [] }).param).toBe("messages");
  });

  test("upstream body always streams with usage and carries context_overflow", () => {
    const req = parseOpenAIRequest({ ...base, stream: false, user: "secret-user", max_tokens: 5 });
    expect(toUpstreamChatBody(req, { contextOverflow: "clamp" })).toEqual({
      model: "tiny",
      messages: [{ role: "user", content: "hi" }],
      max_tokens: 5,
      stream: true,
      stream_options: { include_usage: true },
      context_overflow: "clamp",
    });
    expect(toUpstreamChatBody(req, { stream: false })).toMatchObject({
      stream: false,
      context_overflow: "error",
    });
  });

  test("a stream to relay asks for usage only as the client did, and for the neuron's trailer", () => {
    const quiet = parseOpenAIRequest({ ...base, stream: true });
    const relayed = toUpstreamChatBody(quiet, { relay: true });
    expect(relayed).toMatchObject({ stream: true, cortex_trailer: true });
    expect(relayed.stream_options).toBeUndefined();
    const asking = parseOpenAIRequest({ ...base, stream: true, stream_options: { include_usage: true } });
    expect(toUpstreamChatBody(asking, { relay: true }).stream_options).toEqual({ include_usage: true });
    expect(toUpstreamChatBody(quiet).cortex_trailer).toBeUndefined();
  });
});
