/**
 * Tool-call formats and reasoning end to end: the real gateway and neuron,
 * the tiny model under a chat template of our own per format
 * (helpers-dialects/format-tiny-models.ts), and the official SDKs. A forced
 * call is written in the template's syntax, parsed back by the neuron and
 * streamed to each dialect as argument deltas while it is generated;
 * reasoning opened by the template reaches each dialect as its reasoning
 * (and Anthropic clients see it only when they enabled thinking).
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { mkdirSync } from "node:fs";
import { join } from "node:path";
import Anthropic from "@anthropic-ai/sdk";
import OpenAI from "openai";
import {
  FORMAT_CALLS,
  formatFile,
  type TestFormat,
  THINK_FILE,
  writeFormatTinyModels,
} from "./helpers-dialects/format-tiny-models.ts";
import { startTestGateway, type TestGateway } from "./helpers-dialects/test-gateway.ts";

const FORMATS = Object.keys(FORMAT_CALLS) as TestFormat[];
const THINK = "tiny-think";

const weather = {
  name: "get_weather",
  description: "Current weather in a city",
  parameters: {
    type: "object" as const,
    properties: {
      city: { type: "string", maxLength: 10 },
      days: { type: "integer", minimum: 1, maximum: 9 },
    },
    required: ["city", "days"],
    additionalProperties: false,
  },
};

let gw: TestGateway;
let openai: OpenAI;
let anthropic: Anthropic;

beforeAll(async () => {
  const dir = join(import.meta.dir, "../.tmp/format-models");
  mkdirSync(dir, { recursive: true });
  const files = await writeFormatTinyModels(dir);
  gw = await startTestGateway({
    models: [
      ...FORMATS.map((format) => ({ id: `tiny-${format}`, file: formatFile(format) })),
      { id: THINK, file: THINK_FILE },
    ],
    linkFiles: files,
  });
  openai = new OpenAI({ baseURL: `${gw.url}/v1`, apiKey: "x", maxRetries: 0 });
  anthropic = new Anthropic({ baseURL: gw.url, apiKey: "x", maxRetries: 0 });
}, 60_000);

afterAll(async () => {
  await gw?.stop();
});

function validWeather(args: string): void {
  const parsed = JSON.parse(args);
  expect(typeof parsed.city).toBe("string");
  expect(parsed.days).toBeGreaterThanOrEqual(1);
  expect(parsed.days).toBeLessThanOrEqual(9);
}

describe("a forced call in each format's own syntax", () => {
  test.each(FORMATS)("%s: OpenAI stream carries the arguments as deltas", async (format) => {
    const stream = await openai.chat.completions.create({
      model: `tiny-${format}`,
      messages: [{ role: "user", content: "Weather in Paris?" }],
      tools: [{ type: "function", function: weather }],
      tool_choice: { type: "function", function: { name: "get_weather" } },
      parallel_tool_calls: false,
      stream: true,
      seed: 1,
    });
    const deltas: string[] = [];
    let name: string | undefined;
    let finish: string | null | undefined;
    let content = "";
    for await (const chunk of stream) {
      const choice = chunk.choices[0];
      if (choice === undefined) continue;
      content += choice.delta.content ?? "";
      for (const call of choice.delta.tool_calls ?? []) {
        name ??= call.function?.name;
        if (call.function?.arguments) deltas.push(call.function.arguments);
      }
      finish = choice.finish_reason ?? finish;
    }
    expect(name).toBe("get_weather");
    expect(content).toBe("");
    expect(finish).toBe("tool_calls");
    // Streamed as generated: more than one piece (the XML formats give one per parameter).
    expect(deltas.length).toBeGreaterThan(1);
    validWeather(deltas.join(""));
  });

  test("Anthropic: the call streams as input_json_delta and ends as tool_use", async () => {
    const stream = anthropic.messages.stream({
      model: "tiny-glm",
      max_tokens: 200,
      messages: [{ role: "user", content: "Weather in Paris?" }],
      tools: [{ name: weather.name, description: weather.description, input_schema: weather.parameters }],
      tool_choice: { type: "tool", name: "get_weather", disable_parallel_tool_use: true },
    });
    let jsonDeltas = 0;
    for await (const event of stream)
      if (event.type === "content_block_delta" && event.delta.type === "input_json_delta") jsonDeltas++;
    const message = await stream.finalMessage();
    expect(jsonDeltas).toBeGreaterThan(1);
    expect(message.stop_reason).toBe("tool_use");
    const use = message.content.find((block) => block.type === "tool_use");
    expect(use).toMatchObject({ type: "tool_use", name: "get_weather" });
    validWeather(JSON.stringify(use?.type === "tool_use" ? use.input : null));
  });

  test("Responses: function_call_arguments.delta events, then the call", async () => {
    const stream = await openai.responses.create({
      model: "tiny-deepseek-v3",
      input: "Weather in Paris?",
      tools: [{ type: "function", ...weather, strict: true }],
      tool_choice: { type: "function", name: "get_weather" },
      parallel_tool_calls: false,
      stream: true,
    });
    let deltas = 0;
    let args: string | undefined;
    for await (const event of stream) {
      if (event.type === "response.function_call_arguments.delta") deltas++;
      if (event.type === "response.output_item.done" && event.item.type === "function_call")
        args = event.item.arguments;
    }
    expect(deltas).toBeGreaterThan(1);
    validWeather(args!);
  });
});

describe("reasoning", () => {
  const ask = { model: THINK, messages: [{ role: "user" as const, content: "Think about the baker." }] };

  test("OpenAI: the open <think> block is reasoning_content, counted in usage", async () => {
    const chat = await openai.chat.completions.create({ ...ask, max_tokens: 12, seed: 1 });
    const message = chat.choices[0]!.message as { content: string | null; reasoning_content?: string };
    expect(message.reasoning_content?.length).toBeGreaterThan(0);
    expect(message.content ?? "").toBe("");
    const details = chat.usage?.completion_tokens_details;
    expect(details?.reasoning_tokens).toBeGreaterThan(0);
    expect(details?.reasoning_tokens).toBeLessThanOrEqual(chat.usage!.completion_tokens);

    let streamed = "";
    const stream = await openai.chat.completions.create({ ...ask, max_tokens: 12, seed: 1, stream: true });
    for await (const chunk of stream)
      streamed +=
        (chunk.choices[0]?.delta as { reasoning_content?: string } | undefined)?.reasoning_content ?? "";
    expect(streamed).toBe(message.reasoning_content!);
  });

  test("reasoning_effort none turns the template's thinking off: the answer is content", async () => {
    const chat = await openai.chat.completions.create({
      ...ask,
      max_tokens: 12,
      seed: 1,
      reasoning_effort: "none" as "low",
    });
    const message = chat.choices[0]!.message as { content: string | null; reasoning_content?: string };
    expect(message.reasoning_content).toBeUndefined();
    expect(message.content?.length).toBeGreaterThan(0);
  });

  test("chat_template_kwargs reach the template: enable_thinking false turns thinking off, and wins over reasoning_effort", async () => {
    const chat = await openai.chat.completions.create({
      ...ask,
      max_tokens: 12,
      seed: 1,
      reasoning_effort: "high",
      chat_template_kwargs: { enable_thinking: false },
    } as never);
    const message = (chat as OpenAI.ChatCompletion).choices[0]!.message as {
      content: string | null;
      reasoning_content?: string;
    };
    expect(message.reasoning_content).toBeUndefined();
    expect(message.content?.length).toBeGreaterThan(0);
  });

  test("earlier reasoning in the history reaches the template", async () => {
    const history = (reasoning?: string) =>
      openai.chat.completions.create({
        model: THINK,
        max_tokens: 1,
        messages: [
          { role: "user", content: "Hi" },
          {
            role: "assistant",
            content: "Hello",
            ...(reasoning ? { reasoning_content: reasoning } : {}),
          } as never,
          { role: "user", content: "Again" },
        ],
      });
    const without = await history();
    const withReasoning = await history("the baker has bread");
    expect(withReasoning.usage!.prompt_tokens).toBeGreaterThan(without.usage!.prompt_tokens);
  });

  test("Anthropic: thinking blocks with a signature only when thinking is enabled", async () => {
    const base = { model: THINK, max_tokens: 12, messages: [{ role: "user" as const, content: "Think." }] };
    const plain = await anthropic.messages.create(base);
    expect(plain.content.some((block) => block.type === "thinking")).toBe(false);

    const stream = anthropic.messages.stream({ ...base, thinking: { type: "enabled", budget_tokens: 1024 } });
    const message = await stream.finalMessage();
    const thinking = message.content.find((block) => block.type === "thinking");
    expect(thinking?.type).toBe("thinking");
    if (thinking?.type !== "thinking") return;
    expect(thinking.thinking.length).toBeGreaterThan(0);
    // The signature arrives as its own delta at the block's end, as Anthropic sends it.
    expect(thinking.signature.length).toBeGreaterThan(0);
  });

  test("Responses: a reasoning item, and reasoning tokens in usage", async () => {
    const response = await openai.responses.create({ model: THINK, input: "Think.", max_output_tokens: 12 });
    const reasoning = response.output.find((item) => item.type === "reasoning");
    expect(reasoning).toBeDefined();
    expect(response.usage?.output_tokens_details.reasoning_tokens).toBeGreaterThan(0);
  });
});
