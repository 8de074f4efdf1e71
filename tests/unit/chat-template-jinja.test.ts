/**
 * The Jinja features real chat templates use, one by one, rendered the way
 * llama.cpp renders them (template-fidelity.test.ts holds whole templates to
 * llama-server's output).
 */
import { describe, expect, test } from "bun:test";
import { CortexError } from "../../src/core/errors.ts";
import { renderChatTemplate } from "../../src/neuron/prompt/chat-template.ts";
import type { TemplateMessage } from "../../src/neuron/prompt/template-messages.ts";

const tokens = { bosToken: "<s>", eosToken: "</s>" };
const user: TemplateMessage[] = [{ role: "user", content: "hi" }];
const render = (template: string, extra: Parameters<typeof renderChatTemplate>[1] = { messages: user }) =>
  renderChatTemplate(template, extra, tokens);
// 2026-03-05 14:07 local time.
const now = new Date(2026, 2, 5, 14, 7).getTime();

describe("chat template Jinja features", () => {
  test("raise_exception refuses the request with the template's own message", () => {
    try {
      render("{{ raise_exception('Conversation roles must alternate user/assistant') }}");
      throw new Error("expected a throw");
    } catch (error) {
      expect(error).toBeInstanceOf(CortexError);
      expect((error as CortexError).status).toBe(400);
      expect((error as Error).message).toContain("Conversation roles must alternate user/assistant");
    }
  });

  test("strftime_now and date_string give the render's date", () => {
    expect(
      render("{{ strftime_now('%d %b %Y') }}|{{ strftime_now('%Y-%m-%d %H:%M') }}|{{ date_string }}", {
        messages: user,
        now,
      }),
    ).toBe("05 Mar 2026|2026-03-05 14:07|05 Mar 2026");
  });

  test("tojson with the options templates pass", () => {
    const tools = [
      { type: "function" as const, function: { name: "f", description: "é", parameters: { a: 1 } } },
    ];
    expect(render("{{ tools[0].function.parameters | tojson }}", { messages: user, tools })).toBe('{"a": 1}');
    expect(render("{{ tools[0].function.parameters | tojson(indent=2) }}", { messages: user, tools })).toBe(
      '{\n  "a": 1\n}',
    );
    expect(
      render("{{ tools[0].function | tojson(ensure_ascii=False) }}", { messages: user, tools }),
    ).toContain('"é"');
    expect(
      render("{{ tools[0].function.parameters | tojson(separators=(',', ':')) }}", { messages: user, tools }),
    ).toBe('{"a":1}');
  });

  test("namespace carries state out of a loop; loop controls work", () => {
    const messages: TemplateMessage[] = [
      { role: "user", content: "a" },
      { role: "assistant", content: "b" },
      { role: "user", content: "c" },
      { role: "assistant", content: "d" },
    ];
    expect(
      render(
        "{% set ns = namespace(last=-1) %}{% for m in messages %}{% if m.role == 'user' %}{% set ns.last = loop.index0 %}{% endif %}{% endfor %}{{ ns.last }}",
        { messages },
      ),
    ).toBe("2");
    expect(
      render(
        "{% for m in messages %}{% if m.role == 'assistant' %}{% continue %}{% endif %}{% if loop.index > 3 %}{% break %}{% endif %}{{ m.content }}{% if not loop.last %},{% endif %}{% endfor %}",
        { messages },
      ),
    ).toBe("a,c,");
  });

  test("add_generation_prompt is true by default and left undefined when off, as llama.cpp does", () => {
    const template =
      "{% if add_generation_prompt is defined %}defined:{{ add_generation_prompt }}{% else %}undefined{% endif %}";
    expect(render(template)).toBe("defined:true");
    expect(render(template, { messages: user, addGenerationPrompt: false })).toBe("undefined");
  });

  test("kwargs reach the template: enable_thinking (llama-server's default unless set), reasoning_effort, documents", () => {
    const template =
      "{{ enable_thinking }}|{{ reasoning_effort | default('none') }}|{% for d in documents %}{{ d.title }};{% endfor %}";
    // No reasoning in this template: off, as llama-server has it (thinking-support.test.ts).
    expect(render(template)).toBe("false|none|");
    expect(render(template, { messages: user, kwargs: { enable_thinking: true } })).toBe("true|none|");
    expect(
      render(template, {
        messages: user,
        kwargs: {
          enable_thinking: false,
          reasoning_effort: "high",
          documents: [{ title: "a" }, { title: "b" }],
        },
      }),
    ).toBe("false|high|a;b;");
  });

  test("tools: absent when there are none, iterable when there are", () => {
    const template =
      "{% if tools is defined %}T{% endif %}{% for t in tools %}{{ t.function.name }}{% endfor %}";
    expect(render(template)).toBe("");
    expect(
      render(template, {
        messages: user,
        tools: [{ type: "function", function: { name: "f", parameters: {} } }],
      }),
    ).toBe("Tf");
  });

  test("a template without a system role gets the system text in the next message", () => {
    const gemma2 =
      "{% for m in messages %}{% if m.role == 'system' %}{{ raise_exception('System role not supported') }}{% endif %}<{{ m.role }}>{{ m.content }}{% endfor %}";
    expect(
      render(gemma2, {
        messages: [
          { role: "system", content: "Be brief." },
          { role: "user", content: "hi" },
        ],
      }),
    ).toBe("<user>Be brief.\nhi");
  });

  test("a BOS the template prints is dropped when the tokenizer adds one (no double BOS)", () => {
    const template = "{{ bos_token }}{{ messages[0].content }}";
    expect(renderChatTemplate(template, { messages: user }, { ...tokens, addBos: true })).toBe("hi");
    expect(renderChatTemplate(template, { messages: user }, { ...tokens, addBos: false })).toBe("<s>hi");
  });

  test("dicts with integer keys: lookup, get, items and dictsort in numeric order (Seed-OSS)", () => {
    const dict = "{% set d = {2048: 512, 0: 0, 512: 128, 'name': 'x'} %}";
    expect(render(`${dict}{{ d[512] }}|{{ d.get(2048) }}|{{ d.get(7, 'none') }}|{{ d['name'] }}`)).toBe(
      "128|512|none|x",
    );
    // Integer keys stay integers (k + 1 adds), in insertion order.
    expect(render(`${dict}{% for k, v in d.items() %}{{ k + 1 }}:{{ v }};{% endfor %}`)).toBe(
      "2049:512;1:0;513:128;name1:x;",
    );
  });

  test("dictsort orders integer keys as numbers, and finds the first gear at or above a budget", () => {
    const template =
      "{% set gears = {0: 0, 512: 128, 1024: 256, 16384: 1024} %}{% set ns = namespace(interval=none) %}" +
      "{% for k, v in gears | dictsort %}{{ k }},{% if ns.interval is none and budget <= k %}{% set ns.interval = v %}{% endif %}{% endfor %}" +
      "={{ ns.interval }}";
    expect(render(template, { messages: user, kwargs: { budget: 600 } })).toBe("0,512,1024,16384,=256");
    expect(
      render("{% for k, v in {9: 'b', 10: 'a'} | dictsort(reverse=true) %}{{ k }}{{ v }};{% endfor %}"),
    ).toBe("10a;9b;");
  });
});
