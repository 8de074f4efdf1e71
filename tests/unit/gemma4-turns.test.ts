/**
 * Gemma 4 templates get their messages the way llama.cpp hands them over
 * (common/parsers/gemma4.cpp): the older templates read tool results from
 * the assistant turn's `tool_responses`, and a prompt that ends with a
 * closed turn gets the model's turn opened. The real templates are held to
 * llama-server's renders in template-fidelity.test.ts.
 */
import { describe, expect, test } from "bun:test";
import { renderChatTemplate } from "../../src/neuron/prompt/chat-template.ts";
import type { TemplateMessage } from "../../src/neuron/prompt/template-messages.ts";

const tokens = { bosToken: "<bos>", eosToken: "<eos>" };
// The source marker llama.cpp recognizes Gemma 4 by, in a comment, and a turn that prints what it gets.
const body =
  "{% for m in messages %}{{ m.role }}:{{ m.content | default('-') }}" +
  "{% for r in m.tool_responses %}[{{ r.name }}={{ r.response.temp if r.response is mapping else r.response }}]{% endfor %}" +
  "<turn|>\n{% endfor %}";
const older = `{#- '<|tool_call>call:' -#}${body}`;
const openai = `{#- OpenAI Chat Completions: '<|tool_call>call:' -#}${body}`;

const calls: TemplateMessage = {
  role: "assistant",
  content: "",
  tool_calls: [
    { id: "c1", type: "function", function: { name: "get_weather", arguments: { city: "Paris" } } },
    { id: "c2", type: "function", function: { name: "get_time", arguments: { zone: "CET" } } },
  ],
};
const history: TemplateMessage[] = [
  { role: "user", content: "q" },
  calls,
  { role: "tool", tool_call_id: "c1", content: '{"temp": 18}' },
  { role: "tool", tool_call_id: "c2", content: "14:05" },
  { role: "assistant", content: "Sunny" },
  { role: "user", content: "thanks" },
];

describe("Gemma 4 templates", () => {
  test("the older templates get tool results and the answer folded into the tool-calling turn", () => {
    expect(renderChatTemplate(older, { messages: history }, tokens)).toBe(
      "user:q<turn|>\nassistant:Sunny[get_weather=18][get_time=14:05]<turn|>\nuser:thanks<turn|>\n<|turn>model\n",
    );
  });

  test("a turn still waiting for its results has no content, and the model's turn is opened", () => {
    expect(renderChatTemplate(older, { messages: history.slice(0, 3) }, tokens)).toBe(
      "user:q<turn|>\nassistant:-[get_weather=18]<turn|>\n<|turn>model\n",
    );
    expect(
      renderChatTemplate(older, { messages: history.slice(0, 3), addGenerationPrompt: false }, tokens),
    ).toBe("user:q<turn|>\nassistant:-[get_weather=18]<turn|>\n");
  });

  test("the OpenAI-compatible template gets role tool messages as they are", () => {
    expect(renderChatTemplate(openai, { messages: history.slice(0, 4) }, tokens)).toBe(
      'user:q<turn|>\nassistant:<turn|>\ntool:{"temp": 18}<turn|>\ntool:14:05<turn|>\n<|turn>model\n',
    );
  });
});
