/**
 * Main-thread API of the engine: one Worker per device, models placed on
 * devices, admission (slots + bounded wait queue) and generation streams.
 * Nothing native runs on this thread; every native call is a job sent to the
 * device's Worker.
 */
import { statSync } from "node:fs";
import { availableParallelism, freemem, totalmem } from "node:os";
import { consola } from "consola";
import { discoverCudaDevices } from "../../../ffi/cuda.ts";
import { type NativeProcess, prepareNativeProcess } from "../../../ffi/native-process.ts";
import { findNcclLibrary, ncclMissingMessage } from "../../../ffi/nccl.ts";
import type { ShimSources } from "../../../ffi/shim.ts";
import { CortexError, errorMessage, toCortexError, type WireError } from "../../core/errors.ts";
import type { DeviceInfo, LoadedModel, ModelState } from "../../core/neuron-api.ts";
import { within } from "../../core/within.ts";
import { workerUrl } from "../../core/worker-url.ts";
import { startWorker } from "../../core/worker-thread.ts";
import { type Aborter, createWorkerAborter } from "../tp/aborter.ts";
import type { CommunicatorBackendName } from "../tp/communicator.ts";
import { formGroup } from "../tp/form-group.ts";
import type { RankPort, TpRankCall } from "../tp/rank-client.ts";
import {
  createTpCounters,
  exitForSupervisor,
  type FatalReport,
  type RecoveryHooks,
  StepWatchdog,
  type TpCounters,
  type TpLogger,
  type WatchdogTimings,
  watchdogTimingsFromEnv,
} from "../tp/step-watchdog.ts";
import { oneBindingAtATime } from "./binding-turns.ts";
import {
  type ChatRenderInput,
  type ChatToolInput,
  renderChatTemplate,
  type TemplateReadyMessage,
  templateMessages,
} from "./chat-template.ts";
import type {
  GroupStepResult,
  JobMap,
  JobType,
  MainToWorker,
  StepStats,
  WorkerInit,
  WorkerToMain,
} from "./protocol.ts";
import { SequenceStream } from "./sequence-stream.ts";
import { toolCallTransform } from "./tool-call-parser.ts";
import { chooseGroupDevices, ggmlCudaNames, groupShareBytes } from "./tp-placement.ts";
import type { EngineObserver, GenerateParams, GenerationEvent, LoadOptions, ModelInfo } from "./types.ts";

export interface DevicePoolOptions {
  /** Restrict to these device ids (`cpu-0`, `cuda-dev-1`); default: every device found. */
  devices?: string[];
  /** Caps usable memory per device (tests use it to force 507s and evictions). */
  memoryLimitBytes?: number;
  /**
   * Folder of the native set (else CORTEX_NATIVE_DIR, `native/` beside the
   * executable, node_modules). Native set-up is once per process: the first
   * pool's choice holds for later ones.
   */
  nativeDir?: string;
  /** shim.c and headers extracted by the compiled executable; default: the repo's ffi/. */
  shimSources?: ShimSources;
  /** Worker entry module; the compiled executable passes its embedded path. */
  workerUrl?: string | URL;
  /** Allows `injectFault` (tests, CI). */
  faultInjection?: boolean;
  /**
   * CPU threads per device Worker; default: all cores but one for the CPU
   * device (ggml's spinning threads starve the main thread otherwise), 2 for GPUs.
   */
  threads?: number;
  /**
   * CPU mode: how many CPU devices to expose (`cpu-0` … `cpu-<n-1>`), each
   * its own Worker, so tensor-parallel groups run on CPU (shm communicator).
   * Default 1.
   */
  cpuDevices?: number;
  /** Fault-injection spec handed to every tensor-parallel rank (tp/fault-injection.ts); "" = none. */
  faultSpec?: string;
  /** Step watchdog timings of tensor-parallel groups; default: the NEURON_TP_* environment. */
  tpTimings?: Partial<WatchdogTimings>;
  /** Stage 2 sink; default exitForSupervisor (the process exits 70). `fatalReason` is set first either way. */
  onFatal?: (report: FatalReport) => void;
  /** A model the pool dropped on its own (Stage 1 recovery); the service forgets it so the gateway reloads on demand. */
  onModelLost?: (id: string, reason: string) => void;
  /** Watchdog log sink (tests capture it); default consola. */
  tpLogger?: TpLogger;
  /** Metrics hooks. */
  observer?: EngineObserver;
}

interface DeviceSpec {
  id: string;
  kind: "cpu" | "cuda";
  index: number;
  name: string;
  uuid?: string;
  computeCapability?: string;
  memoryTotal: number;
}

interface PendingJob {
  resolve(value: unknown): void;
  reject(error: CortexError): void;
}

interface Device {
  spec: DeviceSpec;
  worker: Worker;
  ready: Promise<void>;
  jobs: Map<number, PendingJob>;
  sequences: Map<number, ActiveSequence>;
  poisonReason: string | undefined;
  loadCycles: number;
  abortFlag: SharedArrayBuffer;
  closed: boolean;
  /** Resolves when the Worker thread has closed. */
  exited: Promise<void>;
  /** The tensor-parallel group this device belongs to. */
  groupId: string | undefined;
  /** The Worker's OS thread id, once ready. */
  threadId: number | undefined;
}

/** A model spread over several devices: the leader runs it, every member joins the per-step collective. */
interface TpGroup {
  id: string;
  modelId: string;
  kind: "cpu" | "cuda";
  /** Leader first. */
  deviceIds: string[];
  specs: DeviceSpec[];
  backend: CommunicatorBackendName;
  watchdog: StepWatchdog;
  /** A step loop is running. */
  pumping: boolean;
  /** Another step is due (work submitted, resumed, cancelled, or the last step left some). */
  wantStep: boolean;
  /** Set by unload/close: no new steps. */
  closing: boolean;
  /** The running step loop, if any. */
  pumpDone: Promise<void> | undefined;
}

interface ActiveSequence {
  model: ModelEntry;
  channel: SequenceStream;
}

interface QueuedRequest {
  seqKey: number;
  params: GenerateParams;
  channel: SequenceStream;
}

interface ModelEntry {
  info: ModelInfo;
  state: ModelState;
  deviceId: string;
  inFlight: number;
  queue: QueuedRequest[];
  maxQueue: number;
  lastUsed: number;
  /** Resolves when inFlight reaches 0 (unload waits on it). */
  idleWaiters: Array<() => void>;
  /** KV cells its live sequences hold, as of the last step. */
  kvTokens: number;
  group?: TpGroup;
}

const DEFAULT_CONTEXT = 4096;

let nextJobId = 1;
let nextSeqKey = 1;
let nextCallPrefix = 1;
let nextGroup = 1;

function ggmlLogLevel(): number {
  // consola: 4 debug, 5 trace; ggml: 1 debug, 2 info, 3 warn.
  if (consola.level >= 5) return 1;
  if (consola.level >= 4) return 2;
  return 3;
}

export class DevicePool {
  readonly #options: DevicePoolOptions;
  readonly #native: NativeProcess;
  readonly #devices = new Map<string, Device>();
  readonly #models = new Map<string, ModelEntry>();
  readonly #groups = new Map<string, TpGroup>();
  /** Stage 1 recoveries under way; a load waits for them (the devices come back fresh). */
  readonly #recoveries = new Set<Promise<unknown>>();
  readonly #tpTimings: WatchdogTimings;
  #aborter: Aborter | undefined;
  #fatalReason: string | undefined;
  #closed = false;
  /** Watchdog counters of this pool's groups (the metrics read them). */
  readonly tpCounters: TpCounters = createTpCounters();

  private constructor(options: DevicePoolOptions, native: NativeProcess) {
    this.#options = options;
    this.#native = native;
    this.#tpTimings = { ...watchdogTimingsFromEnv(), ...options.tpTimings };
  }

  /** Set when a group's watchdog gave up (Stage 2): the neuron is about to exit and must report unhealthy. */
  get fatalReason(): string | undefined {
    return this.#fatalReason;
  }

  /** Discovers devices, starts one Worker each and waits until all have loaded the native set. */
  static async start(options: DevicePoolOptions = {}): Promise<DevicePool> {
    const cuda = discoverCudaDevices();
    const native = prepareNativeProcess({
      ...(options.nativeDir ? { nativeDir: options.nativeDir } : {}),
      ...(options.shimSources ? { shimSources: options.shimSources } : {}),
      cudaAvailable: cuda.length > 0,
      logLevel: ggmlLogLevel(),
    });
    let specs: DeviceSpec[] =
      native.set.flavor === "cuda" && cuda.length > 0
        ? cuda.map((d) => ({
            id: `cuda-dev-${d.index}`,
            kind: "cuda" as const,
            index: d.index,
            name: d.name,
            uuid: d.uuid,
            computeCapability: d.computeCapability,
            memoryTotal: d.memoryTotal,
          }))
        : Array.from({ length: Math.max(1, options.cpuDevices ?? 1) }, (_, index) => ({
            id: `cpu-${index}`,
            kind: "cpu" as const,
            index,
            name: "CPU",
            memoryTotal: totalmem(),
          }));
    if (cuda.length > 0 && native.set.flavor !== "cuda")
      consola.info(`${cuda.length} CUDA device(s) found but the native set is CPU-only; using cpu-0`);
    if (options.devices) {
      const wanted = new Set(options.devices);
      specs = specs.filter((s) => wanted.has(s.id));
      if (specs.length === 0)
        throw new CortexError("invalid_request", `none of the devices ${options.devices.join(", ")} exist`);
    }
    const pool = new DevicePool(options, native);
    try {
      await Promise.all(specs.map((spec) => pool.#startDevice(spec)));
    } catch (error) {
      await pool.close();
      throw error;
    }
    return pool;
  }

  #startDevice(spec: DeviceSpec): Promise<void> {
    const url =
      this.#options.workerUrl ??
      workerUrl("neuron/engine/device-worker.ts", new URL("./device-worker.ts", import.meta.url));
    const worker = startWorker(url, spec.id);
    const abortFlag = new SharedArrayBuffer(4);
    let exitedResolve!: () => void;
    const exited = new Promise<void>((resolve) => {
      exitedResolve = resolve;
    });
    let readyResolve!: () => void;
    let readyReject!: (error: CortexError) => void;
    const ready = new Promise<void>((resolve, reject) => {
      readyResolve = resolve;
      readyReject = reject;
    });
    const device: Device = {
      spec,
      worker,
      ready,
      jobs: new Map(),
      sequences: new Map(),
      poisonReason: undefined,
      loadCycles: 0,
      abortFlag,
      closed: false,
      exited,
      groupId: undefined,
      threadId: undefined,
    };
    this.#devices.set(spec.id, device);
    worker.onmessage = (event: MessageEvent<WorkerToMain>) => {
      const message = event.data;
      if (message.type === "ready") {
        consola.debug(`${spec.id}: ready (${message.systemInfo.trim()})`);
        device.threadId = message.threadId;
        readyResolve();
        return;
      }
      if (message.type === "init-failed") {
        readyReject(CortexError.fromWire(message.error));
        return;
      }
      this.#onWorkerMessage(device, message);
    };
    worker.onerror = (event) => {
      this.#poison(device, `worker crashed: ${event.message}`);
      readyReject(
        new CortexError("device_fault", `${spec.id}: worker crashed while starting: ${event.message}`),
      );
    };
    worker.addEventListener("close", () => {
      exitedResolve();
      if (!device.closed) this.#poison(device, "worker exited unexpectedly");
      readyReject(new CortexError("device_fault", `${spec.id}: worker exited while starting`));
    });
    const init: WorkerInit = {
      deviceId: spec.id,
      gpuIndex: spec.kind === "cuda" ? spec.index : -1,
      libllama: this.#native.set.libllama,
      shimAddresses: this.#native.shimAddresses,
      abortFlag,
      logLevel: ggmlLogLevel(),
      faultInjection: this.#options.faultInjection ?? false,
      threads: this.#options.threads ?? (spec.kind === "cpu" ? this.#cpuThreads() : 2),
    };
    return oneBindingAtATime(() => {
      this.#post(device, { type: "init", init });
      return ready;
    });
  }

  /** All cores but one, shared by the CPU devices (ggml's spinning threads starve the main thread otherwise). */
  #cpuThreads(): number {
    const cpuDevices = Math.max(1, this.#options.cpuDevices ?? 1);
    return Math.max(1, Math.floor((availableParallelism() - 1) / cpuDevices));
  }

  #post(device: Device, message: MainToWorker): void {
    device.worker.postMessage(message);
  }

  #onWorkerMessage(device: Device, message: WorkerToMain): void {
    switch (message.type) {
      case "result": {
        const job = device.jobs.get(message.jobId);
        device.jobs.delete(message.jobId);
        if (!job) return;
        if (message.ok) job.resolve(message.value);
        else job.reject(CortexError.fromWire(message.error));
        return;
      }
      case "seq": {
        const active = device.sequences.get(message.seqKey);
        if (!active) return;
        const final = message.event.type === "done" || message.event.type === "error";
        const event = message.event;
        if (event.type === "done")
          this.#observe(() => this.#options.observer?.sequenceDone?.(active.model.info.id, event.usage));
        active.channel.push(message.event);
        if (final) {
          device.sequences.delete(message.seqKey);
          this.#sequenceEnded(active.model);
        }
        return;
      }
      case "fault":
        this.#poison(device, message.reason);
        return;
      case "step":
        this.#recordStep(this.#models.get(message.modelId), message, false);
        return;
      case "ready":
      case "init-failed":
        return;
      default: {
        const unknown: never = message;
        consola.warn(`unknown worker message ${JSON.stringify(unknown)}`);
      }
    }
  }

  #poison(device: Device, reason: string): void {
    if (device.closed || device.poisonReason) return;
    device.poisonReason = reason;
    consola.error(`${device.spec.id}: device fault: ${reason}; poisoned until recycled`);
    const error = new CortexError("device_fault", `${device.spec.id} failed: ${reason}`);
    // A crashed Worker cannot end its sequences itself.
    for (const [key, active] of device.sequences) {
      active.channel.push({ type: "error", error: error.toWire() });
      device.sequences.delete(key);
      this.#sequenceEnded(active.model);
    }
    for (const model of this.#models.values()) {
      if (model.deviceId !== device.spec.id) continue;
      model.state = "failed";
      for (const queued of model.queue.splice(0))
        queued.channel.push({ type: "error", error: error.toWire() });
    }
  }

  #job<K extends JobType>(device: Device, job: JobMap[K]["job"]): Promise<JobMap[K]["result"]> {
    return this.#request(device, (jobId) => ({ type: "job", jobId, job })) as Promise<JobMap[K]["result"]>;
  }

  /** Posts a message answered by one `result` and waits for it. */
  #request(device: Device, message: (jobId: number) => MainToWorker): Promise<unknown> {
    if (device.closed)
      return Promise.reject(new CortexError("unavailable", `${device.spec.id} is shut down`));
    const jobId = nextJobId++;
    return new Promise((resolve, reject) => {
      device.jobs.set(jobId, { resolve, reject });
      this.#post(device, message(jobId));
    });
  }

  /** A step's KV use and metrics, whether the Worker stepped on its own or a group's watchdog drove it. */
  #recordStep(model: ModelEntry | undefined, stats: StepStats, group: boolean): void {
    if (model) model.kvTokens = stats.kvTokens;
    const { modelId, batchSize, tokens, kvTokens, ms } = stats;
    this.#observe(() => this.#options.observer?.step?.({ modelId, batchSize, tokens, kvTokens, ms, group }));
  }

  #observe(call: () => void): void {
    try {
      call();
    } catch (error) {
      consola.debug(`engine observer failed: ${errorMessage(error)}`);
    }
  }

  #device(id: string): Device {
    const device = this.#devices.get(id);
    if (!device) throw new CortexError("not_found", `no device ${id}`);
    return device;
  }

  #usedBytes(deviceId: string): number {
    let used = 0;
    for (const m of this.#models.values()) {
      if (m.group) used += groupShareBytes(m.info.memoryBytes, m.group, deviceId);
      else if (m.deviceId === deviceId) used += m.info.memoryBytes;
    }
    return used;
  }

  #memory(device: Device): { total: number; free: number } {
    const cap = this.#options.memoryLimitBytes;
    const total = cap === undefined ? device.spec.memoryTotal : Math.min(cap, device.spec.memoryTotal);
    const used = this.#usedBytes(device.spec.id);
    let free = Math.max(0, total - used);
    if (cap === undefined && device.spec.kind === "cpu") free = Math.min(free, freemem());
    return { total, free };
  }

  /** Devices with memory as cortex may use it, and their poison state. */
  devices(): DeviceInfo[] {
    return [...this.#devices.values()].map((d) => {
      const mem = this.#memory(d);
      return {
        id: d.spec.id,
        kind: d.spec.kind,
        index: d.spec.index,
        name: d.spec.name,
        ...(d.spec.uuid === undefined ? {} : { uuid: d.spec.uuid }),
        ...(d.spec.computeCapability === undefined ? {} : { computeCapability: d.spec.computeCapability }),
        memoryTotal: mem.total,
        memoryFree: mem.free,
        poisoned: d.poisonReason !== undefined,
        ...(d.poisonReason === undefined ? {} : { poisonReason: d.poisonReason }),
        loadCycles: d.loadCycles,
        ...(d.threadId === undefined || d.threadId < 0 ? {} : { threadId: d.threadId }),
      };
    });
  }

  /** Loaded models in the neuron API's shape (pinning and priority are the service's). */
  models(): Array<Omit<LoadedModel, "pinned" | "priority">> {
    return [...this.#models.values()].map((m) => ({
      id: m.info.id,
      file: m.info.path,
      state: m.state,
      devices: m.info.deviceIds,
      contextSize: m.info.contextSize,
      slots: m.info.slots,
      lastUsed: m.lastUsed,
      loadedAt: m.info.loadedAt,
      inFlight: m.inFlight,
      queued: m.queue.length,
      memoryBytes: m.info.memoryBytes,
    }));
  }

  model(id: string): ModelInfo | undefined {
    return this.#models.get(id)?.info;
  }

  /** KV cells in use and KV capacity (context × slots) per loaded model, for metrics. */
  kvUsage(): Array<{ id: string; usedTokens: number; sizeTokens: number }> {
    return [...this.#models.values()].map((m) => ({
      id: m.info.id,
      usedTokens: m.kvTokens,
      sizeTokens: m.info.contextSize * m.info.slots,
    }));
  }

  /** Load-balancing and eviction inputs of one model. */
  modelStats(id: string): { inFlight: number; queued: number; lastUsed: number } | undefined {
    const m = this.#models.get(id);
    return m && { inFlight: m.inFlight, queued: m.queue.length, lastUsed: m.lastUsed };
  }

  /**
   * Loads a GGUF onto one device. Idempotent for the same id and path;
   * refuses with insufficient_memory (507) when the estimate does not fit.
   */
  async load(options: LoadOptions): Promise<ModelInfo> {
    this.#assertOpen();
    // A device being recovered comes back with a fresh Worker; wait rather than refuse.
    if (this.#recoveries.size > 0) await Promise.allSettled([...this.#recoveries]);
    this.#assertOpen();
    const existing = this.#models.get(options.id);
    if (existing) {
      if (existing.info.path === options.path && existing.state !== "failed") return existing.info;
      throw new CortexError("conflict", `model id ${options.id} is already used by ${existing.info.path}`);
    }
    const contextSize = options.contextSize ?? DEFAULT_CONTEXT;
    const slots = options.slots ?? 1;
    const count = options.deviceIds?.length ?? options.deviceCount ?? 1;
    let fileBytes: number;
    try {
      fileBytes = statSync(options.path).size;
    } catch (error) {
      throw new CortexError("load_failed", `model file not readable: ${options.path}`, { cause: error });
    }
    const needAtLeast = options.memoryEstimateBytes ?? fileBytes;
    if (count > 1) return this.#loadGroup(options, { contextSize, slots, count, needAtLeast });
    const candidates = options.deviceIds
      ? options.deviceIds.map((id) => this.#device(id))
      : [...this.#devices.values()].filter((d) => !d.poisonReason);
    const device = candidates.find((d) => !d.poisonReason && this.#memory(d).free >= needAtLeast);
    if (!device) {
      const poisoned = candidates.find((d) => d.poisonReason);
      if (poisoned && candidates.length === 1)
        throw new CortexError("device_fault", `${poisoned.spec.id} is poisoned (${poisoned.poisonReason})`);
      const best = Math.max(0, ...candidates.map((d) => this.#memory(d).free));
      throw new CortexError(
        "insufficient_memory",
        `${options.id} needs at least ${needAtLeast} bytes; the most free on any device is ${best}`,
        { details: { required_bytes: needAtLeast, free_bytes: best } },
      );
    }
    const entry = loadingEntry(options, [device.spec.id], { contextSize, slots });
    const budget = this.#memory(device).free;
    this.#models.set(options.id, entry);
    const started = performance.now();
    try {
      const result = await this.#job<"load">(device, {
        type: "load",
        modelId: options.id,
        path: options.path,
        contextSize,
        slots,
        memoryBudgetBytes: budget,
      });
      entry.info = { ...entry.info, ...result, loadedAt: Date.now() };
      entry.state = "ready";
      consola.info(
        `loaded ${options.id} on ${device.spec.id}: ${result.description}, ctx ${contextSize} × ${slots} slots, ~${Math.round(result.memoryBytes / 2 ** 20)} MiB`,
      );
      const ms = performance.now() - started;
      this.#observe(() => this.#options.observer?.modelLoaded?.(options.id, ms, entry.info.deviceIds));
      return entry.info;
    } catch (error) {
      this.#models.delete(options.id);
      throw error;
    }
  }

  /** Forms a tensor-parallel group over `count` devices and loads the model on its leader. */
  async #loadGroup(
    options: LoadOptions,
    sizing: { contextSize: number; slots: number; count: number; needAtLeast: number },
  ): Promise<ModelInfo> {
    const { contextSize, slots, count } = sizing;
    const chosen = chooseGroupDevices(
      [...this.#devices.values()].map((d) => ({
        id: d.spec.id,
        kind: d.spec.kind,
        free: this.#memory(d).free,
        poisoned: d.poisonReason !== undefined || d.closed,
        busy: d.groupId !== undefined || this.#usedBytes(d.spec.id) > 0 || this.#hostsModel(d.spec.id),
      })),
      {
        modelId: options.id,
        count,
        needBytes: sizing.needAtLeast,
        ...(options.deviceIds ? { deviceIds: options.deviceIds } : {}),
      },
    );
    const members = chosen.map((c) => this.#device(c.id));
    const leader = members[0]!;
    const kind = leader.spec.kind;
    const groupId = `tp${nextGroup++}`;
    for (const m of members) m.groupId = groupId;
    const deviceIds = members.map((m) => m.spec.id);
    const entry = loadingEntry(options, deviceIds, { contextSize, slots });
    this.#models.set(options.id, entry);
    const started = performance.now();
    let formed = false;
    try {
      const backend = this.#groupBackend(kind);
      const { handles } = await formGroup({
        groupId,
        backend: backend.name,
        ports: members.map((m) => this.#rankPort(m)),
        ...(backend.libraryPath === undefined
          ? {}
          : { libraryPath: backend.libraryPath, memory: "cuda" as const }),
        ...(kind === "cuda" ? { deviceOrdinals: members.map((m) => m.spec.index) } : {}),
        faults: this.#options.faultSpec ?? "",
        timeoutMs: Math.max(30_000, this.#tpTimings.stepTimeoutMs),
      });
      formed = true;
      this.#aborter ??= createWorkerAborter();
      if (backend.libraryPath !== undefined) await this.#aborter.warm([backend.libraryPath]);
      const budget =
        kind === "cuda"
          ? members.reduce((sum, m) => sum + this.#memory(m).free, 0)
          : this.#memory(leader).free;
      const result = await this.#job<"load">(leader, {
        type: "load",
        modelId: options.id,
        path: options.path,
        contextSize,
        slots,
        memoryBudgetBytes: budget,
        driven: true,
        ...(kind === "cuda" ? { splitDevices: ggmlCudaNames(members.map((m) => m.spec.index)) } : {}),
      });
      const identity = { id: groupId, modelId: options.id, deviceIds, specs: members.map((m) => m.spec) };
      const watchdog = new StepWatchdog({
        group: { groupId, model: options.id, devices: deviceIds },
        handles,
        aborter: this.#aborter,
        raiseAbortFlag: () => Atomics.store(new Int32Array(leader.abortFlag), 0, 1),
        recovery: this.#recoveryHooks(identity),
        onFatal: (report) => this.#onFatal(report),
        timings: this.#tpTimings,
        counters: this.tpCounters,
        ...(this.#options.tpLogger ? { logger: this.#options.tpLogger } : {}),
      });
      watchdog.markReady();
      const group: TpGroup = {
        ...identity,
        kind,
        backend: backend.name,
        watchdog,
        pumping: false,
        wantStep: false,
        closing: false,
        pumpDone: undefined,
      };
      this.#groups.set(groupId, group);
      entry.group = group;
      entry.info = { ...entry.info, ...result, loadedAt: Date.now() };
      entry.state = "ready";
      consola.info(
        `loaded ${options.id} on tensor-parallel group ${groupId} [${deviceIds.join(",")}] (${backend.name}): ${result.description}, ctx ${contextSize} × ${slots} slots, ~${Math.round(result.memoryBytes / 2 ** 20)} MiB`,
      );
      const ms = performance.now() - started;
      this.#observe(() => this.#options.observer?.modelLoaded?.(options.id, ms, deviceIds));
      return entry.info;
    } catch (error) {
      this.#models.delete(options.id);
      if (formed) {
        await Promise.all(members.map((m) => this.#tpCall(m, { type: "tp-leave" }).catch(() => undefined)));
        for (const m of members) m.groupId = undefined;
      } else {
        // A rank that never joined may be stuck in init: give every member a fresh Worker.
        consola.error(
          `tensor-parallel group ${groupId} did not form: ${errorMessage(error)}; restarting [${deviceIds.join(",")}]`,
        );
        await this.#replaceDevices(members, this.#tpTimings.graceMs).catch((e: unknown) =>
          consola.error(`restarting [${deviceIds.join(",")}] failed: ${errorMessage(e)}`),
        );
      }
      throw error;
    }
  }

  #hostsModel(deviceId: string): boolean {
    for (const m of this.#models.values()) if (m.info.deviceIds.includes(deviceId)) return true;
    return false;
  }

  /** nccl between CUDA devices when libnccl is found, else the shm communicator (CPU groups always). */
  #groupBackend(kind: "cpu" | "cuda"): { name: CommunicatorBackendName; libraryPath?: string } {
    if (kind === "cpu") return { name: "shm" };
    const lookup = findNcclLibrary();
    if (lookup.path) return { name: "nccl", libraryPath: lookup.path };
    consola.warn(ncclMissingMessage(lookup));
    return { name: "shm" };
  }

  #tpCall(device: Device, call: TpRankCall): Promise<unknown> {
    return this.#request(device, (jobId) => ({ type: "tp", jobId, call }));
  }

  #rankPort(device: Device): RankPort {
    return {
      request: (call) => this.#tpCall(device, call),
      terminate: (timeoutMs) => this.#terminateDevice(device, timeoutMs ?? 5_000),
    };
  }

  /** Terminates a device's Worker without asking it anything; rejects if the thread has not closed in time. */
  async #terminateDevice(device: Device, timeoutMs: number): Promise<void> {
    if (!device.closed) {
      device.closed = true;
      const gone = new CortexError("unavailable", `${device.spec.id} was restarted`);
      for (const job of device.jobs.values()) job.reject(gone);
      device.jobs.clear();
      for (const [key, active] of device.sequences) {
        active.channel.push({ type: "error", error: gone.toWire() });
        device.sequences.delete(key);
        this.#sequenceEnded(active.model);
      }
      device.worker.terminate();
    }
    await within(
      device.exited,
      timeoutMs,
      () => new CortexError("timeout", `${device.spec.id}: Worker did not close within ${timeoutMs} ms`),
    );
  }

  /** Fresh Workers on the same devices (the old ones are terminated first). */
  async #replaceDevices(devices: readonly Device[], timeoutMs: number): Promise<void> {
    await Promise.all(devices.map((d) => this.#terminateDevice(d, timeoutMs)));
    await this.#startFresh(devices.map((d) => d.spec));
  }

  /** A new Worker for each of `specs` whose device was terminated (or is gone). */
  async #startFresh(specs: readonly DeviceSpec[]): Promise<void> {
    if (this.#closed) return;
    await Promise.all(
      specs.map((spec) => {
        if (this.#devices.get(spec.id)?.closed) this.#devices.delete(spec.id);
        return this.#devices.has(spec.id) ? undefined : this.#startDevice(spec);
      }),
    );
  }

  /** Stage 1, as the watchdog runs it: each hook is bounded by the grace period there. */
  #recoveryHooks(group: Pick<TpGroup, "id" | "modelId" | "deviceIds" | "specs">): RecoveryHooks {
    const current = () => group.deviceIds.map((id) => this.#devices.get(id)).filter((d) => d !== undefined);
    return {
      unload: async () => {
        const leader = this.#devices.get(group.deviceIds[0]!);
        if (!leader) throw new CortexError("unavailable", "the leader device is gone");
        await this.#job<"unload">(leader, { type: "unload", modelId: group.modelId });
      },
      terminateWorkers: async () => {
        await Promise.all(current().map((d) => this.#terminateDevice(d, this.#tpTimings.graceMs)));
      },
      startWorkers: () => this.#startFresh(group.specs),
      reportUnloaded: (reason) => {
        this.#groups.delete(group.id);
        const model = this.#models.get(group.modelId);
        if (model?.group?.id === group.id) {
          this.#models.delete(group.modelId);
          for (const wake of model.idleWaiters.splice(0)) wake();
        }
        this.#options.onModelLost?.(group.modelId, reason);
      },
    };
  }

  #onFatal(report: FatalReport): void {
    this.#fatalReason = `tp watchdog Stage 2 on ${report.group.groupId} (${report.group.model}): ${report.reason}`;
    const sink = this.#options.onFatal ?? exitForSupervisor();
    sink(report);
  }

  /** Asks for another step of a group's model, starting its step loop if idle. */
  #kick(model: ModelEntry): void {
    const group = model.group;
    if (!group || group.closing) return;
    group.wantStep = true;
    if (group.pumping) return;
    group.pumping = true;
    group.pumpDone = this.#pump(model, group).finally(() => {
      group.pumping = false;
    });
  }

  /** The group's step loop: one watched step at a time while work remains. */
  async #pump(model: ModelEntry, group: TpGroup): Promise<void> {
    while (
      group.wantStep &&
      !group.closing &&
      !this.#closed &&
      model.state !== "failed" &&
      group.watchdog.state === "ready"
    ) {
      group.wantStep = false;
      let result: GroupStepResult;
      try {
        const meta = { batchSize: model.inFlight, tokens: model.inFlight };
        result = await group.watchdog.runStep((step) => this.#groupStep(group, step, meta), meta);
      } catch (error) {
        this.#groupStepFailed(model, group, error);
        return;
      }
      this.#recordStep(model, result, true);
      if (result.more) group.wantStep = true;
    }
  }

  /** One step: the followers' collective and the leader's collective + forward; resolves with the leader's reply. */
  #groupStep(
    group: TpGroup,
    step: number,
    meta: { batchSize: number; tokens: number },
  ): Promise<GroupStepResult> {
    const members = group.deviceIds.map((id) => this.#device(id));
    for (const follower of members.slice(1))
      this.#tpCall(follower, { type: "tp-step", step, ...meta }).catch(() => undefined);
    return this.#request(members[0]!, (jobId) => ({
      type: "group-step",
      jobId,
      modelId: group.modelId,
      step,
      ...meta,
    })) as Promise<GroupStepResult>;
  }

  /**
   * A step failed. A device fault (the watchdog fired) poisons the group:
   * every request on it ends with the watchdog's error, and Stage 1 runs in
   * the watchdog. Anything else ends the model's running requests only.
   */
  #groupStepFailed(model: ModelEntry, group: TpGroup, error: unknown): void {
    const cortex = toCortexError(error);
    const leader = this.#devices.get(group.deviceIds[0]!);
    if (cortex.code === "device_fault") {
      model.state = "failed";
      const reason = `tensor-parallel group ${group.id} is poisoned: ${cortex.message}`;
      for (const id of group.deviceIds) {
        const device = this.#devices.get(id);
        if (device && !device.poisonReason) device.poisonReason = reason;
      }
      const recovery = group.watchdog.recovery;
      if (recovery) {
        this.#recoveries.add(recovery);
        void recovery.finally(() => this.#recoveries.delete(recovery));
      }
    }
    const wire = cortex.toWire();
    for (const queued of model.queue.splice(0)) queued.channel.push({ type: "error", error: wire });
    if (!leader) return;
    for (const [key, active] of leader.sequences) {
      if (active.model !== model) continue;
      active.channel.push({ type: "error", error: wire });
      leader.sequences.delete(key);
      // A healthy group keeps stepping: free the slot in the Worker too.
      if (cortex.code !== "device_fault" && !leader.closed)
        this.#post(leader, { type: "cancel", seqKey: key });
      this.#sequenceEnded(model);
    }
  }

  /**
   * Unloads a model. Waits for in-flight sequences unless `force`, which
   * ends them with an `unavailable` error; queued requests get that error at once.
   */
  async unload(id: string, options: { force?: boolean } = {}): Promise<void> {
    const model = this.#models.get(id);
    if (!model) throw new CortexError("model_not_found", `model ${id} is not loaded`);
    if (model.state === "unloading") {
      await new Promise<void>((resolve) => model.idleWaiters.push(resolve));
      return;
    }
    model.state = "unloading";
    const gone = new CortexError("unavailable", `model ${id} is being unloaded`, { retryAfterS: 1 });
    for (const queued of model.queue.splice(0)) queued.channel.push({ type: "error", error: gone.toWire() });
    const device = this.#device(model.deviceId);
    if (!options.force && model.inFlight > 0 && !device.poisonReason)
      await new Promise<void>((resolve) => model.idleWaiters.push(resolve));
    if (model.group) {
      await this.#unloadGroup(model, model.group);
      return;
    }
    try {
      if (!device.poisonReason && !device.closed)
        await this.#job<"unload">(device, { type: "unload", modelId: id });
    } finally {
      this.#models.delete(id);
      device.loadCycles++;
      for (const wake of model.idleWaiters.splice(0)) wake();
    }
  }

  /** Normal teardown of a group: stop stepping, unload on the leader, every rank leaves; the Workers stay. */
  async #unloadGroup(model: ModelEntry, group: TpGroup): Promise<void> {
    group.closing = true;
    await group.pumpDone;
    const recovery = group.watchdog.recovery;
    if (recovery) {
      // The watchdog fired: Stage 1 unloads and drops the model itself.
      await recovery;
      return;
    }
    const members = group.deviceIds.map((id) => this.#devices.get(id)).filter((d) => d !== undefined);
    try {
      const leader = members[0];
      if (leader && !leader.closed)
        await this.#job<"unload">(leader, { type: "unload", modelId: model.info.id });
      await Promise.all(members.map((m) => this.#tpCall(m, { type: "tp-leave" }).catch(() => undefined)));
    } finally {
      group.watchdog.close("unloaded");
      this.#groups.delete(group.id);
      for (const m of members) {
        if (m.groupId === group.id) m.groupId = undefined;
        m.loadCycles++;
      }
      this.#models.delete(model.info.id);
      for (const wake of model.idleWaiters.splice(0)) wake();
    }
  }

  /**
   * Starts a generation. Throws synchronously when the request cannot be
   * admitted (model_not_found, unavailable, rate_limited, device_fault).
   * Errors found by the Worker (context_length_exceeded, bad prompt) arrive
   * as the stream's first and only event, so read one event before
   * committing response headers. The signal cancels the sequence within one
   * decode step and frees its slot; the stream then errors with the signal's reason.
   */
  generate(id: string, params: GenerateParams, signal?: AbortSignal): ReadableStream<GenerationEvent> {
    this.#assertOpen();
    const model = this.#models.get(id);
    if (!model) throw new CortexError("model_not_found", `model ${id} is not loaded`);
    const device = this.#device(model.deviceId);
    if (device.poisonReason)
      throw new CortexError(
        "device_fault",
        model.group
          ? `model ${id} is unavailable: ${device.poisonReason}; it is being unloaded and will load again on demand`
          : `${device.spec.id} is poisoned (${device.poisonReason}); recycle it`,
        { retryAfterS: model.group ? 5 : 1 },
      );
    if (model.state !== "ready")
      throw new CortexError("unavailable", `model ${id} is ${model.state}`, { retryAfterS: 1 });
    if (model.inFlight >= model.info.slots && model.queue.length >= model.maxQueue)
      throw new CortexError(
        "rate_limited",
        `model ${id} is busy: ${model.inFlight} running, ${model.queue.length} waiting`,
        {
          retryAfterS: Math.max(1, Math.ceil(model.queue.length / model.info.slots)),
        },
      );
    signal?.throwIfAborted();
    const seqKey = nextSeqKey++;
    const channel = new SequenceStream(
      () => this.#cancel(model, seqKey),
      (pause) => {
        const device = this.#devices.get(model.deviceId);
        if (device?.sequences.has(seqKey) && !device.closed) {
          this.#post(device, { type: pause ? "pause" : "resume", seqKey });
          if (!pause) this.#kick(model);
        }
      },
    );
    const request: QueuedRequest = { seqKey, params, channel };
    model.lastUsed = Date.now();
    if (model.inFlight < model.info.slots) this.#dispatch(model, device, request);
    else model.queue.push(request);
    signal?.addEventListener(
      "abort",
      () => {
        this.#cancel(model, seqKey);
        channel.fail(signal.reason);
      },
      { once: true },
    );
    if (!params.parseToolCalls) return channel.stream;
    return channel.stream.pipeThrough(toolCallTransform(`call_${nextCallPrefix++}_`));
  }

  #dispatch(model: ModelEntry, device: Device, request: QueuedRequest): void {
    model.inFlight++;
    device.sequences.set(request.seqKey, { model, channel: request.channel });
    this.#post(device, {
      type: "submit",
      seqKey: request.seqKey,
      modelId: model.info.id,
      params: request.params,
    });
    this.#kick(model);
  }

  #cancel(model: ModelEntry, seqKey: number): void {
    const queuedAt = model.queue.findIndex((q) => q.seqKey === seqKey);
    if (queuedAt >= 0) {
      model.queue.splice(queuedAt, 1);
      return;
    }
    const device = this.#devices.get(model.deviceId);
    if (device?.sequences.has(seqKey) && !device.closed) {
      this.#post(device, { type: "cancel", seqKey });
      this.#kick(model);
    }
  }

  #sequenceEnded(model: ModelEntry): void {
    model.inFlight--;
    model.lastUsed = Date.now();
    const device = this.#devices.get(model.deviceId);
    while (device && !device.poisonReason && model.inFlight < model.info.slots && model.queue.length > 0) {
      const next = model.queue.shift()!;
      if (next.channel.ended) continue;
      this.#dispatch(model, device, next);
    }
    if (model.inFlight === 0 && model.queue.length === 0)
      for (const wake of model.idleWaiters.splice(0)) wake();
  }

  /** Prompt tokens of a rendered prompt, as generate would count them. */
  async countTokens(id: string, prompt: string): Promise<number> {
    const model = this.#models.get(id);
    if (!model) throw new CortexError("model_not_found", `model ${id} is not loaded`);
    const { tokens } = await this.#job<"count-tokens">(this.#device(model.deviceId), {
      type: "count-tokens",
      modelId: id,
      prompt,
    });
    return tokens;
  }

  /** renderPrompt for OpenAI-shaped messages (content parts, arguments as JSON strings). */
  renderChat(id: string, input: ChatRenderInput): Promise<string> {
    return this.renderPrompt(
      id,
      templateMessages(input.messages),
      input.tools ?? [],
      input.addGenerationPrompt,
    );
  }

  /**
   * Renders template-ready messages with the model's own chat template, or
   * llama.cpp's built-in chatml when the GGUF has none (tools are then not
   * rendered).
   */
  async renderPrompt(
    id: string,
    messages: readonly TemplateReadyMessage[],
    tools: readonly ChatToolInput[] = [],
    addGenerationPrompt = true,
  ): Promise<string> {
    const model = this.#models.get(id);
    if (!model) throw new CortexError("model_not_found", `model ${id} is not loaded`);
    if (model.info.chatTemplate !== null)
      return renderChatTemplate(
        model.info.chatTemplate,
        { messages, tools, addGenerationPrompt },
        model.info,
      );
    if (tools.length > 0) consola.warn(`${id} has no chat template; tools are not rendered into the prompt`);
    const { prompt } = await this.#job<"apply-builtin-template">(this.#device(model.deviceId), {
      type: "apply-builtin-template",
      template: "chatml",
      messages: messages.map((m) => ({ role: m.role, content: m.content })),
      addAssistant: addGenerationPrompt,
    });
    return prompt;
  }

  /** Clears a model's KV cache (only while it has nothing in flight). */
  async resetKv(id: string): Promise<void> {
    const model = this.#models.get(id);
    if (!model) throw new CortexError("model_not_found", `model ${id} is not loaded`);
    await this.#job<"reset-kv">(this.#device(model.deviceId), { type: "reset-kv", modelId: id });
  }

  /** Decode counters of a device since its Worker started (batching is visible here). */
  stats(deviceId: string): Promise<JobMap["stats"]["result"]> {
    return this.#job<"stats">(this.#device(deviceId), { type: "stats" });
  }

  /** Makes the device's next decode fail natively (abort path); needs `faultInjection`. */
  async injectFault(deviceId: string): Promise<void> {
    if (!this.#options.faultInjection) throw new CortexError("forbidden", "fault injection is not enabled");
    await this.#job<"inject-fault">(this.#device(deviceId), { type: "inject-fault", fault: "decode" });
  }

  /**
   * Terminates a device's Worker and starts a fresh one. Refused (409) while
   * a model on it has work in flight, unless the device is poisoned; models
   * on it are dropped and must be loaded again.
   */
  async recycle(deviceId: string): Promise<void> {
    this.#assertOpen();
    const device = this.#device(deviceId);
    const group = device.groupId === undefined ? undefined : this.#groups.get(device.groupId);
    if (group)
      throw new CortexError(
        "conflict",
        `${deviceId} belongs to tensor-parallel group ${group.id} serving ${group.modelId}; unload that model first`,
        { retryAfterS: 1 },
      );
    const onDevice = [...this.#models.values()].filter((m) => m.deviceId === deviceId);
    if (!device.poisonReason && onDevice.some((m) => m.inFlight > 0 || m.queue.length > 0))
      throw new CortexError("conflict", `${deviceId} has requests in flight; recycle it when idle`, {
        retryAfterS: 1,
      });
    for (const m of onDevice) {
      this.#models.delete(m.info.id);
      for (const wake of m.idleWaiters.splice(0)) wake();
    }
    await this.#stopDevice(device);
    this.#devices.delete(deviceId);
    await this.#startDevice(device.spec);
    consola.info(
      `${deviceId}: worker recycled${onDevice.length ? `; dropped ${onDevice.map((m) => m.info.id).join(", ")}` : ""}`,
    );
  }

  async #stopDevice(device: Device): Promise<void> {
    if (device.closed) return;
    if (!device.poisonReason) {
      // A responsive Worker frees its native state; a wedged one is just terminated.
      await Promise.race([
        this.#job<"shutdown">(device, { type: "shutdown" }).catch(() => undefined),
        new Promise((resolve) => setTimeout(resolve, 5000)),
      ]);
    }
    device.closed = true;
    const gone = new CortexError("unavailable", `${device.spec.id} shut down`);
    for (const job of device.jobs.values()) job.reject(gone);
    device.jobs.clear();
    for (const [key, active] of device.sequences) {
      active.channel.push({ type: "error", error: gone.toWire() });
      device.sequences.delete(key);
    }
    device.worker.terminate();
  }

  /** Stops every Worker; the pool is unusable afterwards. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    const gone: WireError = new CortexError("unavailable", "the engine is shutting down").toWire();
    for (const model of this.#models.values())
      for (const queued of model.queue.splice(0)) queued.channel.push({ type: "error", error: gone });
    this.#models.clear();
    for (const group of this.#groups.values()) {
      group.closing = true;
      group.watchdog.close("the engine is shutting down");
    }
    this.#groups.clear();
    await Promise.all([...this.#devices.values()].map((d) => this.#stopDevice(d)));
    this.#devices.clear();
    this.#aborter?.close();
    this.#aborter = undefined;
  }

  /** Number of live device Workers (0 after close). */
  get workerCount(): number {
    return [...this.#devices.values()].filter((d) => !d.closed).length;
  }

  #assertOpen(): void {
    if (this.#closed) throw new CortexError("unavailable", "the engine is shut down");
  }
}

/** The entry a model has while its load runs; the load's result fills in the rest of its info. */
function loadingEntry(
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
    state: "loading",
    // The leader (first device) runs the model's decode steps.
    deviceId: deviceIds[0] ?? "",
    inFlight: 0,
    queue: [],
    maxQueue: options.maxQueue ?? sizing.slots * 4,
    lastUsed: now,
    idleWaiters: [],
    kvTokens: 0,
  };
}
