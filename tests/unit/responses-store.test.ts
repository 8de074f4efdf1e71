import { describe, expect, test } from "bun:test";
import type { ResponsesResponse } from "../../src/dialects/responses/render-response.ts";
import { MemoryResponseStore, type StoredResponse } from "../../src/gateway/responses/response-store.ts";

function record(id: string, text = ""): StoredResponse {
  return {
    response: { id, object: "response", output: [] } as unknown as ResponsesResponse,
    input: [{ type: "message", role: "user", content: text }],
    conversation: [],
  };
}

describe("MemoryResponseStore", () => {
  test("keeps a copy: what is read back is what was put, not the caller's object", async () => {
    const store = new MemoryResponseStore({ maxEntries: 10, maxBytes: 1e6, ttlMs: 1000 });
    const put = record("resp_a", "hello");
    await store.put("resp_a", put);
    put.input.length = 0;
    expect((await store.get("resp_a"))?.input).toEqual([{ type: "message", role: "user", content: "hello" }]);
    expect(await store.get("resp_b")).toBeUndefined();
  });

  test("the oldest go first over max_entries and over max_bytes", async () => {
    const store = new MemoryResponseStore({ maxEntries: 2, maxBytes: 1e6, ttlMs: 1000 });
    for (const id of ["resp_1", "resp_2", "resp_3"]) await store.put(id, record(id));
    expect(await store.get("resp_1")).toBeUndefined();
    expect(await store.get("resp_3")).toBeDefined();

    const one = JSON.stringify(record("resp_x", "x".repeat(100))).length * 2;
    const small = new MemoryResponseStore({ maxEntries: 100, maxBytes: one * 2, ttlMs: 1000 });
    for (const id of ["resp_x", "resp_y", "resp_z"]) await small.put(id, record(id, "x".repeat(100)));
    expect(await small.get("resp_x")).toBeUndefined();
    expect(await small.get("resp_z")).toBeDefined();
    expect(small.size().entries).toBe(2);
    // An answer bigger than the whole store is not kept.
    await small.put("resp_big", record("resp_big", "x".repeat(one)));
    expect(await small.get("resp_big")).toBeUndefined();
  });

  test("an entry older than the TTL is gone (and cannot be deleted); delete removes one", async () => {
    let now = 0;
    const store = new MemoryResponseStore({ maxEntries: 10, maxBytes: 1e6, ttlMs: 1000, now: () => now });
    await store.put("resp_a", record("resp_a"));
    await store.put("resp_b", record("resp_b"));
    now = 999;
    expect(await store.get("resp_a")).toBeDefined();
    expect(await store.delete("resp_b")).toBe(true);
    expect(await store.get("resp_b")).toBeUndefined();
    expect(await store.delete("resp_b")).toBe(false);
    now = 1000;
    expect(await store.get("resp_a")).toBeUndefined();
    await store.put("resp_c", record("resp_c"));
    now = 2500;
    expect(await store.delete("resp_c")).toBe(false);
    expect(store.size()).toEqual({ entries: 0, bytes: 0 });
  });
});
