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
