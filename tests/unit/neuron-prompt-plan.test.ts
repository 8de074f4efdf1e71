import { expect, test } from "bun:test";
import type { CanonicalMessage } from "../../src/dialects/canonical.ts";
import { CHATML_TOOLS_TEMPLATE } from "../../src/neuron/gguf/chatml-tools-template.ts";
import { renderChatTemplate } from "../../src/neuron/prompt/chat-template.ts";
import { planPrompt } from "../../src/neuron/prompt/prompt-plan.ts";

const text = (t: string) => [{ type: "text" as const, text: t }];
const tokens = { bosToken: "", eosToken: "" };
const prompt = (messages: CanonicalMessage[]) => {
  const plan = planPrompt({ messages, tools: [] }, "m");
  return renderChatTemplate(CHATML_TOOLS_TEMPLATE, { messages: plan.messages }, tokens) + plan.prefill;
};

test("a last assistant turn of text is a prefill: the generation prompt stays open and the text follows it", () => {
  const user: CanonicalMessage = { role: "user", content: text("Hi") };
  const open = prompt([user]);
  expect(open.endsWith("<|im_start|>assistant\n")).toBe(true);
  expect(prompt([user, { role: "assistant", content: text("The baker") }])).toBe(`${open}The baker`);
});

test("thinking in the prefill turn is left out; a turn that calls a tool is history, not a prefill", () => {
  const user: CanonicalMessage = { role: "user", content: text("Hi") };
  const thought = prompt([
    user,
    { role: "assistant", content: [{ type: "thinking", text: "hm" }, ...text("So")] },
  ]);
  expect(thought).toBe(`${prompt([user])}So`);
  const called = planPrompt(
    {
      messages: [
        user,
        { role: "assistant", content: [{ type: "tool_call", id: "1", name: "f", arguments: "{}" }] },
      ],
      tools: [],
    },
    "m",
  );
  expect(called.prefill).toBe("");
  expect(called.messages.at(-1)?.role).toBe("assistant");
});
