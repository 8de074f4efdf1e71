/**
 * Which prompt prefixes each node has served lately (prefix-chain.ts), so a
 * request can go to the node whose KV cache most likely still holds its
 * prefix. Per node a bounded LRU of chain links; nothing is shared between
 * gateway replicas, since a wrong guess costs only a prefill.
 */
import type { PrefixChain } from "./prefix-chain.ts";

export class PrefixAffinity {
  readonly #capacity: number;
  /** Per node, links in recency order (a Map keeps insertion order: the first is the oldest). */
  readonly #nodes = new Map<string, Map<bigint, true>>();

  /** `capacity`: links remembered per node. */
  constructor(capacity: number) {
    this.#capacity = Math.max(1, capacity);
  }

  /** How many leading links of `chain` the node has served (0: none). */
  matched(node: string, chain: PrefixChain): number {
    const seen = this.#nodes.get(node);
    if (!seen) return 0;
    for (let i = chain.length - 1; i >= 0; i--) if (seen.has(chain[i] as bigint)) return i + 1;
    return 0;
  }

  /** The node served a request with this chain. */
  record(node: string, chain: PrefixChain): void {
    let seen = this.#nodes.get(node);
    if (!seen) {
      seen = new Map();
      this.#nodes.set(node, seen);
    }
    for (const hash of chain) {
      seen.delete(hash);
      seen.set(hash, true);
    }
    for (const oldest of seen.keys()) {
      if (seen.size <= this.#capacity) break;
      seen.delete(oldest);
    }
  }

  /** The node lost its caches (restarted, unloaded the model): forget what it served. */
  forget(node: string): void {
    this.#nodes.delete(node);
  }
}
