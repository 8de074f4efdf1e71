import { expect, test } from "bun:test";
import { admit, refusalRetryAfterS, takeRunnable } from "../../src/neuron/engine/admission.ts";

test.each([
  [{ inFlight: 0, queued: 0, slots: 2, maxQueue: 8 }, "run"],
  [{ inFlight: 1, queued: 0, slots: 2, maxQueue: 8 }, "run"],
  [{ inFlight: 2, queued: 0, slots: 2, maxQueue: 8 }, "queue"],
  [{ inFlight: 2, queued: 7, slots: 2, maxQueue: 8 }, "queue"],
  [{ inFlight: 2, queued: 8, slots: 2, maxQueue: 8 }, "refuse"],
  [{ inFlight: 1, queued: 0, slots: 1, maxQueue: 0 }, "refuse"],
] as const)("%o → %s", (counts, expected) => {
  expect(admit(counts)).toBe(expected);
});

test("a refused client is told to wait one turn per slot's worth of queue, at least a second", () => {
  expect(refusalRetryAfterS({ inFlight: 4, queued: 16, slots: 4, maxQueue: 16 })).toBe(4);
  expect(refusalRetryAfterS({ inFlight: 4, queued: 17, slots: 4, maxQueue: 17 })).toBe(5);
  expect(refusalRetryAfterS({ inFlight: 1, queued: 0, slots: 1, maxQueue: 0 })).toBe(1);
});

test("freed slots take queued requests in FIFO order, skipping clients that left, and no more than are free", () => {
  const queue = ["a", "gone-b", "c", "d", "e"];
  const runnable = takeRunnable(queue, { inFlight: 1, slots: 3 }, (r) => r.startsWith("gone"));
  expect(runnable).toEqual(["a", "c"]);
  expect(queue).toEqual(["d", "e"]);
  expect(takeRunnable(queue, { inFlight: 3, slots: 3 }, () => false)).toEqual([]);
  expect(queue).toEqual(["d", "e"]);
});
