import { describe, expect, test } from "bun:test";
import { PromptCache } from "../../src/neuron/engine/prompt-cache.ts";

const entry = (model: string, tokens: number[], bytes: number) => ({
  model,
  tokens: Int32Array.from(tokens),
  state: new Uint8Array(bytes),
});

describe("host-memory prompt cache", () => {
  test("finds the saved state sharing the longest prefix, for its own model only", () => {
    const cache = new PromptCache(1000);
    cache.put(entry("a", [1, 2, 3], 10));
    cache.put(entry("a", [1, 2, 9, 9], 10));
    cache.put(entry("b", [1, 2, 3, 4, 5], 10));
    expect(cache.best("a", [1, 2, 3, 4])?.common).toBe(3);
    expect(cache.best("a", [7])).toBeUndefined();
    expect(cache.stats("a")).toMatchObject({ bytes: 20, entries: 2 });
  });

  test("stays within its budget by dropping the least recently saved states, and counts them", () => {
    const cache = new PromptCache(25);
    cache.put(entry("a", [1], 10));
    cache.put(entry("a", [2], 10));
    cache.put(entry("a", [3], 10));
    expect(cache.bytes).toBe(20);
    expect(cache.best("a", [1])).toBeUndefined();
    expect(cache.stats("a")).toMatchObject({ entries: 2, evictions: 1 });
    expect(cache.put(entry("a", [4], 26))).toBe(false);
  });

  test("a longer state of the same conversation replaces the shorter one", () => {
    const cache = new PromptCache(100);
    cache.put(entry("a", [1, 2], 10));
    cache.put(entry("a", [1, 2, 3], 12));
    expect(cache.stats("a")).toMatchObject({ entries: 1, bytes: 12, evictions: 0 });
  });

  test("a state restored mostly whole leaves the cache, one cut short stays; both are hits", () => {
    const cache = new PromptCache(100);
    const kept = entry("a", [1, 2, 3, 4], 10);
    cache.put(kept);
    cache.restored(kept, false);
    expect(cache.stats("a")).toMatchObject({ entries: 1, bytes: 10, hits: 1 });
    cache.restored(kept, true);
    expect(cache.stats("a")).toMatchObject({ entries: 0, bytes: 0, hits: 2 });
  });

  test("an unloaded model's states and figures go", () => {
    const cache = new PromptCache(100);
    const saved = entry("a", [1, 2], 10);
    cache.put(saved);
    cache.restored(saved, true);
    cache.miss("a");
    expect(cache.stats("a")).toEqual({ bytes: 0, entries: 0, hits: 1, misses: 1, evictions: 0 });
    cache.put(entry("a", [5], 10));
    cache.dropModel("a");
    expect(cache.bytes).toBe(0);
    expect(cache.stats("a")).toEqual({ bytes: 0, entries: 0, hits: 0, misses: 0, evictions: 0 });
  });
});

/** Saves as slot-kv.ts does: into the cache's buffer, the state a view of its start. */
function save(cache: PromptCache, model: string, tokens: number[], bytes: number): Uint8Array {
  const buffer = cache.buffer(bytes);
  if (!buffer) throw new Error("no buffer");
  cache.put({ model, tokens: Int32Array.from(tokens), state: buffer.subarray(0, bytes) });
  return buffer;
}

describe("the prompt cache's buffers", () => {
  test("a save that evicts a state writes into that state's memory, not new memory", () => {
    const cache = new PromptCache(25);
    const first = save(cache, "a", [1], 10);
    save(cache, "a", [2], 10);
    const third = save(cache, "a", [3], 8);
    expect(third.buffer).toBe(first.buffer);
    expect(cache.best("a", [1])).toBeUndefined();
    // The entry holds the whole reused buffer, and the budget counts all of it.
    expect(cache.stats("a")).toMatchObject({ entries: 2, bytes: 20, evictions: 1 });
    expect(cache.bytes).toBe(20);
  });

  test("a state restored whole leaves its buffer for the next save; one restored in part keeps it", () => {
    const cache = new PromptCache(100);
    const moved = save(cache, "a", [1, 2, 3, 4], 10);
    const entry = cache.best("a", [1, 2, 3, 4])?.entry;
    if (!entry) throw new Error("not saved");
    cache.restored(entry, true);
    expect(cache.spareBytes).toBe(10);
    expect(cache.stats("a").bytes).toBe(0);
    expect(cache.buffer(9)?.buffer).toBe(moved.buffer);
    expect(cache.spareBytes).toBe(0);
    const kept = save(cache, "a", [5, 6], 10);
    const keptEntry = cache.best("a", [5, 6])?.entry;
    if (!keptEntry) throw new Error("not saved");
    cache.restored(keptEntry, false);
    expect(cache.buffer(10)?.buffer).not.toBe(kept.buffer);
  });

  test("spares give way to states and never push the cache over its budget", () => {
    const cache = new PromptCache(30);
    const spare = cache.spareFor(10);
    if (!spare) throw new Error("no spare offered");
    cache.giveBack(spare);
    expect(cache.bytes).toBe(10);
    cache.put(entry("a", [1], 25));
    expect(cache.spareBytes).toBe(0);
    expect(cache.bytes).toBe(25);
    // No room for a spare without evicting a state: none is offered.
    expect(cache.spareFor(10)).toBeUndefined();
  });

  test("a spare is offered only when none that fits exists, and at most two are kept", () => {
    const cache = new PromptCache(1000);
    expect(cache.spareFor(0)).toBeUndefined();
    const small = cache.spareFor(10);
    if (!small) throw new Error("no spare offered");
    cache.giveBack(small);
    expect(cache.spareFor(8)).toBeUndefined();
    for (const size of [20, 30]) {
      const spare = cache.spareFor(size);
      if (!spare) throw new Error("no spare offered");
      cache.giveBack(spare);
    }
    expect(cache.spareBytes).toBe(50);
    expect(cache.bytes).toBe(50);
    // The smallest spare that fits is the one taken.
    expect(cache.buffer(15)?.byteLength).toBe(20);
  });

  test("the spares go with the last model's states", () => {
    const cache = new PromptCache(100);
    save(cache, "a", [1], 10);
    save(cache, "b", [1], 10);
    const spare = cache.spareFor(30);
    if (!spare) throw new Error("no spare offered");
    cache.giveBack(spare);
    cache.dropModel("a");
    expect(cache.spareBytes).toBe(30);
    cache.dropModel("b");
    expect(cache.bytes).toBe(0);
  });
});
