/**
 * The official Anthropic SDK against the gateway, with a real neuron serving
 * the tiny model in-process: messages streamed and not, stop reasons,
 * count_tokens, errors and the exact context-overflow text Claude Code
 * parses to shrink max_tokens.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import Anthropic from "@anthropic-ai/sdk";
import { startTestGateway, type TestGateway, TINY_ID } from "./helpers-dialects/test-gateway.ts";

const KEY = "sk-ant-dialects-test";
const CONTEXT = 2048;
let gw: TestGateway;
let client: Anthropic;

beforeAll(async () => {
  // Strict: the overflow tests below check the 400 that gateway.context_overflow = "error" keeps.
  gw = await startTestGateway({
    apiKeys: [KEY],
    models: [{ id: TINY_ID, contextSize: CONTEXT }],
    contextOverflow: "error",
  });
  client = new Anthropic({ baseURL: gw.url, apiKey: KEY, maxRetries: 0 });
});

afterAll(async () => {
  await gw?.stop();
});

const system = "You are terse.";
const messages: Anthropic.MessageParam[] = [{ role: "user", content: "Tell me about the river." }];

/**
 * Temperature 0, for repeatable answers. This SDK's types no longer list
 * sampling parameters, but the wire field is still sent and the gateway
 * honours it (without it the neuron samples at temperature 1).
 */
function greedy<T extends object>(params: T): T {
  return { ...params, temperature: 0 };
}

function textOf(message: Anthropic.Message): string {
  return message.content.map((block) => (block.type === "text" ? block.text : "")).join("");
}

describe("messages", () => {
  test("a last assistant message is a prefill: the answer continues it", async () => {
    const whole = await client.messages.create(greedy({ model: TINY_ID, system, messages, max_tokens: 200 }));
    expect(whole.stop_reason).toBe("end_turn");
    const full = textOf(whole);
    // The start of the greedy answer, cut at a word boundary, given back as the assistant's turn.
    const cut = full.indexOf(" ", full.indexOf(" ") + 1);
    expect(cut).toBeGreaterThan(0);
    const prefill = full.slice(0, cut);
    const continued = await client.messages.create(
      greedy({
        model: TINY_ID,
        system,
        messages: [...messages, { role: "assistant", content: prefill }],
        max_tokens: 200,
      }),
    );
    // Greedy from the same point: the continuation is the rest of the same answer, not a new turn.
    expect(prefill + textOf(continued)).toBe(full);
    // The whole prompt: Anthropic's input_tokens leaves out what was read from the KV cache.
    const prompt = (usage: Anthropic.Usage) => usage.input_tokens + (usage.cache_read_input_tokens ?? 0);
    expect(prompt(continued.usage)).toBeGreaterThan(prompt(whole.usage));
  });

  test("streamed final message equals the non-streamed one at temperature 0", async () => {
    const whole = await client.messages.create(greedy({ model: TINY_ID, system, messages, max_tokens: 200 }));
    expect(whole.type).toBe("message");
    expect(whole.role).toBe("assistant");
    expect(whole.model).toBe(TINY_ID);
    expect(whole.id).toMatch(/^msg_/);
    expect(whole.stop_reason).toBe("end_turn");
    expect(whole.stop_sequence).toBeNull();
    expect(textOf(whole).length).toBeGreaterThan(0);
    expect(whole.usage.input_tokens).toBeGreaterThan(0);
    expect(whole.usage.output_tokens).toBeGreaterThan(0);

    const stream = client.messages.stream(greedy({ model: TINY_ID, system, messages, max_tokens: 200 }));
    const events: string[] = [];
    let start: Anthropic.Usage | undefined;
    stream.on("streamEvent", (event) => {
      events.push(event.type);
      if (event.type === "message_start") start = event.message.usage;
    });
    const final = await stream.finalMessage();
    expect(textOf(final)).toBe(textOf(whole));
    // message_start already knows the prompt: the counts the answer ends with, and the same
    // prompt as the plain answer's (this one may read more of it from the prefix cache).
    const prompt = (usage: Anthropic.Usage | undefined) =>
      (usage?.input_tokens ?? -1) + (usage?.cache_read_input_tokens ?? 0);
    expect(start?.input_tokens).toBeGreaterThan(0);
    expect(start?.input_tokens).toBe(final.usage.input_tokens);
    expect(start?.cache_read_input_tokens ?? 0).toBe(final.usage.cache_read_input_tokens ?? 0);
    expect(prompt(start)).toBe(prompt(whole.usage));
    expect(final.stop_reason).toBe("end_turn");
    expect(final.usage.output_tokens).toBe(whole.usage.output_tokens);
    expect(events[0]).toBe("message_start");
    expect(events.at(-2)).toBe("message_delta");
    expect(events.at(-1)).toBe("message_stop");
  });

  test("max_tokens ends with stop_reason max_tokens", async () => {
    const message = await client.messages.create(greedy({ model: TINY_ID, messages, max_tokens: 2 }));
    expect(message.stop_reason).toBe("max_tokens");
    expect(message.usage.output_tokens).toBe(2);
  });

  test("a stop sequence ends with stop_reason stop_sequence and names it, streamed or not", async () => {
    const free = await client.messages.create(greedy({ model: TINY_ID, messages, max_tokens: 200 }));
    const words = textOf(free).trim().split(/\s+/);
    // A word from the middle of the answer, so generation must stop before the end.
    const stop = words[Math.min(2, words.length - 1)] ?? "";
    expect(stop).not.toBe("");
    const cut = await client.messages.create(
      greedy({ model: TINY_ID, messages, max_tokens: 200, stop_sequences: [stop] }),
    );
    expect(cut.stop_reason).toBe("stop_sequence");
    expect(cut.stop_sequence).toBe(stop);
    expect(textOf(cut)).not.toContain(stop);
    expect(textOf(free).startsWith(textOf(cut))).toBe(true);

    const streamed = await client.messages
      .stream(greedy({ model: TINY_ID, messages, max_tokens: 200, stop_sequences: [stop] }))
      .finalMessage();
    expect(streamed.stop_reason).toBe("stop_sequence");
    expect(streamed.stop_sequence).toBe(stop);
    expect(textOf(streamed)).toBe(textOf(cut));
  });

  test("countTokens equals the prompt of the same request: usage's input_tokens plus its cache reads", async () => {
    const counted = await client.messages.countTokens({ model: TINY_ID, system, messages });
    const real = await client.messages.create({ model: TINY_ID, system, messages, max_tokens: 4 });
    expect(counted.input_tokens).toBeGreaterThan(0);
    expect(real.usage.cache_creation_input_tokens).toBe(0);
    expect(counted.input_tokens).toBe(real.usage.input_tokens + (real.usage.cache_read_input_tokens ?? 0));
  });

  test("a repeated request reads its prefix from the cache, and input_tokens counts only the rest", async () => {
    const request = { model: TINY_ID, system: `${system} Repeat.`, messages, max_tokens: 4 };
    const counted = await client.messages.countTokens({ model: TINY_ID, system: request.system, messages });
    await client.messages.create(request);
    const again = await client.messages.create(request);
    expect(again.usage.cache_read_input_tokens).toBe(counted.input_tokens - 1);
    expect(again.usage.input_tokens).toBe(1);
    expect(again.usage.cache_creation_input_tokens).toBe(0);
  });
});

describe("errors", () => {
  test("a bad request is a 400 invalid_request_error", async () => {
    const error = await client.messages
      .create({ model: TINY_ID, messages, max_tokens: 0 })
      .catch((e: unknown) => e);
    expect(error).toBeInstanceOf(Anthropic.BadRequestError);
    const bad = error as InstanceType<typeof Anthropic.BadRequestError>;
    expect(bad.status).toBe(400);
    expect(bad.error).toMatchObject({ type: "error", error: { type: "invalid_request_error" } });
  });

  test("an unknown model is a 404 not_found_error", async () => {
    const error = await client.messages
      .create({ model: "no-such-model", messages, max_tokens: 8 })
      .catch((e: unknown) => e);
    expect(error).toBeInstanceOf(Anthropic.NotFoundError);
    expect((error as InstanceType<typeof Anthropic.NotFoundError>).error).toMatchObject({
      error: { type: "not_found_error" },
    });
    const counted = await client.messages
      .countTokens({ model: "no-such-model", messages })
      .catch((e: unknown) => e);
    expect(counted).toBeInstanceOf(Anthropic.NotFoundError);
  });

  test("a wrong key is a 401 authentication_error, streamed or not", async () => {
    const wrong = new Anthropic({ baseURL: gw.url, apiKey: "sk-ant-wrong", maxRetries: 0 });
    for (const stream of [false, true]) {
      const error = await wrong.messages
        .create({ model: TINY_ID, messages, max_tokens: 8, stream })
        .catch((e: unknown) => e);
      expect(error).toBeInstanceOf(Anthropic.AuthenticationError);
      expect((error as InstanceType<typeof Anthropic.AuthenticationError>).error).toMatchObject({
        error: { type: "authentication_error" },
      });
    }
    const counted = await wrong.messages.countTokens({ model: TINY_ID, messages }).catch((e: unknown) => e);
    expect(counted).toBeInstanceOf(Anthropic.AuthenticationError);
  });

  test("a prompt longer than the context alone is Anthropic's `prompt is too long`", async () => {
    const long: Anthropic.MessageParam[] = [
      { role: "user", content: "the river runs by the town. ".repeat(400) },
    ];
    const { input_tokens: input } = await client.messages.countTokens({ model: TINY_ID, messages: long });
    expect(input).toBeGreaterThan(CONTEXT);
    const error = await client.messages
      .create({ model: TINY_ID, messages: long, max_tokens: 8 })
      .catch((e: unknown) => e);
    expect(error).toBeInstanceOf(Anthropic.BadRequestError);
    expect((error as InstanceType<typeof Anthropic.BadRequestError>).error).toEqual({
      type: "error",
      error: {
        type: "invalid_request_error",
        message: `prompt is too long: ${input} tokens > ${CONTEXT} maximum`,
      },
    });
  });

  test("input + max_tokens over the context is Anthropic's exact overflow message", async () => {
    const { input_tokens: input } = await client.messages.countTokens({ model: TINY_ID, system, messages });
    const maxTokens = CONTEXT;
    for (const stream of [false, true]) {
      const error = await client.messages
        .create({ model: TINY_ID, system, messages, max_tokens: maxTokens, stream })
        .catch((e: unknown) => e);
      expect(error).toBeInstanceOf(Anthropic.BadRequestError);
      expect((error as InstanceType<typeof Anthropic.BadRequestError>).error).toEqual({
        type: "error",
        error: {
          type: "invalid_request_error",
          message: `input length and \`max_tokens\` exceed context limit: ${input} + ${maxTokens} > ${CONTEXT}, decrease input length or \`max_tokens\` and try again`,
        },
      });
    }
  });

  test("models.list and models.retrieve answer in Anthropic's shape", async () => {
    const page = await client.models.list();
    const ids = page.data.map((model) => model.id);
    expect(ids).toContain(TINY_ID);
    const model = page.data.find((entry) => entry.id === TINY_ID);
    expect(model).toMatchObject({ type: "model", id: TINY_ID, display_name: TINY_ID });
    expect(Number.isNaN(Date.parse(model?.created_at ?? ""))).toBe(false);
    expect(await client.models.retrieve(TINY_ID)).toEqual(model as Anthropic.ModelInfo);
    const missing = await client.models.retrieve("no-such-model").catch((e: unknown) => e);
    expect(missing).toBeInstanceOf(Anthropic.NotFoundError);
    // Without anthropic-version the same endpoint is OpenAI's.
    const openai = (await (
      await fetch(`${gw.url}/v1/models`, { headers: { authorization: `Bearer ${KEY}` } })
    ).json()) as { object: string };
    expect(openai.object).toBe("list");
  });
});
