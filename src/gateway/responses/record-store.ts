/**
 * Where the gateway keeps conversations a later request continues: stored
 * Responses API answers (`previous_response_id`) and Anthropic message
 * threads (`thread.previous_message_id`). Records are JSON text under a key,
 * each bounded in size and kept for a TTL; two backends hold to one contract
 * (tests/contract/record-store-contract.ts): this process's memory, or a
 * Redis the gateway replicas share (redis-record-store.ts).
 */

export interface RecordStore {
  /** The record, or undefined when it is unknown, deleted or expired. */
  get(key: string): Promise<string | undefined>;
  /** Keeps `json` for the TTL; false when it is over the entry bound and was not kept. */
  put(key: string, json: string): Promise<boolean>;
  /** True when there was something to delete. */
  delete(key: string): Promise<boolean>;
  close(): void;
}

/** UTF-8 bytes of a record: what the entry bound counts, in both backends. */
export function recordBytes(json: string): number {
  return Buffer.byteLength(json, "utf8");
}

export interface MemoryStoreLimits {
  maxEntries: number;
  maxBytes: number;
  maxEntryBytes: number;
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
 * Entries kept as JSON text (a copy nobody can change; its in-memory size is
 * its cost); the oldest go first when a limit is reached. This gateway only.
 */
export class MemoryRecordStore implements RecordStore {
  readonly #limits: MemoryStoreLimits;
  readonly #now: () => number;
  readonly #entries = new Map<string, Entry>();
  #bytes = 0;

  constructor(limits: MemoryStoreLimits) {
    this.#limits = limits;
    this.#now = limits.now ?? Date.now;
  }

  get(key: string): Promise<string | undefined> {
    const entry = this.#entries.get(key);
    if (entry === undefined) return Promise.resolve(undefined);
    if (entry.expiresAt <= this.#now()) {
      this.#remove(key, entry);
      return Promise.resolve(undefined);
    }
    return Promise.resolve(entry.json);
  }

  put(key: string, json: string): Promise<boolean> {
    const bytes = json.length * 2;
    const old = this.#entries.get(key);
    if (old !== undefined) this.#remove(key, old);
    // One record bigger than an entry may be, or than the whole store, is not kept at all.
    if (recordBytes(json) > this.#limits.maxEntryBytes || bytes > this.#limits.maxBytes)
      return Promise.resolve(false);
    this.#entries.set(key, { json, bytes, expiresAt: this.#now() + this.#limits.ttlMs });
    this.#bytes += bytes;
    this.#evict();
    return Promise.resolve(true);
  }

  delete(key: string): Promise<boolean> {
    const entry = this.#entries.get(key);
    if (entry === undefined) return Promise.resolve(false);
    this.#remove(key, entry);
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
    for (const [key, entry] of this.#entries) {
      const over = this.#entries.size > this.#limits.maxEntries || this.#bytes > this.#limits.maxBytes;
      if (!over && entry.expiresAt > now) break;
      this.#remove(key, entry);
    }
  }

  #remove(key: string, entry: Entry): void {
    this.#entries.delete(key);
    this.#bytes -= entry.bytes;
  }
}

/** One kind of record (`response:…`, `message:…`) in a RecordStore, as objects. */
export class JsonRecords<T> {
  readonly #store: RecordStore;
  readonly #kind: string;

  constructor(store: RecordStore, kind: string) {
    this.#store = store;
    this.#kind = kind;
  }

  async get(id: string): Promise<T | undefined> {
    const json = await this.#store.get(`${this.#kind}:${id}`);
    return json === undefined ? undefined : (JSON.parse(json) as T);
  }

  /** False when the record was too big to keep (a follow-up will not find it). */
  put(id: string, record: T): Promise<boolean> {
    return this.#store.put(`${this.#kind}:${id}`, JSON.stringify(record));
  }

  delete(id: string): Promise<boolean> {
    return this.#store.delete(`${this.#kind}:${id}`);
  }
}
