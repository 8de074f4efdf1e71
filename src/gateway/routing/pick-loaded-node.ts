/** Where a model is already loaded, and which copy should take the next request. */
import {
  busyness,
  type FleetModel,
  type FleetNodeView,
  type FleetSnapshot,
  isLive,
  usableFreeMemory,
} from "../fleet/fleet-types.ts";
import { rendezvousPick } from "./rendezvous.ts";

export interface ModelCopy {
  node: string;
  model: FleetModel;
}

export interface PickOptions {
  /** Nodes to skip (they already failed this request). */
  exclude?: ReadonlySet<string>;
  /** Cache-aware routing: prefer the node holding most of the request's prefix. */
  affinity?: PrefixPreference | undefined;
}

export interface PrefixPreference {
  /** How much of the request's prefix a node likely holds (0: nothing). */
  matched(node: string): number;
  /** A preferred node may have at most this many more requests in flight and queued than the least busy one. */
  maxImbalance: number;
  /** The conversation's key (PrefixChain.conversation): where no node matched, the rendezvous winner takes it. */
  conversation?: bigint | undefined;
  /**
   * The node that last served the conversation, as every replica recorded it
   * (conversation-homes.ts): it outranks this replica's own memory, which
   * misses the turns other replicas served.
   */
  home?: string | undefined;
}

/**
 * The least busy ready copy on a live node: fewest requests in flight plus
 * queued, then the node with the most free memory, then by name (so replicas
 * pick alike). With a prefix preference, in this order: the conversation's
 * shared home node (where the replicas share one); else the copy on the node
 * with the longest match in this replica's memory; where no node matched (a
 * new conversation, or one another gateway replica served so far), the
 * rendezvous winner for the conversation's key, which every replica computes
 * alike. Never a copy busier than the least busy one by more than the
 * allowed imbalance. Undefined when no ready copy exists.
 */
export function pickLoadedNode(
  fleet: FleetSnapshot,
  modelId: string,
  options: PickOptions = {},
): ModelCopy | undefined {
  const copies = copiesOf(fleet, modelId, options).filter(({ model }) => model.state === "ready");
  copies.sort(
    (a, b) =>
      busyness(a.model) - busyness(b.model) ||
      usableFreeMemory(b.nodeView) - usableFreeMemory(a.nodeView) ||
      a.node.localeCompare(b.node),
  );
  const least = copies[0];
  if (least === undefined) return undefined;
  let best = least;
  if (options.affinity !== undefined && copies.length > 1) {
    const { conversation, maxImbalance, home } = options.affinity;
    const withinImbalance = (copy: ModelCopy) => busyness(copy.model) - busyness(least.model) <= maxImbalance;
    const homeCopy = home === undefined ? undefined : copies.find((copy) => copy.node === home);
    if (homeCopy !== undefined && withinImbalance(homeCopy))
      return { node: homeCopy.node, model: homeCopy.model };
    let longest = 0;
    for (const copy of copies) {
      const matched = options.affinity.matched(copy.node);
      if (matched > longest) {
        longest = matched;
        best = copy;
      }
    }
    if (longest === 0 && conversation !== undefined)
      best = rendezvousPick(conversation, copies.filter(withinImbalance), (copy) => copy.node) ?? least;
    if (!withinImbalance(best)) best = least;
  }
  return { node: best.node, model: best.model };
}

/** A copy being loaded on a live node (by this gateway or another replica), if any. */
export function findLoadingCopy(
  fleet: FleetSnapshot,
  modelId: string,
  options: PickOptions = {},
): ModelCopy | undefined {
  const copy = copiesOf(fleet, modelId, options).find(({ model }) => model.state === "loading");
  return copy === undefined ? undefined : { node: copy.node, model: copy.model };
}

function copiesOf(
  fleet: FleetSnapshot,
  modelId: string,
  options: PickOptions,
): (ModelCopy & { nodeView: FleetNodeView })[] {
  return fleet.nodes.flatMap((nodeView) => {
    if (!isLive(nodeView) || options.exclude?.has(nodeView.name)) return [];
    const model = nodeView.loaded.find((candidate) => candidate.id === modelId);
    return model === undefined ? [] : [{ node: nodeView.name, model, nodeView }];
  });
}
