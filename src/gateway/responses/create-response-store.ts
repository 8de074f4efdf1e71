import type { ResponsesSection } from "../../core/config/config-schema.ts";
import { MemoryResponseStore, type ResponseStore } from "./response-store.ts";

/** The store `[responses]` asks for. */
export function createResponseStore(section: ResponsesSection): ResponseStore {
  return new MemoryResponseStore({
    maxEntries: section.max_entries,
    maxBytes: section.max_bytes,
    ttlMs: section.ttl_s * 1000,
  });
}
