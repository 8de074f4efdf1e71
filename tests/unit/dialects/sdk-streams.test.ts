/**
 * The strongest check of the event grammar: the official SDKs' own stream
 * parsers read our SSE (served through a mocked fetch) and must arrive at
 * the same message our non-streamed renderers produce.
 */
import { describe, expect, test } from "bun:test";
import Anthropic from "@anthropic-ai/sdk";
import OpenAI from "openai";
import { CortexError } from "../../../src/core/errors.ts";
import { renderAnthropicError } from "../../../src/dialects/anthropic/render-error.ts";
import { renderAnthropicResponse } from "../../../src/dialects/anthropic/render-response.ts";
import { CanonicalAccumulator } from "../../../src/dialects/collect-stream.ts";
import { renderOpenAIError } from "../../../src/dialects/openai/render-error.ts";
import { renderOpenAIResponse } from "../../../src/dialects/openai/render-response.ts";
import { decodeUpstream, encodeAnthropic, encodeOpenAI, fixture } from "./stream-harness.ts";

function serve(body: string, status = 200, contentType = "text/event-stream") {
  return async () => new Response(body, { status, headers: { "content-type": contentType } });
}

function anthropicClient(body: string, status?: number, contentType?: string) {
  return new Anthropic({
    apiKey: "k",
    baseURL: "http://cortex.test",
    maxRetries: 0,
    fetch: serve(body, status, contentType),
  });
}

function openaiClient(body: string, status?: number, contentType?: string) {
  return new OpenAI({
    apiKey: "k",
    baseURL: "http://cortex.test/v1",
    maxRetries: 0,
    fetch: serve(body, status, contentType),
  });
}

/** The SDK decorates what it accumulates (structured-output parsing, its JSON buffer); those are not on the wire. */
function withoutSdkExtras(value: unknown): unknown {
  return JSON.parse(
    JSON.stringify(value, (key, v) => (key === "parsed_output" || key === "__json_buf" ? undefined : v)),
  );
}

const transcripts = [
  "openai-upstream-text.chunks.txt",
  "openai-upstream-tool-calls.chunks.txt",
  "openai-upstream-stop-sequence.chunks.txt",
];

async function canonical(name: string) {
  const parts = decodeUpstream([await fixture(name)]);
  const acc = new CanonicalAccumulator();
  for (const p of parts) acc.push(p);
  return { parts, response: acc.result() };
}

describe("@anthropic-ai/sdk reads our stream", () => {
  test.each(transcripts)(
    "%s: MessageStream.finalMessage() equals the non-streamed rendering",
    async (name) => {
      const { parts, response } = await canonical(name);
      const options = { messageId: "msg_01TEST", model: "tiny-bigram" };
      const client = anthropicClient(encodeAnthropic(parts, options));
      const stream = client.messages.stream({
        model: "tiny-bigram",
        max_tokens: 100,
        messages: [{ role: "user", content: "x" }],
      });
      const texts: string[] = [];
      stream.on("text", (delta) => texts.push(delta));
      const final = await stream.finalMessage();
      expect(withoutSdkExtras(final)).toEqual(withoutSdkExtras(renderAnthropicResponse(response, options)));
      expect(texts.join("")).toBe(
        response.content.flatMap((p) => (p.type === "text" ? [p.text] : [])).join(""),
      );
    },
  );

  test("a mid-stream error event surfaces as the SDK's APIError", async () => {
    const parts = decodeUpstream([await fixture("openai-upstream-error.chunks.txt")]);
    const client = anthropicClient(encodeAnthropic(parts, {}));
    const stream = client.messages.stream({
      model: "m",
      max_tokens: 10,
      messages: [{ role: "user", content: "x" }],
    });
    await expect(stream.finalMessage()).rejects.toThrow("device fault on cuda-dev-1");
  });

  test("an error response is read by the SDK with its status and type", async () => {
    const rendered = renderAnthropicError(
      new CortexError("context_length_exceeded", "x", {
        details: { prompt_tokens: 10, max_tokens: 5, context_size: 12 },
      }),
    );
    const client = anthropicClient(JSON.stringify(rendered.body), rendered.status, "application/json");
    const error = await client.messages
      .create({ model: "m", max_tokens: 5, messages: [{ role: "user", content: "x" }] })
      .catch((e: unknown) => e);
    expect(error).toBeInstanceOf(Anthropic.BadRequestError);
    expect((error as InstanceType<typeof Anthropic.BadRequestError>).message).toContain("10 + 5 > 12");
  });
});

describe("openai SDK reads our stream", () => {
  test.each(transcripts)(
    "%s: ChatCompletionStream.finalChatCompletion() equals the non-streamed rendering",
    async (name) => {
      const { parts, response } = await canonical(name);
      const client = openaiClient(encodeOpenAI(parts, { includeUsage: true }));
      const final = await client.chat.completions
        .stream({
          model: "m",
          messages: [{ role: "user", content: "x" }],
          stream_options: { include_usage: true },
        })
        .finalChatCompletion();
      const expected = renderOpenAIResponse(response);
      expect(final.id).toBe(expected.id);
      expect(final.usage).toEqual(expected.usage);
      const choice = final.choices[0]!;
      expect(choice.finish_reason).toBe(expected.choices[0]!.finish_reason);
      expect(choice.message.content || null).toEqual(expected.choices[0]!.message.content || null);
      expect(choice.message.tool_calls ?? []).toEqual(
        (expected.choices[0]!.message.tool_calls ?? []) as unknown as NonNullable<
          typeof choice.message.tool_calls
        >,
      );
    },
  );

  test("a mid-stream error envelope surfaces as the SDK's APIError", async () => {
    const parts = decodeUpstream([await fixture("openai-upstream-error.chunks.txt")]);
    const client = openaiClient(encodeOpenAI(parts, { includeUsage: false }));
    const stream = await client.chat.completions.create({
      model: "m",
      messages: [{ role: "user", content: "x" }],
      stream: true,
    });
    const read = async () => {
      for await (const _ of stream) {
        // drain
      }
    };
    await expect(read()).rejects.toThrow("device fault on cuda-dev-1");
  });

  test("an unsupported parameter comes back as a 400 the SDK reports with its param", async () => {
    const rendered = renderOpenAIError(
      new CortexError("unsupported_parameter", "n > 1 is not supported", { param: "n" }),
    );
    const client = openaiClient(JSON.stringify(rendered.body), rendered.status, "application/json");
    const error = await client.chat.completions
      .create({ model: "m", messages: [{ role: "user", content: "x" }], n: 2 })
      .catch((e: unknown) => e);
    expect(error).toBeInstanceOf(OpenAI.BadRequestError);
    expect((error as InstanceType<typeof OpenAI.BadRequestError>).param).toBe("n");
    expect((error as InstanceType<typeof OpenAI.BadRequestError>).code).toBe("unsupported_parameter");
  });
});
