/**
 * Host-memory prompt cache of one device Worker: sequence states
 * (`llama_state_seq_get_data_ext`) of slots that were about to be overwritten
 * by an unrelated prompt, keyed by the tokens they hold, least recently used
 * dropped first so the bytes held stay within the budget
 * (`neuron.prompt_cache_bytes`, shared by the device's models). Pure
 * bookkeeping over byte arrays; slot-kv.ts saves and restores.
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
  #bytes = 0;

  constructor(budgetBytes: number) {
    this.budgetBytes = Math.max(0, budgetBytes);
  }

  get enabled(): boolean {
    return this.budgetBytes > 0;
  }

  get bytes(): number {
    return this.#bytes;
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
    if (entry.state.byteLength > this.budgetBytes) return false;
    for (const old of this.#entries) {
      if (old.model === entry.model && commonPrefix(old.tokens, entry.tokens) === old.tokens.length)
        this.#delete(old);
    }
    while (this.#bytes + entry.state.byteLength > this.budgetBytes) {
      const oldest = this.#entries.values().next().value;
      if (oldest === undefined) break;
      this.#delete(oldest);
      this.#count(oldest.model).evictions++;
    }
    this.#entries.add(entry);
    this.#bytes += entry.state.byteLength;
    return true;
  }

  /**
   * An entry is being restored into a slot. `move`: the slot keeps most of
   * it, so it leaves the cache (it is saved again if the slot is overwritten);
   * otherwise it stays, as the most recently used.
   */
  restored(entry: PromptCacheEntry, move: boolean): void {
    if (!this.#entries.has(entry)) return;
    this.#count(entry.model).hits++;
    this.#entries.delete(entry);
    if (move) this.#bytes -= entry.state.byteLength;
    else this.#entries.add(entry);
  }

  miss(model: string): void {
    this.#count(model).misses++;
  }

  /** Drops every entry of a model (its KV cache was reset). */
  clear(model: string): void {
    for (const entry of this.#entries) if (entry.model === model) this.#delete(entry);
  }

  /** Drops every entry and counter of an unloaded model. */
  dropModel(model: string): void {
    this.clear(model);
    this.#counters.delete(model);
  }

  stats(model: string): PromptCacheStats {
    let bytes = 0;
    let entries = 0;
    for (const entry of this.#entries) {
      if (entry.model !== model) continue;
      bytes += entry.state.byteLength;
      entries++;
    }
    return { bytes, entries, ...this.#count(model) };
  }

  #delete(entry: PromptCacheEntry): void {
    this.#entries.delete(entry);
    this.#bytes -= entry.state.byteLength;
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
