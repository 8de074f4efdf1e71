/**
 * Routing with failover, for the proxy: pick (or load) a copy, send the
 * request with the caller's `attempt` function, and when that fails before
 * its first byte with a retryable error, tell the fleet (an unreachable node
 * leaves routing until it answers a poll; any other failure forces a re-read)
 * and try another node, up to `maxAttempts` nodes in all.
 *
 * `attempt` must resolve once the upstream answered with a 2xx status and
 * headers (the first byte), and throw otherwise: a network error as is, a
 * non-2xx answer as `errorFromResponse(node, status, body, retryAfter)`.
 * After it resolves the request is committed to that node: failures while
 * streaming the body are the caller's to report, never retried here.
 *
 * The returned `finish()` must be called when the response has ended (or was
 * abandoned): until then the request counts as in flight on that copy, which
 * keeps it from being chosen as a victim and steers other requests away.
 */

import type { ModelProfile } from "../../core/config/config-schema.ts";
import { CortexError } from "../../core/errors.ts";
import { logger } from "../../core/logger.ts";
import type { Fleet } from "../fleet/fleet.ts";
import { type FleetNodeView, isLive } from "../fleet/fleet-types.ts";
import { classifyNeuronError, type NeuronApi, type UpstreamTarget } from "../neuron-client.ts";
import type { ConversationHomes } from "./conversation-homes.ts";
import type { ModelLoader } from "./model-loader.ts";
import type { PrefixAffinity } from "./prefix-affinity.ts";
import type { PrefixChain } from "./prefix-chain.ts";

export interface RouteTarget {
  node: string;
  /** The id to send upstream as `model` (the profile id, whatever alias the client used). */
  modelId: string;
  profile: ModelProfile | undefined;
  /** 1 for the first node tried. */
  attempt: number;
  client: NeuronApi;
  /** URL and auth headers for a path on that neuron (`/v1/chat/completions`). */
  upstream(path: string): UpstreamTarget;
}

export interface Routed<T> {
  value: T;
  node: string;
  modelId: string;
  attempts: number;
  /** Ends the request's in-flight count on its copy; idempotent. */
  finish: () => void;
}

export interface RouteOptions {
  signal?: AbortSignal | undefined;
  /** Epoch ms; loads waited on give up at this time. */
  deadline?: number | undefined;
  /** Nodes to try at most. Default 3. */
  maxAttempts?: number | undefined;
  /** The request's prefix chain, for cache-aware routing (prefix-chain.ts). */
  prefix?: PrefixChain | undefined;
}

/** Cache-aware routing: what each node served, and how much busier than the least busy a preferred node may be. */
export interface CacheAffinity {
  served: PrefixAffinity;
  maxImbalance: number;
  /** Where the replicas share state: each conversation's node, as every replica recorded it. */
  homes?: ConversationHomes | undefined;
}

/** Whether a failure before the first byte is worth another node. */
export function shouldFailover(error: CortexError): boolean {
  return error.retryable;
}

/**
 * The neuron answered that the model is not loaded there: the gateway only
 * sends requests to copies its view shows loaded, so the view is stale.
 */
function isStaleCopy(error: CortexError, node: string): boolean {
  return error.code === "model_not_found" && error.details?.node === node;
}

export async function routeWithFailover<T>(
  services: { fleet: Fleet; loader: ModelLoader; affinity?: CacheAffinity | undefined },
  model: string,
  attempt: (target: RouteTarget) => Promise<T>,
  options: RouteOptions = {},
): Promise<Routed<T>> {
  const { fleet, loader } = services;
  const chain = options.prefix;
  const cache = chain === undefined ? undefined : services.affinity;
  const conversation = chain?.conversation;
  const homes = conversation === undefined ? undefined : cache?.homes;
  // Asked only where this replica sees a ready copy: otherwise the request waits for a load
  // anyway, and without a promise hop route() asks the loader synchronously (chat-pipeline.ts
  // reads right after it whether the request waits for a load).
  const readyId =
    conversation === undefined || homes === undefined ? undefined : readyModelId(fleet, loader, model);
  const home =
    conversation === undefined || homes === undefined || readyId === undefined
      ? undefined
      : await homes.lookup(conversation);
  const affinity =
    cache === undefined || chain === undefined
      ? undefined
      : {
          matched: (node: string) => cache.served.matched(node, chain),
          maxImbalance: cache.maxImbalance,
          conversation,
          home,
        };
  if (home !== undefined && readyId !== undefined) await catchUpWithHome(fleet, readyId, home);
  const maxAttempts = options.maxAttempts ?? 3;
  const tried = new Set<string>();
  let lastError: CortexError | undefined;
  let lastStale = false;
  for (let attemptNo = 1; attemptNo <= maxAttempts; attemptNo++) {
    options.signal?.throwIfAborted();
    let target: Awaited<ReturnType<ModelLoader["ensureLoaded"]>>;
    try {
      const wanted = {
        signal: options.signal,
        deadline: options.deadline,
        exclude: tried,
        // A busy copy is no reason to load another one elsewhere.
        loadedOnly: lastError?.code === "rate_limited" || lastError?.code === "overloaded",
        affinity,
      };
      // A ready copy (the common case) is taken without a promise hop.
      target = loader.readyNow(model, wanted) ?? (await loader.ensureLoaded(model, wanted));
    } catch (error) {
      if (lastStale && !options.signal?.aborted) throw unloadedUnder(model, attemptNo - 1, error);
      // After a failed attempt, the first failure explains more than "nowhere else to go".
      if (lastError !== undefined && !options.signal?.aborted) throw lastError;
      throw error;
    }
    const finish = fleet.state.beginRequest(target.node, target.modelId);
    target.release();
    const client = fleet.client(target.node);
    try {
      const value = await attempt({
        node: target.node,
        modelId: target.modelId,
        profile: target.profile,
        attempt: attemptNo,
        client,
        upstream: (path) => client.target(path),
      });
      if (cache !== undefined && chain !== undefined) cache.served.record(target.node, chain);
      // Every turn, even to the same node: the record expires after a while without one.
      if (conversation !== undefined) homes?.record(conversation, target.node);
      return { value, node: target.node, modelId: target.modelId, attempts: attemptNo, finish };
    } catch (error) {
      finish();
      if (options.signal?.aborted) throw error;
      const failure = classifyNeuronError(error, target.node);
      if (isStaleCopy(failure, target.node)) {
        // The view was stale (another replica or an operator unloaded the copy since the
        // last poll): forget the copy and place the model again, on that node too.
        logger("router").info(`${target.modelId} is no longer loaded on ${target.node}; placing it again`);
        fleet.state.applyUnloaded(target.node, target.modelId);
        await fleet.refresh(target.node);
        lastError = failure;
        lastStale = true;
        continue;
      }
      if (!shouldFailover(failure)) throw failure;
      logger("router").warn(
        `${target.modelId} on ${target.node} failed before the first byte: ${failure.message}`,
      );
      fleet.reportFailure(target.node, failure);
      tried.add(target.node);
      lastError = failure;
      lastStale = false;
    }
  }
  if (lastStale) throw unloadedUnder(model, maxAttempts, lastError);
  throw lastError ?? new CortexError("unavailable", `no node could serve ${model}`, { retryAfterS: 1 });
}

/** The model's id where this replica sees a ready copy of it on a live node; else undefined. */
function readyModelId(fleet: Fleet, loader: ModelLoader, model: string): string | undefined {
  let modelId: string;
  try {
    modelId = loader.resolve(model).id;
  } catch {
    return undefined; // An unknown model is the loader's to refuse, in the routing loop.
  }
  return fleet.view().nodes.some((node) => holdsReady(node, modelId)) ? modelId : undefined;
}

function holdsReady(node: FleetNodeView, modelId: string): boolean {
  return isLive(node) && node.loaded.some((copy) => copy.id === modelId && copy.state === "ready");
}

/**
 * The shared record names a live node where this replica's view shows no
 * ready copy: another replica loaded one there since this replica's last
 * poll. Read that node now, or this replica would send the turn elsewhere
 * and move the conversation off the node holding its cache. (The view is
 * read again: the lookup before this was a wait.)
 */
async function catchUpWithHome(fleet: Fleet, modelId: string, home: string): Promise<void> {
  const nodes = fleet.view().nodes;
  if (!nodes.some((node) => holdsReady(node, modelId))) return;
  const node = nodes.find((candidate) => candidate.name === home);
  if (node === undefined || !isLive(node) || holdsReady(node, modelId)) return;
  await fleet.refresh(home);
}

/**
 * The model exists, but its copy was unloaded under this request (another
 * gateway replica's eviction, an operator) and placing it again did not work
 * out yet: a 404 would tell the client the model does not exist, so tell it to
 * come back.
 */
function unloadedUnder(model: string, times: number, cause: unknown): CortexError {
  return new CortexError(
    "unavailable",
    `${model} was unloaded from its node while this request was on its way${times > 1 ? ` (${times} times)` : ""}, and could not be placed again yet; retry`,
    { retryAfterS: 1, cause },
  );
}
