/**
 * What a chat request's structured-output settings demand of the sampler:
 * `response_format` / `output_config.format`, `tool_choice` and
 * `parallel_tool_calls`, turned into one GBNF grammar (or none).
 *
 * - A JSON schema or `json_object` format: the answer is that JSON.
 * - A forced tool choice (`required`/`any`, or one named tool): the answer is
 *   one call (or several, when parallel calls are allowed) in the model's own
 *   tool-call syntax, each naming a tool and carrying arguments valid for it.
 * - `auto` with tools: the answer is free until the model starts a call; the
 *   grammar then takes over (lazy, triggered by the syntax's opening), so a
 *   started call names a real tool with valid arguments. With a response
 *   format as well, the answer is either the JSON or calls.
 * - `none`: no tool grammar, and no tool calls are parsed.
 *
 * A schema keyword the translator cannot honour is a 400 naming the field in
 * the caller's dialect. Only non-strict tools under `auto` are lenient: their
 * schema was never a promise (OpenAI does not enforce it either), so a call
 * to such a tool is still held to well-formed JSON arguments.
 */
import { CortexError } from "../errors.ts";
import { GrammarUnsupportedError } from "./gbnf.ts";
import { JsonGrammar } from "./json-schema-to-gbnf.ts";
import { callLayout, callRule } from "./tool-call-grammar.ts";
import type { ToolCallSyntax } from "./tool-call-syntax.ts";

/** Where each schema sits in the caller's request, for error messages. */
export interface SchemaPaths {
  responseSchema: string;
  toolParameters(index: number): string;
}

export const OPENAI_SCHEMA_PATHS: SchemaPaths = {
  responseSchema: "response_format.json_schema.schema",
  toolParameters: (i) => `tools.${i}.function.parameters`,
};

export const ANTHROPIC_SCHEMA_PATHS: SchemaPaths = {
  responseSchema: "output_config.format.schema",
  toolParameters: (i) => `tools.${i}.input_schema`,
};

export const RESPONSES_SCHEMA_PATHS: SchemaPaths = {
  responseSchema: "text.format.schema",
  toolParameters: (i) => `tools.${i}.parameters`,
};

export interface RequestGrammar {
  gbnf: string;
  /** Present for a lazy grammar: regexes that start it. */
  triggerPatterns?: string[];
}

interface Tool {
  name: string;
  parameters: Record<string, unknown>;
  strict?: boolean;
}

/** The fields of a canonical request (src/dialects/canonical.ts) that constrain the answer. */
interface Fields {
  tools: Tool[];
  toolChoice?: { type: "auto" | "any" | "none" } | { type: "tool"; name: string };
  parallelToolCalls?: boolean;
  responseFormat?:
    | { type: "text" }
    | { type: "json_object" }
    | { type: "json_schema"; schema: Record<string, unknown> };
}

/** Whether a request constrains its answer at all (cheap: no schema is read). */
export function hasStructuredOutput(request: Fields): boolean {
  const format = request.responseFormat?.type;
  return (
    format === "json_object" ||
    format === "json_schema" ||
    (request.tools.length > 0 && request.toolChoice?.type !== "none")
  );
}

/**
 * Throws the 400 a request's structured-output settings deserve, if any,
 * without keeping the grammar: for the gateway, which answers in the
 * caller's dialect before a neuron is chosen. Lenient tools are not read.
 */
export function checkStructuredOutput(request: Fields, paths: SchemaPaths): void {
  if (!hasStructuredOutput(request)) return;
  build(request, "hermes", paths, { skipLenient: true });
}

/** The grammar a request's answer must follow, or undefined when it is free. */
export function requestGrammar(
  request: Fields,
  syntax: ToolCallSyntax,
  paths: SchemaPaths = OPENAI_SCHEMA_PATHS,
): RequestGrammar | undefined {
  if (!hasStructuredOutput(request)) return undefined;
  return build(request, syntax, paths, { skipLenient: false });
}

function build(
  request: Fields,
  syntax: ToolCallSyntax,
  paths: SchemaPaths,
  options: { skipLenient: boolean },
): RequestGrammar | undefined {
  const grammar = new JsonGrammar();
  const choice = request.toolChoice ?? { type: "auto" };
  const useTools = request.tools.length > 0 && choice.type !== "none";
  try {
    let answer: string | undefined;
    const format = request.responseFormat;
    if (format?.type === "json_schema") answer = grammar.schema(format.schema, paths.responseSchema);
    else if (format?.type === "json_object") answer = grammar.primitive("json-object");

    if (!useTools) return answer === undefined ? undefined : { gbnf: grammar.render(answer) };

    let tools: Array<{ tool: Tool; index: number }> = request.tools.map((tool, index) => ({ tool, index }));
    if (choice.type === "tool") {
      tools = tools.filter(({ tool }) => tool.name === choice.name);
      if (tools.length === 0)
        throw new CortexError(
          "invalid_request",
          `tool_choice: no tool named ${JSON.stringify(choice.name)} among the tools`,
          {
            param: "tool_choice",
          },
        );
    }
    const forced = choice.type === "tool" || choice.type === "any";
    const calls: string[] = [];
    for (const { tool, index } of tools) {
      const lenient = !forced && tool.strict !== true;
      if (lenient && options.skipLenient) continue;
      const path = paths.toolParameters(index);
      const args = () => {
        try {
          return grammar.schema(tool.parameters, path);
        } catch (error) {
          if (!(lenient && error instanceof GrammarUnsupportedError)) throw error;
          return grammar.primitive("json-object");
        }
      };
      calls.push(callRule(grammar, syntax, tool, args, path));
    }
    if (calls.length === 0) return undefined;
    const layout = callLayout(grammar, syntax);
    const call = grammar.rules.add("tool-call", calls.join(" | "));
    const many = layout.wrap(
      request.parallelToolCalls === false || layout.single ? call : `${call} (${layout.separator} ${call})*`,
    );
    if (forced) return { gbnf: grammar.render(many) };
    if (answer !== undefined) return { gbnf: grammar.render(`${answer} | ${many}`) };
    return { gbnf: grammar.render(many), triggerPatterns: layout.triggers };
  } catch (error) {
    if (error instanceof GrammarUnsupportedError)
      throw new CortexError("invalid_request", error.message, { param: error.path });
    throw error;
  }
}
