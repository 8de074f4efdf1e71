/**
 * Operator actions behind /admin/models/*, over the routing services: load
 * where the router would (or on a named node), unload and (un)pin wherever
 * the model is loaded. Pins live on the neurons, so every gateway replica
 * sees them. Pulls fan out to the chosen nodes (each neuron downloads for
 * itself); removals go where the file is.
 */
import { CortexError, errorMessage } from "../core/errors.ts";
import type { AdminPullRequest, AdminPullResponse, AdminPullsResponse } from "../core/pull-api.ts";
import { isLive } from "./fleet/fleet-types.ts";
import { profileFileOn } from "./routing/profile-file.ts";
import type { RoutingServices } from "./routing/routing-services.ts";

export interface AdminOps {
  load(model: string, node?: string): Promise<string>;
  unload(model: string, node?: string, force?: boolean): Promise<string>;
  pin(model: string, pinned: boolean, node?: string): Promise<string>;
  /** Starts a pull on each chosen node (docs/MODELS-PULL.md). */
  pull(request: AdminPullRequest): Promise<AdminPullResponse>;
  /** Every node's pulls, read from the nodes now. */
  pulls(): Promise<AdminPullsResponse>;
  /** Deletes a model's file (a profile's, or a file name) where it is not loaded. */
  remove(model: string, node?: string): Promise<string>;
}

export function createAdminOps(services: Pick<RoutingServices, "loader" | "fleet">): AdminOps {
  const { fleet } = services;
  /** The named nodes (each must exist), or every live node allowed by `affinity`. */
  const targets = (nodes: readonly string[] | undefined, affinity: readonly string[] = []): string[] => {
    if (nodes !== undefined && nodes.length > 0) {
      for (const name of nodes) fleet.client(name);
      return [...new Set(nodes)];
    }
    const live = fleet
      .view()
      .nodes.filter(isLive)
      .map((node) => node.name)
      .filter((name) => affinity.length === 0 || affinity.includes(name));
    if (live.length === 0) throw new CortexError("unavailable", "no live node to act on", { retryAfterS: 5 });
    return live;
  };
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
  /** A profile by id or alias; undefined for a plain file name. */
  const safeResolve = (model: string) => {
    try {
      const resolved = services.loader.resolve(model);
      return resolved.profile === undefined ? undefined : resolved;
    } catch {
      return undefined;
    }
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
    async pull(request) {
      let source = request.source;
      let affinity: readonly string[] = [];
      if (request.profile !== undefined) {
        const resolved = services.loader.resolve(request.profile);
        if (resolved.profile?.source === undefined)
          throw new CortexError(
            "invalid_request",
            `profile: ${resolved.id} has no source to pull from (set source = "hf:org/repo:QUANT" in its [[models]] entry)`,
            { param: "profile" },
          );
        source = resolved.profile.source;
        affinity = resolved.profile.affinity;
      }
      if (source === undefined) throw new CortexError("invalid_request", "expected a source or a profile");
      const nodes = targets(request.nodes, affinity);
      const results = await Promise.all(
        nodes.map(async (node) => {
          try {
            return { node, pull: await fleet.client(node).pull({ source }) };
          } catch (error) {
            return { node, error: errorMessage(error), cause: error };
          }
        }),
      );
      const failed = results.filter((result) => result.error !== undefined);
      // Refused everywhere: the first refusal is the answer (a 404 for a missing repository, say).
      if (failed.length === results.length && failed[0]?.cause instanceof CortexError) throw failed[0].cause;
      const started = results.filter((result) => result.pull !== undefined).map((result) => result.node);
      void Promise.all(started.map((node) => fleet.refresh(node)));
      return {
        ok: failed.length === 0,
        message: `pulling ${source} on ${started.join(", ")}${failed.length === 0 ? "" : `; refused on ${failed.map((f) => f.node).join(", ")}`}`,
        nodes: results.map(({ cause: _cause, ...result }) => result),
      };
    },
    async pulls() {
      const names = fleet.nodeNames();
      return {
        nodes: await Promise.all(
          names.map(async (node) => {
            try {
              return { node, pulls: await fleet.client(node).pulls() };
            } catch (error) {
              return { node, pulls: [], error: errorMessage(error) };
            }
          }),
        ),
      };
    },
    async remove(model, node) {
      const resolved = safeResolve(model);
      const view = fleet.view().nodes.filter((candidate) => node === undefined || candidate.name === node);
      if (node !== undefined && view.length === 0) fleet.client(node);
      const where = view
        .map((candidate) => ({
          node: candidate.name,
          file: resolved?.profile === undefined ? model : profileFileOn(resolved.profile, candidate),
          available: candidate.available,
        }))
        .filter((entry) => entry.file !== undefined && entry.available.some((m) => m.file === entry.file));
      if (where.length === 0)
        throw new CortexError(
          "not_found",
          `no node${node === undefined ? "" : ` named ${node}`} has a file for ${JSON.stringify(model)}`,
        );
      const removed: string[] = [];
      for (const entry of where) {
        const files = await fleet.client(entry.node).remove({ file: entry.file as string });
        removed.push(`${files.join(", ")} on ${entry.node}`);
        await fleet.refresh(entry.node);
      }
      return `removed ${removed.join("; ")}`;
    },
    async pin(model, pinned, node) {
      const id = services.loader.resolve(model).id;
      const nodes = copies(id, node);
      for (const name of nodes) await services.fleet.pin(name, id, pinned);
      return `${id} ${pinned ? "pinned" : "unpinned"} on ${nodes.join(", ")}`;
    },
  };
}
