/**
 * The main thread's end of one device Worker: starting it, its job channel
 * (id-correlated requests answered by one `result`), the generation
 * sequences it runs, and stopping it. What the Worker reports besides job
 * results (sequence events, steps, faults, its exit) goes to the pool
 * through `DeviceEvents`; the handle itself holds no model state.
 */
import { consola } from "consola";
import { CortexError, type WireError } from "../../core/errors.ts";
import { within } from "../../core/within.ts";
import { startWorker } from "../../core/worker-thread.ts";
import type { ModelEntry } from "./model-registry.ts";
import type { JobMap, JobType, MainToWorker, StepStats, WorkerInit, WorkerToMain } from "./protocol.ts";
import type { SequenceStream } from "./sequence-stream.ts";
import type { PrefixReuseStats } from "./slot-kv.ts";
import type { GenerationEvent } from "./types.ts";

export interface DeviceSpec {
  id: string;
  kind: "cpu" | "cuda";
  index: number;
  name: string;
  uuid?: string;
  computeCapability?: string;
  memoryTotal: number;
}

/** A sequence running on the device, as the pool tracks it. */
export interface ActiveSequence {
  model: ModelEntry;
  channel: SequenceStream;
}

/** What the Worker tells the pool besides job results. */
export interface DeviceEvents {
  /** A sequence's event; `final` when it was its last (done or error), already removed from `sequences`. */
  sequenceEvent(device: DeviceHandle, active: ActiveSequence, event: GenerationEvent, final: boolean): void;
  step(device: DeviceHandle, stats: StepStats): void;
  /** A model's prefix-reuse figures changed. */
  prefixStats(modelId: string, stats: PrefixReuseStats): void;
  /** A native failure, a crash, or an exit nobody asked for. */
  fault(device: DeviceHandle, reason: string): void;
}

interface PendingJob {
  resolve(value: unknown): void;
  reject(error: CortexError): void;
}

let nextJobId = 1;

export class DeviceHandle {
  readonly spec: DeviceSpec;
  readonly worker: Worker;
  /** Resolves once the Worker has bound libllama; rejects if it cannot. */
  readonly ready: Promise<void>;
  /** Resolves when the Worker thread has closed. */
  readonly exited: Promise<void>;
  /** Shared with the Worker: a raised flag makes its current decode return early. */
  readonly abortFlag = new SharedArrayBuffer(4);
  readonly sequences = new Map<number, ActiveSequence>();
  /** Set on a native failure; the device takes no work until it is recycled. */
  poisonReason: string | undefined;
  /** Model load/unload cycles since this Worker started. */
  loadCycles = 0;
  /** Terminated or shutting down: no new jobs. */
  closed = false;
  /** The tensor-parallel group this device belongs to. */
  groupId: string | undefined;
  /** The Worker's OS thread id, once ready. */
  threadId: number | undefined;
  /** It became ready once: a fault after that is recovered with a fresh Worker, one before is a start failure. */
  started = false;
  readonly #jobs = new Map<number, PendingJob>();

  constructor(spec: DeviceSpec, url: string | URL, events: DeviceEvents) {
    this.spec = spec;
    this.worker = startWorker(url, spec.id);
    let exitedResolve!: () => void;
    this.exited = new Promise<void>((resolve) => {
      exitedResolve = resolve;
    });
    let readyResolve!: () => void;
    let readyReject!: (error: CortexError) => void;
    this.ready = new Promise<void>((resolve, reject) => {
      readyResolve = resolve;
      readyReject = reject;
    });
    // A device that never became ready has nobody awaiting `ready` once the pool gave up on it.
    this.ready.catch(() => undefined);
    const receive = (message: WorkerToMain): void => {
      switch (message.type) {
        case "batch":
          for (const one of message.messages) receive(one);
          return;
        case "ready":
          consola.debug(`${spec.id}: ready (${message.systemInfo.trim()})`);
          this.threadId = message.threadId;
          this.started = true;
          readyResolve();
          return;
        case "init-failed":
          readyReject(CortexError.fromWire(message.error));
          return;
        case "result": {
          const job = this.#jobs.get(message.jobId);
          this.#jobs.delete(message.jobId);
          if (!job) return;
          if (message.ok) job.resolve(message.value);
          else job.reject(CortexError.fromWire(message.error));
          return;
        }
        case "seq": {
          const active = this.sequences.get(message.seqKey);
          if (!active) return;
          const final = message.event.type === "done" || message.event.type === "error";
          if (final) this.sequences.delete(message.seqKey);
          events.sequenceEvent(this, active, message.event, final);
          return;
        }
        case "fault":
          events.fault(this, message.reason);
          return;
        case "step":
          events.step(this, message);
          return;
        case "prefix-stats":
          events.prefixStats(message.modelId, message.stats);
          return;
        default: {
          const unknown: never = message;
          consola.warn(`unknown worker message ${JSON.stringify(unknown)}`);
        }
      }
    };
    this.worker.onmessage = (event: MessageEvent<WorkerToMain>) => receive(event.data);
    this.worker.onerror = (event) => {
      events.fault(this, `worker crashed: ${event.message}`);
      readyReject(
        new CortexError("device_fault", `${spec.id}: worker crashed while starting: ${event.message}`),
      );
    };
    this.worker.addEventListener("close", () => {
      exitedResolve();
      if (!this.closed) events.fault(this, "worker exited unexpectedly");
      readyReject(new CortexError("device_fault", `${spec.id}: worker exited while starting`));
    });
  }

  /** Sends `init` and waits until the Worker is ready. */
  init(init: WorkerInit): Promise<void> {
    this.post({ type: "init", init });
    return this.ready;
  }

  post(message: MainToWorker): void {
    this.worker.postMessage(message);
  }

  job<K extends JobType>(job: JobMap[K]["job"]): Promise<JobMap[K]["result"]> {
    return this.request((jobId) => ({ type: "job", jobId, job })) as Promise<JobMap[K]["result"]>;
  }

  /** Posts a message answered by one `result` and waits for it. */
  request(message: (jobId: number) => MainToWorker): Promise<unknown> {
    if (this.closed) return Promise.reject(new CortexError("unavailable", `${this.spec.id} is shut down`));
    const jobId = nextJobId++;
    return new Promise((resolve, reject) => {
      this.#jobs.set(jobId, { resolve, reject });
      this.post(message(jobId));
    });
  }

  /**
   * Ends every sequence on the device with `error` and hands each to
   * `ended` (the pool frees its slot); the Worker is not asked.
   */
  failSequences(error: WireError, ended: (active: ActiveSequence) => void): void {
    for (const [key, active] of this.sequences) {
      this.sequences.delete(key);
      active.channel.push({ type: "error", error });
      ended(active);
    }
  }

  /**
   * Terminates the Worker without asking it anything (a wedged one cannot
   * answer): pending jobs are rejected, sequences end with `unavailable`.
   * Rejects if the thread has not closed within `timeoutMs`.
   */
  async terminate(timeoutMs: number, ended: (active: ActiveSequence) => void): Promise<void> {
    if (!this.closed) {
      this.closed = true;
      const gone = new CortexError("unavailable", `${this.spec.id} was restarted`);
      for (const job of this.#jobs.values()) job.reject(gone);
      this.#jobs.clear();
      this.failSequences(gone.toWire(), ended);
      this.worker.terminate();
    }
    await within(
      this.exited,
      timeoutMs,
      () => new CortexError("timeout", `${this.spec.id}: Worker did not close within ${timeoutMs} ms`),
    );
  }

  /** A responsive Worker frees its native state first (bounded); a poisoned one is just terminated. */
  async stop(ended: (active: ActiveSequence) => void): Promise<void> {
    if (this.closed) return;
    if (!this.poisonReason)
      await within(
        this.job<"shutdown">({ type: "shutdown" }),
        5_000,
        () => new CortexError("timeout", "shutdown"),
      ).catch(() => undefined);
    await this.terminate(5_000, ended).catch((error: unknown) =>
      consola.error(`${this.spec.id}: ${error instanceof Error ? error.message : String(error)}`),
    );
  }
}
