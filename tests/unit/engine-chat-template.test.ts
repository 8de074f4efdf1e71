import { describe, expect, test } from "bun:test";
import { CortexError } from "../../src/core/errors.ts";
import type { CanonicalMessage } from "../../src/dialects/canonical.ts";
import { renderChatTemplate } from "../../src/neuron/prompt/chat-template.ts";
import { toTemplateMessages } from "../../src/neuron/prompt/template-messages.ts";

const text = (t: string) => [{ type: "text" as const, text: t }];
const messagesOf = (messages: CanonicalMessage[]) => toTemplateMessages(messages, "m");

const CHATML =
  "{{ bos_token }}{% for m in messages %}<|im_start|>{{ m.role }}\n{{ m.content }}<|im_end|>\n{% endfor %}" +
  "{% if tools %}TOOLS:{% for t in tools %}{{ t.function.name }};{% endfor %}\n{% endif %}" +
  "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}";
const TOOL_CALLS =
  "{% for m in messages %}{% if m.tool_calls %}{% for c in m.tool_calls %}{{ c.function.name }}({% for k, v in c.function.arguments.items() %}{{ k }}={{ v }}{% endfor %}){% endfor %}{% else %}{{ m.role }}:{{ m.content }}{% endif %}|{% endfor %}";
const tokens = { bosToken: "<s>", eosToken: "</s>" };

describe("renderChatTemplate", () => {
  test("renders ChatML with bos and the generation prompt", () => {
    const prompt = renderChatTemplate(
      CHATML,
      {
        messages: messagesOf([
          { role: "system", content: text("Be brief.") },
          { role: "user", content: text("Hi") },
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
        messages: messagesOf([{ role: "user", content: text("Weather?") }]),
        tools: [{ type: "function", function: { name: "get_weather", parameters: {} } }],
        addGenerationPrompt: false,
      },
      tokens,
    );
    expect(prompt).toEndWith("<|im_end|>\nTOOLS:get_weather;");
  });

  test("tool-call arguments reach the template as objects", () => {
    const messages = messagesOf([
      { role: "system", content: text("rules") },
      {
        role: "assistant",
        content: [{ type: "tool_call", id: "1", name: "get_weather", arguments: '{"city":"Oslo"}' }],
      },
    ]);
    expect(renderChatTemplate(TOOL_CALLS, { messages }, tokens)).toBe("system:rules|get_weather(city=Oslo)|");
  });

  test("images for a model that does not take them are refused, not dropped", () => {
    expect(() =>
      messagesOf([
        {
          role: "user",
          content: [{ type: "image", source: { kind: "url", url: "https://example.com/a.png" } }],
        },
      ]),
    ).toThrow("does not take images");
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
