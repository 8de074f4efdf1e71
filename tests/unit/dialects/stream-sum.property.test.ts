/**
 * For any answer the neuron can give, cut into upstream chunks anywhere and
 * its SSE bytes split anywhere, the streamed rendering in each dialect adds
 * up to the non-streamed rendering of the same answer.
 */
import { describe, expect, test } from "bun:test";
import fc from "fast-check";
import { renderAnthropicResponse } from "../../../src/dialects/anthropic/render-response.ts";
import { CanonicalAccumulator } from "../../../src/dialects/collect-stream.ts";
import { renderOpenAIResponse } from "../../../src/dialects/openai/render-response.ts";
import { parseUpstreamResponse } from "../../../src/dialects/openai/upstream.ts";
import {
  accumulateAnthropic,
  accumulateOpenAI,
  decodeUpstream,
  encodeAnthropic,
  encodeOpenAI,
} from "./stream-harness.ts";

const answer = fc.record({
  reasoning: fc.string({ maxLength: 30 }),
  text: fc.string({ maxLength: 60, unit: "grapheme" }),
  calls: fc.array(
    fc.record({
      id: fc.stringMatching(/^call_[a-zA-Z0-9]{4,10}$/),
      name: fc.stringMatching(/^[a-z_]{1,10}$/),
      args: fc
        .dictionary(fc.stringMatching(/^[a-z]{1,5}$/), fc.jsonValue({ maxDepth: 2 }), { maxKeys: 3 })
        .map((o) => JSON.stringify(o)),
    }),
    { maxLength: 3 },
  ),
  finish: fc.constantFrom("stop", "length", "tool_calls"),
  stopSequence: fc.option(fc.constantFrom("###", "\n\n", "END"), { nil: null }),
  usage: fc.record({ prompt_tokens: fc.nat(5000), completion_tokens: fc.nat(5000) }),
  usageInFinishChunk: fc.boolean(),
});
type Answer = typeof answer extends fc.Arbitrary<infer T> ? T : never;

const envelope = { id: "chatcmpl-prop", object: "chat.completion.chunk", created: 1735689600, model: "tiny" };

function nonStreamed(a: Answer) {
  return {
    ...envelope,
    object: "chat.completion",
    choices: [
      {
        index: 0,
        message: {
          role: "assistant",
          content: a.text === "" ? null : a.text,
          ...(a.reasoning === "" ? {} : { reasoning_content: a.reasoning }),
          ...(a.calls.length === 0
            ? {}
            : {
                tool_calls: a.calls.map((c) => ({
                  id: c.id,
                  type: "function",
                  function: { name: c.name, arguments: c.args },
                })),
              }),
        },
        finish_reason: a.finish,
        ...(a.finish === "stop" && a.stopSequence ? { stop_sequence: a.stopSequence } : {}),
      },
    ],
    usage: { ...a.usage, total_tokens: a.usage.prompt_tokens + a.usage.completion_tokens },
  };
}

/** Cuts a string at the given fractions into non-empty pieces. */
function cut(s: string, cuts: number[]): string[] {
  const points = [...new Set(cuts.map((c) => Math.floor(c * s.length)))]
    .filter((p) => p > 0 && p < s.length)
    .sort((x, y) => x - y);
  const out: string[] = [];
  let from = 0;
  for (const p of [...points, s.length]) {
    if (p > from) out.push(s.slice(from, p));
    from = p;
  }
  return out;
}

function upstreamSse(a: Answer, cuts: number[]): string {
  const chunk = (delta: object, extra: object = {}) =>
    `data: ${JSON.stringify({ ...envelope, choices: [{ index: 0, delta, logprobs: null, finish_reason: null, ...extra }] })}\n\n`;
  let sse = chunk({ role: "assistant", content: null });
  for (const piece of cut(a.reasoning, cuts)) sse += chunk({ reasoning_content: piece });
  for (const piece of cut(a.text, cuts)) sse += chunk({ content: piece });
  a.calls.forEach((c, index) => {
    sse += chunk({
      tool_calls: [{ index, id: c.id, type: "function", function: { name: c.name, arguments: "" } }],
    });
    for (const piece of cut(c.args, cuts))
      sse += chunk({ tool_calls: [{ index, function: { arguments: piece } }] });
  });
  const usage = { ...a.usage, total_tokens: a.usage.prompt_tokens + a.usage.completion_tokens };
  const stop = a.finish === "stop" && a.stopSequence ? { stop_sequence: a.stopSequence } : {};
  if (a.usageInFinishChunk) {
    sse += `data: ${JSON.stringify({ ...envelope, choices: [{ index: 0, delta: {}, finish_reason: a.finish, ...stop }], usage })}\n\n`;
  } else {
    sse += chunk({}, { finish_reason: a.finish, ...stop });
    sse += `data: ${JSON.stringify({ ...envelope, choices: [], usage })}\n\n`;
  }
  return `${sse}data: [DONE]\n\n`;
}

const cuts = fc.array(fc.double({ min: 0, max: 1, noNaN: true }), { maxLength: 6 });

describe("streamed deltas add up to the non-streamed answer", () => {
  test("canonical, Anthropic and OpenAI renderings agree for any chunking", () => {
    fc.assert(
      fc.property(answer, cuts, cuts, (a, deltaCuts, byteCuts) => {
        const sse = upstreamSse(a, deltaCuts);
        const parts = decodeUpstream(cut(sse, byteCuts));
        const expected = parseUpstreamResponse(nonStreamed(a));

        const acc = new CanonicalAccumulator();
        for (const p of parts) acc.push(p);
        expect(acc.result()).toEqual(expected);

        const options = { messageId: "msg_01prop", model: "public" };
        expect(accumulateAnthropic(encodeAnthropic(parts, options))).toEqual(
          JSON.parse(JSON.stringify(renderAnthropicResponse(expected, options))),
        );

        const normalize = (c: unknown) =>
          JSON.parse(JSON.stringify(c).replace(/"content":""/, '"content":null'));
        expect(normalize(accumulateOpenAI(encodeOpenAI(parts, { includeUsage: true })))).toEqual(
          normalize(renderOpenAIResponse(expected)),
        );
      }),
      { numRuns: 250 },
    );
  });
});
