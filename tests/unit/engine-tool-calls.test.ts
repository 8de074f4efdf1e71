import { describe, expect, test } from "bun:test";
import type { ToolCallSyntax } from "../../src/core/grammar/tool-call-syntax.ts";
import type { GenerationEvent } from "../../src/neuron/engine/types.ts";
import type { OutputFormat } from "../../src/neuron/tool-formats/output-format.ts";
import { outputTransform } from "../../src/neuron/tool-formats/output-transform.ts";

function format(tools: ToolCallSyntax, reasoning: OutputFormat["reasoning"] = "none"): OutputFormat {
  const schemas = ["get_weather", "get_time"].map((name) => ({ name, parameters: { type: "object" } }));
  return { tools, reasoning, parseCalls: true, schemas, reasoningOpen: false };
}

async function run(
  pieces: string[],
  output: OutputFormat = format("hermes"),
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
  return Array.fromAsync(source.pipeThrough(outputTransform("c_", output)));
}

describe("outputTransform", () => {
  test("a call in the template's own form streams its arguments as they are generated", async () => {
    const out = await run([
      "<tool_call>\n",
      '{"name": "get_',
      'weather", "arguments": {"ci',
      'ty": "Par',
      'is"}}\n</tool',
      "_call>\n<tool_call>\n",
      '{"name": "get_time", "arguments": {}}\n</tool_call>',
    ]);
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

  test("plain text streams through, and a call after text is still caught", async () => {
    const out = await run([
      "Sure",
      ", checking. <tool",
      '_call>{"name":"get_weather","arguments":{"city":"Paris"}}',
    ]);
    const text = out.flatMap((e) => (e.type === "text" ? [e.text] : [])).join("");
    expect(text).toBe("Sure, checking.");
    expect(out.at(-1)).toMatchObject({ finishReason: "tool_calls" });
  });

  test("a call cut by max_tokens keeps what was generated and finishes with length", async () => {
    const out = await run(
      ['<tool_call>\n{"name": "get_weather", "arguments": {"city": "Pa'],
      format("hermes"),
      "length",
    );
    expect(out.map((e) => e.type)).toEqual(["tool_call_start", "tool_call_delta", "tool_call_end", "done"]);
    expect(out.at(-1)).toMatchObject({ finishReason: "length" });
  });

  test("with the Hermes syntax a JSON answer is text, even with a name field", async () => {
    const out = await run(['{"name": "Ann", ', '"age": 3}']);
    const text = out.flatMap((e) => (e.type === "text" ? [e.text] : [])).join("");
    expect(text).toBe('{"name": "Ann", "age": 3}');
    expect(out.some((e) => e.type === "tool_call_start")).toBe(false);
    expect(out.at(-1)).toMatchObject({ finishReason: "stop" });
  });

  test("reasoning is split off and its tokens are counted in usage", async () => {
    const out = await run(
      ["<think>", "\nHmm", ", Paris.", "\n</think>", "\n\nParis."],
      format("hermes", "think"),
    );
    expect(out).toEqual([
      { type: "reasoning", text: "Hmm" },
      { type: "reasoning", text: ", Paris." },
      { type: "text", text: "Paris." },
      {
        type: "done",
        finishReason: "stop",
        usage: { promptTokens: 1, completionTokens: 5, cachedTokens: 0, reasoningTokens: 2 },
      },
    ]);
  });
});
