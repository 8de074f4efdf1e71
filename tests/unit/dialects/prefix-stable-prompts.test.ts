/**
 * A conversation's prompt must only grow at its end: the prompt of turn N
 * (with the generation prompt) is a prefix of turn N+1's, or a server that
 * reuses the KV cache of a repeated prefix prefills the whole conversation
 * again every turn. Checked on two requests of a real Claude Code session
 * (recorded with tests/integration/helpers-dialects/record-claude-session.ts)
 * and as a property over generated Anthropic conversations, for each chat
 * template family cortex ships or writes.
 */
import { describe, expect, test } from "bun:test";
import { readFileSync } from "node:fs";
import fc from "fast-check";
import {
  type AnthropicParseOptions,
  parseAnthropicRequest,
} from "../../../src/dialects/anthropic/parse-request.ts";
import { CHATML_TOOLS_TEMPLATE } from "../../../src/neuron/gguf/chatml-tools-template.ts";
import { renderChatTemplate } from "../../../src/neuron/prompt/chat-template.ts";
import { toTemplateMessages, toTemplateTools } from "../../../src/neuron/prompt/template-messages.ts";

const FIXTURES = `${import.meta.dir}/../../integration/__fixtures__/claude-code-session`;
const TOKENS = { bosToken: "<|begin_of_text|>", eosToken: "<|eot_id|>" };

/** Llama 3's header-token layout (our own rendition, tools left out): a second family with other markers. */
const LLAMA3_TEMPLATE =
  "{{ bos_token }}{% for m in messages %}<|start_header_id|>{{ m.role }}<|end_header_id|>\n\n" +
  "{% if m.tool_calls %}{% for c in m.tool_calls %}{{ c.function | tojson }}{% endfor %}{% else %}{{ m.content }}{% endif %}<|eot_id|>" +
  "{% endfor %}{% if add_generation_prompt %}<|start_header_id|>assistant<|end_header_id|>\n\n{% endif %}";

const TEMPLATES = { chatml: CHATML_TOOLS_TEMPLATE, llama3: LLAMA3_TEMPLATE };

function prompt(body: unknown, template: string, options: AnthropicParseOptions = {}): string {
  const request = parseAnthropicRequest(body, options);
  const tools = toTemplateTools(request.tools);
  return renderChatTemplate(
    template,
    { messages: toTemplateMessages(request.messages, "m"), ...(tools.length > 0 ? { tools } : {}) },
    TOKENS,
  );
}

function commonPrefixLength(a: string, b: string): number {
  let i = 0;
  while (i < a.length && i < b.length && a[i] === b[i]) i++;
  return i;
}

/** The session's second request as another process would send it: the billing block's hashes recomputed. */
function withRotatedBillingHashes(body: Record<string, unknown>): Record<string, unknown> {
  const system = (body.system as Array<{ text: string }>).map((block) =>
    block.text.startsWith("x-anthropic-billing-header:")
      ? {
          ...block,
          text: block.text.replace(/cc_version=([\d.]+)\.[0-9a-f]{3};/, "cc_version=$1.f00; cch=1a2b3;"),
        }
      : block,
  );
  return { ...body, system };
}

describe("a real Claude Code session (two turns)", () => {
  const first = JSON.parse(readFileSync(`${FIXTURES}/turn-1.json`, "utf8")) as Record<string, unknown>;
  const second = withRotatedBillingHashes(
    JSON.parse(readFileSync(`${FIXTURES}/turn-2.json`, "utf8")) as Record<string, unknown>,
  );

  test("the fixtures are what they claim: the billing block first in system, a system message inside messages", () => {
    for (const body of [first, second]) {
      expect((body.system as Array<{ text: string }>)[0]?.text).toStartWith("x-anthropic-billing-header:");
      expect((body.messages as Array<{ role: string }>).some((m) => m.role === "system")).toBe(true);
    }
    expect((second.messages as unknown[]).length).toBeGreaterThan((first.messages as unknown[]).length);
  });

  test("turn 1's prompt is a prefix of turn 2's, although the billing block changed", () => {
    const dropped: string[] = [];
    const p1 = prompt(first, CHATML_TOOLS_TEMPLATE, { onBillingHeaderDropped: () => dropped.push("1") });
    const p2 = prompt(second, CHATML_TOOLS_TEMPLATE, { onBillingHeaderDropped: () => dropped.push("2") });
    expect(p1.length).toBeGreaterThan(10_000);
    expect(p2.startsWith(p1)).toBe(true);
    expect(dropped).toEqual(["1", "2"]);
    expect(p1).not.toContain("x-anthropic-billing-header");
  });

  test("with the billing block kept (gateway.keep_billing_header), the prompts part within the first block", () => {
    const keep = { keepBillingHeader: true };
    const p1 = prompt(first, CHATML_TOOLS_TEMPLATE, keep);
    const p2 = prompt(second, CHATML_TOOLS_TEMPLATE, keep);
    expect(p1).toContain("x-anthropic-billing-header");
    expect(commonPrefixLength(p1, p2)).toBeLessThan(200);
  });
});

describe("only that one line is dropped", () => {
  const body = (system: string[]) => ({
    model: "m",
    max_tokens: 10,
    system: system.map((text) => ({ type: "text", text })),
    messages: [{ role: "user", content: "hi" }],
  });
  test.each([
    ["x-anthropic-billing-header: cc_version=2.1.36.abc; cc_entrypoint=cli; cch=12345;", true],
    ["x-anthropic-billing-header: cc_version=2.1.36.abc; cc_entrypoint=cli;\n", true],
    ["x-anthropic-billing-header: cc_version=2.1.36.abc;\nYou are Claude Code.", false],
    ["You are Claude Code. x-anthropic-billing-header: cch=1;", false],
    [" x-anthropic-billing-header: cch=1;", false],
  ])("%j dropped: %p", (text, dropped) => {
    const request = parseAnthropicRequest(body([text, "Be terse."]));
    const system = request.messages[0]?.content.map((p) => (p.type === "text" ? p.text : ""));
    expect(system).toEqual(dropped ? ["Be terse."] : [text, "Be terse."]);
  });
});

// Generated conversations: text turns, tool calls and results, thinking, and system reminders that
// Claude Code sends as role "system" messages inside `messages`.
const word = fc.stringMatching(/^[a-z]{1,8}$/);
const sentence = fc.array(word, { minLength: 1, maxLength: 6 }).map((w) => w.join(" "));
const toolUse = fc.record({ name: fc.constantFrom("Bash", "Read"), command: sentence });

type Turn =
  | { kind: "user"; text: string; reminder?: string }
  | { kind: "tool"; call: { name: string; command: string }; result: string; after?: string };

const turn: fc.Arbitrary<Turn> = fc.oneof(
  fc.record({
    kind: fc.constant("user" as const),
    text: sentence,
    reminder: fc.option(sentence, { nil: undefined }),
  }),
  fc.record({
    kind: fc.constant("tool" as const),
    call: toolUse,
    result: sentence,
    after: fc.option(sentence, { nil: undefined }),
  }),
);

/** The Anthropic `messages` of a conversation: each turn is the user's side and the assistant's answer. */
function messagesOf(turns: Turn[], replies: string[]): unknown[] {
  const messages: unknown[] = [];
  turns.forEach((t, i) => {
    if (t.kind === "user") {
      messages.push({ role: "user", content: t.text });
      if (t.reminder !== undefined)
        messages.push({ role: "system", content: `<system-reminder>${t.reminder}</system-reminder>` });
    } else {
      messages.push({
        role: "assistant",
        content: [
          { type: "thinking", thinking: "plan", signature: "s" },
          { type: "tool_use", id: `toolu_${i}`, name: t.call.name, input: { command: t.call.command } },
        ],
      });
      messages.push({
        role: "user",
        content: [
          { type: "tool_result", tool_use_id: `toolu_${i}`, content: t.result },
          ...(t.after === undefined ? [] : [{ type: "text", text: t.after }]),
        ],
      });
    }
    if (i < turns.length - 1 || replies[i] !== undefined)
      messages.push({ role: "assistant", content: replies[i] ?? "ok" });
  });
  return messages;
}

describe("property: adding a turn never changes how earlier turns render", () => {
  for (const [family, template] of Object.entries(TEMPLATES)) {
    test(family, () => {
      fc.assert(
        fc.property(
          fc.array(turn, { minLength: 1, maxLength: 5 }),
          turn,
          fc.array(sentence, { minLength: 6, maxLength: 6 }),
          fc.option(sentence, { nil: undefined }),
          (history, next, replies, system) => {
            const body = (turns: Turn[], answered: number) => ({
              model: "m",
              max_tokens: 10,
              ...(system === undefined ? {} : { system }),
              tools: [{ name: "Bash", description: "run", input_schema: { type: "object" } }],
              messages: messagesOf(turns, replies.slice(0, answered)),
            });
            // Turn N as sent (ends with a user side), then turn N+1: the answer to it and the next user side.
            const before = prompt(body(history, history.length - 1), template);
            const after = prompt(body([...history, next], history.length), template);
            expect(after.startsWith(before)).toBe(true);
          },
        ),
        { numRuns: 300 },
      );
    });
  }
});
