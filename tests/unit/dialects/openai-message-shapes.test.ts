import { describe, expect, test } from "bun:test";
import { z } from "zod";
import {
  FunctionToolSchema,
  MessageSchema,
  parseOpenAIRequest,
  plainFunctionTool,
  plainMessages,
} from "../../../src/dialects/openai/parse-request.ts";
import { combinations, expectVouchedAsZod, outcome } from "./field-combinations.ts";

const call = { id: "call_1", type: "function", function: { name: "read", arguments: "{}" } };

describe("messages and tools checked by hand, held to zod's schemas", () => {
  const messages = combinations({
    role: ["user", "assistant", "system", "tool", "developer", 5, undefined],
    content: [
      "text",
      "",
      null,
      undefined,
      [],
      [{ type: "text", text: "x" }],
      [{ type: 5 }],
      [5],
      [{}],
      {},
      7,
    ],
    tool_calls: [
      undefined,
      null,
      [],
      [call],
      [{ ...call, id: 1 }],
      [{ ...call, type: "other" }],
      [{ id: "a", function: { name: "n" } }],
      [{ ...call, extra: 1, function: { ...call.function, extra: 2 } }],
      "x",
    ],
    tool_call_id: [undefined, "call_1", null, 5],
    reasoning_content: [undefined, null, "thought", 5],
    function_call: [undefined, { name: "f" }],
    name: [undefined, "bob"],
  });

  test("a message is vouched for exactly when zod accepts it, and reads the same as zod's copy of it", () => {
    // zod's copy lacks the keys it strips: the request must not read any of them.
    const vouched = expectVouchedAsZod(
      messages.map((message) => [message]),
      z.array(MessageSchema),
      plainMessages,
      [(list) => parseOpenAIRequest({ model: "m", messages: list })],
    );
    expect(vouched).toBeGreaterThan(1000);
  });

  test("one message it cannot vouch for leaves the whole list to zod, which names the field", () => {
    expect(
      plainMessages([
        { role: "user", content: "hi" },
        { role: "user", tool_call_id: null },
      ]),
    ).toBe(false);
    expect(
      outcome(() =>
        parseOpenAIRequest({
          model: "m",
          messages: [
            { role: "user", content: "hi" },
            { role: "tool", tool_call_id: 5 },
          ],
        }),
      ),
    ).toEqual({ error: expect.stringContaining("messages.1.tool_call_id") });
    expect(plainMessages([])).toBe(false);
  });

  const tools = combinations({
    type: ["function", "other", undefined],
    function: [
      { name: "read", description: "Reads.", parameters: { type: "object" }, strict: true },
      { name: "read" },
      { name: "", parameters: {} },
      { name: "read", parameters: [] },
      { name: "read", description: 5 },
      { name: "read", strict: null },
      { name: "read", strict: "yes" },
      { name: 5 },
      "read",
      undefined,
    ],
    extra: [undefined, 1],
  });

  test("a tool is vouched for exactly when zod accepts it, and reads the same as zod's copy of it", () => {
    const vouched = expectVouchedAsZod(tools, FunctionToolSchema, plainFunctionTool, [
      (tool) =>
        parseOpenAIRequest({ model: "m", messages: [{ role: "user", content: "hi" }], tools: [tool] }),
    ]);
    expect(vouched).toBeGreaterThan(5);
  });
});
