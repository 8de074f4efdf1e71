/**
 * `POST /v1/completions` with the official OpenAI SDK against the gateway
 * and a real neuron: the raw prompt (no chat template), streamed and not,
 * several prompts, `stop`, fill-in-the-middle with a model that has FIM
 * tokens, and the fields it refuses.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import OpenAI from "openai";
import { FIM_TINY_FILE } from "./helpers-dialects/fim-tiny-model.ts";
import { startTestGateway, type TestGateway, TINY_ID } from "./helpers-dialects/test-gateway.ts";

const KEY = "sk-completions-test";
const FIM_ID = "cortex-tiny-fim";
let gw: TestGateway;
let client: OpenAI;

beforeAll(async () => {
  gw = await startTestGateway({
    apiKeys: [KEY],
    fimModel: true,
    models: [{ id: TINY_ID }, { id: FIM_ID, file: FIM_TINY_FILE }],
  });
  client = new OpenAI({ baseURL: `${gw.url}/v1`, apiKey: KEY, maxRetries: 0 });
});

afterAll(async () => {
  await gw?.stop();
});

type BadRequest = InstanceType<typeof OpenAI.BadRequestError>;

describe("completions.create", () => {
  test("a raw prompt is continued; streamed text equals the plain answer at temperature 0", async () => {
    const prompt = "The river";
    const plain = await client.completions.create({ model: TINY_ID, prompt, max_tokens: 20, temperature: 0 });
    expect(plain.object).toBe("text_completion");
    expect(plain.id.startsWith("cmpl-")).toBe(true);
    expect(plain.model).toBe(TINY_ID);
    const choice = plain.choices[0];
    expect(choice?.index).toBe(0);
    expect(choice?.logprobs).toBeNull();
    expect(choice?.text.length).toBeGreaterThan(0);
    expect(["stop", "length"]).toContain(choice?.finish_reason ?? "");
    // No chat template: the prompt is a few tokens, not a rendered conversation.
    expect(plain.usage?.prompt_tokens).toBeLessThan(6);
    expect(plain.usage?.completion_tokens).toBeLessThanOrEqual(20);

    const stream = await client.completions.create({
      model: TINY_ID,
      prompt,
      max_tokens: 20,
      temperature: 0,
      stream: true,
      stream_options: { include_usage: true },
    });
    let text = "";
    let finish: string | null = null;
    let usage: OpenAI.CompletionUsage | undefined;
    for await (const chunk of stream) {
      expect(chunk.object).toBe("text_completion");
      for (const c of chunk.choices) {
        text += c.text;
        finish = c.finish_reason ?? finish;
      }
      if (chunk.usage) usage = chunk.usage;
    }
    expect(text).toBe(choice?.text ?? "");
    expect(finish).toBe(choice?.finish_reason ?? "");
    expect(usage?.prompt_tokens).toBe(plain.usage?.prompt_tokens ?? -1);
  });

  test("max_tokens bounds the answer (OpenAI's default is 16); several prompts are choices in order", async () => {
    const short = await client.completions.create({ model: TINY_ID, prompt: "The river", temperature: 0 });
    expect(short.usage?.completion_tokens).toBeLessThanOrEqual(16);
    const one = await client.completions.create({
      model: TINY_ID,
      prompt: "The boat",
      max_tokens: 3,
      temperature: 0,
    });
    expect(one.choices[0]?.finish_reason).toBe("length");
    expect(one.usage?.completion_tokens).toBe(3);
    const both = await client.completions.create({
      model: TINY_ID,
      prompt: ["The river", "The boat"],
      max_tokens: 3,
      temperature: 0,
    });
    expect(both.choices.map((c) => c.index)).toEqual([0, 1]);
    expect(both.choices[1]?.text).toBe(one.choices[0]?.text ?? "");
  });

  test("stop ends the answer before the stop text", async () => {
    const full = await client.completions.create({
      model: TINY_ID,
      prompt: "The river",
      max_tokens: 20,
      temperature: 0,
    });
    const text = full.choices[0]?.text ?? "";
    const word = text.trim().split(/\s+/)[1];
    expect(word).toBeDefined();
    const stopped = await client.completions.create({
      model: TINY_ID,
      prompt: "The river",
      max_tokens: 20,
      temperature: 0,
      stop: [word ?? ""],
    });
    expect(stopped.choices[0]?.finish_reason).toBe("stop");
    expect(text.startsWith(stopped.choices[0]?.text ?? "")).toBe(true);
    expect(stopped.choices[0]?.text).not.toContain(word ?? "");
  });

  test("suffix: fill-in-the-middle with a model's FIM tokens; a 400 naming suffix without them", async () => {
    const fim = await client.completions.create({
      model: FIM_ID,
      prompt: "The river",
      suffix: "to the sea.",
      max_tokens: 8,
      temperature: 0,
    });
    const plain = await client.completions.create({
      model: FIM_ID,
      prompt: "The river",
      max_tokens: 8,
      temperature: 0,
    });
    // Prefix, suffix and the three FIM tokens.
    expect(fim.usage?.prompt_tokens).toBeGreaterThan((plain.usage?.prompt_tokens ?? 0) + 3);
    expect(fim.choices[0]?.finish_reason).toBeDefined();

    const refused = await client.completions
      .create({ model: TINY_ID, prompt: "The river", suffix: "to the sea." })
      .catch((e: unknown) => e);
    expect(refused).toBeInstanceOf(OpenAI.BadRequestError);
    expect((refused as BadRequest).param).toBe("suffix");
  });

  test("echo, logprobs, n and best_of are refused with a 400 naming them", async () => {
    for (const [field, extra] of [
      ["echo", { echo: true }],
      ["logprobs", { logprobs: 2 }],
      ["n", { n: 2 }],
      ["best_of", { best_of: 3 }],
    ] as const) {
      const error = await client.completions
        .create({ model: TINY_ID, prompt: "The river", ...extra })
        .catch((e: unknown) => e);
      expect(error).toBeInstanceOf(OpenAI.BadRequestError);
      expect((error as BadRequest).param).toBe(field);
    }
    // echo: false is no change.
    const ok = await client.completions.create({
      model: TINY_ID,
      prompt: "The river",
      echo: false,
      max_tokens: 2,
    });
    expect(ok.choices.length).toBe(1);
  });
});
