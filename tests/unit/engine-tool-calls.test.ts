import { describe, expect, test } from "bun:test";
import { parseToolCalls, toolCallTransform } from "../../src/neuron/engine/tool-call-parser.ts";
import type { GenerationEvent } from "../../src/neuron/engine/types.ts";

const weather = { name: "get_weather", arguments: '{"city":"Paris"}' };

describe("parseToolCalls", () => {
  test.each([
    {
      name: "hermes block",
      output: '<tool_call>\n{"name": "get_weather", "arguments": {"city": "Paris"}}\n</tool_call>',
      content: "",
      calls: [weather],
    },
    {
      name: "hermes with text before and two calls",
      output:
        'Let me check.\n<tool_call>{"name":"get_weather","arguments":{"city":"Paris"}}</tool_call>\n<tool_call>{"name":"get_time","arguments":{}}</tool_call>',
      content: "Let me check.",
      calls: [weather, { name: "get_time", arguments: "{}" }],
    },
    {
      name: "hermes cut off before the closing tag",
      output: '<tool_call>{"name":"get_weather","arguments":{"city":"Paris"}}',
      content: "",
      calls: [weather],
    },
    {
      name: "arguments already a string",
      output: '<tool_call>{"name":"get_weather","arguments":"{\\"city\\":\\"Paris\\"}"}</tool_call>',
      content: "",
      calls: [weather],
    },
    {
      name: "llama 3 json with parameters",
      output: '{"name": "get_weather", "parameters": {"city": "Paris"}}',
      content: "",
      calls: [weather],
    },
    {
      name: "llama 3 calls separated by ;",
      output:
        '{"name": "get_weather", "parameters": {"city": "Paris"}}; {"name": "get_time", "parameters": {}}',
      content: "",
      calls: [weather, { name: "get_time", arguments: "{}" }],
    },
    { name: "plain text", output: "The weather is nice.", content: "The weather is nice.", calls: [] },
    { name: "json that is not a call", output: '{"answer": 42}', content: '{"answer": 42}', calls: [] },
    {
      name: "broken hermes json stays text",
      output: "<tool_call>{not json}</tool_call>",
      content: "<tool_call>{not json}</tool_call>",
      calls: [],
    },
  ])("$name", ({ output, content, calls }) => {
    const parsed = parseToolCalls(output, "id_");
    expect(parsed.content).toBe(content);
    expect(parsed.calls.map((c) => c.function)).toEqual([...calls]);
    parsed.calls.forEach((c, i) => {
      expect(c.id).toBe(`id_${i}`);
      expect(c.type).toBe("function");
    });
  });
});

async function run(
  pieces: string[],
  syntax?: "hermes",
  finishReason: "stop" | "length" = "stop",
): Promise<GenerationEvent[]> {
  const events: GenerationEvent[] = [
    ...pieces.map((text) => ({ type: "text" as const, text })),
    {
      type: "done",
      finishReason,
      usage: { promptTokens: 1, completionTokens: pieces.length, cachedTokens: 0 },
    },
  ];
  const source = new ReadableStream<GenerationEvent>({
    start(controller) {
      for (const e of events) controller.enqueue(e);
      controller.close();
    },
  });
  return Array.fromAsync(source.pipeThrough(toolCallTransform("c_", syntax)));
}

describe("toolCallTransform", () => {
  test("a streamed hermes call becomes tool_calls and finish reason tool_calls", async () => {
    const out = await run([
      "<tool",
      "_call>",
      '{"name":"get_weather",',
      '"arguments":{"city":"Paris"}}',
      "</tool_call>",
    ]);
    expect(out.filter((e) => e.type === "text")).toEqual([]);
    expect(out.at(-2)).toEqual({
      type: "tool_calls",
      calls: [{ id: "c_0", type: "function", function: weather }],
    });
    expect(out.at(-1)).toMatchObject({ type: "done", finishReason: "tool_calls" });
  });

  test("plain text streams through, and a call after text is still caught", async () => {
    const out = await run([
      "Sure",
      ", checking. <tool",
      '_call>{"name":"get_weather","arguments":{"city":"Paris"}}',
    ]);
    const text = out.flatMap((e) => (e.type === "text" ? [e.text] : [])).join("");
    expect(text).toBe("Sure, checking. ");
    expect(out.at(-1)).toMatchObject({ finishReason: "tool_calls" });
  });

  test("text that only looked like a call start is released at the end", async () => {
    const out = await run(["{not", " a call"]);
    expect(out).toEqual([
      { type: "text", text: "{not a call" },
      {
        type: "done",
        finishReason: "stop",
        usage: { promptTokens: 1, completionTokens: 2, cachedTokens: 0 },
      },
    ]);
  });

  test("a call in the template's own form streams its arguments as they are generated", async () => {
    const out = await run(
      [
        "<tool_call>\n",
        '{"name": "get_',
        'weather", "arguments": {"ci',
        'ty": "Par',
        'is"}}\n</tool',
        "_call>\n<tool_call>\n",
        '{"name": "get_time", "arguments": {}}\n</tool_call>',
      ],
      "hermes",
    );
    expect(out).toEqual([
      { type: "tool_call_start", id: "c_0", name: "get_weather" },
      { type: "tool_call_delta", argumentsDelta: '{"ci' },
      { type: "tool_call_delta", argumentsDelta: 'ty": "Par' },
      { type: "tool_call_delta", argumentsDelta: 'is"}' },
      { type: "tool_call_end" },
      { type: "tool_call_start", id: "c_1", name: "get_time" },
      { type: "tool_call_delta", argumentsDelta: "{}" },
      { type: "tool_call_end" },
      {
        type: "done",
        finishReason: "tool_calls",
        usage: { promptTokens: 1, completionTokens: 7, cachedTokens: 0 },
      },
    ]);
  });

  test("a call cut by max_tokens keeps what was generated and finishes with length", async () => {
    const out = await run(
      ['<tool_call>\n{"name": "get_weather", "arguments": {"city": "Pa'],
      "hermes",
      "length",
    );
    expect(out.map((e) => e.type)).toEqual(["tool_call_start", "tool_call_delta", "tool_call_end", "done"]);
    expect(out.at(-1)).toMatchObject({ finishReason: "length" });
  });

  test("with the Hermes syntax a JSON answer is text, even with a name field", async () => {
    const out = await run(['{"name": "Ann", ', '"age": 3}'], "hermes");
    expect(out).toEqual([
      { type: "text", text: '{"name": "Ann", ' },
      { type: "text", text: '"age": 3}' },
      {
        type: "done",
        finishReason: "stop",
        usage: { promptTokens: 1, completionTokens: 2, cachedTokens: 0 },
      },
    ]);
  });
});
