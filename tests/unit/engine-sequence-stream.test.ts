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
    const reader = s.stream.getReader();
    s.push({ type: "text", text: "a" });
    expect(await reader.read()).toEqual({ done: false, value: { type: "text", text: "a" } });
    const next = reader.read();
    s.push({ type: "text", text: "b" });
    expect(await next).toEqual({ done: false, value: { type: "text", text: "b" } });
    s.push(done);
    s.push({ type: "text", text: "after the end" });
    expect(await reader.read()).toEqual({ done: false, value: done });
    expect((await reader.read()).done).toBe(true);
  });

  test("text that waited for the reader comes as one event, byte for byte, never across other events", async () => {
    const s = new SequenceStream(() => {});
    s.push({ type: "start", promptTokens: 3, cachedTokens: 0 });
    for (const text of ["Hel", "lo", ", ", "w\u00f6", "rld"]) s.push({ type: "text", text });
    s.push({ type: "reasoning", text: "hm" });
    s.push({ type: "text", text: "!" });
    s.push({ type: "text", text: "\ud83d\ude00" });
    s.push(done);
    expect(await Array.fromAsync(s.stream)).toEqual([
      { type: "start", promptTokens: 3, cachedTokens: 0 },
      { type: "text", text: "Hello, w\u00f6rld" },
      { type: "reasoning", text: "hm" },
      { type: "text", text: "!\ud83d\ude00" },
      done,
    ]);
  });

  test("joinText false keeps one text event per token (the output parser counts reasoning tokens by them)", async () => {
    const s = new SequenceStream(
      () => {},
      () => {},
      { joinText: false },
    );
    for (const text of ["<think>", "hm", "</think>"]) s.push({ type: "text", text });
    s.push(done);
    expect(await Array.fromAsync(s.stream)).toEqual([
      { type: "text", text: "<think>" },
      { type: "text", text: "hm" },
      { type: "text", text: "</think>" },
      done,
    ]);
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
