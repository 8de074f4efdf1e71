/**
 * An earlier turn's reasoning reaches the families whose templates read it
 * from elsewhere than `reasoning_content` where llama.cpp's handlers put
 * it. The real templates are held to llama-server's renders (the
 * reasoning-history case) in template-fidelity.test.ts.
 */
import { describe, expect, test } from "bun:test";
import { renderChatTemplate } from "../../src/neuron/prompt/chat-template.ts";
import type { TemplateMessage } from "../../src/neuron/prompt/template-messages.ts";

const tokens = { bosToken: "", eosToken: "" };
const history: TemplateMessage[] = [
  { role: "system", content: "Be brief." },
  { role: "user", content: "Hi!" },
  { role: "assistant", content: "Hello.", reasoning_content: "A greeting." },
];
const render = (template: string) =>
  renderChatTemplate(template, { messages: history, addGenerationPrompt: false }, tokens);

describe("earlier reasoning, where each family reads it", () => {
  test("gpt-oss and LFM2 read it from `thinking`", () => {
    const body =
      "{% for m in messages %}{{ m.role }}:{{ m.thinking | default('-') }}/{{ m.content }};{% endfor %}";
    expect(render(`{# <|channel|> #}${body}`)).toBe(
      "system:-/Be brief.;user:-/Hi!;assistant:A greeting./Hello.;",
    );
    expect(render(`{# <|tool_list_start|><|tool_list_end|> #}${body}`)).toContain(
      "assistant:A greeting./Hello.;",
    );
    // Other templates keep reading reasoning_content.
    expect(render(body)).toContain("assistant:-/Hello.;");
  });

  test("Ministral 3 reads system and assistant content as blocks, the reasoning a thinking block first", () => {
    const ministral =
      "{# [SYSTEM_PROMPT] [TOOL_CALLS] [ARGS] #}{% for m in messages %}{{ m.role }}:" +
      "{% if m.content is string %}{{ m.content }}{% else %}{% for b in m.content %}<{{ b.type }}>{{ b.thinking if b.type == 'thinking' else b.text }}{% endfor %}{% endif %}" +
      "{{ '!' if m.reasoning_content is defined }};{% endfor %}";
    expect(render(ministral)).toBe(
      "system:<text>Be brief.;user:Hi!;assistant:<thinking>A greeting.<text>Hello.;",
    );
  });
});
