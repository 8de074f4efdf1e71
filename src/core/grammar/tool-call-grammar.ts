/**
 * A tool call in each model's own syntax as GBNF, so a forced call (or a
 * call the model starts under `auto`) is written the way its chat template
 * writes calls, and parses back through src/neuron/tool-formats/. JSON
 * formats get the tool's argument schema; the formats that write parameters
 * one by one (Qwen3-Coder, GLM) get one element per schema property, text
 * values bare and others as JSON; Gemma 4's own object notation is held to
 * its shape only.
 */
import { isJsonObject } from "../json-object.ts";
import { literal } from "./gbnf.ts";
import type { JsonGrammar } from "./json-schema-to-gbnf.ts";
import type { ToolCallSyntax } from "./tool-call-syntax.ts";

export interface ToolGrammarTool {
  name: string;
  parameters: Record<string, unknown>;
}

/** How calls are put together: several calls, their separator, and the lazy trigger. */
export interface CallLayout {
  /** Wraps the calls (`many` is one call, or several joined). */
  wrap(calls: string): string;
  separator: string;
  /** Only one call fits in an answer (Harmony ends generation at `<|call|>`). */
  single: boolean;
  /** std::regex patterns that start a lazy grammar where the model opens a call. */
  triggers: string[];
}

const DS_CALLS_BEGIN = "<｜tool▁calls▁begin｜>";
const DS_CALLS_END = "<｜tool▁calls▁end｜>";

export function callLayout(grammar: JsonGrammar, syntax: ToolCallSyntax): CallLayout {
  const nl = literal("\n");
  switch (syntax) {
    case "hermes":
    case "generic":
    case "qwen3-coder":
    case "glm":
      return { wrap: (c) => c, separator: nl, single: false, triggers: ["<tool_call>"] };
    case "llama3":
      grammar.primitive("ws");
      return { wrap: (c) => c, separator: '";" ws', single: false, triggers: ["^\\s*(\\{)[\\s\\S]*$"] };
    case "mistral":
      return { wrap: (c) => c, separator: '""', single: false, triggers: ["\\[TOOL_CALLS\\]"] };
    case "mistral-json":
      grammar.primitive("ws");
      return {
        wrap: (c) => `${literal("[TOOL_CALLS][")} ${c} ${literal("]")}`,
        separator: '"," ws',
        single: false,
        triggers: ["\\[TOOL_CALLS\\]"],
      };
    case "harmony":
      return {
        wrap: (c) => c,
        separator: '""',
        single: true,
        triggers: ["<\\|channel\\|>commentary to=functions\\."],
      };
    case "deepseek-r1":
    case "deepseek-v3":
      return {
        wrap: (c) => `${literal(DS_CALLS_BEGIN)} ${c} ${literal(DS_CALLS_END)}`,
        separator: syntax === "deepseek-r1" ? nl : '""',
        single: false,
        triggers: [DS_CALLS_BEGIN],
      };
    case "gemma4":
      return { wrap: (c) => c, separator: '""', single: false, triggers: ["<\\|tool_call>"] };
  }
}

/**
 * One call to `tool` in `syntax`; `args` is the rule for its JSON arguments
 * (built lazily: the XML formats read the schema's properties instead).
 */
export function callRule(
  grammar: JsonGrammar,
  syntax: ToolCallSyntax,
  tool: ToolGrammarTool,
  args: () => string,
  path: string,
): string {
  const name = tool.name;
  let body: string;
  switch (syntax) {
    case "hermes":
    case "generic":
      body = `${literal(`<tool_call>\n{"name": ${JSON.stringify(name)}, "arguments": `)} ${args()} ${literal("}\n</tool_call>")}`;
      break;
    case "llama3":
      body = `${literal(`{"name": ${JSON.stringify(name)}, "parameters": `)} ${args()} "}"`;
      break;
    case "mistral":
      body = `${literal(`[TOOL_CALLS]${name}[ARGS]`)} ${args()}`;
      break;
    case "mistral-json":
      body = `${literal(`{"name": ${JSON.stringify(name)}, "arguments": `)} ${args()} "}"`;
      break;
    case "harmony":
      body = `${literal(`<|channel|>commentary to=functions.${name} <|constrain|>json<|message|>`)} ${args()}`;
      break;
    case "deepseek-r1":
      body = `${literal(`<｜tool▁call▁begin｜>function<｜tool▁sep｜>${name}\n\`\`\`json\n`)} ${args()} ${literal("\n```<｜tool▁call▁end｜>")}`;
      break;
    case "deepseek-v3":
      body = `${literal(`<｜tool▁call▁begin｜>${name}<｜tool▁sep｜>`)} ${args()} ${literal("<｜tool▁call▁end｜>")}`;
      break;
    case "qwen3-coder":
      body = `${literal(`<tool_call>\n<function=${name}>\n`)} ${xmlParams(grammar, tool, path, (k) => literal(`<parameter=${k}>\n`), literal("\n</parameter>\n"))} ${literal("</function>\n</tool_call>")}`;
      break;
    case "glm":
      body = `${literal(`<tool_call>${name}\n`)} ${xmlParams(grammar, tool, path, (k) => literal(`<arg_key>${k}</arg_key>\n<arg_value>`), literal("</arg_value>\n"))} ${literal("</tool_call>")}`;
      break;
    case "gemma4":
      body = `${literal(`<|tool_call>call:${name}{`)} ${gemmaParams(grammar, tool, path)} ${literal("}<tool_call|>")}`;
      break;
  }
  return grammar.rules.add(`call-${name}`, body);
}

/** Each schema property as an element, required ones in order, others optional. */
function xmlParams(
  grammar: JsonGrammar,
  tool: ToolGrammarTool,
  path: string,
  open: (key: string) => string,
  close: string,
): string {
  const props = isJsonObject(tool.parameters.properties) ? tool.parameters.properties : {};
  const required = new Set(Array.isArray(tool.parameters.required) ? tool.parameters.required : []);
  const parts: string[] = [];
  for (const [key, schema] of Object.entries(props)) {
    const value =
      isJsonObject(schema) && schema.type === "string"
        ? bareText(grammar, schema, "[^<]", '([^<] | "<" [^/])*')
        : grammar.schema(schema, `${path}.properties.${key}`);
    const element = `${open(key)} ${value} ${close}`;
    parts.push(required.has(key) ? element : `(${element})?`);
  }
  return parts.length === 0 ? '""' : parts.join(" ");
}

/** A string parameter written bare: `char` repeated, bounded by the schema's lengths where it has them. */
function bareText(
  grammar: JsonGrammar,
  schema: Record<string, unknown>,
  char: string,
  unbounded: string,
): string {
  const min = typeof schema.minLength === "number" ? schema.minLength : 0;
  const max = typeof schema.maxLength === "number" ? schema.maxLength : undefined;
  if (max === undefined && min === 0) return grammar.rules.add("bare-text", unbounded);
  return grammar.rules.add(`bare-text-${min}-${max ?? "n"}`, `${char}{${min},${max ?? ""}}`);
}

/**
 * Gemma 4's object notation for the schema's properties: bare keys in
 * order, `<|"|>`-quoted strings; numbers and booleans as in JSON, anything
 * else held to the notation's shape only.
 */
function gemmaParams(grammar: JsonGrammar, tool: ToolGrammarTool, path: string): string {
  const props = isJsonObject(tool.parameters.properties) ? tool.parameters.properties : {};
  const required = new Set(Array.isArray(tool.parameters.required) ? tool.parameters.required : []);
  const quote = literal('<|"|>');
  const anyString = `${quote} ([^<] | "<" [^|])* ${quote}`;
  grammar.primitive("json-number");
  grammar.rules.define(
    "gemma-value",
    `${anyString} | gemma-object | gemma-array | json-number | "true" | "false" | "null"`,
  );
  grammar.rules.define("gemma-array", '"[" (gemma-value ("," gemma-value)*)? "]"');
  grammar.rules.define(
    "gemma-object",
    '"{" ([A-Za-z_] [A-Za-z0-9_]* ":" gemma-value ("," [A-Za-z_] [A-Za-z0-9_]* ":" gemma-value)*)? "}"',
  );
  const members: Array<{ element: string; required: boolean }> = [];
  for (const [key, schema] of Object.entries(props)) {
    let value = "gemma-value";
    if (isJsonObject(schema) && schema.type === "string")
      value = `${quote} ${bareText(grammar, schema, "[^<]", '([^<] | "<" [^|])*')} ${quote}`;
    else if (isJsonObject(schema) && ["integer", "number", "boolean"].includes(String(schema.type)))
      value = grammar.schema(schema, `${path}.properties.${key}`);
    members.push({ element: `${literal(`${key}:`)} ${value}`, required: required.has(key) });
  }
  // Required members first, in order; then each optional one with its comma. Without
  // required members, any of them, comma-separated.
  const must = members.filter((m) => m.required).map((m) => m.element);
  const may = members.filter((m) => !m.required).map((m) => m.element);
  if (must.length > 0) return [must.join(' "," '), ...may.map((e) => `("," ${e})?`)].join(" ");
  if (may.length === 0) return '""';
  const any = grammar.rules.add("gemma-member", may.join(" | "));
  return `(${any} ("," ${any})*)?`;
}
