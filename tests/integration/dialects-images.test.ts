/**
 * Images against model profiles: a model whose profile says vision = false
 * gets a clear 400 naming it in the client's dialect before anything reaches
 * a neuron; a vision model receives the image as an OpenAI image_url part.
 */
import { afterAll, beforeAll, beforeEach, describe, expect, test } from "bun:test";
import Anthropic from "@anthropic-ai/sdk";
import OpenAI from "openai";
import { type ScriptedNeuron, startScriptedNeuron } from "./helpers-dialects/scripted-neuron.ts";
import { startTestGateway, type TestGateway } from "./helpers-dialects/test-gateway.ts";

const TEXT_MODEL = "scripted-text";
const VISION_MODEL = "scripted-vl";
// A 1x1 transparent PNG.
const PNG = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAQAAAC1HAwCAAAAC0lEQVR42mNkYAAAAAYAAjCB0C8AAAAASUVORK5CYII=";

let neuron: ScriptedNeuron;
let gw: TestGateway;
let openai: OpenAI;
let anthropic: Anthropic;

beforeAll(async () => {
  neuron = startScriptedNeuron([TEXT_MODEL, VISION_MODEL]);
  gw = await startTestGateway({
    neurons: [{ name: "scripted", endpoint: neuron.url }],
    models: [
      { id: TEXT_MODEL, file: `${TEXT_MODEL}.gguf`, vision: false },
      { id: VISION_MODEL, file: `${VISION_MODEL}.gguf`, vision: true },
    ],
  });
  openai = new OpenAI({ baseURL: `${gw.url}/v1`, apiKey: "unused", maxRetries: 0 });
  anthropic = new Anthropic({ baseURL: gw.url, apiKey: "unused", maxRetries: 0 });
});

afterAll(async () => {
  await gw?.stop();
  neuron?.stop();
});

beforeEach(() => {
  neuron.received.length = 0;
});

const anthropicImage: Anthropic.MessageParam = {
  role: "user",
  content: [
    { type: "image", source: { type: "base64", media_type: "image/png", data: PNG } },
    { type: "text", text: "What is this?" },
  ],
};
const openaiImage: OpenAI.Chat.ChatCompletionMessageParam = {
  role: "user",
  content: [
    { type: "text", text: "What is this?" },
    { type: "image_url", image_url: { url: `data:image/png;base64,${PNG}` } },
  ],
};

describe("a model without vision", () => {
  test("Anthropic image block → 400 invalid_request_error naming the model", async () => {
    for (const stream of [false, true]) {
      const error = await anthropic.messages
        .create({ model: TEXT_MODEL, max_tokens: 16, messages: [anthropicImage], stream })
        .catch((e: unknown) => e);
      expect(error).toBeInstanceOf(Anthropic.BadRequestError);
      const body = (error as InstanceType<typeof Anthropic.BadRequestError>).error as {
        error: { type: string; message: string };
      };
      expect(body.error.type).toBe("invalid_request_error");
      expect(body.error.message).toContain(TEXT_MODEL);
      expect(body.error.message).toContain("images");
    }
    expect(neuron.received).toEqual([]);
  });

  test("an image inside a tool_result is refused too", async () => {
    const error = await anthropic.messages
      .create({
        model: TEXT_MODEL,
        max_tokens: 16,
        messages: [
          { role: "user", content: "Screenshot please" },
          { role: "assistant", content: [{ type: "tool_use", id: "toolu_1", name: "shot", input: {} }] },
          {
            role: "user",
            content: [
              {
                type: "tool_result",
                tool_use_id: "toolu_1",
                content: [{ type: "image", source: { type: "base64", media_type: "image/png", data: PNG } }],
              },
            ],
          },
        ],
      })
      .catch((e: unknown) => e);
    expect(error).toBeInstanceOf(Anthropic.BadRequestError);
    expect(neuron.received).toEqual([]);
  });

  test("OpenAI image_url part → 400 naming the model", async () => {
    const error = await openai.chat.completions
      .create({ model: TEXT_MODEL, messages: [openaiImage] })
      .catch((e: unknown) => e);
    expect(error).toBeInstanceOf(OpenAI.BadRequestError);
    const bad = error as InstanceType<typeof OpenAI.BadRequestError>;
    expect(bad.message).toContain(TEXT_MODEL);
    expect(bad.param).toBe("messages");
    expect(neuron.received).toEqual([]);
  });
});

describe("a vision model", () => {
  test("receives both dialects' images as image_url data URLs", async () => {
    await anthropic.messages.create({ model: VISION_MODEL, max_tokens: 16, messages: [anthropicImage] });
    await openai.chat.completions.create({ model: VISION_MODEL, messages: [openaiImage] });
    const parts = neuron.received.map((body) => body.messages[0]?.content);
    expect(parts[0]).toEqual([
      { type: "image_url", image_url: { url: `data:image/png;base64,${PNG}` } },
      { type: "text", text: "What is this?" },
    ]);
    expect(parts[1]).toEqual([
      { type: "text", text: "What is this?" },
      { type: "image_url", image_url: { url: `data:image/png;base64,${PNG}` } },
    ]);
  });
});
