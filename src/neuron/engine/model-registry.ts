/**
 * The one owner of the neuron's model state: which models exist, their
 * lifecycle state, their queues and slots in use. `/models` and `/health`
 * are derived from it and nothing else, so a model removed by any path
 * (unload, recycle, a poisoned device, a TP recovery, a crashed Worker)
 * disappears from both at once; there is no second table to drift.
 *
 * Every state change is a guarded transition of the lifecycle machine
 * (model-lifecycle.ts) with a compare-and-swap, and every removal goes
 * through `drop`, which fails what is queued, wakes unload waiters and
 * reports the removal once.
 */
import { CortexError, type WireError } from "../../core/errors.ts";
import type { LoadedModel, ModelState } from "../../core/neuron-api.ts";
import { type LifecycleEvent, type LifecycleState, nextState } from "../model-lifecycle.ts";
import type { TpGroup } from "../tp/group-driver.ts";
import type { SequenceStream } from "./sequence-stream.ts";
import { groupShareBytes } from "./tp-placement.ts";
import type { GenerateParams, LoadOptions, ModelInfo } from "./types.ts";

export interface QueuedRequest {
  seqKey: number;
  params: GenerateParams;
  channel: SequenceStream;
}

export interface ModelEntry {
  info: ModelInfo;
  /** The request it was loaded with: a recycle reloads a pinned model from it. */
  readonly load: LoadOptions;
  state: ModelState;
  pinned: boolean;
  priority: number;
  /** Why the model is `failed` (a device fault, a recycle under way). */
  error: string | undefined;
  /** The device that runs its decode steps (a group's leader). */
  deviceId: string;
  inFlight: number;
  queue: QueuedRequest[];
  maxQueue: number;
  lastUsed: number;
  /** Resolve when the model is idle (nothing running or queued) or gone; unload waits on them. */
  idleWaiters: Array<() => void>;
  /** KV cells its live sequences hold, as of the last step. */
  kvTokens: number;
  group: TpGroup | undefined;
  /** Settles when the load under way does (callers of an idempotent load wait on it). */
  loading: Promise<ModelInfo> | undefined;
}

export interface TransitionRecord {
  id: string;
  from: LifecycleState;
  to: LifecycleState;
  event: LifecycleEvent;
  at: number;
}

export interface RegistryHooks {
  /** Every transition, in order (the neuron logs them). */
  transition?(record: TransitionRecord): void;
  /** A model left the registry for a reason other than an unload someone asked for. */
  lost?(id: string, reason: string): void;
}

export class ModelRegistry {
  readonly #models = new Map<string, ModelEntry>();
  readonly #hooks: RegistryHooks;
  readonly #watchers = new Set<() => void>();

  constructor(hooks: RegistryHooks = {}) {
    this.#hooks = hooks;
  }

  /**
   * Calls `watcher` after every change to what `describe()` reports (state,
   * in-flight and queued counts, KV use); returns the unsubscribe.
   */
  watch(watcher: () => void): () => void {
    this.#watchers.add(watcher);
    return () => this.#watchers.delete(watcher);
  }

  /** Something `describe()` reports changed: tell the watchers. */
  changed(): void {
    for (const watcher of this.#watchers) watcher();
  }

  get(id: string): ModelEntry | undefined {
    return this.#models.get(id);
  }

  values(): IterableIterator<ModelEntry> {
    return this.#models.values();
  }

  /** The models that hold memory on a device (as leader or group member). */
  onDevice(deviceId: string): ModelEntry[] {
    return [...this.#models.values()].filter((m) => m.info.deviceIds.includes(deviceId));
  }

  /** Bytes the models hold on a device: a whole model on its own device, a group's share on each member. */
  bytesOn(deviceId: string): number {
    let used = 0;
    for (const m of this.#models.values()) {
      if (m.group) used += groupShareBytes(m.info.memoryBytes, m.group, deviceId);
      else if (m.deviceId === deviceId) used += m.info.memoryBytes;
    }
    return used;
  }

  /** Registers a model whose load is starting; refused while the id is taken. */
  add(entry: ModelEntry): void {
    const existing = this.#models.get(entry.info.id);
    if (existing)
      throw new CortexError("conflict", `model ${entry.info.id} is ${existing.state}`, { retryAfterS: 1 });
    this.#models.set(entry.info.id, entry);
    this.#record(entry.info.id, "absent", "loading", "load");
    this.changed();
  }

  /**
   * Applies `event` if the machine allows it (and, when given, only from
   * `expected`); returns whether it did. Reaching `absent` removes the entry.
   */
  transition(entry: ModelEntry, event: LifecycleEvent, expected?: ModelState): boolean {
    if (this.#models.get(entry.info.id) !== entry) return false;
    const from = entry.state;
    if (expected !== undefined && from !== expected) return false;
    const to = nextState(from, event);
    if (to === undefined) return false;
    if (to === "absent") this.#models.delete(entry.info.id);
    else entry.state = to;
    this.#record(entry.info.id, from, to, event);
    this.changed();
    return true;
  }

  /** Marks a model failed (its device faulted or is being recycled): it takes no requests until it is back. */
  fail(entry: ModelEntry, reason: string, error: WireError): void {
    if (!this.transition(entry, "fault")) return;
    entry.error = reason;
    failQueue(entry, error);
    this.changed();
  }

  /**
   * Removes a model: queued requests get `error`, unload waiters wake, and
   * unless the removal was an unload someone asked for (`lost` false) it is
   * reported once as lost, so the gateway loads it again on demand.
   */
  drop(entry: ModelEntry, reason: string, options: { lost: boolean; error?: WireError }): void {
    if (this.#models.get(entry.info.id) !== entry) return;
    failQueue(
      entry,
      options.error ??
        new CortexError("unavailable", `model ${entry.info.id} was unloaded: ${reason}`).toWire(),
    );
    // unloading --unloaded--> absent; any other state goes through failed.
    if (entry.state !== "unloading" && entry.state !== "failed") this.transition(entry, "fault");
    this.transition(entry, "unloaded");
    wakeIdle(entry);
    if (options.lost) this.#hooks.lost?.(entry.info.id, reason);
  }

  /** Every model in the neuron API's shape, derived from this table alone. */
  describe(): LoadedModel[] {
    return [...this.#models.values()].map((m) => ({
      id: m.info.id,
      file: m.load.file ?? m.info.path,
      state: m.state,
      devices: m.info.deviceIds,
      contextSize: m.info.contextSize,
      slots: m.info.slots,
      lastUsed: m.lastUsed,
      loadedAt: m.info.loadedAt,
      inFlight: m.inFlight,
      queued: m.queue.length,
      memoryBytes: m.info.memoryBytes,
      pinned: m.pinned,
      priority: m.priority,
      ...(m.error === undefined ? {} : { error: m.error }),
    }));
  }

  /** Empties the table (the engine is closing); queued requests get `error`. */
  clear(error: WireError): void {
    for (const entry of this.#models.values()) {
      failQueue(entry, error);
      wakeIdle(entry);
    }
    this.#models.clear();
    this.changed();
  }

  #record(id: string, from: LifecycleState, to: LifecycleState, event: LifecycleEvent): void {
    this.#hooks.transition?.({ id, from, to, event, at: Date.now() });
  }
}

/** The entry a model has while its load runs; the load's result fills in the rest of its info. */
export function loadingEntry(
  options: LoadOptions,
  deviceIds: string[],
  sizing: { contextSize: number; slots: number },
): ModelEntry {
  const now = Date.now();
  return {
    info: {
      id: options.id,
      path: options.path,
      deviceIds,
      contextSize: sizing.contextSize,
      slots: sizing.slots,
      trainedContextSize: 0,
      chatTemplate: null,
      bosToken: "",
      eosToken: "",
      addBos: false,
      memoryBytes: 0,
      description: "",
      loadedAt: now,
    },
    load: options,
    state: "loading",
    pinned: options.pinned ?? false,
    priority: options.priority ?? 0,
    error: undefined,
    // The leader (first device) runs the model's decode steps.
    deviceId: deviceIds[0] ?? "",
    inFlight: 0,
    queue: [],
    maxQueue: options.maxQueue ?? sizing.slots * 4,
    lastUsed: now,
    idleWaiters: [],
    kvTokens: 0,
    group: undefined,
    loading: undefined,
  };
}

/** Ends every queued request of a model with `error`. */
export function failQueue(entry: ModelEntry, error: WireError): void {
  for (const queued of entry.queue.splice(0)) queued.channel.push({ type: "error", error });
}

/** Wakes everyone waiting for the model to go idle (or away). */
export function wakeIdle(entry: ModelEntry): void {
  for (const wake of entry.idleWaiters.splice(0)) wake();
}

/** Resolves when the model has nothing running or queued, or is gone. */
export function untilIdle(entry: ModelEntry): Promise<void> {
  return new Promise<void>((resolve) => entry.idleWaiters.push(resolve));
}
