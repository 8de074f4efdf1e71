/**
 * A real Codex `exec` session (recorded by bench/record-agent-session.ts
 * --client codex: `codex exec`, then `codex exec resume --last`, tools run
 * by the CLI, a scripted model that reasons before each answer) through the Responses dialect and the prompt renderer: every
 * request's prompt is a prefix of the next one's, so a server that reuses
 * the KV cache of a repeated prefix prefills only the new items, and every
 * request carries the same session key, so the gateway keeps the session
 * on one node.
 */
import { describe, expect, test } from "bun:test";
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { parseResponsesRequest } from "../../../src/dialects/responses/parse-request.ts";
import { CHATML_TOOLS_TEMPLATE } from "../../../src/neuron/gguf/chatml-tools-template.ts";
import { renderChatTemplate } from "../../../src/neuron/prompt/chat-template.ts";
import { planPrompt } from "../../../src/neuron/prompt/prompt-plan.ts";

const FIXTURES = join(import.meta.dir, "../../../bench/__fixtures__/codex-agent-session");
const TOKENS = { bosToken: "<s>", eosToken: "</s>" };

type Body = Record<string, unknown> & { input: Array<Record<string, unknown>> };

const bodies: Body[] = readdirSync(FIXTURES)
  .filter((name) => name.endsWith(".json"))
  .sort()
  .map((name) => JSON.parse(readFileSync(join(FIXTURES, name), "utf8")) as Body);

function prompt(body: Body): string {
  const plan = planPrompt(parseResponsesRequest(body).toCanonical([]), "m");
  return renderChatTemplate(CHATML_TOOLS_TEMPLATE, { messages: plan.messages, tools: plan.tools }, TOKENS);
}

function commonPrefixLength(a: string, b: string): number {
  let i = 0;
  while (i < a.length && i < b.length && a[i] === b[i]) i++;
  return i;
}

describe("a real Codex exec session", () => {
  test("the fixtures are what they claim: one session, developer messages, reasoning, tool calls and their outputs", () => {
    expect(bodies.length).toBeGreaterThanOrEqual(5);
    const last = bodies.at(-1)!;
    const types = last.input.map((item) => item.type);
    expect(types.filter((type) => type === "function_call").length).toBeGreaterThanOrEqual(3);
    expect(types.filter((type) => type === "function_call_output").length).toBeGreaterThanOrEqual(3);
    expect(last.input.some((item) => item.role === "developer")).toBe(true);
    // Codex sends earlier turns' reasoning back (in the clear: cortex gives no encrypted_content).
    expect(types.filter((type) => type === "reasoning").length).toBeGreaterThanOrEqual(3);
    // Per-turn ids travel in client_metadata; the session's key stays put.
    expect(new Set(bodies.map((body) => body.prompt_cache_key)).size).toBe(1);
    expect(new Set(bodies.map((body) => JSON.stringify(body.client_metadata))).size).toBeGreaterThan(1);
  });

  test("each request's prompt is a prefix of the next one's", () => {
    const prompts = bodies.map(prompt);
    expect(prompts[0]!.length).toBeGreaterThan(10_000);
    for (let i = 1; i < prompts.length; i++) {
      const [before, after] = [prompts[i - 1]!, prompts[i]!];
      // The index of the first difference, so a failure says where the prefix broke.
      expect({ turn: i + 1, sharedUntil: commonPrefixLength(before, after) }).toEqual({
        turn: i + 1,
        sharedUntil: before.length,
      });
      expect(after.length).toBeGreaterThan(before.length);
    }
  });

  test("every request routes by the session's prompt_cache_key", () => {
    const keys = bodies.map((body) => parseResponsesRequest(body).toCanonical([]).sessionKey);
    expect(keys.every((key) => key !== undefined && key === bodies[0]!.prompt_cache_key)).toBe(true);
  });
});
