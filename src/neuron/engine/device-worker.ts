/**
 * Entry point of a device Worker: owns the device's native state for its
 * lifetime and answers the job channel (protocol.ts). Generation runs one
 * decode step per macrotask, so cancels and new sequences are seen between
 * steps. A native failure poisons the Worker: every later job fails with
 * device_fault until the main thread recycles it.
 */
import { ptr as ptrOf } from "bun:ffi";
import { CortexError, type WireError } from "../../core/errors.ts";
import { currentThreadId } from "../../core/worker-thread.ts";
import type { TpRankCall } from "../tp/rank-client.ts";
import { answerRankCall, TpRankRuntime } from "../tp/rank-runtime.ts";
import { BatchScheduler, DeviceFault, type SchedulerStats } from "./batch-scheduler.ts";
import { Embedder } from "./embedder.ts";
import { toEngineError } from "./native-failure.ts";
import { NativeModel, NativeRuntime } from "./native-runtime.ts";
import { PromptCache } from "./prompt-cache.ts";
import type {
  GroupStepResult,
  Job,
  JobMap,
  JobType,
  MainToWorker,
  StepStats,
  WorkerInit,
  WorkerToMain,
} from "./protocol.ts";
import { IdleSpare } from "./idle-spare.ts";
import { SlotKv } from "./slot-kv.ts";
import type { GenerationEvent } from "./types.ts";

declare const self: Worker;

interface Loaded {
  native: NativeModel;
  scheduler: BatchScheduler;
  /** A tensor-parallel leader's model: stepped only by `group-step`, never by `tick`. */
  driven: boolean;
  /** KV use last reported, so an unchanged idle model sends nothing. */
  reportedKv: number;
  slots: SlotKv;
  /** Prefix-reuse figures last reported (JSON), sent again only when they change. */
  reportedPrefix: string;
  contextSize: number;
  /** Made on the first embeddings request (embedder.ts). */
  embedder?: Embedder;
}

let init: WorkerInit | undefined;
let runtime: NativeRuntime | undefined;
let poisoned: string | undefined;
const models = new Map<string, Loaded>();
/** Which model each live sequence belongs to, for cancels. */
const sequenceModel = new Map<number, string>();
const stats: SchedulerStats = { decodeCalls: 0, tokensDecoded: 0, tokensSampled: 0 };
let tickScheduled = false;
/** Host-memory prompt cache shared by this device's models (off until init sets a budget). */
let promptCache: PromptCache | undefined;
/** The cache's next spare, touched while nothing else runs (undefined with no cache). */
let idleSpare: IdleSpare | undefined;
/** This device's place in a tensor-parallel group, if any. */
const tp = new TpRankRuntime();

/** Messages of the step under way, posted as one when it ends (WorkerToMain "batch"). */
let outbox: WorkerToMain[] | undefined;

function send(message: WorkerToMain): void {
  if (outbox) outbox.push(message);
  else self.postMessage(message);
}

function flushOutbox(): void {
  const messages = outbox ?? [];
  outbox = undefined;
  if (messages.length === 1) self.postMessage(messages[0]);
  else if (messages.length > 1) self.postMessage({ type: "batch", messages } satisfies WorkerToMain);
}

function emit(seqKey: number, event: GenerationEvent): void {
  if (event.type === "done" || event.type === "error") sequenceModel.delete(seqKey);
  send({ type: "seq", seqKey, event });
}

function poison(reason: string): void {
  if (poisoned) return;
  poisoned = reason;
  send({ type: "fault", reason });
  const error = new CortexError("device_fault", `device ${init?.deviceId} failed: ${reason}`);
  for (const loaded of models.values()) loaded.scheduler.failAll(error);
}

function faultError(): CortexError {
  return new CortexError("device_fault", `device ${init?.deviceId} is poisoned (${poisoned}); recycle it`);
}

function scheduleTick(): void {
  if (tickScheduled) return;
  tickScheduled = true;
  setImmediate(tick);
}

/** Runs one scheduler step and measures it. */
function timedStep(modelId: string, loaded: Loaded, run: (step: () => boolean) => boolean): GroupStepResult {
  const started = performance.now();
  const more = run(() => loaded.scheduler.step());
  const batch = loaded.scheduler.lastBatch;
  const kvTokens = loaded.scheduler.kvTokens;
  return {
    modelId,
    more,
    batchSize: batch?.sequences ?? 0,
    tokens: batch?.tokens ?? 0,
    kvTokens,
    ms: performance.now() - started,
  };
}

function reportStep(loaded: Loaded, stats: StepStats): void {
  const prefix = loaded.slots.stats;
  const prefixJson = JSON.stringify(prefix);
  if (prefixJson !== loaded.reportedPrefix) {
    loaded.reportedPrefix = prefixJson;
    send({ type: "prefix-stats", modelId: stats.modelId, stats: prefix });
  }
  if (stats.tokens === 0 && stats.kvTokens === loaded.reportedKv) return;
  loaded.reportedKv = stats.kvTokens;
  const { modelId, batchSize, tokens, kvTokens, ms } = stats;
  send({ type: "step", modelId, batchSize, tokens, kvTokens, ms });
}

function tick(): void {
  tickScheduled = false;
  if (poisoned) return;
  outbox = [];
  let more = false;
  try {
    more = stepModels();
    if (more) scheduleTick();
  } finally {
    flushOutbox();
  }
  if (!more && !poisoned) idleSpare?.idle();
}

/** The largest state a save could write on this device now: the spare to prepare. */
function largestSave(): number {
  let largest = 0;
  for (const loaded of models.values())
    if (!loaded.driven) largest = Math.max(largest, loaded.slots.largestSave());
  return largest;
}

/** One step of every self-driven model; whether any has work left. */
function stepModels(): boolean {
  let more = false;
  for (const [modelId, loaded] of models) {
    if (loaded.driven) continue;
    try {
      const result = timedStep(modelId, loaded, (step) => step());
      if (result.more) more = true;
      reportStep(loaded, result);
    } catch (error) {
      poison(
        error instanceof DeviceFault
          ? error.message
          : `unexpected failure in a decode step: ${String(error)}`,
      );
      return false;
    } finally {
      runtime?.drainLog();
    }
  }
  return more;
}

function requireModel(modelId: string): Loaded {
  const loaded = models.get(modelId);
  if (!loaded)
    throw new CortexError("model_not_found", `model ${modelId} is not loaded on ${init?.deviceId}`);
  return loaded;
}

function requireRuntime(): NativeRuntime {
  if (!runtime) throw new CortexError("unavailable", "device worker not initialised");
  return runtime;
}

type Results = { [K in JobType]: JobMap[K]["result"] };

function runJob(job: Job): Results[JobType] {
  if (poisoned && job.type !== "shutdown" && job.type !== "stats") throw faultError();
  switch (job.type) {
    case "load": {
      if (models.has(job.modelId))
        throw new CortexError("conflict", `model ${job.modelId} is already loaded`);
      const rt = requireRuntime();
      const native = NativeModel.load(rt, {
        path: job.path,
        contextSize: job.contextSize,
        slots: job.slots,
        gpuIndex: init?.gpuIndex ?? -1,
        threads: init?.threads ?? 1,
        memoryBudgetBytes: job.memoryBudgetBytes,
        ...(job.splitDevices === undefined ? {} : { splitDevices: job.splitDevices }),
      });
      const slots = new SlotKv(rt, native, { modelId: job.modelId, slots: job.slots, cache: promptCache });
      const scheduler = new BatchScheduler(rt, native, { contextSize: job.contextSize, slots }, emit, stats);
      models.set(job.modelId, {
        native,
        scheduler,
        driven: job.driven === true,
        reportedKv: 0,
        slots,
        reportedPrefix: "",
        contextSize: job.contextSize,
      });
      return {
        trainedContextSize: native.trainedContextSize,
        chatTemplate: native.chatTemplate,
        bosToken: native.tokenText(native.bos),
        eosToken: native.tokenText(native.eos),
        addBos: native.addBos,
        memoryBytes: native.memoryBytes,
        description: native.description,
      } satisfies Results["load"];
    }
    case "unload": {
      const loaded = requireModel(job.modelId);
      loaded.scheduler.dispose();
      loaded.embedder?.free();
      loaded.native.free();
      models.delete(job.modelId);
      // The cache dropped its spares with the last model's states; so goes the one being touched.
      if (models.size === 0) idleSpare?.drop();
      return { freedBytes: loaded.native.memoryBytes } satisfies Results["unload"];
    }
    case "reset-kv":
      requireModel(job.modelId).scheduler.resetKv();
      return {};
    case "memory": {
      const perModel: Record<string, number> = {};
      let usedBytes = 0;
      for (const [id, loaded] of models) {
        perModel[id] = loaded.native.memoryBytes;
        usedBytes += loaded.native.memoryBytes;
      }
      return { usedBytes, models: perModel } satisfies Results["memory"];
    }
    case "count-tokens":
      return {
        tokens: requireModel(job.modelId).native.tokenize(job.prompt).length,
      } satisfies Results["count-tokens"];
    case "embed": {
      const loaded = requireModel(job.modelId);
      loaded.embedder ??= Embedder.open(
        requireRuntime(),
        loaded.native,
        loaded.contextSize,
        init?.threads ?? 1,
      );
      return loaded.embedder.embed(job.inputs, job.dimensions) satisfies Results["embed"];
    }
    case "fim-tokens": {
      const { native } = requireModel(job.modelId);
      const { llama } = requireRuntime();
      const ids = [
        llama.llama_vocab_fim_pre(native.vocab),
        llama.llama_vocab_fim_suf(native.vocab),
        llama.llama_vocab_fim_mid(native.vocab),
      ];
      const [pre, suf, mid] = ids.map((id) => native.tokenText(id));
      return {
        fim: ids.some((id) => id < 0) ? null : { pre: pre ?? "", suf: suf ?? "", mid: mid ?? "" },
      } satisfies Results["fim-tokens"];
    }
    case "apply-builtin-template":
      return {
        prompt: applyBuiltinTemplate(requireRuntime(), job),
      } satisfies Results["apply-builtin-template"];
    case "stats":
      return { ...stats } satisfies Results["stats"];
    case "inject-fault": {
      if (!init?.faultInjection) throw new CortexError("forbidden", "fault injection is not enabled");
      for (const loaded of models.values()) loaded.scheduler.failNextDecode = true;
      return {};
    }
    case "shutdown": {
      for (const loaded of models.values()) {
        loaded.scheduler.dispose();
        loaded.embedder?.free();
        loaded.native.free();
      }
      models.clear();
      return {};
    }
    default: {
      const unknown: never = job;
      throw new CortexError("internal", `unknown job ${JSON.stringify(unknown)}`);
    }
  }
}

function applyBuiltinTemplate(rt: NativeRuntime, job: JobMap["apply-builtin-template"]["job"]): string {
  const keep: Buffer[] = [];
  const pointers = (values: string[]): BigUint64Array => {
    const arr = new BigUint64Array(Math.max(values.length, 1));
    values.forEach((v, i) => {
      const buf = Buffer.from(`${v}\0`, "utf8");
      keep.push(buf);
      arr[i] = BigInt(ptrOf(buf));
    });
    return arr;
  };
  const roles = pointers(job.messages.map((m) => m.role));
  const contents = pointers(job.messages.map((m) => m.content));
  const tmpl = Buffer.from(`${job.template}\0`, "utf8");
  let cap = 1024 + job.messages.reduce((n, m) => n + 2 * Buffer.byteLength(m.content) + 64, 0);
  for (let attempt = 0; attempt < 2; attempt++) {
    const buf = new Uint8Array(cap);
    const n = rt.shim.shim_chat_apply_template(
      tmpl,
      job.messages.length,
      roles,
      contents,
      job.addAssistant,
      buf,
      cap,
    );
    if (n < 0)
      throw new CortexError("invalid_request", `llama.cpp has no built-in chat template "${job.template}"`);
    if (n <= cap) return new TextDecoder().decode(buf.subarray(0, n));
    cap = n + 1;
  }
  keep.length = 0;
  throw new CortexError("internal", "chat template output kept growing");
}

/** The tensor-parallel rank messages (tp/rank-protocol.ts); cpu-rank-worker.ts is the reference. */
function runTp(call: TpRankCall): unknown {
  return answerRankCall(tp, call, ({ step }) => {
    // Followers only: the leader steps through `group-step`, which also runs its forward.
    tp.lockstep(step);
    return { step };
  });
}

/** Group leader: lockstep with the followers, then one decode step under the rank's fault hooks. */
function groupStep(modelId: string, step: number): GroupStepResult {
  const loaded = models.get(modelId);
  if (!loaded?.driven) {
    // Still join the collective: the followers are already waiting in it.
    tp.lockstep(step);
    throw new CortexError("model_not_found", `model ${modelId} is not led by ${init?.deviceId}`);
  }
  try {
    return timedStep(modelId, loaded, (run) => {
      tp.lockstep(step);
      return tp.forward(step, run);
    });
  } catch (error) {
    // Not poison(): the group's watchdog owns recovery, and the unload it sends next must still work.
    if (error instanceof DeviceFault)
      throw new CortexError("device_fault", `${init?.deviceId}: ${error.message} (step ${step})`);
    throw error;
  }
}

function reply(jobId: number, run: () => unknown): void {
  try {
    send({ type: "result", jobId, ok: true, value: run() });
  } catch (error) {
    send({ type: "result", jobId, ok: false, error: toEngineError(error).toWire() });
  } finally {
    runtime?.drainLog();
  }
}

function onMessage(message: MainToWorker): void {
  switch (message.type) {
    case "init": {
      init = message.init;
      try {
        runtime = NativeRuntime.open(init);
        promptCache = init.promptCacheBytes > 0 ? new PromptCache(init.promptCacheBytes) : undefined;
        idleSpare = promptCache && new IdleSpare(promptCache, { busy: () => tickScheduled, largestSave });
        send({ type: "ready", systemInfo: runtime.systemInfo, threadId: currentThreadId() });
      } catch (error) {
        send({ type: "init-failed", error: toEngineError(error).toWire() });
      }
      return;
    }
    case "job": {
      try {
        const value = runJob(message.job);
        send({ type: "result", jobId: message.jobId, ok: true, value });
      } catch (error) {
        if (error instanceof DeviceFault) poison(error.message);
        const wire: WireError =
          error instanceof DeviceFault ? faultError().toWire() : toEngineError(error).toWire();
        send({ type: "result", jobId: message.jobId, ok: false, error: wire });
      } finally {
        runtime?.drainLog();
      }
      // The main thread terminates the Worker once it has this answer.
      if (message.job.type === "shutdown") {
        runtime?.close();
        runtime = undefined;
      }
      return;
    }
    case "tp":
      reply(message.jobId, () => runTp(message.call));
      return;
    case "group-step":
      reply(message.jobId, () => groupStep(message.modelId, message.step));
      return;
    case "submit": {
      if (poisoned) {
        emit(message.seqKey, { type: "error", error: faultError().toWire() });
        return;
      }
      try {
        const loaded = requireModel(message.modelId);
        sequenceModel.set(message.seqKey, message.modelId);
        loaded.scheduler.submit(message.seqKey, message.params);
        scheduleTick();
      } catch (error) {
        emit(message.seqKey, { type: "error", error: toEngineError(error).toWire() });
      }
      return;
    }
    case "cancel": {
      const modelId = sequenceModel.get(message.seqKey);
      if (modelId !== undefined) models.get(modelId)?.scheduler.cancel(message.seqKey);
      scheduleTick();
      return;
    }
    case "pause":
    case "resume": {
      const modelId = sequenceModel.get(message.seqKey);
      if (modelId !== undefined)
        models.get(modelId)?.scheduler.setPaused(message.seqKey, message.type === "pause");
      scheduleTick();
      return;
    }
    default: {
      const unknown: never = message;
      throw new Error(`unknown message ${JSON.stringify(unknown)}`);
    }
  }
}

self.onmessage = (event: MessageEvent<MainToWorker>) => onMessage(event.data);
