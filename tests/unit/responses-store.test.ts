/**
 * What only the in-memory conversation store does: bound itself by entries
 * and bytes. What every store does is the contract in
 * tests/contract/record-store-contract.ts.
 */
import { describe, expect, test } from "bun:test";
import { MemoryRecordStore } from "../../src/gateway/responses/record-store.ts";

const limits = { maxEntryBytes: 1e6, ttlMs: 1000 };

describe("MemoryRecordStore", () => {
  test("the oldest go first over max_entries and over max_bytes", async () => {
    const store = new MemoryRecordStore({ ...limits, maxEntries: 2, maxBytes: 1e6 });
    for (const id of ["response:1", "response:2", "response:3"]) await store.put(id, "{}");
    expect(await store.get("response:1")).toBeUndefined();
    expect(await store.get("response:3")).toBe("{}");

    const text = JSON.stringify("x".repeat(100));
    const one = text.length * 2;
    const small = new MemoryRecordStore({ ...limits, maxEntries: 100, maxBytes: one * 2 });
    for (const id of ["response:x", "response:y", "response:z"]) await small.put(id, text);
    expect(await small.get("response:x")).toBeUndefined();
    expect(await small.get("response:z")).toBe(text);
    expect(small.size()).toEqual({ entries: 2, bytes: one * 2 });
    // A record bigger than the whole store is not kept.
    expect(await small.put("response:big", JSON.stringify("x".repeat(one)))).toBe(false);
    expect(await small.get("response:big")).toBeUndefined();
  });

  test("expired records are dropped as new ones arrive", async () => {
    let now = 0;
    const store = new MemoryRecordStore({ ...limits, maxEntries: 10, maxBytes: 1e6, now: () => now });
    await store.put("response:a", "{}");
    now = 2000;
    await store.put("response:b", "{}");
    expect(store.size().entries).toBe(1);
  });
});
