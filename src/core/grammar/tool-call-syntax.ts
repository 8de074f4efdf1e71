/**
 * How a model writes tool calls and reasoning, read from its chat template
 * (the markers the template writes for an assistant's calls), never from the
 * model's name: a fine-tune keeps its base's template and format.
 */

export type ToolCallSyntax =
  /** Hermes / Qwen 2.5: `<tool_call>\n{"name": …, "arguments": …}\n</tool_call>`. */
  | "hermes"
  /** Qwen3-Coder (and Nemotron 3): `<tool_call>\n<function=NAME>\n<parameter=KEY>\nVALUE\n</parameter>…`. */
  | "qwen3-coder"
  /** Llama 3.x: `{"name": …, "parameters": …}`, or after `<|python_tag|>`. */
  | "llama3"
  /** Mistral (Small 3.2, Devstral, Ministral): `[TOOL_CALLS]NAME[ARGS]{…}`. */
  | "mistral"
  /** Mistral Nemo: `[TOOL_CALLS][{"name": …, "arguments": …, "id": …}]`. */
  | "mistral-json"
  /** gpt-oss Harmony: `<|channel|>commentary to=functions.NAME <|constrain|>json<|message|>{…}<|call|>`. */
  | "harmony"
  /** DeepSeek R1: `<｜tool▁call▁begin｜>function<｜tool▁sep｜>NAME\n```json\n{…}\n```<｜tool▁call▁end｜>`. */
  | "deepseek-r1"
  /** DeepSeek V3.1: `<｜tool▁call▁begin｜>NAME<｜tool▁sep｜>{…}<｜tool▁call▁end｜>`. */
  | "deepseek-v3"
  /** GLM 4.5+: `<tool_call>NAME\n<arg_key>KEY</arg_key>\n<arg_value>VALUE</arg_value>\n</tool_call>`. */
  | "glm"
  /** Gemma 4: `<|tool_call>call:NAME{key:<|"|>text<|"|>}<tool_call|>`. */
  | "gemma4"
  /** No format in the template: Hermes blocks, or an answer that is one JSON call. */
  | "generic";

/** Where a model's reasoning sits in its output. */
export type ReasoningSyntax =
  /** `<think>…</think>` before the answer (Qwen3, DeepSeek-R1, GLM, SmolLM3…). */
  | "think"
  /** Mistral's `[THINK]…[/THINK]`. */
  | "mistral-think"
  /** Gemma 4's `<|channel>thought…<channel|>`. */
  | "gemma4-thought"
  /** Harmony's analysis channel (part of the format). */
  | "harmony"
  | "none";

export interface OutputSyntax {
  tools: ToolCallSyntax;
  reasoning: ReasoningSyntax;
}

export function detectToolCallSyntax(template: string | null): ToolCallSyntax {
  if (template === null) return "hermes";
  const has = (marker: string) => template.includes(marker);
  if (has("<|channel|>") && has("<|message|>")) return "harmony";
  if (has("<function=") && has("<parameter=")) return "qwen3-coder";
  if (has("<arg_key>")) return "glm";
  if (has("tool▁calls▁begin")) return has("```json") ? "deepseek-r1" : "deepseek-v3";
  if (has("[TOOL_CALLS]")) return has("[ARGS]") ? "mistral" : "mistral-json";
  if (has("<|tool_call>")) return "gemma4";
  if (has("<tool_call>")) return "hermes";
  if (has("<|python_tag|>") || has("<|eom_id|>") || (has("<|start_header_id|>") && has('"parameters"')))
    return "llama3";
  return "generic";
}

export function detectReasoningSyntax(template: string | null): ReasoningSyntax {
  if (template === null) return "none";
  if (template.includes("<|channel|>") && template.includes("<|message|>")) return "harmony";
  if (template.includes("<|channel>thought") || template.includes("<|think|>")) return "gemma4-thought";
  if (template.includes("[/THINK]")) return "mistral-think";
  if (template.includes("</think>")) return "think";
  return "none";
}

export function detectOutputSyntax(template: string | null): OutputSyntax {
  return { tools: detectToolCallSyntax(template), reasoning: detectReasoningSyntax(template) };
}
