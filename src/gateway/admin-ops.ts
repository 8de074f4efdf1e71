/**
 * Operator actions behind /admin/models/*, over the routing services: load
 * where the router would (or on a named node), unload and (un)pin wherever
 * the model is loaded. Pins live on the neurons, so every gateway replica
 * sees them.
 */
import { CortexError } from "../core/errors.ts";
import type { RoutingServices } from "./routing/routing-services.ts";

export interface AdminOps {
  load(model: string, node?: string): Promise<string>;
  unload(model: string, node?: string, force?: boolean): Promise<string>;
  pin(model: string, pinned: boolean, node?: string): Promise<string>;
}

export function createAdminOps(services: Pick<RoutingServices, "loader" | "fleet">): AdminOps {
  const copies = (id: string, node: string | undefined): string[] => {
    const nodes = services.fleet.state
      .view()
      .nodes.filter((candidate) => candidate.loaded.some((model) => model.id === id))
      .map((candidate) => candidate.name);
    const chosen = node === undefined ? nodes : nodes.filter((name) => name === node);
    if (chosen.length === 0)
      throw new CortexError(
        "model_not_found",
        `${id} is not loaded${node === undefined ? " on any node" : ` on ${node}`}`,
      );
    return chosen;
  };
  return {
    async load(model, node) {
      const target = await services.loader.ensureLoaded(model, node === undefined ? {} : { only: node });
      target.release();
      return `${target.modelId} is loaded on ${target.node}`;
    },
    async unload(model, node, force) {
      const id = services.loader.resolve(model).id;
      const nodes = copies(id, node);
      for (const name of nodes)
        await services.fleet.unload(name, id, { reason: "admin", force: force === true });
      return `${id} unloaded from ${nodes.join(", ")}`;
    },
    async pin(model, pinned, node) {
      const id = services.loader.resolve(model).id;
      const nodes = copies(id, node);
      for (const name of nodes) await services.fleet.pin(name, id, pinned);
      return `${id} ${pinned ? "pinned" : "unpinned"} on ${nodes.join(", ")}`;
    },
  };
}
