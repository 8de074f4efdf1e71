/**
 * Main-thread API of the engine: one Worker per device (device-handle.ts),
 * models placed on devices and their state (model-registry.ts, the one
 * owner), admission to slots (admission.ts), tensor-parallel groups
 * (tp/group-driver.ts) and generation streams. Nothing native runs on this
 * thread; every native call is a job sent to a device's Worker.
 *
 * A device that faults (a native failure, a crashed or vanished Worker) is
 * poisoned: its models turn `failed` and take no requests, and the pool
 * recycles it by itself with a fresh Worker, reporting its models lost so
 * they load again on demand. Tensor-parallel members are left to their
 * group's watchdog, which recovers them the same way.
 *
 * Why this file is still ~700 lines: what is left here is where device
 * lifecycle and model lifecycle meet, over the same devices and the same
 * registry (a recycle drops or reloads models; a load waits for a device's
 * recovery and places by free memory; a fault fails models). Everything that
 * needs only one side has its own module: the Worker handle, the registry,
 * admission and sequence dispatch, device discovery, TP groups.
 */
import { statSync } from "node:fs";
import { availableParallelism, freemem } from "node:os";
import { consola } from "consola";
import { cudaDriverVersion, cudaMemoryInfo, discoverCudaDevices } from "../../../ffi/cuda.ts";
import { type NativeProcess, prepareNativeProcess } from "../../../ffi/native-process.ts";
import type { ShimSources } from "../../../ffi/shim.ts";
import { ConfigError } from "../../core/config/config-error.ts";
import { CortexError, errorMessage, type WireError } from "../../core/errors.ts";
import type { DeviceInfo, LoadedModel } from "../../core/neuron-api.ts";
import { logFormat } from "../../core/logger.ts";
import { workerUrl } from "../../core/worker-url.ts";
import { type Aborter, createWorkerAborter } from "../tp/aborter.ts";
import { TP_FATAL_EXIT_CODE } from "../tp/fatal-exit.ts";
import { GroupDriver } from "../tp/group-driver.ts";
import {
  createTpCounters,
  DEFAULT_TIMINGS,
  exitForSupervisor,
  type FatalReport,
  type TpCounters,
  type TpLogger,
  type WatchdogTimings,
} from "../tp/step-watchdog.ts";
import { oneBindingAtATime } from "./binding-turns.ts";
import { checkCudaBackend } from "./cuda-check.ts";
import { cpuShare, deviceSpecs } from "./device-discovery.ts";
import { DeviceHandle, type DeviceSpec } from "./device-handle.ts";
import { usableMemory } from "./memory-estimate.ts";
import { loadingEntry, type ModelEntry, ModelRegistry, untilIdle } from "./model-registry.ts";
import type { EmbedInput, FimTokens, JobMap, StepStats, WorkerInit } from "./protocol.ts";
import { SequenceDispatch } from "./sequence-dispatch.ts";
import { chooseGroupDevices } from "./tp-placement.ts";
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
  /** Step watchdog timings of tensor-parallel groups (the config's neuron.*_s keys); default DEFAULT_TIMINGS. */
  tpTimings?: Partial<WatchdogTimings>;
  /** ggml's log level (1 debug, 2 info, 3 warn), from the configured log level; default 3. */
  ggmlLogLevel?: number;
  /** Stage 2 sink; default exitForSupervisor (the process exits 70). `fatalReason` is set first either way. */
  onFatal?: (report: FatalReport) => void;
  /** Watchdog log sink (tests capture it); default consola. */
  tpLogger?: TpLogger;
  /** Metrics hooks. */
  observer?: EngineObserver;
  /** Host-memory prompt cache per device Worker (prompt-cache.ts); default 0 = off. */
  promptCacheBytes?: number;
  /**
   * A node with GPUs whose CUDA backend did not come up runs as a CPU node
   * (WARN, and `cpuFallback` in /health) instead of refusing to start.
   */
  allowCpuFallback?: boolean;
  /** neuron.stall_timeout_s in ms: how long a sequence may stay paused for a slow reader (sequence-dispatch.ts). */
  stallTimeoutMs?: number;
}

const DEFAULT_CONTEXT = 4096;
/** How long a poisoned Worker may take to close before its device is restarted anyway. */
const POISONED_CLOSE_MS = 5_000;

export class DevicePool {
  readonly #options: DevicePoolOptions;
  readonly #native: NativeProcess;
  readonly #devices = new Map<string, DeviceHandle>();
  readonly #registry: ModelRegistry;
  readonly #groups: GroupDriver;
  readonly #sequences: SequenceDispatch;
  /** Device recoveries under way (a poisoned device, a TP Stage 1); a load waits for them. */
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
    this.#tpTimings = { ...DEFAULT_TIMINGS, ...options.tpTimings };
    this.#registry = new ModelRegistry({
      transition: (r) => consola.info(`model ${r.id}: ${r.from} -> ${r.to} (${r.event})`),
      lost: (id, reason) => consola.warn(`model ${id} dropped: ${reason}`),
    });
    this.#sequences = new SequenceDispatch({
      device: (id) => this.#devices.get(id),
      kick: (model) => this.#groups.kick(model),
      changed: () => this.#registry.changed(),
      paused: (model) => this.#observe(() => this.#options.observer?.sequencePaused?.(model.info.id)),
      ...(options.stallTimeoutMs === undefined ? {} : { stallTimeoutMs: options.stallTimeoutMs }),
    });
    this.#groups = new GroupDriver({
      registry: this.#registry,
      timings: this.#tpTimings,
      faultSpec: options.faultSpec ?? "",
      counters: this.tpCounters,
      logger: options.tpLogger,
      device: (id) => this.#devices.get(id),
      memoryFree: (device) => this.#memory(device).free,
      aborter: () => {
        this.#aborter ??= createWorkerAborter();
        return this.#aborter;
      },
      terminate: (devices, timeoutMs) => this.#terminate(devices, timeoutMs),
      startFresh: (specs) => this.#startFresh(specs),
      recordStep: (model, stats) => this.#recordStep(model, stats, true),
      sequenceEnded: (model) => this.#sequences.ended(model),
      trackRecovery: (recovery) => this.#trackRecovery(recovery),
      onFatal: (report) => this.#onFatal(report),
      isClosed: () => this.#closed,
    });
  }

  /** Set when a node with GPUs runs on the CPU (neuron.allow_cpu_fallback): why; /health shows it. */
  cpuFallback: string | undefined;

  /** Set when a group's watchdog gave up (Stage 2): the neuron is about to exit and must report unhealthy. */
  get fatalReason(): string | undefined {
    return this.#fatalReason;
  }

  /**
   * Discovers devices, starts one Worker each and waits until all have loaded
   * the native set. A node with GPUs whose CUDA backend did not come up is
   * refused (ConfigError: exit 2) unless `allowCpuFallback`.
   */
  static async start(options: DevicePoolOptions = {}): Promise<DevicePool> {
    const cuda = discoverCudaDevices();
    const native = prepareNativeProcess({
      ...(options.nativeDir ? { nativeDir: options.nativeDir } : {}),
      ...(options.shimSources ? { shimSources: options.shimSources } : {}),
      cudaAvailable: cuda.length > 0,
      logLevel: options.ggmlLogLevel ?? 3,
      // A CUDA error aborts inside ggml: its lines reach the log, and the exit is Stage 2's.
      fatal: { exitCode: TP_FATAL_EXIT_CODE, json: logFormat() === "json" },
    });
    const verdict = checkCudaBackend({
      cuda,
      driverVersion: cuda.length > 0 ? cudaDriverVersion() : undefined,
      set: native.set,
      backend: native.cuda,
      ggmlDevices: native.backendDevices,
    });
    let cpuFallback: string | undefined;
    if (verdict.kind === "refused") {
      if (!options.allowCpuFallback) {
        consola.error(`GPU node refused to start: ${verdict.reason}`);
        throw new ConfigError([
          `${verdict.reason}. This node has GPUs, so it will not serve on the CPU; fix the CUDA set-up, or set neuron.allow_cpu_fallback = true to run it as a CPU node`,
        ]);
      }
      cpuFallback = `CUDA backend unusable, running as a CPU node (neuron.allow_cpu_fallback): ${verdict.reason}`;
      consola.warn(cpuFallback);
    }
    const specs = deviceSpecs({
      cuda: verdict.kind === "gpu-node" ? verdict.devices : [],
      cpuDevices: options.cpuDevices ?? 1,
      ...(options.devices ? { only: options.devices } : {}),
    });
    const pool = new DevicePool(options, native);
    pool.cpuFallback = cpuFallback;
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
    const device = new DeviceHandle(spec, url, {
      sequenceEvent: (_device, active, event, final) => {
        if (event.type === "done")
          this.#observe(() => this.#options.observer?.sequenceDone?.(active.model.info.id, event.usage));
        active.channel.push(event);
        if (final) this.#sequences.ended(active.model);
      },
      step: (_device, stats) => this.#recordStep(this.#registry.get(stats.modelId), stats, false),
      prefixStats: (modelId, stats) =>
        this.#observe(() => this.#options.observer?.prefixReuse?.(modelId, stats)),
      fault: (faulty, reason) => this.#poison(faulty, reason),
    });
    this.#devices.set(spec.id, device);
    const init: WorkerInit = {
      deviceId: spec.id,
      gpuIndex: spec.kind === "cuda" ? spec.index : -1,
      libllama: this.#native.set.libllama,
      shimAddresses: this.#native.shimAddresses,
      abortFlag: device.abortFlag,
      logLevel: this.#options.ggmlLogLevel ?? 3,
      faultInjection: this.#options.faultInjection ?? false,
      promptCacheBytes: this.#options.promptCacheBytes ?? 0,
      threads: this.#options.threads ?? (spec.kind === "cpu" ? this.#cpuThreads() : 2),
    };
    return oneBindingAtATime(() => device.init(init));
  }

  /** All cores but one, shared by the CPU devices (ggml's spinning threads starve the main thread otherwise). */
  #cpuThreads(): number {
    const cpuDevices = Math.max(1, this.#options.cpuDevices ?? 1);
    return Math.max(1, Math.floor((availableParallelism() - 1) / cpuDevices));
  }

  /**
   * A device failed: it takes no work, its sequences and queued requests end
   * with `device_fault`, its models turn `failed`; a device outside a TP
   * group is then recycled by the pool itself.
   */
  #poison(device: DeviceHandle, reason: string): void {
    if (device.closed || device.poisonReason) return;
    device.poisonReason = reason;
    const standalone = device.groupId === undefined;
    consola.error(
      `${device.spec.id}: device fault: ${reason}; ${standalone && device.started ? "recycling it" : "poisoned"}`,
    );
    const error = new CortexError("device_fault", `${device.spec.id} failed: ${reason}`).toWire();
    device.failSequences(error, (active) => this.#sequences.ended(active.model));
    for (const model of [...this.#registry.values()])
      if (model.deviceId === device.spec.id)
        this.#registry.fail(model, `${device.spec.id} failed: ${reason}`, error);
    // A Worker that never became ready failed to start: that is the start's error, not something to retry.
    if (standalone && device.started && !this.#closed)
      this.#trackRecovery(this.#recoverPoisoned(device, reason));
  }

  /** A fresh Worker for a poisoned device; its models are reported lost and load again on demand. */
  async #recoverPoisoned(device: DeviceHandle, reason: string): Promise<void> {
    const why = `${device.spec.id} failed (${reason}) and was recycled`;
    await device
      .terminate(POISONED_CLOSE_MS, (active) => this.#sequences.ended(active.model))
      .catch((error: unknown) =>
        consola.error(`${device.spec.id}: ${errorMessage(error)}; starting a fresh Worker anyway`),
      );
    const error = new CortexError("device_fault", why, { retryAfterS: 1 }).toWire();
    for (const model of this.#registry.onDevice(device.spec.id))
      this.#registry.drop(model, why, { lost: true, error });
    try {
      await this.#startFresh([device.spec]);
      consola.info(`${device.spec.id}: a fresh Worker is ready after the fault`);
    } catch (failure) {
      consola.error(`${device.spec.id}: restarting after the fault failed: ${errorMessage(failure)}`);
    }
  }

  /** Resolves once no device recovery is under way (a faulted device recycled, a TP group's Stage 1 done). */
  async untilRecovered(): Promise<void> {
    while (this.#recoveries.size > 0) await Promise.allSettled([...this.#recoveries]);
  }

  #trackRecovery(recovery: Promise<unknown>): void {
    this.#recoveries.add(recovery);
    void recovery.finally(() => this.#recoveries.delete(recovery));
  }

  /** Terminates Workers without asking them anything; rejects if a thread has not closed in time. */
  async #terminate(devices: readonly DeviceHandle[], timeoutMs: number): Promise<void> {
    await Promise.all(
      devices.map((d) => d.terminate(timeoutMs, (active) => this.#sequences.ended(active.model))),
    );
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

  /** A step's KV use and metrics, whether the Worker stepped on its own or a group's watchdog drove it. */
  #recordStep(model: ModelEntry | undefined, stats: StepStats, group: boolean): void {
    if (model && model.kvTokens !== stats.kvTokens) {
      model.kvTokens = stats.kvTokens;
      this.#registry.changed();
    }
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

  #device(id: string): DeviceHandle {
    const device = this.#devices.get(id);
    if (!device) throw new CortexError("not_found", `no device ${id}`);
    return device;
  }

  /**
   * Memory as cortex may use it: the configured cap less what its models are
   * estimated to hold, and never more than the driver says is free (a GPU:
   * cuMemGetInfo on the device's primary context, asked afresh each time) or
   * the OS has free (the CPU without a cap).
   */
  #memory(device: DeviceHandle): { total: number; free: number } {
    const cap = this.#options.memoryLimitBytes;
    const live = device.spec.kind === "cuda" ? cudaMemoryInfo(device.spec.index) : undefined;
    return usableMemory({
      physicalTotal: live?.total ?? device.spec.memoryTotal,
      cap,
      estimatedUsed: this.#registry.bytesOn(device.spec.id),
      liveFree:
        live?.free ??
        (device.spec.kind === "cpu" && cap === undefined
          ? cpuShare(freemem(), this.#options.cpuDevices ?? 1)
          : undefined),
    });
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

  /** Every model in the neuron API's shape, from the one table that owns them. */
  models(): LoadedModel[] {
    return this.#registry.describe();
  }

  /**
   * Resolves with `models()` once `holds` is true of it, checked now and after
   * every change (state, running and queued counts, KV use): how a caller
   * waits for the engine to reach a state without polling.
   */
  untilModels(holds: (models: LoadedModel[]) => boolean): Promise<LoadedModel[]> {
    return new Promise((resolve) => {
      const check = () => {
        const models = this.models();
        if (!holds(models)) return false;
        stop();
        resolve(models);
        return true;
      };
      const stop = this.#registry.watch(check);
      check();
    });
  }

  model(id: string): ModelInfo | undefined {
    return this.#registry.get(id)?.info;
  }

  /** A model that can take requests, once its load (if under way) is done; else model_not_found. */
  async ready(id: string): Promise<ModelInfo> {
    const model = this.#registry.get(id);
    if (model?.state === "loading" && model.loading) await model.loading.catch(() => undefined);
    if (model?.state !== "ready" || this.#registry.get(id) !== model)
      throw new CortexError("model_not_found", `model ${id} is not loaded on this neuron`, {
        param: "model",
      });
    return model.info;
  }

  /** KV cells in use and KV capacity (context × slots) per loaded model, for metrics. */
  kvUsage(): Array<{ id: string; usedTokens: number; sizeTokens: number }> {
    return [...this.#registry.values()].map((m) => ({
      id: m.info.id,
      usedTokens: m.kvTokens,
      sizeTokens: m.info.contextSize * m.info.slots,
    }));
  }

  /** Load-balancing and eviction inputs of one model. */
  modelStats(id: string): { inFlight: number; queued: number; lastUsed: number } | undefined {
    const m = this.#registry.get(id);
    return m && { inFlight: m.inFlight, queued: m.queue.length, lastUsed: m.lastUsed };
  }

  /** Pins or unpins a model: a pinned model is reloaded when its device is recycled. */
  pin(id: string, pinned: boolean): void {
    const model = this.#registry.get(id);
    if (!model) throw new CortexError("model_not_found", `model ${id} is not loaded`);
    model.pinned = pinned;
  }

  /**
   * Loads a GGUF onto one device, or a tensor-parallel group when more than
   * one is asked for. Idempotent for the same id and path (a load under way
   * is joined); refuses with insufficient_memory (507) when the estimate
   * does not fit.
   */
  async load(options: LoadOptions): Promise<{ info: ModelInfo; alreadyLoaded: boolean }> {
    this.#assertOpen();
    let existing = this.#registry.get(options.id);
    if ((existing === undefined || existing.state === "failed") && this.#recoveries.size > 0) {
      // A device being recovered comes back with a fresh Worker (and its failed models gone): wait, not refuse.
      await this.untilRecovered();
      this.#assertOpen();
      existing = this.#registry.get(options.id);
    }
    if (existing) return { info: await this.#join(existing, options), alreadyLoaded: true };
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
    const members =
      count > 1 ? this.#groupMembers(options, count, needAtLeast) : [this.#placeOne(options, needAtLeast)];
    const entry = loadingEntry(
      options,
      members.map((m) => m.spec.id),
      { contextSize, slots },
    );
    this.#registry.add(entry);
    const loading = this.#loadEntry(entry, members);
    entry.loading = loading;
    try {
      return { info: await loading, alreadyLoaded: false };
    } finally {
      entry.loading = undefined;
    }
  }

  /** A load of a model already known: the same file joins it (or gets it), another is a conflict. */
  async #join(existing: ModelEntry, options: LoadOptions): Promise<ModelInfo> {
    if (existing.info.path !== options.path)
      throw new CortexError(
        "conflict",
        `model id ${options.id} is already loaded from ${existing.load.file ?? existing.info.path}, not ${options.file ?? options.path}`,
      );
    if (existing.state === "ready") return existing.info;
    if (existing.state === "loading" && existing.loading) return existing.loading;
    throw new CortexError(
      "conflict",
      `model ${options.id} is ${existing.state}${existing.error ? ` (${existing.error})` : ""}; retry when it is gone`,
      { retryAfterS: 1 },
    );
  }

  /** The device a single-device load goes to: the first healthy one (of those asked for) with room. */
  #placeOne(options: LoadOptions, needAtLeast: number): DeviceHandle {
    const candidates = options.deviceIds
      ? options.deviceIds.map((id) => this.#device(id))
      : [...this.#devices.values()].filter((d) => !d.poisonReason);
    const device = candidates.find((d) => !d.poisonReason && this.#memory(d).free >= needAtLeast);
    if (device) return device;
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

  /** The devices of a tensor-parallel group for this model, leader first. */
  #groupMembers(options: LoadOptions, count: number, needBytes: number): DeviceHandle[] {
    const chosen = chooseGroupDevices(
      [...this.#devices.values()].map((d) => ({
        id: d.spec.id,
        kind: d.spec.kind,
        free: this.#memory(d).free,
        poisoned: d.poisonReason !== undefined || d.closed,
        busy:
          d.groupId !== undefined ||
          this.#registry.bytesOn(d.spec.id) > 0 ||
          this.#registry.onDevice(d.spec.id).length > 0,
      })),
      {
        modelId: options.id,
        count,
        needBytes,
        ...(options.deviceIds ? { deviceIds: options.deviceIds } : {}),
      },
    );
    return chosen.map((c) => this.#device(c.id));
  }

  /**
   * The one path a model's weights take onto its devices, for a first load
   * and for a reload after a recycle: the load job (or a group's), then
   * `loading → ready`. A failure drops the entry.
   */
  async #loadEntry(entry: ModelEntry, members: DeviceHandle[]): Promise<ModelInfo> {
    const id = entry.info.id;
    const started = performance.now();
    try {
      const result =
        members.length > 1
          ? await this.#groups.load(entry, members)
          : await members[0]!.job<"load">({
              type: "load",
              modelId: id,
              path: entry.info.path,
              contextSize: entry.info.contextSize,
              slots: entry.info.slots,
              memoryBudgetBytes: this.#memory(members[0]!).free,
            });
      entry.info = { ...entry.info, ...result, loadedAt: Date.now() };
      entry.error = undefined;
      if (!this.#registry.transition(entry, "loaded", "loading"))
        throw new CortexError("unavailable", `model ${id} was dropped while it loaded`, { retryAfterS: 1 });
      const where = entry.group
        ? `tensor-parallel group ${entry.group.id} [${entry.info.deviceIds.join(",")}] (${entry.group.backend})`
        : entry.deviceId;
      consola.info(
        `loaded ${id} on ${where}: ${result.description}, ctx ${entry.info.contextSize} × ${entry.info.slots} slots, ~${Math.round(result.memoryBytes / 2 ** 20)} MiB`,
      );
      const ms = performance.now() - started;
      this.#observe(() => this.#options.observer?.modelLoaded?.(id, ms, entry.info.deviceIds));
      return entry.info;
    } catch (error) {
      consola.error(`load of ${id} (${entry.load.file ?? entry.info.path}) failed: ${errorMessage(error)}`);
      this.#registry.transition(entry, "failed", "loading");
      this.#registry.drop(entry, `load failed: ${errorMessage(error)}`, { lost: false });
      throw error;
    }
  }

  /**
   * Unloads a model. Waits for in-flight sequences unless `force`, which
   * ends them with an `unavailable` error; queued requests get that error at once.
   */
  async unload(id: string, options: { force?: boolean } = {}): Promise<void> {
    const model = this.#registry.get(id);
    if (!model) throw new CortexError("model_not_found", `model ${id} is not loaded`);
    if (model.state === "unloading") return untilIdle(model);
    if (!this.#registry.transition(model, "unload"))
      throw new CortexError("conflict", `model ${id} is ${model.state}; cannot unload now`, {
        retryAfterS: 1,
      });
    const gone = new CortexError("unavailable", `model ${id} is being unloaded`, { retryAfterS: 1 });
    for (const queued of model.queue.splice(0)) queued.channel.push({ type: "error", error: gone.toWire() });
    const device = this.#devices.get(model.deviceId);
    if (!options.force && model.inFlight > 0 && device && !device.poisonReason) await untilIdle(model);
    if (model.group) return this.#groups.unload(model, model.group);
    try {
      if (device && !device.poisonReason && !device.closed)
        await device.job<"unload">({ type: "unload", modelId: id });
    } finally {
      if (device) device.loadCycles++;
      this.#registry.drop(model, "unloaded", { lost: false, error: gone.toWire() });
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
    const model = this.#registry.get(id);
    if (!model) throw new CortexError("model_not_found", `model ${id} is not loaded`);
    return this.#sequences.start(model, this.#device(model.deviceId), params, signal);
  }

  /** Prompt tokens of a rendered prompt, as generate would count them. */
  async countTokens(id: string, prompt: string): Promise<number> {
    const model = this.#registry.get(id);
    if (!model) throw new CortexError("model_not_found", `model ${id} is not loaded`);
    const { tokens } = await this.#device(model.deviceId).job<"count-tokens">({
      type: "count-tokens",
      modelId: id,
      prompt,
    });
    return tokens;
  }

  /** Pooled, L2-normalised embeddings of the inputs (engine/embedder.ts). */
  async embed(
    id: string,
    inputs: EmbedInput[],
    dimensions?: number,
  ): Promise<{ embeddings: Float32Array[]; promptTokens: number }> {
    const model = this.#registry.get(id);
    if (!model) throw new CortexError("model_not_found", `model ${id} is not loaded`);
    return this.#device(model.deviceId).job<"embed">({
      type: "embed",
      modelId: id,
      inputs,
      ...(dimensions === undefined ? {} : { dimensions }),
    });
  }

  /** The model's fill-in-the-middle tokens, or null where it has none. */
  async fimTokens(id: string): Promise<FimTokens | null> {
    const model = this.#registry.get(id);
    if (!model) throw new CortexError("model_not_found", `model ${id} is not loaded`);
    const { fim } = await this.#device(model.deviceId).job<"fim-tokens">({ type: "fim-tokens", modelId: id });
    return fim;
  }

  /** A prompt from llama.cpp's built-in ChatML, for a model whose GGUF has no chat template. */
  async applyBuiltinTemplate(
    id: string,
    messages: ReadonlyArray<{ role: string; content: string }>,
    addAssistant: boolean,
  ): Promise<string> {
    const model = this.#registry.get(id);
    if (!model) throw new CortexError("model_not_found", `model ${id} is not loaded`);
    const { prompt } = await this.#device(model.deviceId).job<"apply-builtin-template">({
      type: "apply-builtin-template",
      template: "chatml",
      messages: messages.map((m) => ({ role: m.role, content: m.content })),
      addAssistant,
    });
    return prompt;
  }

  /** Clears a model's KV cache (only while it has nothing in flight). */
  async resetKv(id: string): Promise<void> {
    const model = this.#registry.get(id);
    if (!model) throw new CortexError("model_not_found", `model ${id} is not loaded`);
    await this.#device(model.deviceId).job<"reset-kv">({ type: "reset-kv", modelId: id });
  }

  /** Decode counters of a device since its Worker started (batching is visible here). */
  stats(deviceId: string): Promise<JobMap["stats"]["result"]> {
    return this.#device(deviceId).job<"stats">({ type: "stats" });
  }

  /** Makes the device's next decode fail natively (abort path); needs `faultInjection`. */
  async injectFault(deviceId: string): Promise<void> {
    if (!this.#options.faultInjection) throw new CortexError("forbidden", "fault injection is not enabled");
    await this.#device(deviceId).job<"inject-fault">({ type: "inject-fault", fault: "decode" });
  }

  /**
   * Terminates a device's Worker and starts a fresh one. Refused (409) while
   * a model on it has work in flight, unless the device is poisoned. Pinned
   * models on it are loaded again on the fresh Worker before this resolves;
   * the others are dropped (reported lost) and load again on demand.
   */
  async recycle(deviceId: string): Promise<void> {
    this.#assertOpen();
    const device = this.#device(deviceId);
    const group = this.#groups.group(device.groupId);
    if (group)
      throw new CortexError(
        "conflict",
        `${deviceId} belongs to tensor-parallel group ${group.id} serving ${group.modelId}; unload that model first`,
        { retryAfterS: 1 },
      );
    const onDevice = this.#registry.onDevice(deviceId);
    if (!device.poisonReason && onDevice.some((m) => m.inFlight > 0 || m.queue.length > 0))
      throw new CortexError("conflict", `${deviceId} has requests in flight; recycle it when idle`, {
        retryAfterS: 1,
      });
    if (onDevice.some((m) => m.state === "loading" || m.state === "unloading"))
      throw new CortexError(
        "conflict",
        `${deviceId} has a model loading or unloading; recycle it when idle`,
        {
          retryAfterS: 1,
        },
      );
    const why = `${deviceId} was recycled`;
    const error = new CortexError("unavailable", `${why}; the model is reloading`, {
      retryAfterS: 1,
    }).toWire();
    const pinned = onDevice.filter((m) => m.pinned);
    for (const m of onDevice) {
      if (m.pinned) {
        this.#registry.fail(m, `${why}; reloading`, error);
        // Its memory comes back with the old Worker; the reload measures it again.
        m.info = { ...m.info, memoryBytes: 0 };
      } else this.#registry.drop(m, why, { lost: true });
    }
    await device.stop((active) => this.#sequences.ended(active.model));
    this.#devices.delete(deviceId);
    await this.#startDevice(device.spec);
    const fresh = this.#device(deviceId);
    const reloaded = await Promise.all(
      pinned.map(async (m) => {
        if (!this.#registry.transition(m, "load", "failed")) return false;
        return this.#loadEntry(m, [fresh]).then(
          () => true,
          () => false,
        );
      }),
    );
    const dropped = onDevice.filter((m) => !m.pinned).map((m) => m.info.id);
    const failed = pinned.filter((_, i) => !reloaded[i]).map((m) => m.info.id);
    consola.info(
      `${deviceId}: worker recycled${pinned.length ? `; reloaded pinned ${pinned.map((m) => m.info.id).join(", ")}` : ""}${dropped.length ? `; dropped ${dropped.join(", ")}` : ""}`,
    );
    if (failed.length > 0)
      throw new CortexError(
        "load_failed",
        `${deviceId} was recycled but reloading ${failed.join(", ")} failed`,
      );
  }

  /** Stops every Worker; the pool is unusable afterwards. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    const gone: WireError = new CortexError("unavailable", "the engine is shutting down").toWire();
    this.#registry.clear(gone);
    this.#groups.closeAll("the engine is shutting down");
    await Promise.all([...this.#devices.values()].map((d) => d.stop(() => undefined)));
    this.#devices.clear();
    this.#aborter?.close();
    this.#aborter = undefined;
  }

  /** Number of live device Workers (0 after close). */
  get workerCount(): number {
    return [...this.#devices.values()].filter((d) => !d.closed).length;
  }

  #onFatal(report: FatalReport): void {
    this.#fatalReason = `tp watchdog Stage 2 on ${report.group.groupId} (${report.group.model}): ${report.reason}`;
    const sink = this.#options.onFatal ?? exitForSupervisor();
    sink(report);
  }

  #assertOpen(): void {
    if (this.#closed) throw new CortexError("unavailable", "the engine is shut down");
  }
}
