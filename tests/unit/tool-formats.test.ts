/**
 * Every model family's tool-call and reasoning syntax, parsed from whole
 * outputs and from the same outputs split anywhere: a stream must give the
 * same answer, reasoning and calls however its tokens fall.
 */
import { describe, expect, test } from "bun:test";
import fc from "fast-check";
import type { ReasoningSyntax, ToolCallSyntax } from "../../src/core/grammar/tool-call-syntax.ts";
import { gemmaToJson } from "../../src/neuron/tool-formats/gemma4.ts";
import { outputParser } from "../../src/neuron/tool-formats/output-format.ts";
import { foldEvents, type ParsedOutput } from "../../src/neuron/tool-formats/output-parser.ts";

const schemas = [
  {
    name: "get_weather",
    parameters: {
      type: "object",
      properties: { city: { type: "string" }, days: { type: "integer" } },
      required: ["city"],
    },
  },
  { name: "get_time", parameters: { type: "object", properties: {} } },
];

interface Case {
  name: string;
  tools: ToolCallSyntax;
  reasoning?: ReasoningSyntax;
  reasoningOpen?: boolean;
  output: string;
  want: Partial<ParsedOutput>;
}

const PARIS = { name: "get_weather", arguments: '{"city": "Paris"}' };
const PARIS_COMPACT = { name: "get_weather", arguments: '{"city":"Paris"}' };

const cases: Case[] = [
  {
    name: "hermes: text then two calls",
    tools: "hermes",
    output:
      'Let me check.\n<tool_call>\n{"name": "get_weather", "arguments": {"city": "Paris"}}\n</tool_call>\n<tool_call>\n{"name": "get_time", "arguments": {}}\n</tool_call>',
    want: { text: "Let me check.", calls: [PARIS, { name: "get_time", arguments: "{}" }] },
  },
  {
    name: "hermes: arguments before the name, and as a JSON string",
    tools: "hermes",
    output:
      '<tool_call>{"arguments": {"city":"Paris"}, "name": "get_weather"}</tool_call><tool_call>{"name":"get_weather","arguments":"{\\"city\\":\\"Paris\\"}"}</tool_call>',
    want: { text: "", calls: [PARIS_COMPACT, PARIS_COMPACT] },
  },
  {
    name: "hermes: wrapped as {type, function}",
    tools: "hermes",
    output:
      '<tool_call>{"type": "function", "function": {"name": "get_weather", "arguments": {"city": "Paris"}}}</tool_call>',
    want: { calls: [PARIS] },
  },
  {
    name: "hermes: broken JSON stays text",
    tools: "hermes",
    output: "<tool_call>{not json}</tool_call>",
    want: { text: "<tool_call>{not json}</tool_call>", calls: [] },
  },
  {
    name: "hermes: a JSON answer is not a call",
    tools: "hermes",
    output: '{"name": "Ann", "age": 3}',
    want: { text: '{"name": "Ann", "age": 3}', calls: [] },
  },
  {
    name: "qwen3 (hermes) with reasoning",
    tools: "hermes",
    reasoning: "think",
    output:
      '<think>\nThe user wants weather.\n</think>\n\n<tool_call>\n{"name": "get_weather", "arguments": {"city": "Paris"}}\n</tool_call>',
    want: { reasoning: "The user wants weather.", text: "", calls: [PARIS] },
  },
  {
    name: "deepseek-r1 style: the prompt opened <think>",
    tools: "deepseek-r1",
    reasoning: "think",
    reasoningOpen: true,
    output: "Two plus two.\n</think>\n\nThe answer is 4.",
    want: { reasoning: "Two plus two.", text: "The answer is 4.", calls: [] },
  },
  {
    name: "qwen3-coder: parameters typed by the schema",
    tools: "qwen3-coder",
    output:
      "I'll look.\n<tool_call>\n<function=get_weather>\n<parameter=city>\nParis\n</parameter>\n<parameter=days>\n3\n</parameter>\n</function>\n</tool_call>",
    want: { text: "I'll look.", calls: [{ name: "get_weather", arguments: '{"city": "Paris", "days": 3}' }] },
  },
  {
    name: "qwen3-coder: a number-looking string stays a string, no parameters is {}",
    tools: "qwen3-coder",
    output:
      "<tool_call>\n<function=get_weather>\n<parameter=city>\n1984\n</parameter>\n</function>\n</tool_call>\n<tool_call>\n<function=get_time>\n</function>\n</tool_call>",
    want: {
      text: "",
      calls: [
        { name: "get_weather", arguments: '{"city": "1984"}' },
        { name: "get_time", arguments: "{}" },
      ],
    },
  },
  {
    name: "llama3: bare JSON with parameters",
    tools: "llama3",
    output: '{"name": "get_weather", "parameters": {"city": "Paris"}}',
    want: { text: "", calls: [PARIS] },
  },
  {
    name: "llama3: several calls separated by ;",
    tools: "llama3",
    output:
      '{"name": "get_weather", "parameters": {"city": "Paris"}}; {"name": "get_time", "parameters": {}}',
    want: { text: "", calls: [PARIS, { name: "get_time", arguments: "{}" }] },
  },
  {
    name: "llama3: <|python_tag|> call",
    tools: "llama3",
    output: '<|python_tag|>{"name": "get_weather", "parameters": {"city": "Paris"}}',
    want: { text: "", calls: [PARIS] },
  },
  {
    name: "llama3: JSON that is no call is text",
    tools: "llama3",
    output: '{"answer": 42}',
    want: { text: '{"answer": 42}', calls: [] },
  },
  {
    name: "llama3: a JSON answer naming no tool is text",
    tools: "llama3",
    output: '{"name": "Paris", "country": "France"}',
    want: { text: '{"name": "Paris", "country": "France"}', calls: [] },
  },
  {
    name: "generic: a JSON answer naming no tool is text",
    tools: "generic",
    output: '{"name": "Ann", "arguments": {"age": 3}}',
    want: { text: '{"name": "Ann", "arguments": {"age": 3}}', calls: [] },
  },
  {
    name: "llama3: prose",
    tools: "llama3",
    output: "The weather is nice.",
    want: { text: "The weather is nice.", calls: [] },
  },
  {
    name: "mistral: [TOOL_CALLS]name[ARGS]",
    tools: "mistral",
    output: '[TOOL_CALLS]get_weather[ARGS]{"city": "Paris"}[TOOL_CALLS]get_time[ARGS]{}',
    want: { text: "", calls: [PARIS, { name: "get_time", arguments: "{}" }] },
  },
  {
    name: "mistral: with [CALL_ID]",
    tools: "mistral",
    output: 'Checking.[TOOL_CALLS]get_weather[CALL_ID]a1b2c3d4e[ARGS]{"city": "Paris"}',
    want: { text: "Checking.", calls: [PARIS] },
  },
  {
    name: "mistral nemo: JSON array",
    tools: "mistral-json",
    output:
      '[TOOL_CALLS][{"name": "get_weather", "arguments": {"city": "Paris"}, "id": "a1b2c3d4e"}, {"name": "get_time", "arguments": {}, "id": "f1b2c3d4e"}]',
    want: { text: "", calls: [PARIS, { name: "get_time", arguments: "{}" }] },
  },
  {
    name: "mistral: reasoning in [THINK]",
    tools: "mistral",
    reasoning: "mistral-think",
    output: "[THINK]Need weather.[/THINK]It is sunny.",
    want: { reasoning: "Need weather.", text: "It is sunny.", calls: [] },
  },
  {
    name: "harmony: analysis then a call",
    tools: "harmony",
    reasoning: "harmony",
    output:
      '<|channel|>analysis<|message|>Need to call weather.<|end|><|start|>assistant<|channel|>commentary to=functions.get_weather <|constrain|>json<|message|>{"city": "Paris"}',
    want: { reasoning: "Need to call weather.", text: "", calls: [PARIS] },
  },
  {
    name: "harmony: analysis then the final answer",
    tools: "harmony",
    reasoning: "harmony",
    output:
      "<|channel|>analysis<|message|>Simple.<|end|><|start|>assistant<|channel|>final<|message|>Paris is the capital.",
    want: { reasoning: "Simple.", text: "Paris is the capital.", calls: [] },
  },
  {
    name: "harmony: recipient before the channel",
    tools: "harmony",
    reasoning: "harmony",
    output: ' to=functions.get_weather<|channel|>commentary json<|message|>{"city": "Paris"}',
    want: { calls: [PARIS] },
  },
  {
    name: "deepseek-r1: fenced JSON",
    tools: "deepseek-r1",
    output:
      '<｜tool▁calls▁begin｜><｜tool▁call▁begin｜>function<｜tool▁sep｜>get_weather\n```json\n{"city": "Paris"}\n```<｜tool▁call▁end｜>\n<｜tool▁call▁begin｜>function<｜tool▁sep｜>get_time\n```json\n{}\n```<｜tool▁call▁end｜><｜tool▁calls▁end｜>',
    want: { text: "", calls: [PARIS, { name: "get_time", arguments: "{}" }] },
  },
  {
    name: "deepseek-v3.1: name<sep>args",
    tools: "deepseek-v3",
    reasoning: "think",
    output:
      'Sure.<｜tool▁calls▁begin｜><｜tool▁call▁begin｜>get_weather<｜tool▁sep｜>{"city": "Paris"}<｜tool▁call▁end｜><｜tool▁calls▁end｜>',
    want: { text: "Sure.", calls: [PARIS] },
  },
  {
    name: "glm: arg_key/arg_value after reasoning",
    tools: "glm",
    reasoning: "think",
    output:
      "<think>Weather needed.</think>\n<tool_call>get_weather\n<arg_key>city</arg_key>\n<arg_value>Paris</arg_value>\n<arg_key>days</arg_key>\n<arg_value>3</arg_value>\n</tool_call>",
    want: {
      reasoning: "Weather needed.",
      text: "",
      calls: [{ name: "get_weather", arguments: '{"city": "Paris", "days": 3}' }],
    },
  },
  {
    name: "glm: a call without arguments",
    tools: "glm",
    output: "<tool_call>get_time\n</tool_call>",
    want: { text: "", calls: [{ name: "get_time", arguments: "{}" }] },
  },
  {
    name: "gemma4: its object notation",
    tools: "gemma4",
    reasoning: "gemma4-thought",
    output:
      '<|channel>thought\nLook it up.<channel|><|tool_call>call:get_weather{city:<|"|>Paris<|"|>,days:3}<tool_call|>',
    want: {
      reasoning: "Look it up.",
      text: "",
      calls: [{ name: "get_weather", arguments: '{"city":"Paris","days":3}' }],
    },
  },
  {
    name: "generic: a JSON call as the whole answer",
    tools: "generic",
    output: '{"name": "get_weather", "arguments": {"city": "Paris"}}',
    want: { text: "", calls: [PARIS] },
  },
  {
    name: "generic: hermes blocks",
    tools: "generic",
    output: 'Ok <tool_call>{"name": "get_time", "arguments": {}}</tool_call>',
    want: { text: "Ok", calls: [{ name: "get_time", arguments: "{}" }] },
  },
];

function parse(c: Case, pieces: string[]): ParsedOutput {
  const parser = outputParser({
    tools: c.tools,
    reasoning: c.reasoning ?? "none",
    parseCalls: true,
    schemas,
    reasoningOpen: c.reasoningOpen ?? false,
  });
  const events = pieces.flatMap((piece) => parser.push(piece));
  events.push(...parser.end());
  return foldEvents(events);
}

/** Cuts `text` at the given positions (code points, so no surrogate pair is split). */
function split(text: string, cuts: number[]): string[] {
  const chars = [...text];
  const at = [...new Set(cuts.map((c) => c % (chars.length + 1)))].sort((a, b) => a - b);
  const pieces: string[] = [];
  let from = 0;
  for (const to of at) {
    pieces.push(chars.slice(from, to).join(""));
    from = to;
  }
  pieces.push(chars.slice(from).join(""));
  return pieces;
}

describe("tool-call and reasoning formats", () => {
  test.each(cases)("$name", (c) => {
    const whole = parse(c, [c.output]);
    expect(whole).toMatchObject(c.want);
    for (const call of whole.calls) expect(() => JSON.parse(call.arguments)).not.toThrow();
    // One character at a time: the worst split.
    expect(parse(c, [...c.output])).toEqual(whole);
  });

  test.each(cases)("any split of $name gives the same result", (c) => {
    const whole = parse(c, [c.output]);
    fc.assert(
      fc.property(fc.array(fc.nat(), { maxLength: 12 }), (cuts) => {
        expect(parse(c, split(c.output, cuts))).toEqual(whole);
      }),
      { numRuns: 60 },
    );
  });

  test("a call's arguments stream before the call ends", () => {
    const parser = outputParser({
      tools: "hermes",
      reasoning: "none",
      parseCalls: true,
      schemas,
      reasoningOpen: false,
    });
    const events = parser.push('<tool_call>\n{"name": "get_weather", "arguments": {"city": "Pa');
    expect(events).toEqual([
      { type: "call_start", name: "get_weather" },
      { type: "call_delta", args: '{"city": "Pa' },
    ]);
  });

  test("gemma's notation becomes JSON", () => {
    expect(JSON.parse(gemmaToJson('{a:<|"|>x, y<|"|>,b:[1,true,null],c:{d:-2.5}}'))).toEqual({
      a: "x, y",
      b: [1, true, null],
      c: { d: -2.5 },
    });
  });
});
