/**
 * The official OpenAI SDK's Responses API against the gateway: answers
 * streamed and not on the tiny model with a real neuron, stored responses
 * (previous_response_id, retrieve, input_items, delete, 404s), refusals of
 * what cortex cannot honour, and function calls round-tripped through a
 * scripted neuron.
 */
import { afterAll, beforeAll, beforeEach, describe, expect, test } from "bun:test";
import OpenAI from "openai";
import { type ScriptedNeuron, startScriptedNeuron } from "./helpers-dialects/scripted-neuron.ts";
import { startTestGateway, type TestGateway, TINY_ID } from "./helpers-dialects/test-gateway.ts";

const KEY = "sk-responses-test";
let gw: TestGateway;
let client: OpenAI;

beforeAll(async () => {
  gw = await startTestGateway({ apiKeys: [KEY] });
  client = new OpenAI({ baseURL: `${gw.url}/v1`, apiKey: KEY, maxRetries: 0 });
});

afterAll(async () => {
  await gw?.stop();
});

/** What a call that must fail threw. */
async function failure(call: Promise<unknown>): Promise<unknown> {
  try {
    await call;
  } catch (error) {
    return error;
  }
  throw new Error("expected the call to fail");
}

describe("responses.create on a real neuron", () => {
  test("a plain answer: text, status, usage, and the same text streamed with every event in order", async () => {
    const request = {
      model: TINY_ID,
      instructions: "You are terse.",
      input: "Tell me about the river.",
      temperature: 0,
      max_output_tokens: 200,
    };
    const whole = await client.responses.create(request);
    expect(whole.object).toBe("response");
    expect(whole.id).toStartWith("resp_");
    expect(whole.status).toBe("completed");
    expect(whole.model).toBe(TINY_ID);
    expect(whole.instructions).toBe("You are terse.");
    expect(whole.output_text.length).toBeGreaterThan(0);
    expect(whole.output[0]?.type).toBe("message");
    expect(whole.usage?.input_tokens).toBeGreaterThan(0);
    expect(whole.usage?.output_tokens).toBeGreaterThan(0);
    expect(whole.usage?.total_tokens).toBe(
      (whole.usage?.input_tokens ?? 0) + (whole.usage?.output_tokens ?? 0),
    );
    expect(whole.usage?.input_tokens_details.cached_tokens).toBeGreaterThanOrEqual(0);
    expect(whole.usage?.output_tokens_details.reasoning_tokens).toBe(0);

    const stream = await client.responses.create({ ...request, stream: true });
    const types: string[] = [];
    const sequence: number[] = [];
    let streamed = "";
    let done: OpenAI.Responses.Response | undefined;
    for await (const event of stream) {
      types.push(event.type);
      sequence.push(event.sequence_number);
      if (event.type === "response.output_text.delta") streamed += event.delta;
      if (event.type === "response.completed") done = event.response;
    }
    expect(sequence).toEqual(types.map((_, i) => i));
    const deltas = types.filter((type) => type === "response.output_text.delta").length;
    expect(deltas).toBeGreaterThan(0);
    expect(types).toEqual([
      "response.created",
      "response.in_progress",
      "response.output_item.added",
      "response.content_part.added",
      ...Array<string>(deltas).fill("response.output_text.delta"),
      "response.output_text.done",
      "response.content_part.done",
      "response.output_item.done",
      "response.completed",
    ]);
    expect(streamed).toBe(whole.output_text);
    expect(done?.status).toBe("completed");
    expect(done?.usage?.output_tokens).toBe(whole.usage?.output_tokens ?? -1);
    // What the stream ended with is what is stored.
    const stored = await client.responses.retrieve(done?.id ?? "");
    expect(stored.output).toEqual(done?.output ?? []);
    expect(stored.output_text).toBe(streamed);
  });

  test("the SDK's stream helper assembles the final response", async () => {
    const runner = client.responses.stream({
      model: TINY_ID,
      input: "Hello",
      temperature: 0,
      max_output_tokens: 50,
    });
    let text = "";
    runner.on("response.output_text.delta", (event) => {
      text += event.delta;
    });
    const final = await runner.finalResponse();
    expect(final.output_text).toBe(text);
    expect(final.output_text.length).toBeGreaterThan(0);
  });

  test("max_output_tokens cuts the answer: status incomplete, reason max_output_tokens, streamed and not", async () => {
    const whole = await client.responses.create({ model: TINY_ID, input: "Talk", max_output_tokens: 3 });
    expect(whole.status).toBe("incomplete");
    expect(whole.incomplete_details?.reason).toBe("max_output_tokens");
    expect(whole.usage?.output_tokens).toBe(3);

    const stream = await client.responses.create({
      model: TINY_ID,
      input: "Talk",
      max_output_tokens: 3,
      stream: true,
    });
    const last: OpenAI.Responses.ResponseStreamEvent[] = [];
    for await (const event of stream) last.push(event);
    const end = last.at(-1);
    expect(end?.type).toBe("response.incomplete");
    if (end?.type !== "response.incomplete") throw new Error("expected response.incomplete");
    expect(end.response.incomplete_details?.reason).toBe("max_output_tokens");
  });

  test("previous_response_id continues the conversation; retrieve, input_items and delete work on it", async () => {
    const first = await client.responses.create({
      model: TINY_ID,
      input: [{ role: "user", content: [{ type: "input_text", text: "Tell me about the baker." }] }],
      temperature: 0,
      max_output_tokens: 30,
      metadata: { topic: "bread" },
    });
    expect(first.metadata).toEqual({ topic: "bread" });
    const second = await client.responses.create({
      model: TINY_ID,
      previous_response_id: first.id,
      input: "And the river?",
      temperature: 0,
      max_output_tokens: 30,
    });
    expect(second.previous_response_id).toBe(first.id);
    // The model saw the first question and answer again, then the new one.
    const alone = await client.responses.create({
      model: TINY_ID,
      input: "And the river?",
      temperature: 0,
      max_output_tokens: 30,
      store: false,
    });
    expect(second.usage?.input_tokens).toBeGreaterThan(
      (first.usage?.input_tokens ?? 0) + (first.usage?.output_tokens ?? 0),
    );
    expect(second.usage?.input_tokens).toBeGreaterThan(alone.usage?.input_tokens ?? 0);

    const again = await client.responses.retrieve(first.id);
    expect(again.id).toBe(first.id);
    expect(again.output_text).toBe(first.output_text);
    expect(again.usage).toEqual(first.usage);

    const items = await client.responses.inputItems.list(second.id);
    expect(items.data).toHaveLength(1);
    const item = items.data[0];
    expect(item?.type).toBe("message");
    if (item?.type !== "message") throw new Error("expected a message");
    expect(item.content).toEqual([{ type: "input_text", text: "And the river?" }]);
    expect(item.id).toBeString();

    await client.responses.delete(first.id);
    expect(await failure(client.responses.retrieve(first.id))).toBeInstanceOf(OpenAI.NotFoundError);
    expect(await failure(client.responses.delete(first.id))).toBeInstanceOf(OpenAI.NotFoundError);
    // Continuing from a deleted response is OpenAI's 404, never an answer without the history.
    const missing = await failure(
      client.responses.create({ model: TINY_ID, previous_response_id: first.id, input: "Hi" }),
    );
    expect(missing).toBeInstanceOf(OpenAI.NotFoundError);
    expect(missing).toMatchObject({ param: "previous_response_id" });
    // store: false is not kept.
    expect(await failure(client.responses.retrieve(alone.id))).toBeInstanceOf(OpenAI.NotFoundError);
  });

  test("fields cortex cannot honour are 400s naming the field", async () => {
    const cases: Array<[Record<string, unknown>, string]> = [
      [{ tools: [{ type: "web_search" }] }, "tools.0.type"],
      [{ tools: [{ type: "file_search", vector_store_ids: ["vs_1"] }] }, "tools.0.type"],
      [{ truncation: "auto" }, "truncation"],
      [{ background: true }, "background"],
      [{ text: { format: { type: "grammar" } } }, "text.format"],
      [{ input: [{ type: "item_reference", id: "msg_1" }] }, "input.0.type"],
      [{ include: ["message.output_text.logprobs"] }, "include.0"],
    ];
    for (const [fields, param] of cases) {
      const error = await failure(
        client.responses.create({
          model: TINY_ID,
          input: "Hi",
          ...fields,
        } as OpenAI.Responses.ResponseCreateParamsNonStreaming),
      );
      expect(error).toBeInstanceOf(OpenAI.BadRequestError);
      expect(error).toMatchObject({ param });
    }
  });
});

describe("function calls through a scripted neuron", () => {
  const MODEL = "scripted-7b";
  let neuron: ScriptedNeuron;
  let scripted: TestGateway;
  let openai: OpenAI;
  const tools: OpenAI.Responses.Tool[] = [
    {
      type: "function",
      name: "get_weather",
      description: "Weather",
      parameters: { type: "object", properties: { city: { type: "string" } }, required: ["city"] },
      strict: false,
    },
  ];
  const ARGS = JSON.stringify({ city: "Zürich" });

  beforeAll(async () => {
    neuron = startScriptedNeuron([MODEL]);
    scripted = await startTestGateway({
      neurons: [{ name: "scripted", endpoint: neuron.url }],
      models: [{ id: MODEL, file: `${MODEL}.gguf`, contextSize: 8192 }],
    });
    openai = new OpenAI({ baseURL: `${scripted.url}/v1`, apiKey: "unused", maxRetries: 0 });
  });
  afterAll(async () => {
    await scripted?.stop();
    neuron?.stop();
  });
  beforeEach(() => {
    neuron.received.length = 0;
    neuron.replies.length = 0;
  });

  test("a streamed function call, its output sent back with previous_response_id", async () => {
    neuron.replies.push({ toolCalls: [{ id: "call_w1", name: "get_weather", arguments: ARGS }] });
    const stream = await openai.responses.create({
      model: MODEL,
      input: "Weather in Zürich?",
      tools,
      tool_choice: "auto",
      stream: true,
    });
    const types: string[] = [];
    let argsDelta = "";
    let final: OpenAI.Responses.Response | undefined;
    for await (const event of stream) {
      types.push(event.type);
      if (event.type === "response.function_call_arguments.delta") argsDelta += event.delta;
      if (event.type === "response.completed") final = event.response;
    }
    expect(types).toContain("response.output_item.added");
    expect(types).toContain("response.function_call_arguments.done");
    expect(argsDelta).toBe(ARGS);
    const call = final?.output[0];
    expect(call?.type).toBe("function_call");
    if (call?.type !== "function_call") throw new Error("expected a function call");
    expect(call).toMatchObject({
      call_id: "call_w1",
      name: "get_weather",
      arguments: ARGS,
      status: "completed",
    });
    expect(neuron.received[0]?.tools?.map((tool) => tool.function.name)).toEqual(["get_weather"]);

    neuron.replies.push({ text: "It is sunny." });
    const answer = await openai.responses.create({
      model: MODEL,
      previous_response_id: final?.id ?? "",
      input: [{ type: "function_call_output", call_id: "call_w1", output: '{"temp":21}' }],
      tools,
    });
    expect(answer.output_text).toBe("It is sunny.");
    const sent = neuron.received[1]?.messages ?? [];
    expect(sent.map((m) => m.role)).toEqual(["user", "assistant", "tool"]);
    expect(sent[1]?.tool_calls?.[0]).toMatchObject({
      id: "call_w1",
      function: { name: "get_weather", arguments: ARGS },
    });
    expect(sent[2]).toMatchObject({ role: "tool", tool_call_id: "call_w1", content: '{"temp":21}' });
  });

  test("a whole conversation sent as items, stateless (store: false, as Codex does)", async () => {
    neuron.replies.push({ text: "Done." });
    const answer = await openai.responses.create({
      model: MODEL,
      store: false,
      instructions: "Be brief.",
      input: [
        { type: "message", role: "developer", content: [{ type: "input_text", text: "Use tools." }] },
        { type: "message", role: "user", content: [{ type: "input_text", text: "Weather?" }] },
        {
          type: "reasoning",
          id: "rs_1",
          summary: [],
          content: [{ type: "reasoning_text", text: "Ask it." }],
        },
        { type: "function_call", call_id: "call_a", name: "get_weather", arguments: ARGS },
        { type: "function_call_output", call_id: "call_a", output: "sunny" },
      ],
      tools,
      tool_choice: { type: "function", name: "get_weather" },
      parallel_tool_calls: false,
      text: { format: { type: "json_schema", name: "weather", schema: { type: "object" } } },
    });
    expect(answer.output_text).toBe("Done.");
    const body = neuron.received[0];
    expect(body?.messages.map((m) => m.role)).toEqual(["system", "system", "user", "assistant", "tool"]);
    expect(body?.tool_choice).toEqual({ type: "function", function: { name: "get_weather" } });
    expect(body?.parallel_tool_calls).toBe(false);
    expect(body?.response_format).toMatchObject({ type: "json_schema", json_schema: { name: "weather" } });
  });
});
