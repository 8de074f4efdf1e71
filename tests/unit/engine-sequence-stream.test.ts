import { describe, expect, test } from "bun:test";
import { SequenceStream } from "../../src/neuron/engine/sequence-stream.ts";

const done = {
  type: "done",
  finishReason: "stop",
  usage: { promptTokens: 1, completionTokens: 1, cachedTokens: 0 },
} as const;

describe("SequenceStream", () => {
  test("delivers events pushed before and after the reader pulls, then closes", async () => {
    const s = new SequenceStream(() => {});
    s.push({ type: "text", text: "a" });
    const reading = Array.fromAsync(s.stream);
    s.push({ type: "text", text: "b" });
    s.push(done);
    s.push({ type: "text", text: "after the end" });
    expect(await reading).toEqual([{ type: "text", text: "a" }, { type: "text", text: "b" }, done]);
  });

  test("cancelling the stream before its end calls onCancel once", async () => {
    let cancels = 0;
    const s = new SequenceStream(() => cancels++);
    const reader = s.stream.getReader();
    s.push({ type: "text", text: "a" });
    await reader.read();
    await reader.cancel();
    expect(cancels).toBe(1);
  });

  test("fail() errors a waiting reader", async () => {
    const s = new SequenceStream(() => {});
    const reader = s.stream.getReader();
    const pending = reader.read();
    s.fail(new Error("aborted"));
    await expect(pending).rejects.toThrow("aborted");
  });
});
