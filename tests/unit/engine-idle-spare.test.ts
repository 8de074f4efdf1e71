import { describe, expect, test } from "bun:test";
import { IdleSpare } from "../../src/neuron/engine/idle-spare.ts";
import { PromptCache } from "../../src/neuron/engine/prompt-cache.ts";

const MiB = 2 ** 20;

/** Lets the spare's queued slices run: each is one macrotask. */
async function macrotasks(n: number): Promise<void> {
  for (let i = 0; i < n; i++) await new Promise((resolve) => setImmediate(resolve));
}

describe("the spare touched while the device Worker is idle", () => {
  test("an idle Worker prepares a spare of the size the next save needs, a slice at a time", async () => {
    const cache = new PromptCache(64 * MiB);
    const spare = new IdleSpare(cache, { busy: () => false, largestSave: () => 5 * MiB });
    spare.idle();
    // Counted only once it is whole: a half-touched buffer is not offered to a save.
    expect(cache.spareBytes).toBe(0);
    await macrotasks(4);
    expect(cache.spareBytes).toBe(5 * MiB);
    expect(cache.buffer(5 * MiB)?.byteLength).toBe(5 * MiB);
  });

  test("work that arrives pauses the touching, and the next idle moment finishes it", async () => {
    const cache = new PromptCache(64 * MiB);
    let busy = false;
    const spare = new IdleSpare(cache, { busy: () => busy, largestSave: () => 8 * MiB });
    spare.idle();
    await macrotasks(1);
    busy = true;
    await macrotasks(8);
    expect(cache.spareBytes).toBe(0);
    busy = false;
    spare.idle();
    await macrotasks(8);
    expect(cache.spareBytes).toBe(8 * MiB);
  });

  test("nothing to prepare when no slot holds a state, or a spare that fits is there", async () => {
    const cache = new PromptCache(64 * MiB);
    let size = 0;
    const spare = new IdleSpare(cache, { busy: () => false, largestSave: () => size });
    spare.idle();
    await macrotasks(2);
    expect(cache.spareBytes).toBe(0);
    size = 2 * MiB;
    spare.idle();
    await macrotasks(2);
    size = 1 * MiB;
    spare.idle();
    await macrotasks(2);
    expect(cache.spareBytes).toBe(2 * MiB);
  });

  test("memory the process cannot get means no spare, not a failed Worker", async () => {
    const cache = new PromptCache(Number.MAX_SAFE_INTEGER);
    const spare = new IdleSpare(cache, { busy: () => false, largestSave: () => 2 ** 52 });
    expect(() => spare.idle()).not.toThrow();
    await macrotasks(2);
    expect(cache.spareBytes).toBe(0);
  });

  test("a spare whose model went is dropped, not kept", async () => {
    const cache = new PromptCache(64 * MiB);
    const spare = new IdleSpare(cache, { busy: () => false, largestSave: () => 6 * MiB });
    spare.idle();
    await macrotasks(1);
    spare.drop();
    await macrotasks(6);
    expect(cache.spareBytes).toBe(0);
  });
});
