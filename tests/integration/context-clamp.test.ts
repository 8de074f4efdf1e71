/**
 * max_tokens larger than what the prompt leaves of the context
 * (gateway.context_overflow = "clamp", the default): agent CLIs send their
 * own large defaults, and each dialect answers, ending where the context
 * fills, instead of refusing. A prompt that does not fit at all is still a
 * 400 (tests/integration/dialects-*-sdk.test.ts check the strict setting).
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import Anthropic from "@anthropic-ai/sdk";
import OpenAI from "openai";
import { startTestGateway, type TestGateway, TINY_ID } from "./helpers-dialects/test-gateway.ts";

const CONTEXT = 64;
let gw: TestGateway;
let openai: OpenAI;
let anthropic: Anthropic;

beforeAll(async () => {
  gw = await startTestGateway({ models: [{ id: TINY_ID, contextSize: CONTEXT }] });
  openai = new OpenAI({ baseURL: `${gw.url}/v1`, apiKey: "unused", maxRetries: 0 });
  anthropic = new Anthropic({ baseURL: gw.url, apiKey: "unused", maxRetries: 0 });
  // One token left: the answer ends there however it would have gone on.
  nearlyFull = await promptLeaving(1);
});

afterAll(async () => {
  await gw?.stop();
});

const question = "Tell me about the river and the baker and the town.";
let nearlyFull = "";

/** A user message whose prompt leaves `left` tokens of the context (the template's tokens included). */
async function promptLeaving(left: number): Promise<string> {
  const words = question.split(" ");
  let text = "";
  for (let i = 0; ; i++) {
    const next = `${text} ${words[i % words.length]}`.trim();
    const { input_tokens } = await anthropic.messages.countTokens({
      model: TINY_ID,
      messages: [{ role: "user", content: next }],
    });
    if (input_tokens > CONTEXT - left) return text;
    text = next;
  }
}

describe("max_tokens over what the context leaves is clamped", () => {
  test("chat.completions: the answer fills the context and ends with length", async () => {
    for (const stream of [false, true]) {
      const params = {
        model: TINY_ID,
        messages: [{ role: "user" as const, content: nearlyFull }],
        max_tokens: 32000,
        temperature: 0,
        stream_options: stream ? { include_usage: true } : undefined,
      };
      if (!stream) {
        const answer = await openai.chat.completions.create(params);
        expect(answer.choices[0]?.finish_reason).toBe("length");
        expect((answer.usage?.prompt_tokens ?? 0) + (answer.usage?.completion_tokens ?? 0)).toBe(CONTEXT);
      } else {
        let finish: string | null | undefined;
        let usage: OpenAI.CompletionUsage | null | undefined;
        for await (const chunk of await openai.chat.completions.create({ ...params, stream: true })) {
          finish = chunk.choices[0]?.finish_reason ?? finish;
          usage = chunk.usage ?? usage;
        }
        expect(finish).toBe("length");
        expect((usage?.prompt_tokens ?? 0) + (usage?.completion_tokens ?? 0)).toBe(CONTEXT);
      }
    }
  });

  test("messages: stop_reason max_tokens where the context fills", async () => {
    // Streamed, as Claude Code asks (the SDK refuses a plain request this large itself).
    const answer = await anthropic.messages
      .stream({ model: TINY_ID, max_tokens: 32000, messages: [{ role: "user", content: nearlyFull }] })
      .finalMessage();
    expect(answer.stop_reason).toBe("max_tokens");
    // Anthropic's input_tokens leaves out the prompt tokens read from the KV cache.
    const prompt = answer.usage.input_tokens + (answer.usage.cache_read_input_tokens ?? 0);
    expect(prompt + answer.usage.output_tokens).toBe(CONTEXT);
  });

  test("responses: status incomplete, reason max_output_tokens", async () => {
    const answer = await openai.responses.create({
      model: TINY_ID,
      input: nearlyFull,
      max_output_tokens: 32000,
    });
    expect(answer.status).toBe("incomplete");
    expect(answer.incomplete_details?.reason).toBe("max_output_tokens");
  });

  test("a prompt that does not fit at all is still a 400", async () => {
    const error = await openai.chat.completions
      .create({ model: TINY_ID, messages: [{ role: "user", content: question.repeat(20) }], max_tokens: 10 })
      .catch((e: unknown) => e);
    expect(error).toBeInstanceOf(OpenAI.BadRequestError);
    expect((error as InstanceType<typeof OpenAI.BadRequestError>).code).toBe("context_length_exceeded");
  });
});
