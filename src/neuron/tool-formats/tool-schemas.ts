/**
 * What the XML-like formats (Qwen3-Coder, GLM) need from the request's
 * tools: a parameter's value is written bare, so whether `42` is a number or
 * the text "42" is the schema's word. The arguments are rebuilt as a JSON
 * object, one member per parameter, emitted as each value ends.
 */
import { isJsonObject } from "../../core/json-object.ts";
import { parseJson } from "./json-value.ts";

export interface ToolSchema {
  name: string;
  parameters: Record<string, unknown>;
}

/** tool name → parameter name → whether its value is text. */
export type StringParams = Map<string, Map<string, boolean>>;

export function stringParams(tools: readonly ToolSchema[]): StringParams {
  const out: StringParams = new Map();
  for (const tool of tools) {
    const props = isJsonObject(tool.parameters.properties) ? tool.parameters.properties : {};
    const params = new Map<string, boolean>();
    for (const [key, schema] of Object.entries(props)) params.set(key, isStringSchema(schema));
    out.set(tool.name, params);
  }
  return out;
}

function isStringSchema(schema: unknown): boolean {
  if (!isJsonObject(schema)) return false;
  const type = schema.type;
  if (type === "string") return true;
  if (Array.isArray(type)) return type.length > 0 && type.every((t) => t === "string" || t === "null");
  if (Array.isArray(schema.enum)) return schema.enum.every((v) => typeof v === "string");
  return false;
}

/** One parameter's value as JSON text. */
export function paramValueJson(raw: string, isString: boolean | undefined): string {
  if (isString === true) return JSON.stringify(raw);
  const parsed = parseJson(raw.trim());
  if (parsed !== undefined) return JSON.stringify(parsed);
  return JSON.stringify(raw);
}

/** Builds `{"a": 1, "b": "x"}` member by member. */
export class ArgsBuilder {
  readonly #params: Map<string, boolean> | undefined;
  #count = 0;

  constructor(schemas: StringParams, tool: string) {
    this.#params = schemas.get(tool);
  }

  member(key: string, raw: string): string {
    const head = this.#count++ === 0 ? "{" : ", ";
    return `${head}${JSON.stringify(key)}: ${paramValueJson(raw, this.#params?.get(key))}`;
  }

  close(): string {
    return this.#count === 0 ? "{}" : "}";
  }
}
