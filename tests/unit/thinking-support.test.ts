/**
 * The `enable_thinking` a template renders with when the request does not
 * set it is llama-server's: on where its analysis finds reasoning in the
 * template, off elsewhere (Apertus's "Deliberation" line is not reasoning
 * to llama.cpp). The real templates are held to llama-server's renders in
 * template-fidelity.test.ts.
 */
import { describe, expect, test } from "bun:test";
import { renderChatTemplate } from "../../src/neuron/prompt/chat-template.ts";
import { diffSplit, segmentize } from "../../src/neuron/prompt/thinking-support.ts";

const tokens = { bosToken: "<s>", eosToken: "</s>" };
const messages = [{ role: "user" as const, content: "hi" }];
const turns =
  "{% for m in messages %}<|{{ m.role }}|>{% if m.reasoning_content %}{{ REASONING }}{% endif %}{{ m.content }}<|end|>{% endfor %}";
const render = (template: string, kwargs?: Record<string, unknown>) =>
  renderChatTemplate(template, { messages, ...(kwargs ? { kwargs } : {}) }, tokens);

describe("enable_thinking by default", () => {
  test("off for a template that only prints a line about it (Apertus's deliberation)", () => {
    const apertus = `Deliberation: {{ 'enabled' if enable_thinking else 'disabled' }}\n${turns.replace("{{ REASONING }}", "")}{% if add_generation_prompt %}<|assistant|>{% endif %}`;
    expect(render(apertus)).toStartWith("Deliberation: disabled\n");
    // The request's own kwarg still wins.
    expect(render(apertus, { enable_thinking: true })).toStartWith("Deliberation: enabled\n");
  });

  test("on where turning it off ends the generation prompt with an empty think block", () => {
    const closes = `${turns.replace("{{ REASONING }}", "")}{% if add_generation_prompt %}<|assistant|>{% if enable_thinking is false %}<think>\n\n</think>{% endif %}{% endif %}`;
    expect(render(closes)).toBe("<|user|>hi<|end|><|assistant|>");
    expect(render(closes, { enable_thinking: false })).toBe(
      "<|user|>hi<|end|><|assistant|><think>\n\n</think>",
    );
    // Followed by text, the block is not the prompt's tail: llama.cpp's analysis does not count it.
    expect(render(`${closes} ok`)).toEndWith("<think>\n\n</think> ok");
  });

  test("on where turning it on opens a think block at the generation prompt's end", () => {
    const opens = `${turns.replace("{{ REASONING }}", "")}<|assistant|>{% if enable_thinking %}<think>{% endif %}`;
    expect(render(opens)).toEndWith("<|assistant|><think>");
  });

  test("on where an assistant turn's reasoning is printed and closed by a marker", () => {
    const reasoning = `${turns.replace("{{ REASONING }}", "<think>{{ m.reasoning_content }}</think>")}{{ '[thinking ' ~ enable_thinking ~ ']' }}`;
    expect(render(reasoning)).toEndWith("[thinking true]");
    // Printed with no marker after it, it is not reasoning to llama.cpp.
    const unmarked = `${turns.replace("{{ REASONING }}", "{{ m.reasoning_content }} and ")}{{ '[thinking ' ~ enable_thinking ~ ']' }}`;
    expect(render(unmarked)).toEndWith("[thinking false]");
  });

  test("templates llama.cpp has a dedicated handler for get its answer (gpt-oss: on)", () => {
    expect(render("{# <|channel|> #}{{ enable_thinking }}")).toBe("true");
    expect(render("{{ enable_thinking }}")).toBe("false");
  });
});

describe("llama.cpp's marker-aware diff", () => {
  test("segments split text from <…> and […] markers", () => {
    expect(segmentize("a<b>[c]d")).toEqual([
      { marker: false, value: "a" },
      { marker: true, value: "<b>" },
      { marker: true, value: "[c]" },
      { marker: false, value: "d" },
    ]);
  });

  test("the diff keeps markers whole and trims shared text", () => {
    expect(diffSplit("<a>x<think></think>", "<a>x")).toEqual({ left: "<think></think>", right: "" });
    expect(diffSplit("<a>mode: off<b>", "<a>mode: on<b>")).toEqual({ left: "ff", right: "n" });
    expect(diffSplit("<a>x", "<a>x<think>")).toEqual({ left: "", right: "<think>" });
  });
});
