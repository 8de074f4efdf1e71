import type { ResponsesSection, StateSection } from "../../core/config/config-schema.ts";
import type { RedisConnection } from "../state/redis-connection.ts";
import { MemoryRecordStore, type RecordStore } from "./record-store.ts";
import { RedisRecordStore } from "./redis-record-store.ts";

/**
 * The record store `[responses]` asks for: Redis when `store = "redis"` or,
 * unset, when `[state] redis_url` is set (then `redis` is that connection);
 * this process's memory otherwise.
 */
export function createRecordStore(
  section: ResponsesSection,
  state: StateSection,
  redis: RedisConnection | undefined,
): RecordStore {
  const kind = section.store ?? (redis === undefined ? "memory" : "redis");
  if (kind === "redis") {
    if (redis === undefined)
      throw new Error("responses.store = redis without a [state] redis_url connection");
    return new RedisRecordStore(redis, {
      maxEntryBytes: section.max_entry_bytes,
      ttlMs: section.ttl_s * 1000,
      prefix: state.key_prefix,
    });
  }
  return new MemoryRecordStore({
    maxEntries: section.max_entries,
    maxBytes: section.max_bytes,
    maxEntryBytes: section.max_entry_bytes,
    ttlMs: section.ttl_s * 1000,
  });
}
