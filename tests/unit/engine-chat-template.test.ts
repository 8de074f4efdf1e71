import { describe, expect, test } from "bun:test";
import { CortexError } from "../../src/core/errors.ts";
import { renderChatTemplate, templateMessages } from "../../src/neuron/engine/chat-template.ts";

const CHATML =
  "{{ bos_token }}{% for m in messages %}<|im_start|>{{ m.role }}\n{{ m.content }}<|im_end|>\n{% endfor %}" +
  "{% if tools %}TOOLS:{% for t in tools %}{{ t.function.name }};{% endfor %}\n{% endif %}" +
  "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}";
const TOOL_CALLS =
  "{% for m in messages %}{% if m.tool_calls %}{% for c in m.tool_calls %}{{ c.function.name }}({{ c.function.arguments.city }}){% endfor %}{% else %}{{ m.role }}:{{ m.content }}{% endif %}|{% endfor %}";
const tokens = { bosToken: "<s>", eosToken: "</s>" };

describe("renderChatTemplate", () => {
  test("renders ChatML with bos and the generation prompt", () => {
    const prompt = renderChatTemplate(
      CHATML,
      {
        messages: templateMessages([
          { role: "system", content: "Be brief." },
          { role: "user", content: "Hi" },
        ]),
      },
      tokens,
    );
    expect(prompt).toBe(
      "<s><|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n",
    );
  });

  test("passes tools and can leave out the generation prompt", () => {
    const prompt = renderChatTemplate(
      CHATML,
      {
        messages: templateMessages([{ role: "user", content: [{ type: "text", text: "Weather?" }] }]),
        tools: [{ type: "function", function: { name: "get_weather" } }],
        addGenerationPrompt: false,
      },
      tokens,
    );
    expect(prompt).toEndWith("<|im_end|>\nTOOLS:get_weather;");
  });

  test("tool-call arguments reach the template as objects; developer becomes system", () => {
    const messages = templateMessages([
      { role: "developer", content: "rules" },
      {
        role: "assistant",
        content: null,
        tool_calls: [
          { id: "1", type: "function", function: { name: "get_weather", arguments: '{"city":"Oslo"}' } },
        ],
      },
    ]);
    expect(renderChatTemplate(TOOL_CALLS, { messages }, tokens)).toBe("system:rules|get_weather(Oslo)|");
  });

  test("non-text content parts are refused, not dropped", () => {
    expect(() =>
      templateMessages([{ role: "user", content: [{ type: "image_url", image_url: "x" }] }]),
    ).toThrow(CortexError);
  });

  test("a template's raise_exception becomes a 400", () => {
    try {
      renderChatTemplate(
        "{{ raise_exception('roles must alternate') }}",
        { messages: [{ role: "user", content: "x" }] },
        tokens,
      );
      throw new Error("expected a throw");
    } catch (e) {
      expect(e).toBeInstanceOf(CortexError);
      expect((e as CortexError).status).toBe(400);
      expect((e as CortexError).message).toContain("roles must alternate");
    }
  });
});
