/**
 * The gateway's store of fleet state.
 *
 * Source of truth: the neurons. What is loaded where, its state, its last use,
 * its pin and priority and its in-flight counts are whatever each neuron said
 * in its latest `/health` + `/models` answer (polled, and re-read right after
 * every load or unload). Nothing the gateway decides is kept only here, so
 * several gateway replicas in front of one fleet converge on the same picture
 * within one poll interval, and a restarted gateway loses nothing.
 *
 * On top of each node's snapshot the store keeps short-lived local deltas,
 * things this gateway did that the next poll has not shown yet:
 * - loads it has started (a `loading` entry holding their estimated memory),
 * - victims it is unloading (their memory counts as about to be free),
 * - requests it has sent (in-flight per copy; the view takes the larger of the
 *   neuron's count and ours, since the neuron's includes ours once it is seen),
 * - reservations (requests that waited on a load and have not reached the
 *   neuron yet; such a copy is never chosen as a victim).
 * Each delta is removed by the code that added it (the returned function), so
 * a lost poll never leaves one behind.
 */
import type { PullStatus } from "../../core/pull-api.ts";
import type { FleetNode } from "../../core/admin-api.ts";
import type {
  AvailableModel,
  DeviceInfo,
  HealthResponse,
  LoadedModel,
  ModelsResponse,
} from "../../core/neuron-api.ts";
import type { FleetModel, FleetNodeView, FleetSnapshot } from "./fleet-types.ts";
import {
  type NodeStateChange,
  type NodeStateListener,
  NodeStateMachine,
  stateFromHealth,
} from "./node-state.ts";

/** A load this gateway started and the neurons have not reported yet. */
export interface PendingLoad {
  id: string;
  file: string;
  devices: readonly string[];
  memoryBytes: number;
  contextSize: number;
  slots: number;
  pinned: boolean;
  priority: number;
}

interface NodeRecord {
  name: string;
  endpoint: string;
  machine: NodeStateMachine;
  version: string | undefined;
  lastSeen: number | undefined;
  error: string | undefined;
  devices: DeviceInfo[];
  loaded: LoadedModel[];
  available: AvailableModel[];
  /** The node's model pulls as of its last poll (docs/MODELS-PULL.md). */
  pulls: PullStatus[];
  /** Bumped by every local change to `loaded`, so a poll started earlier cannot undo it. */
  epoch: number;
  pendingLoads: Map<string, PendingLoad & { startedAt: number }>;
  unloading: Map<string, number>;
  inFlight: Map<string, number>;
  reserved: Map<string, number>;
  /** This node's view as of its last change (see FleetState.#views). */
  view: FleetNodeView | undefined;
  /** In-flight or reserved counts moved since `view` was built. */
  countsMoved: boolean;
  /** Gone from discovery: takes nothing new, and leaves once nothing of this gateway's runs there. */
  retired: boolean;
}

export interface FleetStateOptions {
  nodes: readonly { name: string; endpoint: string }[];
  now?: () => number;
}

export class FleetState {
  readonly #nodes = new Map<string, NodeRecord>();
  readonly #listeners = new Set<NodeStateListener>();
  readonly #changeListeners = new Set<(node: string) => void>();
  readonly #now: () => number;
  /** The node views as of the last change; every change clears it (see #changed, #countsMoved). */
  #nodeViews: FleetNodeView[] | undefined;

  constructor(options: FleetStateOptions) {
    this.#now = options.now ?? Date.now;
    for (const node of options.nodes) this.addNode(node);
  }

  /** A node joins (configured, or found by discovery): `unknown` until its first poll. */
  addNode(node: { name: string; endpoint: string }): void {
    if (this.#nodes.has(node.name))
      throw new Error(`node ${JSON.stringify(node.name)} is already in the fleet`);
    const record: NodeRecord = {
      name: node.name,
      endpoint: node.endpoint,
      machine: new NodeStateMachine(node.name, (change) => {
        this.#changed(record);
        this.#emit(change);
      }),
      version: undefined,
      lastSeen: undefined,
      error: undefined,
      devices: [],
      loaded: [],
      available: [],
      pulls: [],
      epoch: 0,
      pendingLoads: new Map(),
      unloading: new Map(),
      inFlight: new Map(),
      reserved: new Map(),
      view: undefined,
      countsMoved: false,
      retired: false,
    };
    this.#nodes.set(node.name, record);
    this.#nodeViews = undefined;
    this.#emitChange(node.name);
  }

  /** The same node at a new address (a restarted pod): its name, and so its pins and affinity, stay. */
  setEndpoint(node: string, endpoint: string): void {
    const record = this.#record(node);
    this.#changed(record);
    record.endpoint = endpoint;
    this.#emitChange(node);
  }

  /**
   * The node left discovery: it takes no new requests or loads (`draining`);
   * what this gateway runs there finishes. `removeNode` once `busy` is false.
   */
  retire(node: string, reason: string): void {
    const record = this.#record(node);
    this.#changed(record);
    record.retired = true;
    record.machine.moveTo("draining", reason);
    this.#emitChange(node);
  }

  /** Whether this gateway has requests, reservations, loads or unloads in progress on the node. */
  busy(node: string): boolean {
    const record = this.#nodes.get(node);
    if (record === undefined) return false;
    return (
      record.inFlight.size > 0 ||
      record.reserved.size > 0 ||
      record.pendingLoads.size > 0 ||
      record.unloading.size > 0
    );
  }

  removeNode(node: string): void {
    if (!this.#nodes.delete(node)) return;
    this.#nodeViews = undefined;
    this.#emitChange(node);
  }

  has(node: string): boolean {
    return this.#nodes.has(node);
  }

  /** Subscribes to node state changes; returns the unsubscribe function. */
  onStateChange(listener: NodeStateListener): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  /**
   * Subscribes to every change of a node's view (a poll's answer or failure,
   * a load or unload applied, the node marked down, a request, reservation or
   * unload begun or ended here), called after the change; returns the
   * unsubscribe function.
   */
  onChange(listener: (node: string) => void): () => void {
    this.#changeListeners.add(listener);
    return () => this.#changeListeners.delete(listener);
  }

  nodeNames(): string[] {
    return [...this.#nodes.keys()];
  }

  stateOf(node: string) {
    return this.#record(node).machine.state;
  }

  /** The epoch a poll must quote back to applyPoll. */
  epoch(node: string): number {
    return this.#record(node).epoch;
  }

  /**
   * A successful poll. Ignored when the node changed locally after the poll
   * began (its answer may predate a load we already applied).
   */
  applyPoll(node: string, health: HealthResponse, models: ModelsResponse, startedEpoch: number): void {
    const record = this.#nodes.get(node);
    // A poll that outlived its node (retired and removed meanwhile) has nothing to update.
    if (record === undefined) return;
    this.#changed(record);
    record.lastSeen = this.#now();
    record.version = health.version;
    record.error = undefined;
    record.available = models.available;
    record.pulls = models.pulls ?? [];
    // Free memory and the loaded list describe the same moment: take both or neither.
    if (startedEpoch === record.epoch) {
      record.devices = health.devices;
      record.loaded = mergeLoaded(health.loaded, models.loaded);
    }
    if (!record.retired) record.machine.moveTo(stateFromHealth(health), `neuron reports ${health.status}`);
    this.#emitChange(node);
  }

  applyPollFailure(node: string, error: string): void {
    const record = this.#nodes.get(node);
    if (record === undefined) return;
    this.#changed(record);
    record.error = error;
    record.machine.moveTo("down", error);
    this.#emitChange(node);
  }

  /** Takes a node out of routing until its next good poll (a proxied request could not connect). */
  markDown(node: string, reason: string): void {
    const record = this.#nodes.get(node);
    if (record === undefined) return;
    this.#changed(record);
    record.error = reason;
    record.machine.moveTo("down", reason);
    this.#emitChange(node);
  }

  /** A neuron confirmed a load: show it now, before the next poll. */
  applyLoaded(node: string, model: LoadedModel): void {
    const record = this.#record(node);
    this.#changed(record);
    record.epoch += 1;
    // Until the next poll, the devices' free memory must account for the new copy.
    if (!record.loaded.some((m) => m.id === model.id)) shiftFree(record, model.devices, -model.memoryBytes);
    record.loaded = [...record.loaded.filter((m) => m.id !== model.id), model];
    this.#emitChange(node);
  }

  /** A neuron confirmed an unload. */
  applyUnloaded(node: string, modelId: string): void {
    const record = this.#record(node);
    this.#changed(record);
    record.epoch += 1;
    const gone = record.loaded.find((m) => m.id === modelId);
    if (gone !== undefined) shiftFree(record, gone.devices, gone.memoryBytes);
    record.loaded = record.loaded.filter((m) => m.id !== modelId);
    this.#emitChange(node);
  }

  /** Records a load in progress; call the returned function when it settles. */
  beginLoad(node: string, load: PendingLoad): () => void {
    const record = this.#record(node);
    const entry = { ...load, startedAt: this.#now() };
    this.#changed(record);
    record.pendingLoads.set(load.id, entry);
    return once(() => {
      this.#changed(record);
      if (record.pendingLoads.get(load.id) === entry) record.pendingLoads.delete(load.id);
    });
  }

  /** Records an unload in progress (the model is no victim for anyone else). */
  beginUnload(node: string, modelId: string): () => void {
    const record = this.#record(node);
    return this.#count(record, record.unloading, modelId, () => this.#changed(record));
  }

  /** Records a request sent to a copy; call the returned function when its response ends. */
  beginRequest(node: string, modelId: string): () => void {
    const record = this.#record(node);
    return this.#count(record, record.inFlight, modelId, () => this.#countsMoved(record));
  }

  /** Protects a copy from eviction until the returned function is called. */
  reserve(node: string, modelId: string): () => void {
    const record = this.#record(node);
    return this.#count(record, record.reserved, modelId, () => this.#countsMoved(record));
  }

  /** The routing view: snapshots merged with local deltas (see the module comment). */
  view(): FleetSnapshot {
    return { now: this.#now(), nodes: this.#views() };
  }

  /** The `/admin/fleet` nodes: what the neurons said, plus loads in progress here. */
  fleetNodes(): FleetNode[] {
    const views = this.#views();
    return [...this.#nodes.values()].map((record, i) => {
      const view = views[i] as FleetNodeView;
      return {
        name: record.name,
        endpoint: record.endpoint,
        state: record.machine.state,
        ...(record.version === undefined ? {} : { version: record.version }),
        ...(record.lastSeen === undefined ? {} : { lastSeen: record.lastSeen }),
        ...(record.error === undefined ? {} : { error: record.error }),
        devices: record.devices,
        loaded: view.loaded.map(({ reserved: _reserved, ...model }) => model),
        ...(record.pulls.length === 0 ? {} : { pulls: record.pulls }),
      };
    });
  }

  /**
   * Views are rebuilt only after a change (several requests route between
   * two changes), and only for the node that changed; a request's in-flight
   * and reservation counts, which move several times per request, only
   * replace the copies whose counts moved. A view handed out is never
   * mutated, so callers may keep it.
   */
  #views(): FleetNodeView[] {
    if (this.#nodeViews !== undefined) return this.#nodeViews;
    const views: FleetNodeView[] = [];
    for (const record of this.#nodes.values()) {
      if (record.view === undefined) record.view = nodeView(record);
      else if (record.countsMoved) record.view = withCounts(record.view, record);
      record.countsMoved = false;
      views.push(record.view);
    }
    this.#nodeViews = views;
    return views;
  }

  #changed(record: NodeRecord): void {
    record.view = undefined;
    this.#nodeViews = undefined;
  }

  #countsMoved(record: NodeRecord): void {
    record.countsMoved = true;
    this.#nodeViews = undefined;
  }

  #count(record: NodeRecord, map: Map<string, number>, key: string, moved: () => void): () => void {
    moved();
    map.set(key, (map.get(key) ?? 0) + 1);
    this.#emitChange(record.name);
    return once(() => {
      moved();
      const next = (map.get(key) ?? 1) - 1;
      if (next <= 0) map.delete(key);
      else map.set(key, next);
      this.#emitChange(record.name);
    });
  }

  #record(node: string): NodeRecord {
    const record = this.#nodes.get(node);
    if (record === undefined) throw new Error(`unknown node ${JSON.stringify(node)}`);
    return record;
  }

  #emitChange(node: string): void {
    for (const listener of this.#changeListeners) {
      try {
        listener(node);
      } catch {
        // a listener's bug must not stop the fleet's bookkeeping
      }
    }
  }

  #emit(change: NodeStateChange): void {
    for (const listener of this.#listeners) {
      try {
        listener(change);
      } catch {
        // a listener's bug must not stop state changes
      }
    }
  }
}

/** `/health` and `/models` each list loaded models; the later answer wins per id. */
function mergeLoaded(fromHealth: LoadedModel[], fromModels: LoadedModel[]): LoadedModel[] {
  const byId = new Map<string, LoadedModel>();
  for (const model of [...fromHealth, ...fromModels]) byId.set(model.id, model);
  return [...byId.values()];
}

function nodeView(record: NodeRecord): FleetNodeView {
  const freeDelta = new Map<string, number>();
  const adjust = (devices: readonly string[], bytes: number) => {
    if (devices.length === 0) return;
    for (const device of devices)
      freeDelta.set(device, (freeDelta.get(device) ?? 0) + bytes / devices.length);
  };
  const snapshotIds = new Set(record.loaded.map((m) => m.id));
  const loaded: FleetModel[] = record.loaded.map((model) => {
    const unloading = record.unloading.has(model.id);
    if (unloading) adjust(model.devices, model.memoryBytes);
    return {
      ...model,
      state: unloading && model.state !== "failed" ? "unloading" : model.state,
      inFlight: inFlightOf(record, model.id, model.inFlight),
      reserved: reservedOf(record, model.id),
    };
  });
  for (const pending of record.pendingLoads.values()) {
    if (snapshotIds.has(pending.id)) continue;
    adjust(pending.devices, -pending.memoryBytes);
    loaded.push({
      id: pending.id,
      file: pending.file,
      state: "loading",
      devices: [...pending.devices],
      contextSize: pending.contextSize,
      slots: pending.slots,
      lastUsed: pending.startedAt,
      loadedAt: pending.startedAt,
      inFlight: inFlightOf(record, pending.id, 0),
      queued: 0,
      memoryBytes: pending.memoryBytes,
      pinned: pending.pinned,
      priority: pending.priority,
      reserved: reservedOf(record, pending.id),
    });
  }
  return {
    name: record.name,
    endpoint: record.endpoint,
    state: record.machine.state,
    devices: record.devices.map((device) => {
      const delta = freeDelta.get(device.id) ?? 0;
      return delta === 0
        ? device
        : { ...device, memoryFree: clamp(device.memoryFree + delta, 0, device.memoryTotal) };
    }),
    loaded,
    available: record.available,
  };
}

/** A copy's requests in flight: what its neuron reported, or what this gateway sent it since, if more. */
function inFlightOf(record: NodeRecord, modelId: string, reported: number): number {
  return Math.max(reported, record.inFlight.get(modelId) ?? 0);
}

/** Reservations this gateway holds on a copy (each keeps it from being evicted). */
function reservedOf(record: NodeRecord, modelId: string): number {
  return record.reserved.get(modelId) ?? 0;
}

/**
 * `view` (built by nodeView from `record` as it is now, but for its counts)
 * with the in-flight and reserved counts of now: the snapshot's copies come
 * first in it, in the snapshot's order, then the pending loads.
 */
function withCounts(view: FleetNodeView, record: NodeRecord): FleetNodeView {
  let moved = false;
  const loaded = view.loaded.map((model, i) => {
    const inFlight = inFlightOf(record, model.id, record.loaded[i]?.inFlight ?? 0);
    const reserved = reservedOf(record, model.id);
    if (inFlight === model.inFlight && reserved === model.reserved) return model;
    moved = true;
    return { ...model, inFlight, reserved };
  });
  return moved ? { ...view, loaded } : view;
}

/** Moves `bytes` of free memory (negative: taken), spread evenly over `devices`. */
function shiftFree(record: NodeRecord, devices: readonly string[], bytes: number): void {
  if (devices.length === 0 || bytes === 0) return;
  const share = bytes / devices.length;
  record.devices = record.devices.map((device) =>
    devices.includes(device.id)
      ? { ...device, memoryFree: clamp(device.memoryFree + share, 0, device.memoryTotal) }
      : device,
  );
}

function clamp(value: number, min: number, max: number): number {
  return Math.min(max, Math.max(min, value));
}

function once(fn: () => void): () => void {
  let done = false;
  return () => {
    if (done) return;
    done = true;
    fn();
  };
}
