/**
 * The shared coarse deadlines (src/core/deadline-sweep.ts) that replaced a
 * timer per request for request_timeout_s, upstream_read_timeout_s and
 * body_timeout_s: a deadline fires, never early; a cancelled one never
 * fires; a check stays on the sweep until it says it is done.
 */
import { expect, test } from "bun:test";
import { deadlineIn, sweepEvery, tickFor } from "../../src/core/deadline-sweep.ts";

test("the tick is a power of two near a sixteenth of the limit, within 8 ms and 1 s", () => {
  expect(tickFor(300)).toBe(16);
  expect(tickFor(1)).toBe(8);
  expect(tickFor(60_000)).toBe(1024);
  expect(tickFor(600_000)).toBe(1024);
  for (const limit of [300, 2_000, 15_000]) {
    const tick = tickFor(limit);
    expect(Number.isInteger(Math.log2(tick))).toBe(true);
    expect(tick).toBeLessThanOrEqual(limit / 8);
  }
});

test("a deadline fires once, not before its time; a cancelled one never fires", async () => {
  const armedAt = performance.now();
  let cancelledFired = false;
  const cancelled = deadlineIn(20, () => {
    cancelledFired = true;
  });
  cancelled.cancel();
  cancelled.cancel();
  let fired = 0;
  const firedAt = await new Promise<number>((resolve) =>
    deadlineIn(60, () => {
      fired++;
      resolve(performance.now());
    }),
  );
  expect(firedAt - armedAt).toBeGreaterThanOrEqual(60);
  // The cancelled deadline's time passed long before this one's.
  expect(cancelledFired).toBe(false);
  // A later deadline on the same sweep: the first never fires again.
  await new Promise<void>((resolve) => deadlineIn(60, resolve));
  expect(fired).toBe(1);
});

test("a check is called each tick until it says it is done", async () => {
  const seen: number[] = [];
  await new Promise<void>((resolve) =>
    sweepEvery(100, (now) => {
      seen.push(now);
      if (seen.length < 3) return false;
      resolve();
      return true;
    }),
  );
  // Called at increasing times, and no more once done (a later check on the sweep runs alone).
  expect(seen).toHaveLength(3);
  expect(seen[0]! < seen[1]! && seen[1]! < seen[2]!).toBe(true);
  await new Promise<void>((resolve) => deadlineIn(100, resolve));
  expect(seen).toHaveLength(3);
});
