/**
 * The step watchdog of one tensor-parallel group. The device pool runs every
 * leader forward through `runStep`; when a step outlives its timeout (or fails
 * with a device fault) the watchdog, from the main thread:
 *
 *  1. aborts every rank's cached communicator through the aborter (off the
 *     main thread, itself timed) and raises the leader's llama abort flag;
 *  2. fails the step at once, without draining;
 *  3. runs Stage 1 recovery through the pool's hooks: wait for the leader to
 *     answer, unload, terminate the group's Workers, start fresh ones, report
 *     the model unloaded;
 *  4. escalates to Stage 2 (fatal: unhealthy, exit for the supervisor) when the
 *     abort hangs, the leader stays silent past the grace period, or a
 *     recovery stage hangs.
 *
 * Every side effect is injected, so this file is policy and bookkeeping only.
 */
import { writeSync } from "node:fs";
import { consola } from "consola";
import { CortexError, errorMessage } from "../../core/errors.ts";
import type { Aborter, AbortReport } from "./aborter.ts";
import type { CommunicatorHandle } from "./communicator.ts";
import { controlView, type RankSnapshot, snapshotRanks } from "./control-block.ts";
import { exitImmediately, TP_FATAL_EXIT_CODE } from "./fatal-exit.ts";
import { FlightRecorder, formatFlightRecord } from "./flight-recorder.ts";
import { type GroupState, GroupStateMachine } from "./group-state.ts";

export const MARKER = "tp watchdog:";

export interface TpGroupInfo {
  groupId: string;
  model: string;
  /** Device ids, leader first (`cuda-dev-0`, …). */
  devices: readonly string[];
}

export interface WatchdogTimings {
  /** A leader forward longer than this is a hang (NEURON_TP_STEP_TIMEOUT_S, default 120 s). */
  stepTimeoutMs: number;
  /** How long the aborter may take over all ranks before Stage 2 (NEURON_TP_ABORT_TIMEOUT_S, default 10 s). */
  abortTimeoutMs: number;
  /** How long the leader, and each Stage 1 step, may take after the abort (NEURON_TP_RECOVERY_GRACE_S, default 30 s). */
  graceMs: number;
}

export const DEFAULT_TIMINGS: WatchdogTimings = Object.freeze({
  stepTimeoutMs: 120_000,
  abortTimeoutMs: 10_000,
  graceMs: 30_000,
});

function seconds(env: Record<string, string | undefined>, name: string, fallbackMs: number): number {
  const raw = env[name];
  if (raw === undefined || raw.trim() === "") return fallbackMs;
  const value = Number(raw);
  if (!Number.isFinite(value) || value <= 0) {
    throw new CortexError("invalid_request", `${name} must be a positive number of seconds, got "${raw}"`, {
      param: name,
    });
  }
  return Math.round(value * 1000);
}

export function watchdogTimingsFromEnv(
  env: Record<string, string | undefined> = process.env,
): WatchdogTimings {
  return Object.freeze({
    stepTimeoutMs: seconds(env, "NEURON_TP_STEP_TIMEOUT_S", DEFAULT_TIMINGS.stepTimeoutMs),
    abortTimeoutMs: seconds(env, "NEURON_TP_ABORT_TIMEOUT_S", DEFAULT_TIMINGS.abortTimeoutMs),
    graceMs: seconds(env, "NEURON_TP_RECOVERY_GRACE_S", DEFAULT_TIMINGS.graceMs),
  });
}

/** What the device pool provides for Stage 1. Each call is bounded by the grace period. */
export interface RecoveryHooks {
  /** Unload the model through the leader's job channel (it answers again once aborted). */
  unload(): Promise<void>;
  /** Terminate every Worker of the group; resolve once each has closed. */
  terminateWorkers(): Promise<void>;
  /** Start fresh Workers on the same devices; resolve once they answer. */
  startWorkers(): Promise<void>;
  /** Mark the model unloaded in the neuron's registry, so the gateway reloads it. */
  reportUnloaded(reason: string): void;
}

export interface FatalReport {
  group: TpGroupInfo;
  reason: string;
  step: number;
  /** Milliseconds from the watchdog firing to the verdict, by the watchdog's clock. */
  elapsedMs: number;
}

export type RecoveryOutcome =
  | { stage: 1; result: "gone"; elapsedMs: number }
  | { stage: 2; reason: string; elapsedMs: number };

/** Plain counters; the metrics module reads them (wired later). */
export interface TpCounters {
  stepTimeouts: number;
  stepDeviceFaults: number;
  abortsIssued: number;
  abortsHung: number;
  stage1Started: number;
  stage1Recovered: number;
  stage2Fatal: number;
}

export function createTpCounters(): TpCounters {
  return {
    stepTimeouts: 0,
    stepDeviceFaults: 0,
    abortsIssued: 0,
    abortsHung: 0,
    stage1Started: 0,
    stage1Recovered: 0,
    stage2Fatal: 0,
  };
}

/** Process-wide counters, shared by every group unless a test injects its own. */
export const tpCounters: TpCounters = createTpCounters();

export interface TpLogger {
  error(line: string): void;
  warn(line: string): void;
  info(line: string): void;
  debug(line: string): void;
}

const defaultLogger: TpLogger = (() => {
  const log = consola.withTag("tp");
  return {
    error: (line) => log.error(line),
    warn: (line) => log.warn(line),
    info: (line) => log.info(line),
    debug: (line) => log.debug(line),
  };
})();

export interface StepWatchdogOptions {
  group: TpGroupInfo;
  /** Every rank's handle, cached at group formation while the Workers were responsive. */
  handles: readonly CommunicatorHandle[];
  aborter: Aborter;
  /**
   * Raises llama.cpp's abort flag for the leader's context (an Atomics.store on the
   * SharedArrayBuffer the leader's abort callback reads). Must not throw or block.
   */
  raiseAbortFlag: () => void;
  recovery: RecoveryHooks;
  /** Stage 2 sink; production passes `exitForSupervisor` (after marking the node unhealthy). */
  onFatal: (report: FatalReport) => void;
  timings?: Partial<WatchdogTimings>;
  logger?: TpLogger;
  counters?: TpCounters;
  recorder?: FlightRecorder;
  /**
   * The clock every timeout is measured by (default Date.now): a step fails,
   * and the leader's grace runs out, only once this clock says the time has
   * passed, however early a timer fires by it.
   */
  now?: () => number;
}

export interface StepMeta {
  batchSize: number;
  tokens: number;
}

type StepResult<T> = { ok: true; value: T } | { ok: false; error: unknown };

/** True for failures that mean the device or a collective is broken (poison the group). */
export function isDeviceFault(error: unknown): boolean {
  if (error instanceof CortexError) return error.code === "device_fault";
  return typeof error === "object" && error !== null && (error as { code?: unknown }).code === "device_fault";
}

function settleWithin<T>(promise: Promise<T>, ms: number): Promise<StepResult<T> | "timeout"> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const deadline = new Promise<"timeout">((resolve) => {
    timer = setTimeout(() => resolve("timeout"), ms);
  });
  const settled = promise.then(
    (value): StepResult<T> => ({ ok: true, value }),
    (error: unknown): StepResult<T> => ({ ok: false, error }),
  );
  return Promise.race([settled, deadline]).finally(() => clearTimeout(timer));
}

export class StepWatchdog {
  private readonly machine: GroupStateMachine;
  private readonly timings: WatchdogTimings;
  private readonly log: TpLogger;
  private readonly counters: TpCounters;
  private readonly now: () => number;
  readonly recorder: FlightRecorder;
  private readonly handles: readonly CommunicatorHandle[];
  private steps = 0;
  /** Set when the watchdog fires; resolves with the recovery's verdict. */
  recovery: Promise<RecoveryOutcome> | undefined;

  constructor(private readonly options: StepWatchdogOptions) {
    this.timings = { ...DEFAULT_TIMINGS, ...options.timings };
    this.log = options.logger ?? defaultLogger;
    this.counters = options.counters ?? tpCounters;
    this.now = options.now ?? Date.now;
    this.recorder = options.recorder ?? new FlightRecorder();
    this.handles = options.handles;
    this.machine = new GroupStateMachine((from, to, why) => this.logTransition(from, to, why));
  }

  get state(): GroupState {
    return this.machine.state;
  }

  get stepCount(): number {
    return this.steps;
  }

  /** forming → ready, once every rank has joined and the handles are cached. */
  markReady(): void {
    if (!this.machine.transition("forming", "ready", "every rank joined")) {
      throw new CortexError(
        "conflict",
        `tp group ${this.options.group.groupId} is ${this.state}, not forming`,
      );
    }
  }

  /** Normal teardown (unload of a healthy group): ready/forming → gone. */
  close(why = "unloaded"): void {
    this.machine.transition("ready", "gone", why) || this.machine.transition("forming", "gone", why);
  }

  /**
   * Runs one step under the timeout. `fn` must resolve with the leader's reply
   * for that step (its collective and forward); followers' replies are the
   * pool's to consume. Throws CortexError("device_fault") at once on timeout,
   * CortexError("unavailable") when the group is not ready.
   */
  async runStep<T>(fn: (step: number) => Promise<T>, meta: StepMeta): Promise<T> {
    const { group } = this.options;
    if (!this.machine.transition("ready", "stepping", "step")) {
      throw new CortexError("unavailable", `tp group ${group.groupId} (${group.model}) is ${this.state}`, {
        retryAfterS: 5,
        details: { groupId: group.groupId, state: this.state },
      });
    }
    const step = ++this.steps;
    const startedAt = this.now();
    const record = this.recorder.begin({ step, ...meta, startedAt });
    const pending = Promise.resolve().then(() => fn(step));
    const outcome = await this.settleBy(pending, startedAt, this.timings.stepTimeoutMs);
    const ranMs = this.now() - startedAt;
    if (outcome === "timeout") {
      this.recorder.finish(record, "timeout", ranMs, this.snapshot());
      this.counters.stepTimeouts++;
      this.fire(step, ranMs, `step exceeded the ${this.timings.stepTimeoutMs} ms step timeout`, pending);
      throw new CortexError(
        "device_fault",
        `tp watchdog: step ${step} of ${group.model} timed out after ${ranMs} ms; the group was aborted and is recovering`,
        { retryAfterS: 10, details: { groupId: group.groupId, step, ranMs } },
      );
    }
    if (outcome.ok) {
      this.recorder.finish(record, "ok", ranMs, this.snapshot());
      this.machine.transition("stepping", "ready", "step done");
      return outcome.value;
    }
    this.recorder.finish(record, "error", ranMs, this.snapshot(), errorMessage(outcome.error));
    if (isDeviceFault(outcome.error)) {
      this.counters.stepDeviceFaults++;
      this.fire(step, ranMs, `device fault: ${errorMessage(outcome.error)}`, pending);
    } else {
      this.machine.transition("stepping", "ready", "step failed (not a device fault)");
    }
    throw outcome.error;
  }

  /**
   * settleWithin, measured by the watchdog's clock from `since`: a timer that
   * fires before that clock has moved `ms` on is waited out again for the rest,
   * so "timed out" always means the clock saw the whole timeout pass.
   */
  private async settleBy<T>(
    promise: Promise<T>,
    since: number,
    ms: number,
  ): Promise<StepResult<T> | "timeout"> {
    for (;;) {
      const left = since + ms - this.now();
      if (left <= 0) return "timeout";
      const outcome = await settleWithin(promise, left);
      if (outcome !== "timeout") return outcome;
    }
  }

  private snapshot(): RankSnapshot[] {
    const first = this.handles[0];
    return first ? snapshotRanks(controlView(first.control)) : [];
  }

  private describe(): string {
    const { group } = this.options;
    return `group=${group.groupId} model=${group.model} devices=[${group.devices.join(",")}]`;
  }

  private abortName(): string {
    return this.handles[0]?.backend === "shm" ? "ncclCommAbort[shm]" : "ncclCommAbort";
  }

  private fire(step: number, ranMs: number, why: string, leader: Promise<unknown>): void {
    this.machine.transition("stepping", "aborting", why);
    const handles = this.handles;
    this.log.error(
      `${MARKER} ${this.describe()} step=${step} ran=${ranMs}ms: ${why}; ` +
        `aborting ${handles.length} communicator(s) via ${this.abortName()} (ranks ${handles.map((h) => h.rank).join(",")}) ` +
        "and raising the llama abort flag",
    );
    for (const line of formatFlightRecord(this.recorder.snapshot())) {
      this.log.error(`${MARKER} flight-recorder ${this.describe()} ${line}`);
    }
    this.counters.abortsIssued++;
    const firedAt = this.now();
    const abort = this.options.aborter.abortAll(handles, this.timings.abortTimeoutMs);
    try {
      this.options.raiseAbortFlag();
    } catch (error) {
      this.log.error(
        `${MARKER} ${this.describe()} raising the llama abort flag failed: ${errorMessage(error)}`,
      );
    }
    this.recovery = this.recover(step, firedAt, abort, leader);
  }

  private async recover(
    step: number,
    firedAt: number,
    abort: Promise<AbortReport>,
    leader: Promise<unknown>,
  ): Promise<RecoveryOutcome> {
    const { group, recovery } = this.options;
    const elapsed = () => this.now() - firedAt;
    const report = await abort;
    for (const rank of report.ranks) {
      const detail = rank.error === undefined ? "" : ` error=${JSON.stringify(rank.error)}`;
      const took = rank.ms === undefined ? "" : ` in ${Math.round(rank.ms)}ms`;
      this.log.error(
        `${MARKER} ${this.abortName()} ${this.describe()} step=${step} rank=${rank.rank} device=${group.devices[rank.rank] ?? "?"} outcome=${rank.outcome}${took}${detail}`,
      );
    }
    if (!report.completed) {
      this.counters.abortsHung++;
      const hung = report.ranks.filter((r) => r.outcome === "hung").map((r) => r.rank);
      return this.fatal(
        step,
        firedAt,
        `${this.abortName()} did not return within ${this.timings.abortTimeoutMs} ms (hung on rank ${hung.join(",") || "?"})`,
      );
    }
    this.machine.transition("aborting", "poisoned", "communicators aborted");
    this.log.error(
      `${MARKER} ${this.describe()} poisoned after step=${step}; waiting up to ${this.timings.graceMs} ms for the leader to answer`,
    );
    const answered = await this.settleBy(leader, this.now(), this.timings.graceMs);
    if (answered === "timeout") {
      return this.fatal(
        step,
        firedAt,
        `the leader did not answer within ${this.timings.graceMs} ms after the abort`,
      );
    }
    this.log.error(`${MARKER} ${this.describe()} leader answered ${elapsed()}ms after the abort`);

    this.machine.transition("poisoned", "recovering", "Stage 1");
    this.counters.stage1Started++;
    const stages: [string, () => Promise<unknown>, "continue" | "fatal"][] = [
      ["unload", () => recovery.unload(), "continue"],
      ["terminate-workers", () => recovery.terminateWorkers(), "fatal"],
      ["start-workers", () => recovery.startWorkers(), "fatal"],
    ];
    for (const [name, run, onError] of stages) {
      const started = this.now();
      const result = await settleWithin(Promise.resolve().then(run), this.timings.graceMs);
      const took = this.now() - started;
      if (result === "timeout") {
        this.log.error(
          `${MARKER} ${this.describe()} Stage 1 ${name}: no answer within ${this.timings.graceMs} ms`,
        );
        return this.fatal(step, firedAt, `Stage 1 ${name} hung`);
      }
      if (!result.ok) {
        this.log.error(
          `${MARKER} ${this.describe()} Stage 1 ${name}: failed in ${took}ms: ${errorMessage(result.error)}`,
        );
        if (onError === "fatal")
          return this.fatal(step, firedAt, `Stage 1 ${name} failed: ${errorMessage(result.error)}`);
      } else {
        this.log.error(`${MARKER} ${this.describe()} Stage 1 ${name}: ok in ${took}ms`);
      }
    }
    const reason = `tensor-parallel step ${step} hung; the group was aborted and recovered`;
    try {
      recovery.reportUnloaded(reason);
    } catch (error) {
      this.log.error(`${MARKER} ${this.describe()} Stage 1 report-unloaded failed: ${errorMessage(error)}`);
    }
    this.machine.transition("recovering", "gone", "Stage 1 complete");
    this.counters.stage1Recovered++;
    this.log.error(
      `${MARKER} ${this.describe()} Stage 1 recovery complete in ${elapsed()}ms: model unloaded, fresh Workers on ` +
        `[${group.devices.join(",")}], group gone`,
    );
    return { stage: 1, result: "gone", elapsedMs: elapsed() };
  }

  private fatal(step: number, firedAt: number, reason: string): RecoveryOutcome {
    const elapsedMs = this.now() - firedAt;
    this.machine.force("fatal", reason);
    this.counters.stage2Fatal++;
    this.log.error(
      `${MARKER} Stage 2 ${this.describe()} step=${step} after=${elapsedMs}ms: ${reason}; marking the neuron unhealthy and exiting ` +
        `(code ${TP_FATAL_EXIT_CODE}) for the supervisor to restart it`,
    );
    this.options.onFatal({ group: this.options.group, reason, step, elapsedMs });
    return { stage: 2, reason, elapsedMs };
  }

  private logTransition(from: GroupState, to: GroupState, why: string): void {
    const line = `${MARKER} ${this.describe()} ${from} -> ${to} (${why})`;
    if (to === "aborting" || to === "poisoned" || to === "recovering" || to === "fatal") this.log.error(line);
    else if (from === "recovering") this.log.error(line);
    else if (to === "stepping" || from === "stepping") this.log.debug(line);
    else this.log.info(line);
  }
}

/**
 * The production Stage 2 sink: marks the node unhealthy (the pool's callback,
 * so /health says so while the line flushes), writes a last line straight to
 * stderr, and exits with TP_FATAL_EXIT_CODE after `delayMs`.
 */
export function exitForSupervisor(
  options: {
    markUnhealthy?: (report: FatalReport) => void;
    delayMs?: number;
    exit?: (code: number) => void;
  } = {},
): (report: FatalReport) => void {
  return (report) => {
    try {
      options.markUnhealthy?.(report);
    } catch {
      // Exiting matters more than the health flag.
    }
    writeSync(
      2,
      `${MARKER} Stage 2 exit ${TP_FATAL_EXIT_CODE} group=${report.group.groupId} model=${report.group.model}: ${report.reason}\n`,
    );
    const exit = options.exit ?? exitImmediately;
    setTimeout(() => exit(TP_FATAL_EXIT_CODE), options.delayMs ?? 250);
  };
}
