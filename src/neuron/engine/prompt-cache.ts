/**
 * Host-memory prompt cache of one device Worker: sequence states
 * (`llama_state_seq_get_data_ext`) of slots that were about to be overwritten
 * by an unrelated prompt, keyed by the tokens they hold, least recently used
 * dropped first so the bytes held stay within the budget
 * (`neuron.prompt_cache_bytes`, shared by the device's models). Pure
 * bookkeeping over byte arrays; slot-kv.ts saves and restores.
 *
 * Most of a save's time is not the copy but the first touch of a fresh
 * buffer's pages (measured on Gemma 3 270M, a 2 MB state: copy 0.15 ms,
 * page faults 0.8–1.4 ms; it grows with the state, about 0.4 ms per MB). So
 * the buffers of states that leave the cache are kept as spares and written
 * again, an evicted state's buffer is reused by the save that evicts it, and
 * the Worker touches a spare of the size the next save will need while it is
 * idle (`spareFor`). Spares count against the budget and go first when a
 * state needs their room.
 */
import { commonPrefix } from "./slot-prefixes.ts";

export interface PromptCacheEntry {
  readonly model: string;
  readonly tokens: Int32Array;
  readonly state: Uint8Array;
}

/** One model's share of the cache, as the metrics show it. */
export interface PromptCacheStats {
  bytes: number;
  entries: number;
  /** Requests that restored a saved state into their slot. */
  hits: number;
  /** Requests that looked and found no saved state better than their slot. */
  misses: number;
  /** Entries dropped to stay within the budget. */
  evictions: number;
}

/** More spares than this are not worth their memory: a save needs one. */
const MAX_SPARES = 2;

/** Host memory an entry holds: its whole buffer, which may be larger than the state in it. */
const heldBytes = (state: Uint8Array): number => state.buffer.byteLength;

interface Counters {
  hits: number;
  misses: number;
  evictions: number;
}

export class PromptCache {
  readonly budgetBytes: number;
  /** Insertion order is recency: the first entry is the least recently used. */
  readonly #entries = new Set<PromptCacheEntry>();
  readonly #counters = new Map<string, Counters>();
  /** Buffers whose pages are touched, free to be written: whole buffers, never views, largest first. */
  #spares: Uint8Array[] = [];
  /** Bytes of entries and spares. */
  #bytes = 0;

  constructor(budgetBytes: number) {
    this.budgetBytes = Math.max(0, budgetBytes);
  }

  get enabled(): boolean {
    return this.budgetBytes > 0;
  }

  /** Host memory held: saved states and spares. */
  get bytes(): number {
    return this.#bytes;
  }

  get spareBytes(): number {
    return this.#spares.reduce((sum, spare) => sum + spare.byteLength, 0);
  }

  /**
   * A buffer to save a state of `size` bytes into, for `put` (which may take
   * a view of its start): a spare that fits, else the buffer of a state
   * evicted to make room for this one if it fits, else a new one. Undefined
   * when no state of that size fits the budget.
   */
  buffer(size: number): Uint8Array | undefined {
    if (size > this.budgetBytes) return undefined;
    const spare = this.#takeSpare(size);
    if (spare) return spare;
    let recycled: Uint8Array | undefined;
    this.#makeRoom(size, (freed) => {
      if (!recycled && freed.byteLength >= size) recycled = freed;
    });
    if (recycled) return recycled;
    return new Uint8Array(size);
  }

  /** A buffer from `buffer` that was not used after all. */
  giveBack(buffer: Uint8Array): void {
    this.#keepSpare(new Uint8Array(buffer.buffer));
  }

  /**
   * A new spare for the Worker to touch while idle, when the next save (of at
   * most `size` bytes) would otherwise write into fresh pages: undefined when
   * a spare that fits exists or there is no room without evicting a state.
   * The Worker hands it back with `giveBack` once touched.
   */
  spareFor(size: number): Uint8Array | undefined {
    if (size <= 0 || this.#spares.some((spare) => spare.byteLength >= size)) return undefined;
    if (this.#bytes + size > this.budgetBytes) return undefined;
    return new Uint8Array(size);
  }

  /** The model's entry sharing the longest common prefix with `prompt` (undefined: none shares any). */
  best(model: string, prompt: ArrayLike<number>): { entry: PromptCacheEntry; common: number } | undefined {
    let best: { entry: PromptCacheEntry; common: number } | undefined;
    for (const entry of this.#entries) {
      if (entry.model !== model) continue;
      const common = commonPrefix(entry.tokens, prompt);
      if (common > 0 && (best === undefined || common > best.common)) best = { entry, common };
    }
    return best;
  }

  /**
   * Saves a state; entries it makes redundant (their tokens a prefix of its
   * tokens) go. Returns false when it does not fit the budget at all.
   */
  put(entry: PromptCacheEntry): boolean {
    const bytes = heldBytes(entry.state);
    if (bytes > this.budgetBytes) return false;
    for (const old of this.#entries) {
      if (old.model === entry.model && commonPrefix(old.tokens, entry.tokens) === old.tokens.length) {
        this.#delete(old);
        this.#keepSpare(new Uint8Array(old.state.buffer));
      }
    }
    this.#makeRoom(bytes, () => {});
    this.#entries.add(entry);
    this.#bytes += bytes;
    return true;
  }

  /**
   * An entry was restored into a slot. `move`: the slot keeps most of it, so
   * it leaves the cache (it is saved again if the slot is overwritten) and
   * its buffer becomes a spare; otherwise it stays, as the most recently used.
   */
  restored(entry: PromptCacheEntry, move: boolean): void {
    if (!this.#entries.has(entry)) return;
    this.#count(entry.model).hits++;
    this.#entries.delete(entry);
    if (!move) {
      this.#entries.add(entry);
      return;
    }
    this.#bytes -= heldBytes(entry.state);
    this.#keepSpare(new Uint8Array(entry.state.buffer));
  }

  miss(model: string): void {
    this.#count(model).misses++;
  }

  /** Drops every entry of a model (its KV cache was reset). */
  clear(model: string): void {
    for (const entry of this.#entries) if (entry.model === model) this.#delete(entry);
  }

  /** Drops every entry and counter of an unloaded model; spares go once no entry is left. */
  dropModel(model: string): void {
    this.clear(model);
    this.#counters.delete(model);
    if (this.#entries.size > 0) return;
    this.#bytes -= this.spareBytes;
    this.#spares = [];
  }

  stats(model: string): PromptCacheStats {
    let bytes = 0;
    let entries = 0;
    for (const entry of this.#entries) {
      if (entry.model !== model) continue;
      bytes += heldBytes(entry.state);
      entries++;
    }
    return { bytes, entries, ...this.#count(model) };
  }

  #delete(entry: PromptCacheEntry): void {
    this.#entries.delete(entry);
    this.#bytes -= heldBytes(entry.state);
  }

  /** Frees spares, then evicts the least recently used states, until `bytes` more fit; `freed` sees each evicted buffer. */
  #makeRoom(bytes: number, freed: (buffer: Uint8Array) => void): void {
    while (this.#bytes + bytes > this.budgetBytes) {
      const spare = this.#spares.pop();
      if (spare) {
        this.#bytes -= spare.byteLength;
        continue;
      }
      const oldest = this.#entries.values().next().value;
      if (oldest === undefined) return;
      this.#delete(oldest);
      this.#count(oldest.model).evictions++;
      freed(new Uint8Array(oldest.state.buffer));
    }
  }

  /** The smallest spare of at least `size` bytes, taken out of the spares (and the count). */
  #takeSpare(size: number): Uint8Array | undefined {
    // Spares are kept largest first (#keepSpare): the last that fits is the smallest.
    const at = this.#spares.findLastIndex((spare) => spare.byteLength >= size);
    const [spare] = at < 0 ? [] : this.#spares.splice(at, 1);
    if (spare) this.#bytes -= spare.byteLength;
    return spare;
  }

  /** Keeps a buffer no state uses as a spare while there is room, largest spares kept. */
  #keepSpare(buffer: Uint8Array): void {
    if (this.#bytes + buffer.byteLength > this.budgetBytes) return;
    this.#spares.push(buffer);
    this.#bytes += buffer.byteLength;
    this.#spares.sort((a, b) => b.byteLength - a.byteLength);
    while (this.#spares.length > MAX_SPARES) this.#bytes -= this.#spares.pop()?.byteLength ?? 0;
  }

  #count(model: string): Counters {
    let counters = this.#counters.get(model);
    if (!counters) {
      counters = { hits: 0, misses: 0, evictions: 0 };
      this.#counters.set(model, counters);
    }
    return counters;
  }
}
