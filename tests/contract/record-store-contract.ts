/**
 * The contract every conversation store backend (src/gateway/responses/
 * record-store.ts) holds to: what a later request finds after a put, a
 * delete, the TTL and the entry bound. The same cases run against the
 * in-memory store and the Redis one (record-stores.test.ts).
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { JsonRecords, type RecordStore } from "../../src/gateway/responses/record-store.ts";

export const CONTRACT_TTL_MS = 60_000;
export const CONTRACT_MAX_ENTRY_BYTES = 4096;

export interface RecordStoreHarness {
  /** A store with TTL CONTRACT_TTL_MS and entry bound CONTRACT_MAX_ENTRY_BYTES. */
  store: RecordStore;
  /** Ages every record by `ms` (moves the memory store's clock; shortens each Redis key's expiry). */
  elapse(ms: number): Promise<void>;
  close(): Promise<void>;
}

export function recordStoreContract(
  name: string,
  skip: string | undefined,
  open: () => Promise<RecordStoreHarness>,
): void {
  describe.skipIf(skip !== undefined)(`RecordStore contract: ${name}`, () => {
    let harness: RecordStoreHarness;
    beforeAll(async () => {
      harness = await open();
    });
    afterAll(async () => {
      await harness?.close();
    });

    test("a put is found by a later get, byte for byte; an unknown key is not; a second put replaces", async () => {
      const { store } = harness;
      const text = JSON.stringify({ text: "héllo ✓", n: [1, 2] });
      expect(await store.put("response:a", text)).toBe(true);
      expect(await store.get("response:a")).toBe(text);
      expect(await store.get("response:unknown")).toBeUndefined();
      expect(await store.put("response:a", '"second"')).toBe(true);
      expect(await store.get("response:a")).toBe('"second"');
    });

    test("delete removes a record once: true, then false, and a get finds nothing", async () => {
      const { store } = harness;
      await store.put("response:d", "{}");
      expect(await store.delete("response:d")).toBe(true);
      expect(await store.get("response:d")).toBeUndefined();
      expect(await store.delete("response:d")).toBe(false);
    });

    test("a record lives for the TTL and not longer; an expired one cannot be deleted", async () => {
      const { store } = harness;
      await store.put("response:t", '"kept"');
      await harness.elapse(CONTRACT_TTL_MS - 1000);
      expect(await store.get("response:t")).toBe('"kept"');
      await harness.elapse(1000);
      expect(await store.get("response:t")).toBeUndefined();
      await store.put("response:t2", '"kept"');
      await harness.elapse(CONTRACT_TTL_MS);
      expect(await store.delete("response:t2")).toBe(false);
    });

    test("a record over the entry bound is not kept, and leaves no older record under its key", async () => {
      const { store } = harness;
      // Multi-byte text: the bound counts UTF-8 bytes, not characters.
      const big = JSON.stringify("é".repeat(CONTRACT_MAX_ENTRY_BYTES / 2));
      expect(big.length).toBeLessThan(CONTRACT_MAX_ENTRY_BYTES);
      await store.put("response:b", '"small"');
      expect(await store.put("response:b", big)).toBe(false);
      expect(await store.get("response:b")).toBeUndefined();
      const fits = JSON.stringify("x".repeat(CONTRACT_MAX_ENTRY_BYTES - 10));
      expect(await store.put("response:f", fits)).toBe(true);
      expect(await store.get("response:f")).toBe(fits);
    });

    test("responses and message threads with the same id are separate records", async () => {
      const responses = new JsonRecords<{ kind: string }>(harness.store, "response");
      const threads = new JsonRecords<{ kind: string }>(harness.store, "message");
      await responses.put("same", { kind: "response" });
      await threads.put("same", { kind: "thread" });
      expect(await responses.get("same")).toEqual({ kind: "response" });
      expect(await threads.get("same")).toEqual({ kind: "thread" });
      expect(await threads.delete("same")).toBe(true);
      expect(await responses.get("same")).toEqual({ kind: "response" });
    });
  });
}
