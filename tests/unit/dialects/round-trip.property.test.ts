/**
 * A canonical request survives canonical → dialect body → canonical, for
 * everything the dialect can express.
 */
import { describe, expect, test } from "bun:test";
import fc from "fast-check";
import { parseAnthropicRequest } from "../../../src/dialects/anthropic/parse-request.ts";
import type {
  AssistantMessage,
  CanonicalMessage,
  CanonicalRequest,
  ImagePart,
  TextPart,
  ToolMessage,
} from "../../../src/dialects/canonical.ts";
import { parseOpenAIRequest } from "../../../src/dialects/openai/parse-request.ts";
import { renderOpenAIRequest } from "../../../src/dialects/openai/render-request.ts";
import { renderAnthropicRequest } from "./render-anthropic-request.ts";

type Dialect = "openai" | "anthropic";

const ident = fc.stringMatching(/^[a-zA-Z][a-zA-Z0-9_-]{0,11}$/);
const text = fc.string({ minLength: 1, maxLength: 20 });
const textPart: fc.Arbitrary<TextPart> = text.map((t) => ({ type: "text", text: t }));
const imagePart: fc.Arbitrary<ImagePart> = fc.oneof(
  fc
    .record({
      mediaType: fc.constantFrom("image/png", "image/jpeg"),
      data: fc.base64String({ minLength: 4, maxLength: 16 }),
    })
    .map(
      ({ mediaType, data }): ImagePart => ({ type: "image", source: { kind: "base64", mediaType, data } }),
    ),
  ident.map((p): ImagePart => ({ type: "image", source: { kind: "url", url: `https://img.test/${p}.png` } })),
);
const jsonArgs = fc
  .dictionary(fc.stringMatching(/^[a-z]{1,6}$/), fc.jsonValue({ maxDepth: 2 }), { maxKeys: 3 })
  .map((o) => JSON.stringify(o));
const schema = fc.constantFrom<Record<string, unknown>>(
  { type: "object", properties: {} },
  { type: "object", properties: { q: { type: "string" } }, required: ["q"] },
);

function message(dialect: Dialect): fc.Arbitrary<CanonicalMessage> {
  const user = fc
    .array(fc.oneof(textPart, imagePart), { minLength: 1, maxLength: 3 })
    .map((content): CanonicalMessage => ({ role: "user", content }));
  const assistant = fc
    .record({
      texts: fc.array(textPart, { maxLength: 2 }),
      calls: fc.array(fc.record({ id: ident, name: ident, arguments: jsonArgs }), { maxLength: 2 }),
    })
    .filter(({ texts, calls }) => texts.length + calls.length > 0)
    .map(
      ({ texts, calls }): AssistantMessage => ({
        role: "assistant",
        content: [...texts, ...calls.map((c) => ({ type: "tool_call" as const, ...c }))],
      }),
    );
  const tool = fc
    .array(
      fc.record({
        toolCallId: ident,
        content: fc.array(fc.oneof(textPart, imagePart), { maxLength: 2 }),
        isError: dialect === "anthropic" ? fc.boolean() : fc.constant(false),
      }),
      { minLength: 1, maxLength: 2 },
    )
    .map(
      (results): ToolMessage => ({
        role: "tool",
        content: results.map((r) => ({ type: "tool_result", ...r })),
      }),
    );
  return fc.oneof(user, assistant, tool);
}

function conversation(dialect: Dialect): fc.Arbitrary<CanonicalMessage[]> {
  return fc
    .record({
      system: fc.option(fc.array(textPart, { minLength: 1, maxLength: 2 }), { nil: undefined }),
      first: message(dialect).filter((m) => m.role === "user"),
      rest: fc.array(message(dialect), { maxLength: 5 }),
    })
    .map(({ system, first, rest }) => {
      // Neighbouring turns of one role are one turn in both APIs; keep them apart.
      const turns = [first, ...rest].filter((m, i, all) => i === 0 || all[i - 1]!.role !== m.role);
      return [...(system ? [{ role: "system" as const, content: system }] : []), ...turns];
    });
}

const opt = <T>(arb: fc.Arbitrary<T>) => fc.option(arb, { nil: undefined });
const prob = fc.double({ min: 0, max: 1, noNaN: true });

function request(dialect: Dialect): fc.Arbitrary<CanonicalRequest> {
  const openai = dialect === "openai";
  return fc
    .record({
      model: ident,
      messages: conversation(dialect),
      tools: fc.array(
        fc.record({ name: ident, description: opt(text), parameters: schema, strict: opt(fc.boolean()) }),
        { maxLength: 2 },
      ),
      toolChoice: opt(
        fc.oneof(
          fc.constantFrom({ type: "auto" as const }, { type: "any" as const }, { type: "none" as const }),
          ident.map((name) => ({ type: "tool" as const, name })),
        ),
      ),
      parallelToolCalls: openai ? opt(fc.boolean()) : opt(fc.constant(false)),
      maxTokens: openai ? opt(fc.integer({ min: 1, max: 100_000 })) : fc.integer({ min: 1, max: 100_000 }),
      temperature: openai ? opt(fc.double({ min: 0, max: 2, noNaN: true })) : opt(prob),
      topP: opt(prob),
      topK: opt(fc.integer({ min: 0, max: 100 })),
      stop: fc.array(text, { maxLength: 3 }),
      seed: openai ? opt(fc.integer()) : fc.constant(undefined),
      presencePenalty: openai ? opt(fc.double({ min: -2, max: 2, noNaN: true })) : fc.constant(undefined),
      frequencyPenalty: openai ? opt(fc.double({ min: -2, max: 2, noNaN: true })) : fc.constant(undefined),
      logitBias: openai
        ? opt(
            fc.dictionary(
              fc.integer({ min: 0, max: 50000 }).map(String),
              fc.integer({ min: -100, max: 100 }),
            ),
          )
        : fc.constant(undefined),
      responseFormat: openai
        ? opt(
            fc.oneof(
              fc.constantFrom({ type: "text" as const }, { type: "json_object" as const }),
              fc
                .record({ name: ident, schema, description: opt(text), strict: opt(fc.boolean()) })
                .map((f) => ({ type: "json_schema" as const, ...f })),
            ),
          )
        : opt(
            schema.map((s) => ({ type: "json_schema" as const, name: "response", schema: s, strict: true })),
          ),
      stream: fc.boolean(),
      includeUsage: fc.boolean(),
      user: opt(ident),
      metadata: openai ? opt(fc.dictionary(ident, text, { maxKeys: 2 })) : fc.constant(undefined),
    })
    .map((r) => {
      const req = Object.fromEntries(
        Object.entries(r).filter(([, v]) => v !== undefined),
      ) as unknown as CanonicalRequest;
      // Only streams carry usage options; Anthropic streams always report usage.
      req.includeUsage = openai ? req.stream && r.includeUsage : req.stream;
      // A named choice must name one of the tools (anything else is a 400 now).
      const choice = req.toolChoice;
      if (choice?.type === "tool" && !req.tools.some((tool) => tool.name === choice.name)) {
        const first = req.tools[0];
        if (first) req.toolChoice = { type: "tool", name: first.name };
        else delete req.toolChoice;
      }
      if (!openai && (req.toolChoice === undefined || req.toolChoice.type === "none"))
        delete req.parallelToolCalls;
      return req;
    });
}

/** Strips undefined-valued keys that optional generators leave inside nested objects. */
function clean<T>(value: T): T {
  return JSON.parse(JSON.stringify(value)) as T;
}

describe("round trip canonical → dialect → canonical", () => {
  test("OpenAI chat completions", () => {
    fc.assert(
      fc.property(request("openai"), (req) => {
        const body = JSON.parse(JSON.stringify(renderOpenAIRequest(req)));
        expect(parseOpenAIRequest(body)).toEqual(clean(req));
      }),
      { numRuns: 300 },
    );
  });

  test("Anthropic messages", () => {
    fc.assert(
      fc.property(request("anthropic"), (req) => {
        const body = JSON.parse(JSON.stringify(renderAnthropicRequest(req)));
        expect(parseAnthropicRequest(body, { onWarning: () => {} })).toEqual(clean(req));
      }),
      { numRuns: 300 },
    );
  });
});
