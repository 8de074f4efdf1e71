/**
 * Tensor-parallel groups as the device pool runs them: forming a group over
 * device Workers and loading its model on the leader, driving its steps one
 * at a time under the step watchdog, failing its requests when a step
 * fails, normal teardown, and the Stage 1 hooks the watchdog recovers with.
 * Device Workers, models and memory belong to the pool; this module reaches
 * them through `GroupHost`.
 */
import { consola } from "consola";
import { findNcclLibrary, ncclMissingMessage } from "../../../ffi/nccl.ts";
import { CortexError, errorMessage, toCortexError } from "../../core/errors.ts";
import type { DeviceHandle, DeviceSpec } from "../engine/device-handle.ts";
import type { ModelEntry, ModelRegistry } from "../engine/model-registry.ts";
import { failQueue, wakeIdle } from "../engine/model-registry.ts";
import type { GroupStepResult, LoadResult, StepStats } from "../engine/protocol.ts";
import { ggmlCudaNames } from "../engine/tp-placement.ts";
import type { Aborter } from "./aborter.ts";
import type { CommunicatorBackendName } from "./communicator.ts";
import { formGroup } from "./form-group.ts";
import type { RankPort, TpRankCall } from "./rank-client.ts";
import {
  type FatalReport,
  type RecoveryHooks,
  StepWatchdog,
  type TpCounters,
  type TpLogger,
  type WatchdogTimings,
} from "./step-watchdog.ts";

/** A model spread over several devices: the leader runs it, every member joins the per-step collective. */
export interface TpGroup {
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

/** What the driver needs from the pool that owns the devices and models. */
export interface GroupHost {
  readonly registry: ModelRegistry;
  readonly timings: WatchdogTimings;
  readonly faultSpec: string;
  readonly counters: TpCounters;
  readonly logger: TpLogger | undefined;
  device(id: string): DeviceHandle | undefined;
  /** Bytes free on a device as cortex may use them. */
  memoryFree(device: DeviceHandle): number;
  /** The process's aborter thread, started on first use. */
  aborter(): Aborter;
  /** Terminates the Workers (rejects past `timeoutMs`); their sequences end. */
  terminate(devices: readonly DeviceHandle[], timeoutMs: number): Promise<void>;
  /** Fresh Workers for these devices (those terminated or gone). */
  startFresh(specs: readonly DeviceSpec[]): Promise<void>;
  recordStep(model: ModelEntry, stats: StepStats): void;
  /** A sequence of the model ended: its slot is free. */
  sequenceEnded(model: ModelEntry): void;
  /** A Stage 1 recovery under way (loads wait for it). */
  trackRecovery(recovery: Promise<unknown>): void;
  onFatal(report: FatalReport): void;
  isClosed(): boolean;
}

let nextGroup = 1;

export class GroupDriver {
  readonly #host: GroupHost;
  readonly #groups = new Map<string, TpGroup>();

  constructor(host: GroupHost) {
    this.#host = host;
  }

  group(id: string | undefined): TpGroup | undefined {
    return id === undefined ? undefined : this.#groups.get(id);
  }

  /** Forms a group over `members` (leader first) and loads `entry`'s model on the leader. */
  async load(entry: ModelEntry, members: DeviceHandle[]): Promise<LoadResult> {
    const host = this.#host;
    const leader = members[0]!;
    const kind = leader.spec.kind;
    const groupId = `tp${nextGroup++}`;
    for (const m of members) m.groupId = groupId;
    const deviceIds = members.map((m) => m.spec.id);
    let formed = false;
    try {
      const backend = groupBackend(kind);
      const { handles } = await formGroup({
        groupId,
        backend: backend.name,
        ports: members.map((m) => this.#rankPort(m)),
        ...(backend.libraryPath === undefined
          ? {}
          : { libraryPath: backend.libraryPath, memory: "cuda" as const }),
        ...(kind === "cuda" ? { deviceOrdinals: members.map((m) => m.spec.index) } : {}),
        faults: host.faultSpec,
        timeoutMs: Math.max(30_000, host.timings.stepTimeoutMs),
      });
      formed = true;
      const aborter = host.aborter();
      if (backend.libraryPath !== undefined) await aborter.warm([backend.libraryPath]);
      const budget =
        kind === "cuda" ? members.reduce((sum, m) => sum + host.memoryFree(m), 0) : host.memoryFree(leader);
      const result = await leader.job<"load">({
        type: "load",
        modelId: entry.info.id,
        path: entry.info.path,
        contextSize: entry.info.contextSize,
        slots: entry.info.slots,
        memoryBudgetBytes: budget,
        driven: true,
        ...(kind === "cuda" ? { splitDevices: ggmlCudaNames(members.map((m) => m.spec.index)) } : {}),
      });
      const identity = {
        id: groupId,
        modelId: entry.info.id,
        deviceIds,
        specs: members.map((m) => m.spec),
      };
      const watchdog = new StepWatchdog({
        group: { groupId, model: entry.info.id, devices: deviceIds },
        handles,
        aborter,
        raiseAbortFlag: () => Atomics.store(new Int32Array(leader.abortFlag), 0, 1),
        recovery: this.#recoveryHooks(identity),
        onFatal: (report) => host.onFatal(report),
        timings: host.timings,
        counters: host.counters,
        ...(host.logger ? { logger: host.logger } : {}),
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
      return result;
    } catch (error) {
      if (formed) {
        await Promise.all(members.map((m) => this.#tpCall(m, { type: "tp-leave" }).catch(() => undefined)));
        for (const m of members) m.groupId = undefined;
      } else {
        // A rank that never joined may be stuck in init: give every member a fresh Worker.
        consola.error(
          `tensor-parallel group ${groupId} did not form: ${errorMessage(error)}; restarting [${deviceIds.join(",")}]`,
        );
        await host
          .terminate(members, host.timings.graceMs)
          .then(() => host.startFresh(members.map((m) => m.spec)))
          .catch((e: unknown) =>
            consola.error(`restarting [${deviceIds.join(",")}] failed: ${errorMessage(e)}`),
          );
      }
      throw error;
    }
  }

  /** Asks for another step of a group's model, starting its step loop if idle. */
  kick(model: ModelEntry): void {
    const group = model.group;
    if (!group || group.closing) return;
    group.wantStep = true;
    if (group.pumping) return;
    group.pumping = true;
    group.pumpDone = this.#pump(model, group).finally(() => {
      group.pumping = false;
    });
  }

  /** Normal teardown of a group: stop stepping, unload on the leader, every rank leaves; the Workers stay. */
  async unload(model: ModelEntry, group: TpGroup): Promise<void> {
    group.closing = true;
    await group.pumpDone;
    const recovery = group.watchdog.recovery;
    if (recovery) {
      // The watchdog fired: Stage 1 unloads and drops the model itself.
      await recovery;
      return;
    }
    const members = group.deviceIds.map((id) => this.#host.device(id)).filter((d) => d !== undefined);
    try {
      const leader = members[0];
      if (leader && !leader.closed) await leader.job<"unload">({ type: "unload", modelId: model.info.id });
      await Promise.all(members.map((m) => this.#tpCall(m, { type: "tp-leave" }).catch(() => undefined)));
    } finally {
      group.watchdog.close("unloaded");
      this.#groups.delete(group.id);
      for (const m of members) {
        if (m.groupId === group.id) m.groupId = undefined;
        m.loadCycles++;
      }
      this.#host.registry.drop(model, "unloaded", { lost: false });
    }
  }

  /** The engine is shutting down: no group steps again. */
  closeAll(reason: string): void {
    for (const group of this.#groups.values()) {
      group.closing = true;
      group.watchdog.close(reason);
    }
    this.#groups.clear();
  }

  /** The group's step loop: one watched step at a time while work remains. */
  async #pump(model: ModelEntry, group: TpGroup): Promise<void> {
    while (
      group.wantStep &&
      !group.closing &&
      !this.#host.isClosed() &&
      model.state !== "failed" &&
      group.watchdog.state === "ready"
    ) {
      group.wantStep = false;
      let result: GroupStepResult;
      try {
        const meta = { batchSize: model.inFlight, tokens: model.inFlight };
        result = await group.watchdog.runStep((step) => this.#step(group, step, meta), meta);
      } catch (error) {
        this.#stepFailed(model, group, error);
        return;
      }
      this.#host.recordStep(model, result);
      if (result.more) group.wantStep = true;
    }
  }

  /** One step: the followers' collective and the leader's collective + forward; resolves with the leader's reply. */
  #step(group: TpGroup, step: number, meta: { batchSize: number; tokens: number }): Promise<GroupStepResult> {
    const members = group.deviceIds.map((id) => this.#host.device(id));
    if (members.some((m) => m === undefined))
      return Promise.reject(new CortexError("unavailable", `a device of ${group.id} is gone`));
    for (const follower of members.slice(1))
      this.#tpCall(follower!, { type: "tp-step", step, ...meta }).catch(() => undefined);
    return members[0]!.request((jobId) => ({
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
  #stepFailed(model: ModelEntry, group: TpGroup, error: unknown): void {
    const cortex = toCortexError(error);
    const wire = cortex.toWire();
    const leader = this.#host.device(group.deviceIds[0]!);
    if (cortex.code === "device_fault") {
      const reason = `tensor-parallel group ${group.id} is poisoned: ${cortex.message}`;
      this.#host.registry.fail(model, reason, wire);
      for (const id of group.deviceIds) {
        const device = this.#host.device(id);
        if (device && !device.poisonReason) device.poisonReason = reason;
      }
      const recovery = group.watchdog.recovery;
      if (recovery) this.#host.trackRecovery(recovery);
    }
    failQueue(model, wire);
    if (!leader) return;
    for (const [key, active] of leader.sequences) {
      if (active.model !== model) continue;
      leader.sequences.delete(key);
      active.channel.push({ type: "error", error: wire });
      // A healthy group keeps stepping: free the slot in the Worker too.
      if (cortex.code !== "device_fault" && !leader.closed) leader.post({ type: "cancel", seqKey: key });
      this.#host.sequenceEnded(model);
    }
  }

  /** Stage 1, as the watchdog runs it: each hook is bounded by the grace period there. */
  #recoveryHooks(group: Pick<TpGroup, "id" | "modelId" | "deviceIds" | "specs">): RecoveryHooks {
    const host = this.#host;
    const current = () => group.deviceIds.map((id) => host.device(id)).filter((d) => d !== undefined);
    return {
      unload: async () => {
        const leader = host.device(group.deviceIds[0]!);
        if (!leader) throw new CortexError("unavailable", "the leader device is gone");
        await leader.job<"unload">({ type: "unload", modelId: group.modelId });
      },
      terminateWorkers: () => host.terminate(current(), host.timings.graceMs),
      startWorkers: () => host.startFresh(group.specs),
      reportUnloaded: (reason) => {
        this.#groups.delete(group.id);
        const model = host.registry.get(group.modelId);
        if (model?.group?.id === group.id) host.registry.drop(model, reason, { lost: true });
        else if (model) wakeIdle(model);
      },
    };
  }

  #rankPort(device: DeviceHandle): RankPort {
    return {
      request: (call) => this.#tpCall(device, call),
      terminate: (timeoutMs) => this.#host.terminate([device], timeoutMs ?? 5_000),
    };
  }

  #tpCall(device: DeviceHandle, call: TpRankCall): Promise<unknown> {
    return device.request((jobId) => ({ type: "tp", jobId, call }));
  }
}

/** nccl between CUDA devices when libnccl is found, else the shm communicator (CPU groups always). */
function groupBackend(kind: "cpu" | "cuda"): { name: CommunicatorBackendName; libraryPath?: string } {
  if (kind === "cpu") return { name: "shm" };
  const lookup = findNcclLibrary();
  if (lookup.path) return { name: "nccl", libraryPath: lookup.path };
  consola.warn(ncclMissingMessage(lookup));
  return { name: "shm" };
}
