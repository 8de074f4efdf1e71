/**
 * The RecordStore the gateway replicas share: one Redis string per record,
 * under `[state] key_prefix`, expiring after the TTL by Redis's own expiry
 * (PX on every write). How many records and bytes Redis holds in all is
 * Redis's business (`maxmemory`, an eviction policy such as volatile-ttl);
 * cortex bounds each record.
 */
import type { RedisConnection } from "../state/redis-connection.ts";
import { type RecordStore, recordBytes } from "./record-store.ts";

export interface RedisStoreLimits {
  maxEntryBytes: number;
  ttlMs: number;
  /** Prepended to every key (`[state] key_prefix`). */
  prefix: string;
}

export class RedisRecordStore implements RecordStore {
  readonly #redis: RedisConnection;
  readonly #limits: RedisStoreLimits;

  constructor(redis: RedisConnection, limits: RedisStoreLimits) {
    this.#redis = redis;
    this.#limits = limits;
  }

  async get(key: string): Promise<string | undefined> {
    const json = await this.#redis.run("read a stored conversation", (client) =>
      client.get(this.#limits.prefix + key),
    );
    return json ?? undefined;
  }

  async put(key: string, json: string): Promise<boolean> {
    if (recordBytes(json) > this.#limits.maxEntryBytes) {
      // A smaller record under the same key must not outlive this one.
      await this.delete(key);
      return false;
    }
    await this.#redis.run("store a conversation", (client) =>
      client.set(this.#limits.prefix + key, json, "PX", this.#limits.ttlMs),
    );
    return true;
  }

  async delete(key: string): Promise<boolean> {
    const removed = await this.#redis.run("delete a stored conversation", (client) =>
      client.del(this.#limits.prefix + key),
    );
    return removed > 0;
  }

  /** The connection is the gateway's, not this store's: closing the store leaves it open. */
  close(): void {}
}
