/** Where a model is already loaded, and which copy should take the next request. */
import {
  busyness,
  type FleetModel,
  type FleetNodeView,
  type FleetSnapshot,
  isLive,
  usableFreeMemory,
} from "../fleet/fleet-types.ts";

export interface ModelCopy {
  node: string;
  model: FleetModel;
}

export interface PickOptions {
  /** Nodes to skip (they already failed this request). */
  exclude?: ReadonlySet<string>;
}

/**
 * The least busy ready copy on a live node: fewest requests in flight plus
 * queued, then the node with the most free memory, then by name (so replicas
 * pick alike). Undefined when no ready copy exists.
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
  const best = copies[0];
  return best === undefined ? undefined : { node: best.node, model: best.model };
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
