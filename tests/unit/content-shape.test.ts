/**
 * Content sent as a list of parts reaches a template the way llama.cpp
 * hands it over, decided by how the template treats `content` (its typed-
 * content probe): as the list where the template reads lists, joined by
 * newlines where it takes strings only; a template that reads lists only
 * gets every string as one text part. The real templates are held to
 * llama-server's renders in template-fidelity.test.ts.
 */
import { describe, expect, test } from "bun:test";
import { renderChatTemplate } from "../../src/neuron/prompt/chat-template.ts";
import type { TemplateMessage } from "../../src/neuron/prompt/template-messages.ts";

const tokens = { bosToken: "", eosToken: "" };
const parts: TemplateMessage[] = [
  { role: "user", content: "Name the capital\nof France.", textParts: ["Name the capital", "of France."] },
];
const plain: TemplateMessage[] = [{ role: "user", content: "hi" }];
const render = (template: string, messages: TemplateMessage[]) =>
  renderChatTemplate(template, { messages, addGenerationPrompt: false }, tokens);

describe("content as a list of parts", () => {
  test("a template that reads both gets the list, and strings as strings", () => {
    const both =
      "{% for m in messages %}{% if m.content is string %}[{{ m.content }}]{% else %}{% for p in m.content %}({{ p.text }}){% endfor %}{% endif %}{% endfor %}";
    expect(render(both, parts)).toBe("(Name the capital)(of France.)");
    expect(render(both, plain)).toBe("[hi]");
  });

  test("a template that takes strings only gets the parts joined by newlines", () => {
    expect(render("{% for m in messages %}{{ m.content }}{% endfor %}", parts)).toBe(
      "Name the capital\nof France.",
    );
  });

  test("a template that reads lists only gets a string as one text part", () => {
    const listsOnly = "{% for m in messages %}{% for p in m.content %}({{ p.text }}){% endfor %}{% endfor %}";
    expect(render(listsOnly, plain)).toBe("(hi)");
    expect(render(listsOnly, parts)).toBe("(Name the capital)(of France.)");
  });

  test("string filters on a list work on its Python text, as jinja2's and llama.cpp's do (Gemma 4)", () => {
    const trims =
      "{% for m in messages %}{% if m.content is string %}{{ m.content }}{% else %}{{ m.content | trim }}{% for p in m.content %}{% endfor %}{% endif %}{% endfor %}";
    expect(render(trims, parts)).toBe(
      "[{'type': 'text', 'text': 'Name the capital'}, {'type': 'text', 'text': 'of France.'}]",
    );
  });
});
