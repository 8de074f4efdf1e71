/**
 * Builders for gateway routing tests, and an in-memory neuron that passes the
 * neuron contract's lifecycle and fault parts (tests/contract/neuron-contract.ts):
 * loads take memory from a device and refuse with 507 when it does not fit,
 * unloads give it back, a recycle keeps pinned models and drops the rest, and
 * a device fault degrades the node until the neuron recycles the device itself.
 */
import { ModelProfile } from "../../src/core/config/config-schema.ts";
import { CortexError } from "../../src/core/errors.ts";
import type {
  AvailableModel,
  DeviceInfo,
  HealthResponse,
  LoadedModel,
  LoadRequest,
  LoadResponse,
  ModelsResponse,
  PinRequest,
  RecycleRequest,
  UnloadRequest,
} from "../../src/core/neuron-api.ts";
import type { PullRequest, PullStatus, RemoveRequest } from "../../src/core/pull-api.ts";
import type { FleetModel, FleetNodeView, FleetSnapshot } from "../../src/gateway/fleet/fleet-types.ts";
import type { CallOptions, NeuronApi, UpstreamTarget } from "../../src/gateway/neuron-client.ts";

export const GiB = 1024 ** 3;
export const NOW = 1_700_000_000_000;

export function device(id: string, options: Partial<DeviceInfo> = {}): DeviceInfo {
  return {
    id,
    kind: "cuda",
    index: Number(id.split("-").at(-1) ?? 0),
    name: "GPU",
    memoryTotal: 24 * GiB,
    memoryFree: 24 * GiB,
    poisoned: false,
    loadCycles: 0,
    ...options,
  };
}

/** A ready, idle copy as a neuron reports it (in /health and /models). */
export function loadedModel(id: string, options: Partial<LoadedModel> = {}): LoadedModel {
  return {
    id,
    file: `${id}.gguf`,
    state: "ready",
    devices: ["cuda-dev-0"],
    contextSize: 8192,
    slots: 4,
    lastUsed: Date.now(),
    loadedAt: Date.now(),
    inFlight: 0,
    queued: 0,
    memoryBytes: GiB,
    pinned: false,
    priority: 0,
    ...options,
  };
}

/** A copy in the gateway's routing view, at the fixed clock NOW. */
export function model(id: string, options: Partial<FleetModel> = {}): FleetModel {
  return {
    ...loadedModel(id, { lastUsed: NOW - 60_000, loadedAt: NOW - 3_600_000, memoryBytes: 4 * GiB }),
    reserved: 0,
    ...options,
  };
}

/** A healthy neuron's /health answer: one 24 GiB GPU with 20 GiB free, nothing loaded. */
export function health(node: string, options: Partial<HealthResponse> = {}): HealthResponse {
  return {
    status: "ok",
    version: "test",
    node,
    startedAt: 0,
    devices: [device("cuda-dev-0", { memoryFree: 20 * GiB })],
    loaded: [],
    ...options,
  };
}

export function file(name: string, sizeBytes: number): AvailableModel {
  return { file: name, sizeBytes, architecture: "llama", hasChatTemplate: true };
}

export function node(name: string, options: Partial<FleetNodeView> = {}): FleetNodeView {
  return {
    name,
    endpoint: `http://${name}:13131`,
    state: "up",
    devices: [device("cuda-dev-0")],
    loaded: [],
    available: [],
    ...options,
  };
}

export function fleet(...nodes: FleetNodeView[]): FleetSnapshot {
  return { now: NOW, nodes };
}

export function profile(fields: Partial<ModelProfile> & { id: string }): ModelProfile {
  const { vram_estimate, ...rest } = fields;
  return { ...ModelProfile.parse({ file: `${fields.id}.gguf`, ...rest }), vram_estimate };
}

/** An in-memory neuron. Hooks let a test hold or fail loads. */
export class MemoryNeuron implements NeuronApi {
  readonly name: string;
  readonly endpoint: string;
  devices: DeviceInfo[];
  available: AvailableModel[];
  loaded: LoadedModel[] = [];
  status: HealthResponse["status"] = "ok";
  /** When set, every call fails with this (e.g. a network error). */
  down: Error | undefined;
  /** Runs before a load is applied; may wait or throw. */
  beforeLoad: ((request: LoadRequest) => Promise<void>) | undefined;
  readonly calls: {
    load: LoadRequest[];
    unload: UnloadRequest[];
    recycle: RecycleRequest[];
    pin: PinRequest[];
  } = {
    load: [],
    unload: [],
    recycle: [],
    pin: [],
  };

  constructor(name: string, options: { devices?: DeviceInfo[]; available?: AvailableModel[] } = {}) {
    this.name = name;
    this.endpoint = `http://${name}.test:13131`;
    this.devices = options.devices ?? [device("cuda-dev-0")];
    this.available = options.available ?? [];
  }

  target(path: string): UpstreamTarget {
    return { url: `${this.endpoint}${path}`, headers: {} };
  }

  async health(_options?: CallOptions): Promise<HealthResponse> {
    this.#check();
    // As a real neuron derives it: a poisoned device makes an otherwise healthy node degraded.
    const poisoned = this.devices.some((d) => d.poisoned);
    return {
      status: this.status === "ok" && poisoned ? "degraded" : this.status,
      version: "test",
      node: this.name,
      startedAt: 0,
      devices: structuredClone(this.devices),
      loaded: structuredClone(this.loaded),
    };
  }

  async models(_options?: CallOptions): Promise<ModelsResponse> {
    this.#check();
    return { available: structuredClone(this.available), loaded: structuredClone(this.loaded) };
  }

  async load(request: LoadRequest, _options?: CallOptions): Promise<LoadResponse> {
    this.#check();
    this.calls.load.push(request);
    await this.beforeLoad?.(request);
    this.#check();
    const id = request.id ?? request.file.replace(/\.gguf$/, "");
    const existing = this.loaded.find((m) => m.id === id);
    if (existing?.file === request.file) return { model: structuredClone(existing), alreadyLoaded: true };
    if (existing)
      throw new CortexError(
        "conflict",
        `neuron ${this.name}: model id ${id} is already loaded from ${existing.file}, not ${request.file}`,
      );
    if (!this.available.some((f) => f.file === request.file))
      throw new CortexError("not_found", `neuron ${this.name}: no file ${request.file}`);
    const bytes = request.memoryEstimateBytes ?? 1 * GiB;
    const targets = request.devices ?? [this.devices[0]!.id];
    const perDevice = bytes / targets.length;
    for (const target of targets) {
      const dev = this.devices.find((d) => d.id === target);
      if (dev?.poisoned)
        throw new CortexError(
          "device_fault",
          `neuron ${this.name}: ${target} is poisoned (${dev.poisonReason})`,
        );
      if (dev === undefined || dev.memoryFree < perDevice)
        throw new CortexError("insufficient_memory", `neuron ${this.name}: not enough memory on ${target}`);
    }
    for (const target of targets) {
      const dev = this.devices.find((d) => d.id === target)!;
      dev.memoryFree -= perDevice;
      dev.loadCycles += 1;
    }
    const loaded: LoadedModel = {
      id,
      file: request.file,
      state: "ready",
      devices: targets,
      contextSize: request.contextSize ?? 4096,
      slots: request.slots ?? 1,
      lastUsed: Date.now(),
      loadedAt: Date.now(),
      inFlight: 0,
      queued: 0,
      memoryBytes: bytes,
      pinned: request.pinned ?? false,
      priority: request.priority ?? 0,
    };
    this.loaded.push(loaded);
    return { model: structuredClone(loaded), alreadyLoaded: false };
  }

  async unload(request: UnloadRequest, _options?: CallOptions): Promise<void> {
    this.#check();
    this.calls.unload.push(request);
    const found = this.loaded.find((m) => m.id === request.id);
    if (found === undefined)
      throw new CortexError("model_not_found", `neuron ${this.name}: ${request.id} is not loaded`);
    // As the real neuron: an eviction spares a copy loaded just now that has served nothing yet.
    if (
      request.evict === true &&
      !request.force &&
      found.lastUsed <= found.loadedAt &&
      Date.now() - found.loadedAt < 10_000
    )
      throw new CortexError(
        "conflict",
        `neuron ${this.name}: ${request.id} was loaded just now; not evicted`,
        {
          retryAfterS: 1,
        },
      );
    this.#drop(found);
    for (const target of found.devices) this.devices.find((d) => d.id === target)!.loadCycles += 1;
  }

  async pin(request: PinRequest, _options?: CallOptions): Promise<void> {
    this.#check();
    this.calls.pin.push(request);
    const found = this.loaded.find((m) => m.id === request.id);
    if (found === undefined)
      throw new CortexError("model_not_found", `neuron ${this.name}: ${request.id} is not loaded`);
    found.pinned = request.pinned;
  }

  /** This fake serves no pulls: it answers as a neuron without them does. */
  async pull(_request: PullRequest, _options?: CallOptions): Promise<PullStatus> {
    this.#check();
    throw new CortexError("not_found", "model pulls are not enabled here");
  }

  async pulls(_options?: CallOptions): Promise<PullStatus[]> {
    this.#check();
    return [];
  }

  async remove(request: RemoveRequest, _options?: CallOptions): Promise<string[]> {
    this.#check();
    if (this.loaded.some((model) => model.file === request.file))
      throw new CortexError("conflict", `${request.file} is loaded`);
    const before = this.available.length;
    this.available = this.available.filter((model) => model.file !== request.file);
    if (this.available.length === before) throw new CortexError("not_found", `no GGUF file ${request.file}`);
    return [request.file];
  }

  async recycle(request: RecycleRequest, _options?: CallOptions): Promise<void> {
    this.#check();
    this.calls.recycle.push(request);
    const dev = this.devices.find((d) => d.id === request.device);
    if (dev === undefined)
      throw new CortexError("not_found", `neuron ${this.name}: no device ${request.device}`);
    this.#restart(dev);
  }

  /**
   * A native fault on `deviceId`, as a real neuron suffers one: the device is
   * poisoned (the node reports `degraded`) until the neuron recycles it, which
   * it does by itself once this turn of the event loop is over.
   */
  fault(deviceId: string, reason = "injected fault"): void {
    const dev = this.devices.find((d) => d.id === deviceId);
    if (dev === undefined) throw new Error(`neuron ${this.name} has no device ${deviceId}`);
    dev.poisoned = true;
    dev.poisonReason = reason;
    // The fake's behaviour, not a wait: the recycle comes after the current turn, as a real neuron's does.
    this.#recovering = new Promise<void>((resolve) => {
      setTimeout(() => {
        this.#restart(dev);
        resolve();
      }, 0);
    });
  }

  /** Resolves once the recycle a fault started has happened (the real neuron's DevicePool.untilRecovered). */
  untilRecovered(): Promise<void> {
    return this.#recovering;
  }

  #recovering: Promise<void> = Promise.resolve();

  /** A fresh device: the unpinned models on it are gone with their memory; the pinned ones are loaded again. */
  #restart(dev: DeviceInfo): void {
    for (const lost of this.loaded.filter((m) => m.devices.includes(dev.id) && !m.pinned)) this.#drop(lost);
    for (const kept of this.loaded.filter((m) => m.devices.includes(dev.id))) kept.loadedAt = Date.now();
    dev.poisoned = false;
    delete dev.poisonReason;
    dev.loadCycles = 0;
  }

  #drop(model: LoadedModel): void {
    this.loaded = this.loaded.filter((m) => m !== model);
    for (const target of model.devices) {
      const dev = this.devices.find((d) => d.id === target);
      if (dev) dev.memoryFree += model.memoryBytes / model.devices.length;
    }
  }

  #check(): void {
    if (this.down) throw this.down;
  }
}

/** A Bun-style connection refusal. */
export function refused(): Error {
  return Object.assign(new TypeError("ECONNREFUSED: Unable to connect"), { code: "ECONNREFUSED" });
}
