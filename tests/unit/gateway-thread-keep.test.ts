/**
 * keepThreadAtEnd: a streamed reply's thread is stored before the batch that
 * ends the message (message_delta, message_stop) reaches the client, on both
 * ways a relay reads (readNow for parts in hand, read when waiting).
 */
import { describe, expect, test } from "bun:test";
import type { CanonicalResponse, CanonicalStreamPart } from "../../src/dialects/canonical.ts";
import { keepThreadAtEnd } from "../../src/gateway/responses/message-threads.ts";
import { NOT_YET, type PartSource } from "../../src/gateway/part-source.ts";

const batches: CanonicalStreamPart[][] = [
  [
    { type: "message_start", id: "up", model: "m", created: 0 },
    { type: "text_delta", text: "hel" },
  ],
  [
    { type: "text_delta", text: "lo" },
    { type: "finish", reason: "stop" },
  ],
  [{ type: "usage", usage: { inputTokens: 3, outputTokens: 2 } }],
];

/** A source over `batches`; `inHand` says whether readNow has them or only read does. */
function source(inHand: boolean): PartSource {
  const left = batches.map((batch) => [...batch]);
  return {
    get done() {
      return left.length === 0;
    },
    read: () => Promise.resolve(left.shift()),
    readNow: () => (inHand ? left.shift() : NOT_YET),
    cancel: () => Promise.resolve(),
  };
}

describe("keepThreadAtEnd", () => {
  for (const inHand of [true, false]) {
    test(`the answer is kept before its last batch is handed on (${inHand ? "readNow" : "read"})`, async () => {
      const events: string[] = [];
      const kept = Promise.withResolvers<void>();
      let answer: CanonicalResponse | undefined;
      const parts = keepThreadAtEnd(source(inHand), (response) => {
        answer = response;
        events.push("keep started");
        return kept.promise.then(() => {
          events.push("kept");
        });
      });
      const handed = async () => {
        for (;;) {
          const now = parts.readNow();
          const batch = now === NOT_YET ? await parts.read() : now;
          if (batch === undefined) return;
          events.push(batch.map((part) => part.type).join("+"));
        }
      };
      const relay = handed();
      // Whatever was read so far stops short of the batch with usage until the store answers.
      await Promise.resolve();
      expect(events).not.toContain("usage");
      kept.resolve();
      await relay;
      expect(events).toEqual([
        "message_start+text_delta",
        "text_delta+finish",
        "keep started",
        "kept",
        "usage",
      ]);
      expect(answer?.content).toEqual([{ type: "text", text: "hello" }]);
      expect(answer?.usage).toEqual({ inputTokens: 3, outputTokens: 2 });
    });
  }

  test("an answer that failed keeps nothing", async () => {
    let calls = 0;
    const failing: PartSource = {
      done: false,
      read: (() => {
        const left: CanonicalStreamPart[][] = [
          [{ type: "text_delta", text: "x" }],
          [{ type: "error", error: { code: "upstream_error", message: "gone", status: 502 } }],
        ];
        return () => Promise.resolve(left.shift());
      })(),
      readNow: () => NOT_YET,
      cancel: () => Promise.resolve(),
    };
    const parts = keepThreadAtEnd(failing, async () => {
      calls += 1;
    });
    while ((await parts.read()) !== undefined);
    expect(calls).toBe(0);
  });
});
