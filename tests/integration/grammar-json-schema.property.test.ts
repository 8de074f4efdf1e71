/**
 * Property: for any schema in the supported subset, what the demo model
 * writes under the schema's grammar parses as JSON and validates against
 * the schema with a real validator (ajv, draft 2020-12): nested objects,
 * arrays, tuples, enums, consts, anyOf/oneOf, allOf, patterns, references
 * (one recursive), bounded strings and integers. Real libllama,
 * real sampling (temperature 1, a seed per schema), 500 schemas decoded
 * eight at a time on one model.
 */
import { afterAll, beforeAll, expect, test } from "bun:test";
import Ajv2020 from "ajv/dist/2020.js";
import fc from "fast-check";
import { jsonSchemaToGbnf } from "../../src/core/grammar/json-schema-to-gbnf.ts";
import { DevicePool } from "../../src/neuron/engine/device-pool.ts";
import type { GenerationEvent } from "../../src/neuron/engine/types.ts";
import { ensureDemoModel } from "../../src/neuron/gguf/tiny-model.ts";
import { renderChatTemplate } from "../../src/neuron/prompt/chat-template.ts";

const SCHEMAS = 500;
const SLOTS = 8;

let pool: DevicePool;
let prompt: string;

beforeAll(async () => {
  const modelPath = await ensureDemoModel("tests/.tmp/models");
  pool = await DevicePool.start({ threads: 1 });
  await pool.load({ id: "tiny", path: modelPath, contextSize: 1024, slots: SLOTS, maxQueue: SCHEMAS });
  const info = pool.model("tiny")!;
  prompt = renderChatTemplate(
    info.chatTemplate!,
    { messages: [{ role: "user", content: "Describe the baker as JSON." }] },
    info,
  );
});

afterAll(async () => {
  await pool.close();
});

type Schema = Record<string, unknown>;

const name = fc.constantFrom("id", "name", "age", "tags", "when", "x", "y", "note", "kind", "a-b", "é");
const scalarValue = fc.oneof(
  fc.string({ maxLength: 6 }),
  fc.integer({ min: -1000, max: 1000 }),
  fc.boolean(),
  fc.constant(null),
);

const leaf: fc.Arbitrary<Schema> = fc.oneof(
  fc
    .tuple(fc.nat({ max: 6 }), fc.nat({ max: 10 }))
    .map(([min, extra]) => ({ type: "string", minLength: min, maxLength: min + extra })),
  fc
    .tuple(fc.option(fc.integer({ min: -300, max: 300 })), fc.option(fc.nat({ max: 5000 })))
    .map(([min, span]) => ({
      type: "integer",
      ...(min === null ? {} : { minimum: min }),
      ...(span === null ? {} : { maximum: (min ?? -span) + span }),
    })),
  fc.constant({ type: "number" }),
  fc.constant({ type: "boolean" }),
  fc.constant({ type: "null" }),
  fc
    .uniqueArray(scalarValue, { minLength: 1, maxLength: 4, selector: (v) => JSON.stringify(v) })
    .map((values) => ({
      enum: values,
    })),
  scalarValue.map((value) => ({ const: value })),
  fc
    .constantFrom("^[a-z]{1,6}$", "^[A-Z]{2}-\\d{3}$", "^(yes|no|maybe)$", "^\\w{2,4}(\\.\\d)?$")
    .map((pattern) => ({
      type: "string",
      pattern,
    })),
  fc.constant({ type: "string", maxLength: 5, nullable: true }),
  fc.constant({ type: ["integer", "null"], minimum: 0, maximum: 9 }),
  fc.constant({ $ref: "#/$defs/point" }),
  // Recursive: a chain that goes on with probability 1/2 at each node, so it ends soon.
  fc.constant({ $ref: "#/$defs/tree" }),
);

const { node } = fc.letrec<{ node: Schema }>((tie) => ({
  node: fc.oneof(
    { depthSize: "small", maxDepth: 3, withCrossShrink: true },
    leaf,
    fc
      .uniqueArray(fc.tuple(name, tie("node"), fc.boolean()), {
        minLength: 1,
        maxLength: 3,
        selector: ([key]) => key,
      })
      .map((entries) => ({
        type: "object",
        properties: Object.fromEntries(entries.map(([key, sub]) => [key, sub])),
        required: entries.filter(([, , req]) => req).map(([key]) => key),
        additionalProperties: false,
      })),
    fc.tuple(tie("node"), fc.nat({ max: 2 }), fc.nat({ max: 1 })).map(([items, min, extra]) => ({
      type: "array",
      items,
      minItems: min,
      maxItems: min + extra,
    })),
    fc
      .tuple(tie("node"), tie("node"))
      .map(([a, b]) => ({ type: "array", prefixItems: [a, b], items: false })),
    // Disjoint alternatives, so oneOf (kept as anyOf) still holds.
    fc.tuple(fc.constantFrom("anyOf", "oneOf"), tie("node")).map(([key, obj]) => ({
      [key]: [
        { type: "object", properties: { v: obj }, required: ["v"], additionalProperties: false },
        { type: "null" },
      ],
    })),
    fc.tuple(tie("node"), tie("node")).map(([a, b]) => ({
      allOf: [
        { type: "object", properties: { left: a }, required: ["left"] },
        { properties: { right: b }, required: ["right"] },
      ],
    })),
  ),
}));

const rootSchema = node.map((schema) => ({
  ...schema,
  $defs: {
    point: {
      type: "object",
      properties: { x: { type: "integer", minimum: 0, maximum: 99 }, y: { type: "integer" } },
      required: ["x"],
      additionalProperties: false,
    },
    tree: {
      type: "object",
      properties: {
        v: { type: "integer", minimum: 0, maximum: 9 },
        kids: { type: "array", items: { $ref: "#/$defs/tree" }, maxItems: 1 },
      },
      required: ["v", "kids"],
      additionalProperties: false,
    },
  },
}));

async function generate(gbnf: string, seed: number): Promise<{ text: string; last: GenerationEvent }> {
  let text = "";
  let last: GenerationEvent | undefined;
  for await (const event of pool.generate(
    "tiny",
    { prompt, grammar: { gbnf }, maxTokens: 400, seed, temperature: 1 },
    new AbortController().signal,
  )) {
    if (event.type === "text") text += event.text;
    last = event;
  }
  return { text, last: last! };
}

test(`the demo model's output under ${SCHEMAS} generated schemas' grammars validates against each schema`, async () => {
  const ajv = new Ajv2020({ strict: false, allErrors: true });
  const schemas = fc.sample(rootSchema, { numRuns: SCHEMAS, seed: 14 });
  const failures: string[] = [];
  const batch = SLOTS * 4;
  for (let at = 0; at < schemas.length; at += batch) {
    const chunk = schemas.slice(at, at + batch);
    const results = await Promise.all(
      chunk.map((schema, i) => generate(jsonSchemaToGbnf(schema, "schema"), at + i)),
    );
    for (const [i, { text, last }] of results.entries()) {
      const schema = chunk[i]!;
      const where = `schema ${JSON.stringify(schema)}\noutput ${text}`;
      if (last.type !== "done" || last.finishReason !== "stop") {
        failures.push(`did not finish: ${JSON.stringify(last)}\n${where}`);
        continue;
      }
      let value: unknown;
      try {
        value = JSON.parse(text);
      } catch (error) {
        failures.push(`not JSON (${String(error)})\n${where}`);
        continue;
      }
      if (!ajv.validate(schema, value)) failures.push(`invalid: ${ajv.errorsText()}\n${where}`);
    }
  }
  expect(failures.slice(0, 3)).toEqual([]);
});
