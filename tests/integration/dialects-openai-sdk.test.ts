/**
 * The official OpenAI SDK against the gateway, with a real neuron serving
 * the tiny model in-process: completions streamed and not, the catalogue,
 * and errors arriving as the SDK's own error classes.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import OpenAI from "openai";
import { startTestGateway, type TestGateway, TINY_ID } from "./helpers-dialects/test-gateway.ts";

const KEY = "sk-dialects-test";
let gw: TestGateway;
let client: OpenAI;

beforeAll(async () => {
  // Strict: the overflow tests check the 400 that gateway.context_overflow = "error" keeps.
  gw = await startTestGateway({ apiKeys: [KEY], contextOverflow: "error" });
  client = new OpenAI({ baseURL: `${gw.url}/v1`, apiKey: KEY, maxRetries: 0 });
});

afterAll(async () => {
  await gw?.stop();
});

const messages: OpenAI.Chat.ChatCompletionMessageParam[] = [
  { role: "system", content: "You are terse." },
  { role: "user", content: "Tell me about the river." },
];

describe("chat.completions", () => {
  test("a last assistant message is a prefill: the answer continues it", async () => {
    const ask = (extra: OpenAI.Chat.ChatCompletionMessageParam[]) =>
      client.chat.completions.create({
        model: TINY_ID,
        messages: [...messages, ...extra],
        temperature: 0,
        max_tokens: 100,
      });
    const whole = await ask([]);
    expect(whole.choices[0]?.finish_reason).toBe("stop");
    const full = whole.choices[0]?.message.content ?? "";
    const cut = full.indexOf(" ", full.indexOf(" ") + 1);
    expect(cut).toBeGreaterThan(0);
    const prefill = full.slice(0, cut);
    const continued = await ask([{ role: "assistant", content: prefill }]);
    expect(prefill + (continued.choices[0]?.message.content ?? "")).toBe(full);
  });

  test("streamed text equals non-streamed text at temperature 0, usage included", async () => {
    const whole = await client.chat.completions.create({
      model: TINY_ID,
      messages,
      temperature: 0,
      max_tokens: 100,
    });
    const choice = whole.choices[0];
    expect(whole.object).toBe("chat.completion");
    expect(whole.model).toBe(TINY_ID);
    expect(choice?.message.role).toBe("assistant");
    const text = choice?.message.content ?? "";
    expect(text.length).toBeGreaterThan(0);
    expect(choice?.finish_reason).toBe("stop");
    expect(whole.usage?.prompt_tokens).toBeGreaterThan(0);
    expect(whole.usage?.completion_tokens).toBeGreaterThan(0);
    expect(whole.usage?.total_tokens).toBe(
      (whole.usage?.prompt_tokens ?? 0) + (whole.usage?.completion_tokens ?? 0),
    );

    const stream = await client.chat.completions.create({
      model: TINY_ID,
      messages,
      temperature: 0,
      max_tokens: 100,
      stream: true,
      stream_options: { include_usage: true },
    });
    let streamed = "";
    let finish: string | null = null;
    let usage: OpenAI.CompletionUsage | undefined | null;
    const ids = new Set<string>();
    for await (const chunk of stream) {
      ids.add(chunk.id);
      expect(chunk.object).toBe("chat.completion.chunk");
      const delta = chunk.choices[0];
      streamed += delta?.delta.content ?? "";
      if (delta?.finish_reason) finish = delta.finish_reason;
      if (chunk.usage) usage = chunk.usage;
    }
    expect(ids.size).toBe(1);
    expect(streamed).toBe(text);
    expect(finish).toBe(choice?.finish_reason ?? "");
    expect(usage?.prompt_tokens).toBe(whole.usage?.prompt_tokens ?? -1);
    expect(usage?.completion_tokens).toBe(whole.usage?.completion_tokens ?? -1);
    // The same prompt again: its KV is reused up to the last token, streamed or not.
    expect(usage?.prompt_tokens_details?.cached_tokens).toBe((whole.usage?.prompt_tokens ?? 0) - 1);
  });

  test("usage.prompt_tokens_details.cached_tokens counts the prefix shared with the previous turn", async () => {
    const turn1: OpenAI.Chat.ChatCompletionMessageParam[] = [
      { role: "system", content: "You are terse. Turn test." },
      { role: "user", content: "Tell me about the mill." },
    ];
    const first = await client.chat.completions.create({
      model: TINY_ID,
      messages: turn1,
      temperature: 0,
      max_tokens: 20,
    });
    const turn2: OpenAI.Chat.ChatCompletionMessageParam[] = [
      ...turn1,
      { role: "assistant", content: first.choices[0]?.message.content ?? "" },
      { role: "user", content: "And the river?" },
    ];
    const second = await client.chat.completions.create({
      model: TINY_ID,
      messages: turn2,
      temperature: 0,
      max_tokens: 20,
    });
    expect(second.usage?.prompt_tokens_details?.cached_tokens).toBeGreaterThanOrEqual(
      first.usage?.prompt_tokens ?? -1,
    );
    expect(second.usage?.prompt_tokens_details?.cached_tokens).toBeLessThan(
      second.usage?.prompt_tokens ?? -1,
    );
  });

  test("the stream helper's final completion matches too", async () => {
    const runner = client.chat.completions.stream({
      model: TINY_ID,
      messages,
      temperature: 0,
      max_tokens: 100,
    });
    const final = await runner.finalChatCompletion();
    const again = await client.chat.completions.create({
      model: TINY_ID,
      messages,
      temperature: 0,
      max_tokens: 100,
    });
    expect(final.choices[0]?.message.content).toBe(again.choices[0]?.message.content ?? "");
  });

  test("max_tokens cuts the answer with finish_reason length", async () => {
    const short = await client.chat.completions.create({
      model: TINY_ID,
      messages,
      temperature: 0,
      max_tokens: 2,
    });
    expect(short.choices[0]?.finish_reason).toBe("length");
    expect(short.usage?.completion_tokens).toBe(2);
  });
});

describe("models", () => {
  test("list and retrieve show the configured model", async () => {
    const ids: string[] = [];
    for await (const model of client.models.list()) ids.push(model.id);
    expect(ids).toContain(TINY_ID);
    const model = await client.models.retrieve(TINY_ID);
    expect(model.id).toBe(TINY_ID);
    expect(model.object).toBe("model");
  });

  test("retrieving an unknown model is a NotFoundError", async () => {
    const error = await client.models.retrieve("no-such-model").catch((e: unknown) => e);
    expect(error).toBeInstanceOf(OpenAI.NotFoundError);
  });
});

describe("errors", () => {
  test("a bad request is a 400 BadRequestError naming the param", async () => {
    const error = await client.chat.completions
      .create({ model: TINY_ID, messages, temperature: 5 })
      .catch((e: unknown) => e);
    expect(error).toBeInstanceOf(OpenAI.BadRequestError);
    const bad = error as InstanceType<typeof OpenAI.BadRequestError>;
    expect(bad.status).toBe(400);
    expect(bad.param).toBe("temperature");
  });

  test("n > 1 is refused with 400 on param n", async () => {
    const error = await client.chat.completions
      .create({ model: TINY_ID, messages, n: 2 })
      .catch((e: unknown) => e);
    expect(error).toBeInstanceOf(OpenAI.BadRequestError);
    expect((error as InstanceType<typeof OpenAI.BadRequestError>).param).toBe("n");
  });

  test("an unknown model is a 404 NotFoundError", async () => {
    const error = await client.chat.completions
      .create({ model: "no-such-model", messages })
      .catch((e: unknown) => e);
    expect(error).toBeInstanceOf(OpenAI.NotFoundError);
    expect((error as InstanceType<typeof OpenAI.NotFoundError>).status).toBe(404);
    expect((error as Error).message).toContain("no-such-model");
  });

  test("a wrong API key is a 401 AuthenticationError, streamed or not", async () => {
    const wrong = new OpenAI({ baseURL: `${gw.url}/v1`, apiKey: "sk-wrong", maxRetries: 0 });
    const plain = await wrong.chat.completions.create({ model: TINY_ID, messages }).catch((e: unknown) => e);
    expect(plain).toBeInstanceOf(OpenAI.AuthenticationError);
    const streamed = await wrong.chat.completions
      .create({ model: TINY_ID, messages, stream: true })
      .catch((e: unknown) => e);
    expect(streamed).toBeInstanceOf(OpenAI.AuthenticationError);
    const models = await wrong.models.list().catch((e: unknown) => e);
    expect(models).toBeInstanceOf(OpenAI.AuthenticationError);
  });

  test("a context overflow is a 400 with the counts", async () => {
    const error = await client.chat.completions
      .create({ model: TINY_ID, messages, max_tokens: 4096 })
      .catch((e: unknown) => e);
    expect(error).toBeInstanceOf(OpenAI.BadRequestError);
    expect((error as Error).message).toMatch(
      /^400 This model's maximum context length is 2048 tokens\. However, you requested \d+ tokens \(\d+ in the messages, 4096 in the completion\)/,
    );
  });

  test("a prompt longer than the context alone says so", async () => {
    const error = await client.chat.completions
      .create({
        model: TINY_ID,
        messages: [{ role: "user", content: "the river runs by the town. ".repeat(400) }],
      })
      .catch((e: unknown) => e);
    expect(error).toBeInstanceOf(OpenAI.BadRequestError);
    expect((error as Error).message).toMatch(
      /^400 This model's maximum context length is 2048 tokens\. However, your messages resulted in \d+ tokens\./,
    );
    expect((error as InstanceType<typeof OpenAI.BadRequestError>).code).toBe("context_length_exceeded");
  });
});
