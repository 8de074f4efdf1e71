import { describe, expect, test } from "bun:test";
import { GrammarUnsupportedError } from "../../src/core/grammar/gbnf.ts";
import { integerRange, jsonSchemaToGbnf } from "../../src/core/grammar/json-schema-to-gbnf.ts";
import { regexToGbnf } from "../../src/core/grammar/regex-to-gbnf.ts";
import { requestGrammar } from "../../src/core/grammar/request-grammar.ts";

const PATH = "response_format.json_schema.schema";

function refusal(schema: unknown): string {
  try {
    jsonSchemaToGbnf(schema, PATH);
  } catch (error) {
    if (error instanceof GrammarUnsupportedError) return error.message;
    throw error;
  }
  throw new Error("expected a refusal");
}

/** The GBNF subset integerRange writes, as a JS regex (digits, classes, counts, groups, alternation). */
function gbnfDigitsToRegex(gbnf: string): RegExp {
  const body = gbnf.replace(/"([^"]*)"/g, (_, text: string) => text.replace(/-/g, "\\-")).replace(/\s+/g, "");
  return new RegExp(`^(?:${body})$`);
}

describe("integer ranges", () => {
  test.each([
    [0, 9],
    [3, 117],
    [-42, 42],
    [-150, -7],
    [10, 10],
    [0, 1000],
    [95, 1205],
    [-1, 0],
  ])("[%d, %d] accepts exactly its members, without leading zeros", (lo, hi) => {
    const re = gbnfDigitsToRegex(integerRange(lo, hi));
    for (let n = lo - 30; n <= hi + 30; n++) expect(re.test(String(n))).toBe(n >= lo && n <= hi);
    expect(re.test(`0${Math.max(lo, 1)}`)).toBe(false);
  });

  test("one-sided bounds stay one-sided", () => {
    const atLeast = gbnfDigitsToRegex(integerRange(18, Infinity));
    for (const n of [18, 19, 99, 100, 123456789012345]) expect(atLeast.test(String(n))).toBe(true);
    for (const n of [17, 0, -18]) expect(atLeast.test(String(n))).toBe(false);
    const atMost = gbnfDigitsToRegex(integerRange(-Infinity, -3));
    for (const n of [-3, -4, -1000]) expect(atMost.test(String(n))).toBe(true);
    for (const n of [-2, 0, 5]) expect(atMost.test(String(n))).toBe(false);
  });
});

describe("unsupported keywords are refused with their path", () => {
  test.each([
    [
      { type: "object", properties: { x: { type: "string", pattern: "^(?=a)b$" } } },
      `${PATH}.properties.x.pattern: lookahead is not supported`,
    ],
    [{ type: "string", pattern: "(a)\\1" }, `${PATH}.pattern: backreferences are not supported`],
    [{ type: "string", pattern: "(?<=a)b" }, `${PATH}.pattern: lookbehind is not supported`],
    [{ type: "string", pattern: "\\bword" }, `${PATH}.pattern: word boundaries are not supported`],
    [{ not: { type: "null" } }, `${PATH}.not: the keyword not is not supported`],
    [
      { type: "string", anyOf: [{ const: "a" }, { const: 1 }] },
      `${PATH}.type: type beside anyOf is not supported`,
    ],
    [
      { type: "array", items: { type: "integer" }, uniqueItems: true },
      `${PATH}.uniqueItems: uniqueItems is not supported`,
    ],
    [{ type: "string", format: "uri" }, `${PATH}.format: format "uri" is not supported`],
    [{ type: "number", minimum: 0.5 }, `${PATH}.minimum: minimum is supported on integers only`],
    [{ type: "integer", multipleOf: 5 }, `${PATH}.multipleOf: the keyword multipleOf is not supported`],
    [{ $ref: "https://example.com/s.json" }, `${PATH}.$ref: only "#/$defs/…"`],
    [{ $ref: "#/$defs/missing" }, `${PATH}.$ref: #/$defs/missing is not defined`],
    [
      { type: "object", patternProperties: { "^x": { type: "string" } } },
      `${PATH}.patternProperties: the keyword patternProperties is not supported`,
    ],
    [
      { type: "object", properties: { a: { type: "string" } }, required: ["b"], additionalProperties: false },
      `${PATH}.required: "b" is required but not among the properties`,
    ],
    [
      {
        allOf: [
          { type: "object", properties: { a: { type: "string" } }, additionalProperties: false },
          { properties: { b: { type: "string" } } },
        ],
      },
      `${PATH}.allOf.0.additionalProperties: additionalProperties: false here rejects "b"`,
    ],
  ])("%j", (schema, message) => {
    expect(refusal(schema)).toStartWith(message);
  });

  test("annotations are not refused", () => {
    expect(() =>
      jsonSchemaToGbnf(
        {
          $schema: "https://json-schema.org/draft/2020-12/schema",
          title: "t",
          description: "d",
          type: "object",
          properties: { a: { type: "string", default: "x", examples: ["y"] } },
        },
        PATH,
      ),
    ).not.toThrow();
  });
});

describe("grammar shape", () => {
  test("required and optional properties keep the schema's order, separated by commas", () => {
    const gbnf = jsonSchemaToGbnf(
      {
        type: "object",
        properties: { a: { type: "boolean" }, b: { type: "null" } },
        required: ["b"],
        additionalProperties: false,
      },
      PATH,
    );
    expect(gbnf).toStartWith("root ::= ");
    expect(gbnf).toContain('"\\x22a\\x22" ":" ws json-boolean');
    expect(gbnf).toContain('"," ws "\\x22b\\x22" ":" ws json-null');
  });

  test("a recursive $ref becomes a recursive rule", () => {
    const gbnf = jsonSchemaToGbnf(
      {
        $defs: {
          node: {
            type: "object",
            properties: { next: { anyOf: [{ $ref: "#/$defs/node" }, { type: "null" }] } },
            required: ["next"],
          },
        },
        $ref: "#/$defs/node",
      },
      PATH,
    );
    const rule = /^(ref-node) ::= /m.exec(gbnf)?.[1];
    expect(rule).toBe("ref-node");
    expect(gbnf).toMatch(/ref-node \| json-null/);
  });

  test("a pattern's quotes and backslashes never reach the JSON text raw", () => {
    expect(() => regexToGbnf('^a"b$', "p")).toThrow('a pattern matching "\\"" is not supported');
    expect(regexToGbnf("^[^a]$", "p")).toContain('[^a"\\\\');
    expect(regexToGbnf("abc", "p")).toMatch(/^\[\^.*\]\* \("a" "b" "c"\) \[\^.*\]\*$/);
  });
});

describe("request grammars", () => {
  const tool = { name: "f", parameters: { type: "object", properties: {}, additionalProperties: false } };

  test("a forced call is written as the template writes one; parallel calls only when allowed", () => {
    const hermes = requestGrammar({ tools: [tool], toolChoice: { type: "any" } }, "hermes")!;
    expect(hermes.triggerPatterns).toBeUndefined();
    expect(hermes.gbnf).toContain('"<tool_call>\\x0a{\\x22name\\x22: \\x22f\\x22, \\x22arguments\\x22: "');
    expect(hermes.gbnf).toMatch(/^root ::= tool-call \("\\x0a" tool-call\)\*$/m);
    const single = requestGrammar(
      { tools: [tool], toolChoice: { type: "any" }, parallelToolCalls: false },
      "llama3",
    )!;
    expect(single.gbnf).toMatch(/^root ::= tool-call$/m);
    expect(single.gbnf).toContain("parameters\\x22: ");
  });

  test("auto is lazy, starting at the syntax's opening; none and no tools constrain nothing", () => {
    expect(requestGrammar({ tools: [tool] }, "hermes")?.triggerPatterns).toEqual(["<tool_call>"]);
    expect(requestGrammar({ tools: [tool], toolChoice: { type: "none" } }, "hermes")).toBeUndefined();
    expect(requestGrammar({ tools: [] }, "hermes")).toBeUndefined();
  });

  test("a response format beside auto tools is an answer or calls, from the first token", () => {
    const grammar = requestGrammar({ tools: [tool], responseFormat: { type: "json_object" } }, "hermes")!;
    expect(grammar.triggerPatterns).toBeUndefined();
    expect(grammar.gbnf).toMatch(/^root ::= json-object \| tool-call/m);
  });
});
