/**
 * What a schema keyword or tool choice that cannot be enforced looks like in
 * each dialect: a 400 naming the field as that dialect spells it, raised by
 * the parser (so the gateway answers before any neuron is chosen).
 */
import { describe, expect, test } from "bun:test";
import { CortexError } from "../../../src/core/errors.ts";
import { parseAnthropicRequest } from "../../../src/dialects/anthropic/parse-request.ts";
import { parseOpenAIRequest } from "../../../src/dialects/openai/parse-request.ts";

function refusal(parse: () => unknown): CortexError {
  try {
    parse();
  } catch (error) {
    if (error instanceof CortexError) return error;
    throw error;
  }
  throw new Error("expected a refusal");
}

const lookahead = { type: "object", properties: { x: { type: "string", pattern: "^(?=a)" } } };
const openai = { model: "tiny", messages: [{ role: "user", content: "hi" }] };
const anthropic = { model: "tiny", max_tokens: 64, messages: [{ role: "user", content: "hi" }] };
const fn = (parameters: unknown, strict?: boolean) => ({
  type: "function",
  function: { name: "f", parameters, ...(strict === undefined ? {} : { strict }) },
});

describe("OpenAI chat completions", () => {
  test.each([
    [
      { response_format: { type: "json_schema", json_schema: { name: "r", schema: lookahead } } },
      "response_format.json_schema.schema.properties.x.pattern",
    ],
    [{ tools: [fn(lookahead)], tool_choice: "required" }, "tools.0.function.parameters.properties.x.pattern"],
    [
      { tools: [fn({ type: "object" }), fn(lookahead, true)] },
      "tools.1.function.parameters.properties.x.pattern",
    ],
    [
      { tools: [fn({ type: "object" })], tool_choice: { type: "function", function: { name: "g" } } },
      "tool_choice",
    ],
  ])("%j → 400 at %s", (fields, param) => {
    const error = refusal(() => parseOpenAIRequest({ ...openai, ...fields }));
    expect(error.status).toBe(400);
    expect(error.param).toBe(param);
    expect(error.message).toStartWith(`${param}: `);
  });

  test("a non-strict tool under auto is not refused: its calls are held to well-formed JSON instead", () => {
    expect(() => parseOpenAIRequest({ ...openai, tools: [fn(lookahead)] })).not.toThrow();
  });

  test("tool_choice none reads no schema", () => {
    expect(() =>
      parseOpenAIRequest({ ...openai, tools: [fn(lookahead, true)], tool_choice: "none" }),
    ).not.toThrow();
  });
});

describe("Anthropic messages", () => {
  test.each([
    [
      { output_config: { format: { type: "json_schema", schema: lookahead } } },
      "output_config.format.schema.properties.x.pattern",
    ],
    [
      { tools: [{ name: "f", input_schema: lookahead }], tool_choice: { type: "any" } },
      "tools.0.input_schema.properties.x.pattern",
    ],
    [
      { tools: [{ name: "f", input_schema: lookahead, strict: true }] },
      "tools.0.input_schema.properties.x.pattern",
    ],
  ])("%j → 400 at %s", (fields, param) => {
    const error = refusal(() => parseAnthropicRequest({ ...anthropic, ...fields }, { onWarning: () => {} }));
    expect(error.status).toBe(400);
    expect(error.param).toBe(param);
    expect(error.message).toBe(`${param}: lookahead is not supported`);
  });
});
