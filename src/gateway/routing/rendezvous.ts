/**
 * Rendezvous (highest-random-weight) hashing: every gateway replica that
 * sees the same conversation key and the same nodes picks the same node,
 * with nothing shared between them; a node that joins or leaves moves only
 * the conversations it wins or held. Used for a conversation no node is
 * known to hold yet (pick-loaded-node.ts), so that with several replicas
 * behind round-robin each conversation still lands where its KV cache is.
 */

/** The node's weight for `key`; the highest weight wins. */
export function rendezvousWeight(key: bigint, node: string): bigint {
  return BigInt(Bun.hash(node, key));
}

/** The winner among `nodes` for `key` (ties, which need equal 64-bit hashes, by name). */
export function rendezvousPick<T>(
  key: bigint,
  items: readonly T[],
  nodeOf: (item: T) => string,
): T | undefined {
  let best: T | undefined;
  let bestWeight = -1n;
  for (const item of items) {
    const weight = rendezvousWeight(key, nodeOf(item));
    if (weight > bestWeight || (weight === bestWeight && best !== undefined && nodeOf(item) < nodeOf(best))) {
      best = item;
      bestWeight = weight;
    }
  }
  return best;
}
