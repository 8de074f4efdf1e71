/**
 * Structured output end to end, as users of the official SDKs meet it:
 * `cortex serve` (gateway + in-process neuron) on the word-salad demo model,
 * which only produces JSON or tool calls because the grammar makes it.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import Anthropic from "@anthropic-ai/sdk";
import { zodOutputFormat } from "@anthropic-ai/sdk/helpers/zod";
import OpenAI from "openai";
import { zodResponseFormat, zodTextFormat } from "openai/helpers/zod";
import { z } from "zod";
import { startTestGateway, type TestGateway, TINY_ID } from "./helpers-dialects/test-gateway.ts";

let gw: TestGateway;
let openai: OpenAI;
let anthropic: Anthropic;

beforeAll(async () => {
  gw = await startTestGateway({});
  openai = new OpenAI({ baseURL: `${gw.url}/v1`, apiKey: "any", maxRetries: 0 });
  anthropic = new Anthropic({ baseURL: gw.url, apiKey: "any", maxRetries: 0 });
});

afterAll(async () => {
  await gw?.stop();
});

// The demo model never writes a closing quote on its own: strings need a length bound to end.
const Baker = z.object({
  name: z.string().max(20),
  age: z.number().int().min(18).max(99),
  role: z.enum(["baker", "teacher", "fisher"]),
  tags: z.array(z.string().max(8)).max(3),
  married: z.boolean().nullable(),
});

const weatherTool: OpenAI.Chat.ChatCompletionTool = {
  type: "function",
  function: {
    name: "get_weather",
    description: "Weather in a city",
    parameters: {
      type: "object",
      properties: {
        city: { type: "string", maxLength: 16 },
        days: { type: "integer", minimum: 1, maximum: 7 },
      },
      required: ["city", "days"],
      additionalProperties: false,
    },
    strict: true,
  },
};
const timeTool: OpenAI.Chat.ChatCompletionTool = {
  type: "function",
  function: {
    name: "get_time",
    parameters: {
      type: "object",
      properties: { zone: { enum: ["UTC", "CET"] } },
      required: ["zone"],
      additionalProperties: false,
    },
  },
};
const messages: OpenAI.Chat.ChatCompletionMessageParam[] = [
  { role: "user", content: "Tell me about the baker." },
];

describe("OpenAI SDK", () => {
  test("chat.completions.parse with a zod response format returns the parsed object", async () => {
    for (const seed of [1, 2, 3]) {
      const completion = await openai.chat.completions.parse({
        model: TINY_ID,
        messages,
        seed,
        max_tokens: 200,
        response_format: zodResponseFormat(Baker, "baker"),
      });
      const message = completion.choices[0]!.message;
      expect(completion.choices[0]!.finish_reason).toBe("stop");
      expect(Baker.parse(message.parsed)).toEqual(message.parsed!);
    }
  });

  test("json_object mode answers with one JSON object", async () => {
    const completion = await openai.chat.completions.create({
      model: TINY_ID,
      messages,
      seed: 4,
      max_tokens: 300,
      response_format: { type: "json_object" },
    });
    const choice = completion.choices[0]!;
    // Free-form keys are unbounded strings: the demo model may run to max_tokens, and says so.
    if (choice.finish_reason === "stop") expect(typeof JSON.parse(choice.message.content!)).toBe("object");
    else expect(choice.finish_reason).toBe("length");
    expect(choice.message.content!.startsWith("{")).toBe(true);
  });

  test("max_tokens cutting a constrained answer ends with length, not a complete-looking JSON", async () => {
    const completion = await openai.chat.completions.create({
      model: TINY_ID,
      messages,
      seed: 1,
      max_tokens: 5,
      response_format: zodResponseFormat(Baker, "baker"),
    });
    const choice = completion.choices[0]!;
    expect(choice.finish_reason).toBe("length");
    expect(() => JSON.parse(choice.message.content!)).toThrow();
  });

  test("tool_choice required calls one of the tools with valid arguments", async () => {
    const completion = await openai.chat.completions.create({
      model: TINY_ID,
      messages,
      seed: 5,
      max_tokens: 200,
      tools: [weatherTool, timeTool],
      tool_choice: "required",
      parallel_tool_calls: false,
    });
    const choice = completion.choices[0]!;
    expect(choice.finish_reason).toBe("tool_calls");
    expect(choice.message.tool_calls).toHaveLength(1);
    const call = choice.message.tool_calls![0]!;
    if (call.type !== "function") throw new Error("not a function call");
    expect(["get_weather", "get_time"]).toContain(call.function.name);
    const args = JSON.parse(call.function.arguments);
    if (call.function.name === "get_time") expect(["UTC", "CET"]).toContain(args.zone);
    else expect(args.days).toBeGreaterThanOrEqual(1);
  });

  test("max_tokens cutting a forced call finishes with length; the arguments are what was generated", async () => {
    const completion = await openai.chat.completions.create({
      model: TINY_ID,
      messages,
      seed: 5,
      // The call's head is about 45 single-byte tokens: cut inside the arguments.
      max_tokens: 52,
      tools: [weatherTool],
      tool_choice: "required",
    });
    const choice = completion.choices[0]!;
    expect(choice.finish_reason).toBe("length");
    const call = choice.message.tool_calls?.[0];
    if (call?.type !== "function") throw new Error("expected the started call");
    expect(call.function.name).toBe("get_weather");
    expect(() => JSON.parse(call.function.arguments)).toThrow();
  });

  test("a named tool_choice calls that tool; its arguments stream as deltas", async () => {
    const stream = await openai.chat.completions.create({
      model: TINY_ID,
      messages,
      seed: 6,
      max_tokens: 200,
      tools: [weatherTool, timeTool],
      tool_choice: { type: "function", function: { name: "get_weather" } },
      stream: true,
    });
    const deltas: string[] = [];
    let name: string | undefined;
    let finish: string | null = null;
    for await (const chunk of stream) {
      const choice = chunk.choices[0];
      for (const call of choice?.delta.tool_calls ?? []) {
        name ??= call.function?.name;
        if (call.function?.arguments) deltas.push(call.function.arguments);
      }
      finish = choice?.finish_reason ?? finish;
    }
    expect(name).toBe("get_weather");
    expect(finish).toBe("tool_calls");
    expect(deltas.length).toBeGreaterThan(2);
    const args = JSON.parse(deltas.join(""));
    expect(typeof args.city).toBe("string");
    expect(args.days).toBeGreaterThanOrEqual(1);
    expect(args.days).toBeLessThanOrEqual(7);
  });

  test("an unsupported schema keyword is a 400 naming it and its path", async () => {
    const error = await openai.chat.completions
      .create({
        model: TINY_ID,
        messages,
        response_format: {
          type: "json_schema",
          json_schema: {
            name: "x",
            schema: { type: "object", properties: { x: { type: "string", pattern: "^(?!a)" } } },
          },
        },
      })
      .catch((e: unknown) => e);
    expect(error).toBeInstanceOf(OpenAI.BadRequestError);
    expect((error as InstanceType<typeof OpenAI.BadRequestError>).message).toContain(
      "response_format.json_schema.schema.properties.x.pattern: lookahead is not supported",
    );
  });
});

describe("OpenAI SDK, Responses API", () => {
  test("responses.parse with a zod text format returns the parsed object", async () => {
    const response = await openai.responses.parse({
      model: TINY_ID,
      input: "Tell me about the baker.",
      max_output_tokens: 200,
      store: false,
      text: { format: zodTextFormat(Baker, "baker") },
    });
    expect(response.status).toBe("completed");
    expect(Baker.parse(response.output_parsed)).toEqual(response.output_parsed!);
  });

  test("an unsupported keyword in text.format is a 400 with the Responses path", async () => {
    const error = await openai.responses
      .create({
        model: TINY_ID,
        input: "Hi",
        text: {
          format: {
            type: "json_schema",
            name: "x",
            schema: { type: "object", properties: { d: { type: "string", format: "hostname" } } },
          },
        },
      })
      .catch((e: unknown) => e);
    expect(error).toBeInstanceOf(OpenAI.BadRequestError);
    expect((error as InstanceType<typeof OpenAI.BadRequestError>).message).toContain(
      "text.format.schema.properties.d.format",
    );
  });
});

describe("Anthropic SDK", () => {
  test("messages.parse with output_config.format returns the parsed object", async () => {
    // The SDK moves length and range bounds into descriptions (Anthropic does not take them), so
    // this schema has no string the demo model would have to end on its own.
    const Order = z.object({
      item: z.enum(["bread", "cake", "tea"]),
      count: z.number().int(),
      paid: z.boolean(),
      extras: z.array(z.enum(["milk", "sugar"])),
    });
    const message = await anthropic.messages.parse({
      model: TINY_ID,
      max_tokens: 200,
      messages: [{ role: "user", content: "Order something." }],
      output_config: { format: zodOutputFormat(Order) },
    });
    expect(message.stop_reason).toBe("end_turn");
    expect(Order.parse(message.parsed_output)).toEqual(message.parsed_output!);
  });

  test("tool_choice tool forces that tool, with input valid for its schema", async () => {
    const message = await anthropic.messages.create({
      model: TINY_ID,
      max_tokens: 200,
      messages: [{ role: "user", content: "Weather?" }],
      tools: [
        {
          name: "get_weather",
          input_schema: weatherTool.function.parameters as Anthropic.Tool.InputSchema,
        },
        { name: "get_time", input_schema: timeTool.function.parameters as Anthropic.Tool.InputSchema },
      ],
      tool_choice: { type: "tool", name: "get_time", disable_parallel_tool_use: true },
    });
    expect(message.stop_reason).toBe("tool_use");
    const uses = message.content.filter((block) => block.type === "tool_use");
    expect(uses).toHaveLength(1);
    expect(uses[0]!.name).toBe("get_time");
    expect(["UTC", "CET"]).toContain((uses[0]!.input as { zone: string }).zone);
  });

  test("tool_choice any streams the call's input as input_json_delta events", async () => {
    const stream = anthropic.messages.stream({
      model: TINY_ID,
      max_tokens: 200,
      messages: [{ role: "user", content: "Weather?" }],
      tools: [
        { name: "get_weather", input_schema: weatherTool.function.parameters as Anthropic.Tool.InputSchema },
      ],
      tool_choice: { type: "any" },
    });
    const partials: string[] = [];
    stream.on("inputJson", (partial) => partials.push(partial));
    const message = await stream.finalMessage();
    expect(message.stop_reason).toBe("tool_use");
    const use = message.content.find((block) => block.type === "tool_use");
    expect(use?.name).toBe("get_weather");
    // Deltas as the model wrote them (several, not one at the end), adding up to the input.
    expect(partials.length).toBeGreaterThan(2);
    expect(JSON.parse(partials.join(""))).toEqual(use?.input);
  });

  test("an unsupported keyword in output_config.format is a 400 with the Anthropic path", async () => {
    const error = await anthropic.messages
      .create({
        model: TINY_ID,
        max_tokens: 50,
        messages: [{ role: "user", content: "Hi" }],
        output_config: {
          format: {
            type: "json_schema",
            schema: { type: "object", properties: { n: { type: "number", multipleOf: 2 } } },
          },
        },
      })
      .catch((e: unknown) => e);
    expect(error).toBeInstanceOf(Anthropic.BadRequestError);
    expect((error as InstanceType<typeof Anthropic.BadRequestError>).message).toContain(
      "output_config.format.schema.properties.n.multipleOf",
    );
  });
});
