import { describe, expect, test } from "bun:test";
import { z } from "zod";
import {
  MessageSchema,
  parseAnthropicCountTokensRequest,
  parseAnthropicRequest,
  plainMessages,
  plainToolResult,
  plainToolUse,
  ToolResultBlock,
  ToolUseBlock,
} from "../../../src/dialects/anthropic/parse-request.ts";
import { combinations, expectVouchedAsZod, outcome } from "./field-combinations.ts";

const quiet = { onWarning: () => {} };

describe("Anthropic messages checked by hand, held to zod's schema", () => {
  const blocks = [
    { type: "text", text: "hello", cache_control: { type: "ephemeral" } },
    { type: "text", text: 5 },
    { type: "tool_use", id: "toolu_1", name: "read", input: { path: "a" } },
    {
      type: "tool_result",
      tool_use_id: "toolu_1",
      content: [{ type: "text", text: "ok" }, { type: "text" }],
    },
    { type: "thinking", thinking: "hm", signature: "s" },
    { type: 7 },
    "text",
  ];
  const messages = combinations({
    role: ["user", "assistant", "system", "tool", 5, undefined],
    content: [
      "text",
      "",
      undefined,
      null,
      [],
      ...blocks.map((block) => [block]),
      [blocks[0], blocks[2]],
      {},
      7,
    ],
    extra: [undefined, "kept"],
  });

  test("a message is vouched for exactly when zod accepts it, and reads the same as zod's copy of it", () => {
    const body = (list: unknown) => ({ model: "m", max_tokens: 8, messages: list });
    const vouched = expectVouchedAsZod(
      messages.map((message) => [message]),
      z.array(MessageSchema),
      plainMessages,
      [
        (list) => parseAnthropicRequest(body(list), quiet),
        (list) => parseAnthropicCountTokensRequest(body(list), quiet),
      ],
    );
    expect(vouched).toBeGreaterThan(20);
  });

  test("tool_use and tool_result blocks are read by hand exactly when zod accepts them, and read the same", () => {
    const uses = combinations({
      type: ["tool_use"],
      id: ["toolu_1", 5, undefined],
      name: ["read", null, undefined],
      input: [{ path: "a" }, {}, [], "x", null, undefined],
      cache_control: [undefined, { type: "ephemeral" }],
    });
    const results = combinations({
      type: ["tool_result"],
      tool_use_id: ["toolu_1", 5, undefined],
      content: [undefined, "ok", "", [], [{ type: "text", text: "ok" }], [{ type: 5 }], [7], {}, null],
      is_error: [undefined, true, false, "yes", null],
    });
    const said = (role: string, block: unknown) => ({
      model: "m",
      max_tokens: 8,
      messages: [{ role, content: [block] }],
    });
    const record = (block: unknown) => block as Record<string, unknown>;
    expect(
      expectVouchedAsZod(uses, ToolUseBlock, (block) => plainToolUse(record(block)), [
        (block) => parseAnthropicRequest(said("assistant", block), quiet),
      ]),
    ).toBeGreaterThan(1);
    expect(
      expectVouchedAsZod(results, ToolResultBlock, (block) => plainToolResult(record(block)), [
        (block) => parseAnthropicRequest(said("user", block), quiet),
      ]),
    ).toBeGreaterThan(5);
  });

  test("a text block whose text is not a string gets zod's message, with its path", () => {
    const body = {
      model: "m",
      max_tokens: 8,
      messages: [{ role: "user", content: [{ type: "text", text: 5 }] }],
    };
    expect(outcome(() => parseAnthropicRequest(body, quiet))).toEqual({
      error: expect.stringContaining("messages.0.content.0.text"),
    });
  });

  test("one message it cannot vouch for leaves the whole list to zod, which names the field", () => {
    const body = {
      model: "m",
      max_tokens: 8,
      messages: [
        { role: "user", content: "hi" },
        { role: "robot", content: "hi" },
      ],
    };
    expect(plainMessages(body.messages)).toBe(false);
    expect(outcome(() => parseAnthropicRequest(body, quiet))).toEqual({
      error: expect.stringContaining("messages.1.role"),
    });
  });
});
