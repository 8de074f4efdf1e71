/**
 * The tiny model under small chat templates of our own, one per tool-call
 * format, each writing an assistant's calls with its format's markers (what
 * the neuron detects the format from), and one reasoning template that opens
 * `<think>` in its generation prompt unless `enable_thinking` is false. The
 * weights are the demo model's: it cannot call tools by itself, so the tests
 * force calls (tool_choice) and the grammar writes them in the format's syntax.
 */
import { join } from "node:path";
import { gv, writeGguf } from "../../../src/neuron/gguf/gguf-writer.ts";
import { buildTinyModel } from "../../../src/neuron/gguf/tiny-model.ts";

const NAME = "{{ tc.function.name }}";
const ARGS = "{{ tc.function.arguments | tojson }}";
const EACH_ARG = "{% for k, v in tc.function.arguments.items() %}";

/** How each format's template writes one call `tc`. */
export const FORMAT_CALLS = {
  "qwen3-coder": `<tool_call>\n<function=${NAME}>\n${EACH_ARG}<parameter={{ k }}>\n{{ v }}\n</parameter>\n{% endfor %}</function>\n</tool_call>`,
  llama3: `{%- if false %}<|python_tag|>{% endif %}{"name": "${NAME}", "parameters": ${ARGS}}`,
  mistral: `[TOOL_CALLS]${NAME}[ARGS]${ARGS}`,
  harmony: `<|channel|>commentary to=functions.${NAME} <|constrain|>json<|message|>${ARGS}<|call|>`,
  "deepseek-v3": `<｜tool▁calls▁begin｜><｜tool▁call▁begin｜>${NAME}<｜tool▁sep｜>${ARGS}<｜tool▁call▁end｜><｜tool▁calls▁end｜>`,
  glm: `<tool_call>${NAME}\n${EACH_ARG}<arg_key>{{ k }}</arg_key>\n<arg_value>{{ v }}</arg_value>\n{% endfor %}</tool_call>`,
  gemma4: `<|tool_call>call:${NAME}{{ '{' }}${EACH_ARG}{{ k }}:{% if v is string %}<|"|>{{ v }}<|"|>{% else %}{{ v }}{% endif %}{% if not loop.last %},{% endif %}{% endfor %}}<tool_call|>`,
} as const;

export type TestFormat = keyof typeof FORMAT_CALLS;

function chatTemplate(call: string, generation: string): string {
  return `{%- if tools %}<|im_start|>system
Tools: {{ tools | tojson }}<|im_end|>
{% endif -%}
{%- for m in messages -%}
<|im_start|>{{ m.role }}
{% if m.role == 'assistant' and m.reasoning_content %}<think>
{{ m.reasoning_content }}
</think>

{% endif -%}
{% if m.role == 'assistant' and m.tool_calls %}{% for tc in m.tool_calls %}${call}{% endfor %}{% else %}{{ m.content }}{% endif %}<|im_end|>
{% endfor -%}
{%- if add_generation_prompt %}<|im_start|>assistant
${generation}{% endif -%}`;
}

/** Thinking on unless the request turned it off (`enable_thinking` false). */
const THINK_GENERATION =
  "{% if enable_thinking is defined and not enable_thinking %}<think>\n\n</think>\n\n{% else %}<think>\n{% endif %}";

export const THINK_FILE = "cortex-tiny-think.gguf";

export function formatFile(format: TestFormat): string {
  return `cortex-tiny-${format}.gguf`;
}

async function write(path: string, template: string): Promise<string> {
  const { spec } = buildTinyModel();
  const metadata = spec.metadata.map(([key, value]) =>
    key === "tokenizer.chat_template" ? ([key, gv.str(template)] as const) : ([key, value] as const),
  );
  await writeGguf(path, { ...spec, metadata });
  return path;
}

/** Writes one file per format and the reasoning one into `dir`; returns their paths. */
export async function writeFormatTinyModels(dir: string): Promise<string[]> {
  const paths: string[] = [];
  for (const [format, call] of Object.entries(FORMAT_CALLS))
    paths.push(await write(join(dir, formatFile(format as TestFormat)), chatTemplate(call, "")));
  paths.push(await write(join(dir, THINK_FILE), chatTemplate(FORMAT_CALLS["qwen3-coder"], THINK_GENERATION)));
  return paths;
}
