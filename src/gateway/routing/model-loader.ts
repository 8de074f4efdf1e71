/**
 * Gets a model loaded somewhere so a request can be sent to it.
 *
 * - Loaded and ready on a live node → that copy at once (least busy).
 * - Otherwise one load per model at a time (single flight): every request
 *   for the same cold model waits on the same promise; a waiter that aborts
 *   or times out leaves, the load goes on for the others.
 * - A load executes a placement plan: unload the victims (not forced; each
 *   logged as a make_room eviction), load on the chosen node, re-read it.
 *   When that fails (507 from the neuron, a failed load, an unreachable
 *   node) the next candidate node is tried with a fresh plan.
 * - When a load succeeds, each request still waiting gets a reservation on
 *   the new copy, so it cannot be evicted before they are served (release it
 *   once the request is counted in flight; routeWithFailover does this).
 * - Waiters give up after `load_timeout_s` (or their own deadline) with 503
 *   unavailable + Retry-After.
 * - A load that fails because of the file itself (the neuron's
 *   `invalid_model_file`), or whose connection broke while the neuron was
 *   loading (it likely crashed on the file), is not tried on another node:
 *   that would take the next node down too. The model's loads then fail at
 *   once with that reason for `LOAD_FAILURE_HOLD_MS`.
 * - A profile with a `source` whose file no usable node holds is pulled
 *   onto one node first, inside the same flight (docs/MODELS-PULL.md).
 */
import type { ModelProfile } from "../../core/config/config-schema.ts";
import { CortexError } from "../../core/errors.ts";
import { logger } from "../../core/logger.ts";
import type { LoadedModel, LoadRequest } from "../../core/neuron-api.ts";
import type { PullStatus } from "../../core/pull-api.ts";
import type { Fleet } from "../fleet/fleet.ts";
import { isLive } from "../fleet/fleet-types.ts";
import { classifyNeuronError } from "../neuron-client.ts";
import type { EvictionStrategy } from "./choose-victims.ts";
import { formatBytes } from "./memory-need.ts";
import { findLoadingCopy, type PrefixPreference, pickLoadedNode } from "./pick-loaded-node.ts";
import { type PlacementPlan, planPlacements } from "./plan-placement.ts";
import { profileFileOn } from "./profile-file.ts";
import { type ResolvedModel, requireModel } from "./resolve-model.ts";

export interface ModelLoaderOptions {
  fleet: Fleet;
  profiles: readonly ModelProfile[];
  strategy: EvictionStrategy;
  loadTimeoutS: number;
  /** How often to re-read a node while a load there reports `loading`. Default 250 ms. */
  loadingPollMs?: number;
  /** How often to read a node's pulls while it pulls a model's file (profiles with a `source`). Default 250 ms. */
  pullPollMs?: number;
  now?: () => number;
}

export interface EnsureLoadedOptions {
  signal?: AbortSignal | undefined;
  /** Epoch ms after which the caller stops waiting (capped by load_timeout_s). */
  deadline?: number | undefined;
  /** Nodes not to use (they failed this request already). */
  exclude?: ReadonlySet<string> | undefined;
  /** Use only this node (an admin load on a named node). */
  only?: string | undefined;
  /** Only an existing ready copy will do; never start a load. */
  loadedOnly?: boolean | undefined;
  /** Among ready copies, prefer the node likely to hold the request's prefix (cache-aware routing). */
  affinity?: PrefixPreference | undefined;
}

/** A ready copy the caller may send a request to. */
export interface LoadedTarget {
  node: string;
  modelId: string;
  profile: ModelProfile | undefined;
  /** True when this call waited on a load. */
  loaded: boolean;
  /** Drops the reservation that keeps the copy from eviction; idempotent. */
  release: () => void;
}

/** How long a load that failed on the file itself is refused before it is tried again. */
export const LOAD_FAILURE_HOLD_MS = 60_000;

/** Network failures that mean the neuron went away while it was loading (not that it was unreachable). */
const BROKEN_DURING_LOAD = new Set([
  "ECONNRESET",
  "EPIPE",
  "ConnectionClosed",
  "ConnectionReset",
  "UND_ERR_SOCKET",
]);

/** Whether a failed load says the file is at fault, so other nodes must not try it. */
function isFileFault(failure: CortexError): boolean {
  if (failure.code === "invalid_model_file") return true;
  const network = failure.details?.network;
  return typeof network === "string" && BROKEN_DURING_LOAD.has(network);
}

interface Waiter {
  reservation: (() => void) | undefined;
}

interface Flight {
  promise: Promise<{ node: string; model: LoadedModel }>;
  waiters: Set<Waiter>;
}

export class ModelLoader {
  readonly #fleet: Fleet;
  readonly #profiles: readonly ModelProfile[];
  readonly #strategy: EvictionStrategy;
  readonly #loadTimeoutMs: number;
  readonly #loadingPollMs: number;
  readonly #pullPollMs: number;
  readonly #now: () => number;
  readonly #flights = new Map<string, Flight>();
  /** Models whose last load failed on the file itself, with the error and when loads may be tried again. */
  readonly #heldFailures = new Map<string, { error: CortexError; until: number }>();
  readonly #log = logger("loader");

  constructor(options: ModelLoaderOptions) {
    this.#fleet = options.fleet;
    this.#profiles = options.profiles;
    this.#strategy = options.strategy;
    this.#loadTimeoutMs = options.loadTimeoutS * 1000;
    this.#loadingPollMs = options.loadingPollMs ?? 250;
    this.#pullPollMs = options.pullPollMs ?? 250;
    this.#now = options.now ?? Date.now;
  }

  /** Name or alias → model; 404 model_not_found when neither configured nor loaded. */
  resolve(name: string): ResolvedModel {
    return requireModel(this.#profiles, () => this.#fleet.view(), name);
  }

  /** Models with a load under way at this gateway. */
  loading(): string[] {
    return [...this.#flights.keys()];
  }

  /** Whether a load of `modelId` is under way at this gateway (cheaper than `loading()`). */
  isLoading(modelId: string): boolean {
    return this.#flights.has(modelId);
  }

  /**
   * What `ensureLoaded` resolves with when a ready copy is there now, without
   * a promise; undefined when it would have to load or wait (call it then).
   */
  readyNow(name: string, options: EnsureLoadedOptions = {}): LoadedTarget | undefined {
    return this.#readyCopy(this.resolve(name).id, options);
  }

  async ensureLoaded(name: string, options: EnsureLoadedOptions = {}): Promise<LoadedTarget> {
    options.signal?.throwIfAborted();
    const resolved = this.resolve(name);
    const waitUntil = Math.min(
      options.deadline ?? Number.POSITIVE_INFINITY,
      this.#now() + this.#loadTimeoutMs,
    );
    // A shared load may land on a node this caller must avoid; then look again.
    for (let round = 0; round < 3; round++) {
      const ready = this.#readyCopy(resolved.id, options);
      if (ready !== undefined) return ready;
      if (options.loadedOnly)
        throw new CortexError("unavailable", `${resolved.id} has no ready copy on another node`, {
          retryAfterS: 1,
        });
      let flight = this.#flights.get(resolved.id);
      if (flight === undefined) {
        const held = this.#heldFailures.get(resolved.id);
        if (held !== undefined && held.until > this.#now()) throw held.error;
        this.#heldFailures.delete(resolved.id);
        flight = this.#startFlight(resolved, options);
      }
      const result = await this.#wait(resolved.id, flight, waitUntil, options.signal);
      if (
        (options.exclude?.has(result.node) ?? false) ||
        (options.only !== undefined && result.node !== options.only)
      ) {
        result.release();
        continue;
      }
      return { ...result, profile: resolved.profile, loaded: true };
    }
    throw new CortexError("unavailable", `${resolved.id} could not be placed on a usable node`, {
      retryAfterS: 5,
    });
  }

  #readyCopy(modelId: string, options: EnsureLoadedOptions): LoadedTarget | undefined {
    let exclude = options.exclude;
    if (options.only !== undefined) {
      const others = new Set(exclude);
      for (const node of this.#fleet.nodeNames()) if (node !== options.only) others.add(node);
      exclude = others;
    }
    const copy = pickLoadedNode(this.#fleet.view(), modelId, {
      ...(exclude === undefined ? {} : { exclude }),
      affinity: options.affinity,
    });
    if (copy === undefined) return undefined;
    const profile = this.#profiles.find((candidate) => candidate.id === modelId);
    return {
      node: copy.node,
      modelId,
      profile,
      loaded: false,
      release: this.#fleet.state.reserve(copy.node, modelId),
    };
  }

  #startFlight(resolved: ResolvedModel, options: EnsureLoadedOptions): Flight {
    const waiters = new Set<Waiter>();
    const promise = this.#load(resolved, options).then((result) => {
      // Reserve for every waiter before any of them resumes, so nothing can evict the copy in between.
      for (const waiter of waiters) waiter.reservation = this.#fleet.state.reserve(result.node, resolved.id);
      return result;
    });
    const flight: Flight = { promise, waiters };
    this.#flights.set(resolved.id, flight);
    const forget = () => {
      if (this.#flights.get(resolved.id) === flight) this.#flights.delete(resolved.id);
    };
    promise.then(forget, forget);
    return flight;
  }

  #wait(
    modelId: string,
    flight: Flight,
    waitUntil: number,
    signal: AbortSignal | undefined,
  ): Promise<{ node: string; modelId: string; release: () => void }> {
    const waiter: Waiter = { reservation: undefined };
    flight.waiters.add(waiter);
    const startedAt = this.#now();
    return new Promise((resolve, reject) => {
      const leave = () => {
        flight.waiters.delete(waiter);
        clearTimeout(timer);
        signal?.removeEventListener("abort", onAbort);
        waiter.reservation?.();
      };
      const onAbort = () => {
        leave();
        reject(signal?.reason);
      };
      const retryAfterS = Math.min(30, Math.max(1, Math.ceil(this.#loadTimeoutMs / 10_000)));
      const timer = setTimeout(
        () => {
          leave();
          reject(
            new CortexError(
              "unavailable",
              `${modelId} is still loading; gave up waiting after ${Math.round((waitUntil - startedAt) / 1000)} s`,
              { retryAfterS, details: { model: modelId } },
            ),
          );
        },
        Math.max(0, waitUntil - this.#now()),
      );
      signal?.addEventListener("abort", onAbort, { once: true });
      flight.promise.then(
        (result) => {
          clearTimeout(timer);
          signal?.removeEventListener("abort", onAbort);
          flight.waiters.delete(waiter);
          resolve({ node: result.node, modelId, release: waiter.reservation ?? (() => {}) });
        },
        (error: unknown) => {
          leave();
          reject(error);
        },
      );
    });
  }

  /** Plans and executes loads, node after node, until one succeeds or none is left. */
  async #load(
    resolved: ResolvedModel,
    options: EnsureLoadedOptions,
  ): Promise<{ node: string; model: LoadedModel }> {
    const tried = new Set(options.exclude);
    const replanned = new Set<string>();
    let lastError: CortexError | undefined;
    await this.#pullIfMissing(resolved, tried, options.only);
    for (;;) {
      const plan = await this.#freshPlan(resolved, tried, options.only, lastError);
      try {
        return await this.#execute(resolved, plan);
      } catch (error) {
        const failure = classifyNeuronError(error, plan.node);
        this.#log.warn(`loading ${resolved.id} on ${plan.node} failed: ${failure.message}`);
        this.#fleet.reportFailure(plan.node, failure);
        if (isFileFault(failure)) throw this.#holdFailure(resolved.id, plan.node, failure);
        if (failure.code === "insufficient_memory" && !replanned.has(plan.node)) {
          // The plan saw room the neuron does not have: another replica loaded something since
          // the last poll. Plan that node once more on a fresh read (it may now need a victim).
          replanned.add(plan.node);
          await this.#fleet.refresh(plan.node);
          lastError = failure;
          continue;
        }
        tried.add(plan.node);
        lastError = failure;
      }
    }
  }

  /**
   * A profile with a `source` that no usable node holds the file of: one
   * node pulls it first (the live one allowed by affinity with the most free
   * device memory), and the load goes on there. Requests wait on it as on
   * any cold load; a pull that fails is held like a load that failed on
   * the file.
   */
  async #pullIfMissing(
    resolved: ResolvedModel,
    tried: ReadonlySet<string>,
    only: string | undefined,
  ): Promise<void> {
    const profile = resolved.profile;
    if (profile?.source === undefined) return;
    const view = this.#fleet.view();
    if (view.nodes.some((node) => node.loaded.some((model) => model.id === resolved.id))) return;
    const usable = view.nodes.filter(
      (node) =>
        isLive(node) &&
        !tried.has(node.name) &&
        (only === undefined || node.name === only) &&
        (profile.affinity.length === 0 || profile.affinity.includes(node.name)) &&
        node.devices.filter((device) => !device.poisoned).length >= profile.devices,
    );
    const holds = (node: (typeof usable)[number]) => {
      const file = profileFileOn(profile, node);
      return file !== undefined && node.available.some((model) => model.file === file);
    };
    if (usable.length === 0 || usable.some(holds)) return;
    const free = (node: (typeof usable)[number]) =>
      node.devices.reduce((sum, device) => sum + (device.poisoned ? 0 : device.memoryFree), 0);
    const node = usable.reduce((best, next) => (free(next) > free(best) ? next : best)).name;
    const client = this.#fleet.client(node);
    this.#log.info(`${resolved.id}: ${node} lacks its file; pulling ${profile.source} there first`);
    let status: PullStatus;
    try {
      status = await client.pull({ source: profile.source });
      while (status.state !== "done" && status.state !== "failed") {
        await Bun.sleep(this.#pullPollMs);
        const id: string = status.id;
        status = (await client.pulls()).find((pull) => pull.id === id) ?? {
          ...status,
          state: "failed",
          error: `neuron ${node} no longer reports pull ${id}`,
        };
      }
    } catch (error) {
      throw this.#holdFailure(resolved.id, node, classifyNeuronError(error, node));
    }
    if (status.state === "failed")
      throw this.#holdFailure(
        resolved.id,
        node,
        new CortexError(
          "load_failed",
          `pulling ${profile.source} on ${node} failed: ${status.error ?? "unknown"}`,
        ),
      );
    await this.#fleet.refresh(node);
  }

  #holdFailure(modelId: string, node: string, failure: CortexError): CortexError {
    const seconds = Math.round(LOAD_FAILURE_HOLD_MS / 1000);
    const network = failure.details?.network;
    const reason =
      typeof network === "string"
        ? `neuron ${node} dropped the connection while loading ${modelId} (${network}; did the file crash it?)`
        : failure.message;
    const error = new CortexError(
      "load_failed",
      `${reason}; not tried on other nodes, loads of ${modelId} are refused for ${seconds} s`,
      { cause: failure, retryAfterS: seconds, details: { model: modelId, node } },
    );
    this.#heldFailures.set(modelId, { error, until: this.#now() + LOAD_FAILURE_HOLD_MS });
    this.#log.error(`${modelId}: load failed on the file itself; holding its loads for ${seconds} s`);
    return error;
  }

  /**
   * A plan that evicts, or a refusal because the room is held by busy models,
   * rests on last-use times and in-flight counts, which change between polls
   * (a request that just ended still counts as in flight; one that just ran
   * still looks idle). Such a decision is made again on a fresh read of the
   * live nodes; a load costs far more than the read.
   */
  async #freshPlan(
    resolved: ResolvedModel,
    tried: ReadonlySet<string>,
    only: string | undefined,
    lastError: CortexError | undefined,
  ): Promise<PlacementPlan> {
    try {
      const plan = this.#plan(resolved, tried, only, lastError);
      if (plan.victims.length === 0) return plan;
    } catch (error) {
      if (
        !(
          error instanceof CortexError &&
          error.code === "unavailable" &&
          error.details?.needBytes !== undefined
        )
      )
        throw error;
    }
    const live = this.#fleet.view().nodes.filter(isLive);
    await Promise.all(live.map((node) => this.#fleet.refresh(node.name)));
    return this.#plan(resolved, tried, only, lastError);
  }

  #plan(
    resolved: ResolvedModel,
    tried: ReadonlySet<string>,
    only: string | undefined,
    lastError: CortexError | undefined,
  ): PlacementPlan {
    const view = this.#fleet.view();
    // A copy that became ready since the caller looked (another replica's load, a pull finished):
    // "load" it there, which the neuron answers at once (loads are idempotent), instead of
    // planning around it and finding no node left.
    const ready = pickLoadedNode(view, resolved.id, { exclude: tried });
    const loading = ready ?? findLoadingCopy(view, resolved.id, { exclude: tried });
    if (loading !== undefined && (only === undefined || loading.node === only))
      // Another load (a replica's, or ours before a restart) is under way: join it; loads are idempotent.
      return {
        node: loading.node,
        file: loading.model.file,
        devices: [...loading.model.devices],
        victims: [],
        needBytes: loading.model.memoryBytes,
        freeBytes: 0,
      };
    if (resolved.profile === undefined)
      throw (
        lastError ??
        new CortexError(
          "model_not_found",
          `${resolved.id} is no longer loaded anywhere and has no profile to load it by`,
          {
            param: "model",
          },
        )
      );
    const result = planPlacements(resolved.profile, view, this.#strategy, {
      exclude: tried,
      ...(only === undefined ? {} : { only }),
    });
    if (result.ok) return result.plans[0]!;
    // Room held by busy models for now (seen on a fresh read after the neuron refused the load)
    // is the answer to give, whatever the refusal said.
    if (
      lastError === undefined ||
      (result.error.code === "unavailable" && result.error.details?.needBytes !== undefined)
    )
      throw result.error;
    if (lastError.code === "conflict")
      // A victim turned out busy (another gateway replica's requests, or a copy it just loaded for
      // them): the room is taken for now, as when planning finds it held by busy models.
      throw new CortexError(
        "unavailable",
        `${lastError.message}; no other node can load ${resolved.id} now`,
        {
          cause: lastError,
          retryAfterS: lastError.retryAfterS ?? 1,
          details: { model: resolved.id },
        },
      );
    const code = lastError.code === "insufficient_memory" ? "insufficient_memory" : "load_failed";
    throw new CortexError(code, `${lastError.message}; no other node can load ${resolved.id}`, {
      cause: lastError,
      details: { model: resolved.id },
    });
  }

  async #execute(
    resolved: ResolvedModel,
    plan: PlacementPlan,
  ): Promise<{ node: string; model: LoadedModel }> {
    const profile = resolved.profile;
    const endPending = this.#fleet.state.beginLoad(plan.node, {
      id: resolved.id,
      file: plan.file,
      devices: plan.devices,
      memoryBytes: plan.needBytes,
      contextSize: profile?.context_size ?? 0,
      slots: profile?.slots ?? 1,
      pinned: profile?.pinned ?? false,
      priority: profile?.priority ?? 0,
    });
    const startedAt = this.#now();
    try {
      for (const victim of plan.victims)
        await this.#fleet.unload(plan.node, victim.id, {
          reason: "make_room",
          detail: `to load ${resolved.id}`,
        });
      const request: LoadRequest = {
        id: resolved.id,
        file: plan.file,
        ...(profile === undefined
          ? {}
          : {
              contextSize: profile.context_size,
              slots: profile.slots,
              deviceCount: profile.devices,
              pinned: profile.pinned,
              priority: profile.priority,
            }),
        ...(plan.devices.length > 0 ? { devices: plan.devices } : {}),
        ...(plan.needBytes > 0 ? { memoryEstimateBytes: plan.needBytes } : {}),
      };
      this.#log.info(
        `loading ${resolved.id} on ${plan.node} (${plan.devices.join(", ") || "any device"}, ~${formatBytes(plan.needBytes)})`,
      );
      const response = await this.#fleet.client(plan.node).load(request, { timeoutMs: this.#loadTimeoutMs });
      this.#fleet.state.applyLoaded(plan.node, response.model);
      const model = await this.#untilReady(plan.node, response.model, startedAt);
      this.#log.info(
        `loaded ${resolved.id} on ${plan.node} in ${((this.#now() - startedAt) / 1000).toFixed(1)} s`,
      );
      void this.#fleet.refresh(plan.node);
      return { node: plan.node, model };
    } catch (error) {
      throw classifyNeuronError(error, plan.node);
    } finally {
      endPending();
    }
  }

  /** A neuron may answer a load before the model is ready; re-read the node until it is. */
  async #untilReady(node: string, model: LoadedModel, startedAt: number): Promise<LoadedModel> {
    let current: LoadedModel | undefined = model;
    while (current?.state === "loading") {
      if (this.#now() - startedAt > this.#loadTimeoutMs)
        throw new CortexError("timeout", `neuron ${node} still loading ${model.id} after the load timeout`);
      await Bun.sleep(this.#loadingPollMs);
      await this.#fleet.refresh(node);
      current = this.#fleet
        .view()
        .nodes.find((n) => n.name === node)
        ?.loaded.find((m) => m.id === model.id);
    }
    if (current === undefined)
      throw new CortexError("load_failed", `neuron ${node} dropped ${model.id} while loading it`);
    if (current.state !== "ready")
      throw new CortexError(
        "load_failed",
        `neuron ${node} could not load ${model.id}: ${current.error ?? current.state}`,
        { details: { node } },
      );
    return current;
  }
}
