/**
 * A forced tool call in every format, on real libllama and the demo model:
 * the request's grammar makes the model write one call in the format's own
 * syntax, and the format's parser reads it back, streamed, as a call to the
 * named tool with arguments valid for its schema.
 */
import { afterAll, beforeAll, expect, test } from "bun:test";
import { requestGrammar } from "../../src/core/grammar/request-grammar.ts";
import type { ToolCallSyntax } from "../../src/core/grammar/tool-call-syntax.ts";
import { DevicePool } from "../../src/neuron/engine/device-pool.ts";
import type { GenerationEvent } from "../../src/neuron/engine/types.ts";
import { ensureDemoModel } from "../../src/neuron/gguf/tiny-model.ts";
import { renderChatTemplate } from "../../src/neuron/prompt/chat-template.ts";
import { formatMarkers } from "../../src/neuron/tool-formats/output-format.ts";

const SYNTAXES: ToolCallSyntax[] = [
  "hermes",
  "qwen3-coder",
  "llama3",
  "mistral",
  "mistral-json",
  "harmony",
  "deepseek-r1",
  "deepseek-v3",
  "glm",
  "gemma4",
  "generic",
];

const tool = {
  name: "get_weather",
  parameters: {
    type: "object",
    properties: {
      city: { type: "string", maxLength: 12 },
      days: { type: "integer", minimum: 1, maximum: 9 },
    },
    required: ["city", "days"],
    additionalProperties: false,
  },
};

let pool: DevicePool;
let prompt: string;

beforeAll(async () => {
  const modelPath = await ensureDemoModel("tests/.tmp/models");
  pool = await DevicePool.start({ threads: 1 });
  await pool.load({ id: "tiny", path: modelPath, contextSize: 1024, slots: 4, maxQueue: 16 });
  const info = pool.model("tiny")!;
  prompt = renderChatTemplate(
    info.chatTemplate!,
    { messages: [{ role: "user", content: "Weather in Paris?" }] },
    info,
  );
});

afterAll(async () => {
  await pool.close();
});

test.each(SYNTAXES)("a forced call in the %s syntax parses back as a valid call", async (syntax) => {
  const grammar = requestGrammar(
    { tools: [tool], toolChoice: { type: "tool", name: "get_weather" } },
    syntax,
  )!;
  const output = {
    tools: syntax,
    reasoning: "none" as const,
    parseCalls: true,
    schemas: [tool],
    reasoningOpen: false,
  };
  const events: GenerationEvent[] = [];
  for await (const event of pool.generate("tiny", {
    prompt,
    seed: 3,
    maxTokens: 300,
    grammar,
    output,
    preservedTokens: formatMarkers(output),
  }))
    events.push(event);
  const starts = events.filter((e) => e.type === "tool_call_start");
  const args = events.flatMap((e) => (e.type === "tool_call_delta" ? [e.argumentsDelta] : [])).join("");
  expect(events.at(-1)).toMatchObject({ type: "done", finishReason: "tool_calls" });
  expect(starts).toEqual([{ type: "tool_call_start", id: expect.any(String), name: "get_weather" }]);
  expect(events.filter((e) => e.type === "text")).toEqual([]);
  const parsed = JSON.parse(args);
  expect(typeof parsed.city).toBe("string");
  expect(parsed.days).toBeGreaterThanOrEqual(1);
  expect(parsed.days).toBeLessThanOrEqual(9);
});
