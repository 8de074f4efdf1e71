/**
 * Tool round trips in both dialects through the gateway, against a scripted
 * neuron that answers with OpenAI tool_calls: each SDK sees tool calls in
 * its own shape (streamed and not), sends the result back, and the neuron
 * receives the whole exchange in OpenAI form.
 */
import { afterAll, beforeAll, beforeEach, describe, expect, test } from "bun:test";
import Anthropic from "@anthropic-ai/sdk";
import OpenAI from "openai";
import { type ScriptedNeuron, startScriptedNeuron } from "./helpers-dialects/scripted-neuron.ts";
import { startTestGateway, type TestGateway } from "./helpers-dialects/test-gateway.ts";

const MODEL = "scripted-7b";
let neuron: ScriptedNeuron;
let gw: TestGateway;
let openai: OpenAI;
let anthropic: Anthropic;

beforeAll(async () => {
  neuron = startScriptedNeuron([MODEL]);
  gw = await startTestGateway({
    neurons: [{ name: "scripted", endpoint: neuron.url }],
    models: [{ id: MODEL, file: `${MODEL}.gguf`, contextSize: 8192 }],
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
  neuron.replies.length = 0;
});

const WEATHER_ARGS = { city: "Zürich", units: "celsius", days: [1, 2], detail: { wind: true } };
const weatherCall = (id: string) => ({ id, name: "get_weather", arguments: JSON.stringify(WEATHER_ARGS) });
const TIME_ARGS = { zone: "Europe/Zurich" };

const weatherSchema = {
  type: "object",
  properties: {
    city: { type: "string" },
    units: { type: "string", enum: ["celsius", "fahrenheit"] },
    days: { type: "array", items: { type: "integer" } },
    detail: { type: "object", properties: { wind: { type: "boolean" } } },
  },
  required: ["city"],
};

describe("OpenAI SDK", () => {
  const tools: OpenAI.Chat.ChatCompletionTool[] = [
    {
      type: "function",
      function: { name: "get_weather", description: "Weather", parameters: weatherSchema },
    },
    {
      type: "function",
      function: {
        name: "get_time",
        parameters: { type: "object", properties: { zone: { type: "string" } } },
      },
    },
  ];
  const question: OpenAI.Chat.ChatCompletionMessageParam = { role: "user", content: "Weather in Zürich?" };

  test("non-streamed tool_calls, then the tool result goes back in OpenAI form", async () => {
    neuron.replies.push({ toolCalls: [weatherCall("call_abc123")] }, { text: "It is sunny." });
    const first = await openai.chat.completions.create({ model: MODEL, messages: [question], tools });
    const choice = first.choices[0];
    expect(choice?.finish_reason).toBe("tool_calls");
    const call = choice?.message.tool_calls?.[0];
    expect(call?.type).toBe("function");
    if (call?.type !== "function") throw new Error("expected a function call");
    expect(call.function.name).toBe("get_weather");
    expect(JSON.parse(call.function.arguments)).toEqual(WEATHER_ARGS);
    expect(neuron.received[0]?.tools?.map((t) => t.function.name)).toEqual(["get_weather", "get_time"]);
    expect(neuron.received[0]?.tools?.[0]?.function.parameters).toEqual(weatherSchema);

    const second = await openai.chat.completions.create({
      model: MODEL,
      tools,
      messages: [
        question,
        choice?.message as OpenAI.Chat.ChatCompletionMessageParam,
        { role: "tool", tool_call_id: call.id, content: '{"temp":21}' },
      ],
    });
    expect(second.choices[0]?.message.content).toBe("It is sunny.");
    expect(second.choices[0]?.finish_reason).toBe("stop");
    const sent = neuron.received[1]?.messages ?? [];
    expect(sent.map((m) => m.role)).toEqual(["user", "assistant", "tool"]);
    expect(sent[1]?.tool_calls).toEqual([
      {
        id: call.id,
        type: "function",
        function: { name: "get_weather", arguments: call.function.arguments },
      },
    ]);
    expect(sent[2]).toMatchObject({ role: "tool", tool_call_id: call.id, content: '{"temp":21}' });
  });

  test("streamed tool_calls assemble into the same calls, two in parallel", async () => {
    neuron.replies.push({
      toolCalls: [
        weatherCall("call_one"),
        { id: "call_two", name: "get_time", arguments: JSON.stringify(TIME_ARGS) },
      ],
    });
    const stream = openai.chat.completions.stream({ model: MODEL, messages: [question], tools });
    const final = await stream.finalChatCompletion();
    const choice = final.choices[0];
    expect(choice?.finish_reason).toBe("tool_calls");
    const calls = (choice?.message.tool_calls ?? []).map((call) =>
      call.type === "function"
        ? { id: call.id, name: call.function.name, args: JSON.parse(call.function.arguments) }
        : call,
    );
    expect(calls).toEqual([
      { id: "call_one", name: "get_weather", args: WEATHER_ARGS },
      { id: "call_two", name: "get_time", args: TIME_ARGS },
    ]);
  });
});

describe("Anthropic SDK", () => {
  const tools: Anthropic.Tool[] = [
    {
      name: "get_weather",
      description: "Weather",
      input_schema: weatherSchema as Anthropic.Tool.InputSchema,
    },
    { name: "get_time", input_schema: { type: "object", properties: { zone: { type: "string" } } } },
  ];
  const question: Anthropic.MessageParam = { role: "user", content: "Weather in Zürich?" };

  test("non-streamed tool_use with a toolu_ id, then tool_result goes back in OpenAI form", async () => {
    neuron.replies.push(
      { text: "Let me look.", toolCalls: [weatherCall("call_abc123")] },
      { text: "Sunny." },
    );
    const first = await anthropic.messages.create({
      model: MODEL,
      max_tokens: 256,
      messages: [question],
      tools,
    });
    expect(first.stop_reason).toBe("tool_use");
    expect(first.content.map((b) => b.type)).toEqual(["text", "tool_use"]);
    const use = first.content[1];
    if (use?.type !== "tool_use") throw new Error("expected tool_use");
    expect(use.id).toMatch(/^toolu_[a-zA-Z0-9_-]+$/);
    expect(use.name).toBe("get_weather");
    expect(use.input).toEqual(WEATHER_ARGS);
    expect(neuron.received[0]?.tools?.[0]).toMatchObject({
      type: "function",
      function: { name: "get_weather", parameters: weatherSchema },
    });

    const second = await anthropic.messages.create({
      model: MODEL,
      max_tokens: 256,
      tools,
      messages: [
        question,
        { role: "assistant", content: first.content },
        {
          role: "user",
          content: [
            { type: "tool_result", tool_use_id: use.id, content: [{ type: "text", text: "21 degrees" }] },
            { type: "text", text: "And tomorrow?" },
          ],
        },
      ],
    });
    expect(second.stop_reason).toBe("end_turn");
    expect(second.content).toMatchObject([{ type: "text", text: "Sunny." }]);
    const sent = neuron.received[1]?.messages ?? [];
    expect(sent.map((m) => m.role)).toEqual(["user", "assistant", "tool", "user"]);
    expect(sent[1]).toMatchObject({
      role: "assistant",
      content: "Let me look.",
      tool_calls: [{ id: use.id, type: "function", function: { name: "get_weather" } }],
    });
    expect(JSON.parse(sent[1]?.tool_calls?.[0]?.function.arguments ?? "")).toEqual(WEATHER_ARGS);
    expect(sent[2]).toEqual({ role: "tool", tool_call_id: use.id, content: "21 degrees" });
    expect(sent[3]).toEqual({ role: "user", content: "And tomorrow?" });
  });

  test("streamed input_json_delta pieces assemble the same input", async () => {
    neuron.replies.push({
      toolCalls: [
        weatherCall("call_s1"),
        { id: "call_s2", name: "get_time", arguments: JSON.stringify(TIME_ARGS) },
      ],
    });
    const stream = anthropic.messages.stream({ model: MODEL, max_tokens: 256, messages: [question], tools });
    const partial = new Map<number, string>();
    const starts: Array<{ index: number; id: string; name: string }> = [];
    let deltas = 0;
    stream.on("streamEvent", (event) => {
      if (event.type === "content_block_start" && event.content_block.type === "tool_use")
        starts.push({ index: event.index, id: event.content_block.id, name: event.content_block.name });
      if (event.type === "content_block_delta" && event.delta.type === "input_json_delta") {
        deltas += 1;
        partial.set(event.index, (partial.get(event.index) ?? "") + event.delta.partial_json);
      }
    });
    const final = await stream.finalMessage();
    expect(final.stop_reason).toBe("tool_use");
    expect(starts.map((s) => s.name)).toEqual(["get_weather", "get_time"]);
    for (const start of starts) expect(start.id).toMatch(/^toolu_/);
    // Many deltas per call: the input really was assembled from pieces.
    expect(deltas).toBeGreaterThan(4);
    expect(JSON.parse(partial.get(starts[0]?.index ?? -1) ?? "")).toEqual(WEATHER_ARGS);
    expect(JSON.parse(partial.get(starts[1]?.index ?? -1) ?? "")).toEqual(TIME_ARGS);
    const uses = final.content.filter((b) => b.type === "tool_use");
    expect(uses.map((u) => u.input)).toEqual([WEATHER_ARGS, TIME_ARGS]);
    expect(uses.map((u) => u.id)).toEqual(starts.map((s) => s.id));

    neuron.replies.push({ text: "Done." });
    const next = await anthropic.messages
      .stream({
        model: MODEL,
        max_tokens: 256,
        tools,
        messages: [
          question,
          { role: "assistant", content: final.content },
          {
            role: "user",
            content: uses.map((u) => ({
              type: "tool_result" as const,
              tool_use_id: u.id,
              content: `result of ${u.name}`,
            })),
          },
        ],
      })
      .finalMessage();
    expect(next.content).toMatchObject([{ type: "text", text: "Done." }]);
    const sent = neuron.received[1]?.messages ?? [];
    expect(sent.map((m) => m.role)).toEqual(["user", "assistant", "tool", "tool"]);
    expect(sent[1]?.tool_calls?.map((c) => c.id)).toEqual(uses.map((u) => u.id));
    expect(sent.slice(2)).toEqual(
      uses.map((u) => ({ role: "tool", tool_call_id: u.id, content: `result of ${u.name}` })),
    );
  });

  test("tool_choice any and a named tool reach the neuron as required / function", async () => {
    neuron.replies.push({ toolCalls: [weatherCall("call_x")] }, { toolCalls: [weatherCall("call_y")] });
    await anthropic.messages.create({
      model: MODEL,
      max_tokens: 64,
      messages: [question],
      tools,
      tool_choice: { type: "any", disable_parallel_tool_use: true },
    });
    await anthropic.messages.create({
      model: MODEL,
      max_tokens: 64,
      messages: [question],
      tools,
      tool_choice: { type: "tool", name: "get_weather" },
    });
    expect(neuron.received[0]).toMatchObject({ tool_choice: "required", parallel_tool_calls: false });
    expect(neuron.received[1]).toMatchObject({
      tool_choice: { type: "function", function: { name: "get_weather" } },
    });
  });
});
