/**
 * Where stored Responses API answers live (`store: true`, the default), so
 * `previous_response_id` can continue a conversation and
 * `GET`/`DELETE /v1/responses/{id}` find them. A small interface with an
 * in-memory implementation, bounded by entries, bytes and age. A store that
 * several gateway replicas share (Redis) is not built yet.
 */
import type { ResponsesItem } from "../../dialects/responses/parse-request.ts";
import type { ResponsesResponse } from "../../dialects/responses/render-response.ts";

export interface StoredResponse {
  /** The response object as the client got it. */
  response: ResponsesResponse;
  /** This request's input items, with their ids (GET …/input_items). */
  input: ResponsesItem[];
  /** Every item of the conversation up to and including this response's output: what a follow-up continues. */
  conversation: ResponsesItem[];
}

export interface ResponseStore {
  /** The stored response, or undefined when it is unknown, deleted or expired. */
  get(id: string): Promise<StoredResponse | undefined>;
  put(id: string, record: StoredResponse): Promise<void>;
  /** True when there was something to delete. */
  delete(id: string): Promise<boolean>;
  close(): void;
}

export interface MemoryStoreLimits {
  maxEntries: number;
  maxBytes: number;
  ttlMs: number;
  /** Milliseconds since the epoch; tests move it. */
  now?: () => number;
}

interface Entry {
  json: string;
  bytes: number;
  expiresAt: number;
}

/**
 * Entries kept as JSON text (a copy nobody can change, and its size is its
 * cost); the oldest go first when a limit is reached.
 */
export class MemoryResponseStore implements ResponseStore {
  readonly #limits: MemoryStoreLimits;
  readonly #now: () => number;
  readonly #entries = new Map<string, Entry>();
  #bytes = 0;

  constructor(limits: MemoryStoreLimits) {
    this.#limits = limits;
    this.#now = limits.now ?? Date.now;
  }

  get(id: string): Promise<StoredResponse | undefined> {
    const entry = this.#entries.get(id);
    if (entry === undefined) return Promise.resolve(undefined);
    if (entry.expiresAt <= this.#now()) {
      this.#remove(id, entry);
      return Promise.resolve(undefined);
    }
    return Promise.resolve(JSON.parse(entry.json) as StoredResponse);
  }

  put(id: string, record: StoredResponse): Promise<void> {
    const json = JSON.stringify(record);
    const bytes = json.length * 2;
    const old = this.#entries.get(id);
    if (old !== undefined) this.#remove(id, old);
    // One answer bigger than the whole store is not kept at all.
    if (bytes > this.#limits.maxBytes) return Promise.resolve();
    this.#entries.set(id, { json, bytes, expiresAt: this.#now() + this.#limits.ttlMs });
    this.#bytes += bytes;
    this.#evict();
    return Promise.resolve();
  }

  delete(id: string): Promise<boolean> {
    const entry = this.#entries.get(id);
    if (entry === undefined) return Promise.resolve(false);
    this.#remove(id, entry);
    return Promise.resolve(entry.expiresAt > this.#now());
  }

  close(): void {
    this.#entries.clear();
    this.#bytes = 0;
  }

  /** Entries and bytes held (for tests and metrics). */
  size(): { entries: number; bytes: number } {
    return { entries: this.#entries.size, bytes: this.#bytes };
  }

  #evict(): void {
    const now = this.#now();
    // Insertion order is expiry order (one TTL for all): expired entries are at the front.
    for (const [id, entry] of this.#entries) {
      const over = this.#entries.size > this.#limits.maxEntries || this.#bytes > this.#limits.maxBytes;
      if (!over && entry.expiresAt > now) break;
      this.#remove(id, entry);
    }
  }

  #remove(id: string, entry: Entry): void {
    this.#entries.delete(id);
    this.#bytes -= entry.bytes;
  }
}
