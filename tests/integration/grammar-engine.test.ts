/**
 * Grammar-constrained sampling in the engine, on real libllama and the demo
 * model: what a user of the API would see from a grammar that parses, one
 * that does not, a lazy grammar, and a token budget that cuts a grammar short.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { jsonSchemaToGbnf } from "../../src/core/grammar/json-schema-to-gbnf.ts";
import { DevicePool } from "../../src/neuron/engine/device-pool.ts";
import type { GenerateParams, GenerationEvent } from "../../src/neuron/engine/types.ts";
import { ensureDemoModel } from "../../src/neuron/gguf/tiny-model.ts";
import { renderChatTemplate } from "../../src/neuron/prompt/chat-template.ts";

let pool: DevicePool;
let prompt: string;

beforeAll(async () => {
  const modelPath = await ensureDemoModel("tests/.tmp/models");
  pool = await DevicePool.start({ threads: 1 });
  await pool.load({ id: "tiny", path: modelPath, contextSize: 1024, slots: 2 });
  const info = pool.model("tiny")!;
  prompt = renderChatTemplate(
    info.chatTemplate!,
    { messages: [{ role: "user", content: "Tell me about the baker." }] },
    info,
  );
});

afterAll(async () => {
  await pool.close();
});

async function run(params: Partial<GenerateParams>): Promise<{ text: string; last: GenerationEvent }> {
  let text = "";
  let last: GenerationEvent | undefined;
  for await (const event of pool.generate("tiny", { prompt, seed: 7, ...params })) {
    if (event.type === "text") text += event.text;
    last = event;
  }
  return { text, last: last! };
}

describe("grammar-constrained sampling", () => {
  test("the word-salad model writes exactly what the grammar allows", async () => {
    const { text, last } = await run({ grammar: { gbnf: 'root ::= "{\\"n\\": " [1-9] [0-9]{2} "}"' } });
    expect(text).toMatch(/^\{"n": [1-9]\d{2}\}$/);
    expect(last).toMatchObject({ type: "done", finishReason: "stop" });
  });

  test("a grammar llama.cpp cannot parse is a 400 for that request, and takes no slot", async () => {
    const { last } = await run({ grammar: { gbnf: "root ::= ( unclosed" } });
    expect(last).toMatchObject({ type: "error", error: { status: 400, code: "invalid_request" } });
    expect(pool.modelStats("tiny")).toMatchObject({ inFlight: 0, queued: 0 });
    // The model is fine afterwards.
    const after = await run({ maxTokens: 5 });
    expect(after.last).toMatchObject({ type: "done" });
  });

  test("a lazy grammar leaves the text free until its trigger, then holds it", async () => {
    // " the" is among the demo model's most common words: free text up to it, then three digits.
    const { text, last } = await run({
      grammar: { gbnf: 'root ::= " the" [0-9]{3}', triggerPatterns: [" the"] },
      maxTokens: 200,
    });
    expect(text).toMatch(/^[^0-9]*? the\d{3}$/);
    expect(last).toMatchObject({ type: "done", finishReason: "stop" });
  });

  test("max_tokens that cuts a constrained answer ends with length", async () => {
    const gbnf = jsonSchemaToGbnf(
      {
        type: "object",
        properties: { a: { type: "string", minLength: 30, maxLength: 40 } },
        required: ["a"],
        additionalProperties: false,
      },
      "schema",
    );
    const { text, last } = await run({ grammar: { gbnf }, maxTokens: 4 });
    expect(last).toMatchObject({ type: "done", finishReason: "length" });
    expect(() => JSON.parse(text)).toThrow();
  });
});
