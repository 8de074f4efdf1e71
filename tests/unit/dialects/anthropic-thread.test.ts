import { describe, expect, test } from "bun:test";
import { CortexError } from "../../../src/core/errors.ts";
import type { AnthropicMessage } from "../../../src/dialects/anthropic/render-response.ts";
import {
  continueThread,
  parseThreadParam,
  type StoredThread,
  threadAfter,
  threadNotFound,
} from "../../../src/dialects/anthropic/thread.ts";

const stored: StoredThread = {
  system: "Be brief.",
  tools: [{ name: "t", input_schema: { type: "object" } }],
  messages: [
    { role: "user", content: "one" },
    { role: "assistant", content: [{ type: "text", text: "two" }] },
  ],
};

function thrown(fn: () => unknown): CortexError {
  try {
    fn();
  } catch (error) {
    if (error instanceof CortexError) return error;
    throw error;
  }
  throw new Error("expected a CortexError");
}

describe("the thread field", () => {
  test("create, continue, none; anything else is a 400 naming thread", () => {
    expect(parseThreadParam({ thread: { type: "create" } })).toEqual({ type: "create" });
    expect(parseThreadParam({ thread: { type: "continue", previous_message_id: "msg_1" } })).toEqual({
      type: "continue",
      previousMessageId: "msg_1",
    });
    expect(parseThreadParam({ messages: [] })).toBeUndefined();
    expect(parseThreadParam({ thread: null })).toBeUndefined();
    for (const bad of [{ type: "continue" }, { type: "fork" }, "create", { type: "create", extra: 1 }]) {
      const error = thrown(() => parseThreadParam({ thread: bad }));
      expect(error.status).toBe(400);
      expect(error.param).toBe("thread");
    }
  });

  test("an unknown id is a 404 whose details the SDK reads as thread_not_found", () => {
    const error = threadNotFound("msg_gone");
    expect(error.status).toBe(404);
    expect(error.details).toEqual({ error_code: "thread_not_found" });
    expect(error.message).toContain("msg_gone");
  });
});

describe("continuing a thread", () => {
  test("the stored conversation goes first, under the thread's system and tools; thread is gone", () => {
    const whole = continueThread(
      { model: "m", max_tokens: 5, messages: [{ role: "user", content: "three" }], thread: {} },
      stored,
    );
    expect(whole).toEqual({
      model: "m",
      max_tokens: 5,
      system: stored.system,
      tools: stored.tools,
      messages: [...stored.messages, { role: "user", content: "three" }],
    });
  });

  test("the same system and tools may be repeated; different ones are thread_fingerprint_mismatch", () => {
    const same = continueThread({ system: "Be brief.", tools: stored.tools, messages: [] }, stored);
    expect(same.messages).toEqual(stored.messages);
    const error = thrown(() => continueThread({ system: "Be long.", messages: [] }, stored));
    expect(error.status).toBe(400);
    expect(error.details).toEqual({ error_code: "thread_fingerprint_mismatch" });
    expect(error.message).toContain("`system`");
    expect(error.message).not.toContain("`tools`");
  });

  test("what is kept after a reply: the whole conversation with the reply as the assistant's turn", () => {
    const reply = { id: "msg_2", content: [{ type: "text", text: "four" }] } as unknown as AnthropicMessage;
    const whole = continueThread({ messages: [{ role: "user", content: "three" }] }, stored);
    expect(threadAfter(whole, reply)).toEqual({
      system: stored.system,
      tools: stored.tools,
      messages: [
        ...stored.messages,
        { role: "user", content: "three" },
        { role: "assistant", content: [{ type: "text", text: "four" }] },
      ],
    });
  });
});
