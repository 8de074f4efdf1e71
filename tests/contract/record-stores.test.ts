/**
 * The conversation store contract (record-store-contract.ts) against both
 * backends: this process's memory, and a real redis-server shared through
 * the gateway's RedisConnection. Then what only Redis can do: go away and
 * come back.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { RedisClient } from "bun";
import { CortexError } from "../../src/core/errors.ts";
import { MemoryRecordStore } from "../../src/gateway/responses/record-store.ts";
import { RedisRecordStore } from "../../src/gateway/responses/redis-record-store.ts";
import { RedisConnection } from "../../src/gateway/state/redis-connection.ts";
import { type RedisServer, redisSkipReason, startRedis } from "../integration/helpers/redis-server.ts";
import { CONTRACT_MAX_ENTRY_BYTES, CONTRACT_TTL_MS, recordStoreContract } from "./record-store-contract.ts";

if (redisSkipReason !== undefined) console.warn(`skipping the Redis store tests: ${redisSkipReason}`);

recordStoreContract("memory", undefined, async () => {
  let now = 1_000_000;
  const store = new MemoryRecordStore({
    maxEntries: 1000,
    maxBytes: 1e8,
    maxEntryBytes: CONTRACT_MAX_ENTRY_BYTES,
    ttlMs: CONTRACT_TTL_MS,
    now: () => now,
  });
  return {
    store,
    elapse: async (ms) => {
      now += ms;
    },
    close: async () => store.close(),
  };
});

/** Shortens the expiry of every key under `prefix` by `ms`, as if that much time had passed in Redis. */
async function ageKeys(client: RedisClient, prefix: string, ms: number): Promise<void> {
  const keys = (await client.send("KEYS", [`${prefix}*`])) as string[];
  for (const key of keys) {
    const left = (await client.send("PTTL", [key])) as number;
    // Every key cortex writes has an expiry: -1 (none) would break the contract's TTL case by itself.
    if (left < 0) continue;
    if (left - ms <= 0) await client.del(key);
    else await client.send("PEXPIRE", [key, String(left - ms)]);
  }
}

let redis: RedisServer | undefined;
beforeAll(async () => {
  if (redisSkipReason === undefined) redis = await startRedis();
});
afterAll(async () => {
  await redis?.dispose();
});

recordStoreContract("redis", redisSkipReason, async () => {
  if (redis === undefined) throw new Error("no redis-server");
  const connection = new RedisConnection({ url: redis.url, timeoutMs: 2000 });
  expect(await connection.start()).toBe(true);
  const prefix = "contract:";
  const store = new RedisRecordStore(connection, {
    maxEntryBytes: CONTRACT_MAX_ENTRY_BYTES,
    ttlMs: CONTRACT_TTL_MS,
    prefix,
  });
  const probe = new RedisClient(redis.url);
  await probe.connect();
  return {
    store,
    elapse: (ms) => ageKeys(probe, prefix, ms),
    close: async () => {
      store.close();
      connection.close();
      probe.close();
    },
  };
});

describe.skipIf(redisSkipReason !== undefined)("the Redis store when Redis goes away", () => {
  test("a 503 naming the state store while it is down, and the same records once it is back", async () => {
    if (redis === undefined) throw new Error("no redis-server");
    const connection = new RedisConnection({ url: redis.url, timeoutMs: 2000 });
    await connection.start();
    const store = new RedisRecordStore(connection, { maxEntryBytes: 1e6, ttlMs: 60_000, prefix: "outage:" });
    await store.put("response:x", '"before"');

    const down = new Promise<void>((resolve) => {
      const off = connection.onStateChange((state) => {
        if (state !== "down") return;
        off();
        resolve();
      });
    });
    await redis.stop();
    await down;
    const error = await store.get("response:x").catch((e: unknown) => e);
    expect(error).toBeInstanceOf(CortexError);
    expect((error as CortexError).status).toBe(503);
    expect((error as CortexError).message).toContain(`state store (Redis at ${redis.url})`);
    expect(await store.put("response:y", "{}").catch((e: unknown) => (e as CortexError).status)).toBe(503);

    // Back (empty: no persistence): the next command reconnects by itself.
    await redis.start();
    expect(await store.put("response:z", '"after"')).toBe(true);
    expect(await store.get("response:z")).toBe('"after"');
    expect(connection.state).toBe("up");
    connection.close();
  });

  test("a Redis that stops answering is a 503 after [state] timeout_s, not a request that hangs", async () => {
    if (redis === undefined) throw new Error("no redis-server");
    const connection = new RedisConnection({ url: redis.url, timeoutMs: 300 });
    await connection.start();
    const store = new RedisRecordStore(connection, { maxEntryBytes: 1e6, ttlMs: 60_000, prefix: "frozen:" });
    await store.put("response:x", '"x"');
    redis.pause();
    try {
      const error = await store.get("response:x").catch((e: unknown) => e);
      expect((error as CortexError).status).toBe(503);
      expect((error as CortexError).message).toContain("timeout_s");
    } finally {
      redis.resume();
    }
    expect(await store.get("response:x")).toBe('"x"');
    connection.close();
  });

  test("startup with Redis unreachable: start() says false instead of throwing, and commands are 503s", async () => {
    const connection = new RedisConnection({ url: "redis://127.0.0.1:1", timeoutMs: 500 });
    expect(await connection.start()).toBe(false);
    expect(connection.state).toBe("down");
    const store = new RedisRecordStore(connection, { maxEntryBytes: 1e6, ttlMs: 60_000, prefix: "none:" });
    expect(await store.get("response:a").catch((e: unknown) => (e as CortexError).status)).toBe(503);
    connection.close();
  });

  test("a password in redis_url never shows in what the connection says", () => {
    const connection = new RedisConnection({
      url: "redis://user:s3cret@127.0.0.1:1/0",
      timeoutMs: 500,
    });
    expect(connection.where).not.toContain("s3cret");
    expect(connection.where).toContain("127.0.0.1:1");
    connection.close();
  });
});
