/**
 * The typed job channel between the main thread and a device Worker. Only
 * plain data crosses it: native pointers stay in the Worker, errors cross as
 * WireError.
 */

import type { ShimAddresses } from "../../../ffi/shim.ts";
import type { WireError } from "../../core/errors.ts";
import type { TpRankCall } from "../tp/rank-client.ts";
import type { PrefixReuseStats } from "./slot-kv.ts";
import type { GenerateParams, GenerationEvent, StepObservation } from "./types.ts";

export interface WorkerInit {
  deviceId: string;
  /** CUDA ordinal, or -1 for the CPU device. */
  gpuIndex: number;
  /** libllama of the native set the main thread prepared. */
  libllama: string;
  /** The shim the main thread compiled (ffi/native-process.ts). */
  shimAddresses: ShimAddresses;
  /** ggml log level routed to consola (1 debug … 4 error). */
  logLevel: number;
  /** Int32 flag the main thread sets to abort a running decode (watchdog, fault path). */
  abortFlag: SharedArrayBuffer;
  /** Allows `inject-fault` jobs. */
  faultInjection: boolean;
  /** Budget of the host-memory prompt cache shared by this device's models; 0 = off. */
  promptCacheBytes: number;
  threads: number;
}

export interface LoadJob {
  type: "load";
  modelId: string;
  path: string;
  contextSize: number;
  slots: number;
  /** Bytes the model may use on this device; the Worker refuses above it (507). */
  memoryBudgetBytes: number;
  /**
   * Tensor-parallel leader: the main thread drives every decode step of this
   * model with `group-step` messages (under its watchdog) instead of the
   * Worker stepping it on its own.
   */
  driven?: boolean;
  /** CUDA group leader: the group's ggml devices (`CUDA0`, …), leader first, to split the model over. */
  splitDevices?: string[];
}

/** What one decode step did, as the Worker reports it (the pool adds whether a group stepped it). */
export type StepStats = Omit<StepObservation, "group">;

/** A group leader's answer to `group-step`. */
export interface GroupStepResult extends StepStats {
  /** Work remains (another step is due). */
  more: boolean;
}

export interface LoadResult {
  trainedContextSize: number;
  chatTemplate: string | null;
  bosToken: string;
  eosToken: string;
  addBos: boolean;
  memoryBytes: number;
  description: string;
}

/** One input to embed: text, or token ids of the model's vocabulary. */
export type EmbedInput = string | number[];

/** Fill-in-the-middle tokens (prefix, suffix, middle) as their text, which the tokenizer reads back as them. */
export interface FimTokens {
  pre: string;
  suf: string;
  mid: string;
}

export interface ChatMessageText {
  role: string;
  content: string;
}

/** Jobs answered by exactly one `result` message, and what each answers with. */
export interface JobMap {
  load: { job: LoadJob; result: LoadResult };
  unload: { job: { type: "unload"; modelId: string }; result: { freedBytes: number } };
  "reset-kv": { job: { type: "reset-kv"; modelId: string }; result: Record<string, never> };
  memory: { job: { type: "memory" }; result: { usedBytes: number; models: Record<string, number> } };
  "count-tokens": {
    job: { type: "count-tokens"; modelId: string; prompt: string };
    result: { tokens: number };
  };
  embed: {
    job: { type: "embed"; modelId: string; inputs: EmbedInput[]; dimensions?: number };
    result: { embeddings: Float32Array[]; promptTokens: number };
  };
  /** The model's fill-in-the-middle tokens as prompt text, or null where its vocabulary has none. */
  "fim-tokens": {
    job: { type: "fim-tokens"; modelId: string };
    result: { fim: FimTokens | null };
  };
  "apply-builtin-template": {
    job: {
      type: "apply-builtin-template";
      template: string;
      messages: ChatMessageText[];
      addAssistant: boolean;
    };
    result: { prompt: string };
  };
  stats: {
    job: { type: "stats" };
    result: { decodeCalls: number; tokensDecoded: number; tokensSampled: number };
  };
  "inject-fault": { job: { type: "inject-fault"; fault: "decode" }; result: Record<string, never> };
  shutdown: { job: { type: "shutdown" }; result: Record<string, never> };
}

export type JobType = keyof JobMap;
export type Job = JobMap[JobType]["job"];

export type MainToWorker =
  | { type: "init"; init: WorkerInit }
  | { type: "job"; jobId: number; job: Job }
  | { type: "submit"; seqKey: number; modelId: string; params: GenerateParams }
  | { type: "cancel"; seqKey: number }
  /** A tensor-parallel rank message (tp/rank-protocol.ts), answered by one `result`. */
  | { type: "tp"; jobId: number; call: TpRankCall }
  /** Group leader: the lockstep collective, then one decode step of a driven model; answered by one `result` (GroupStepResult). */
  | { type: "group-step"; jobId: number; modelId: string; step: number; batchSize: number; tokens: number }
  /** Flow control: the consumer of a sequence fell behind (pause) or caught up (resume). */
  | { type: "pause" | "resume"; seqKey: number };

export type WorkerToMain =
  | { type: "ready"; systemInfo: string; threadId: number }
  | { type: "init-failed"; error: WireError }
  | { type: "result"; jobId: number; ok: true; value: unknown }
  | { type: "result"; jobId: number; ok: false; error: WireError }
  /** Events of one sequence; a `done` or `error` event is its last. */
  | { type: "seq"; seqKey: number; event: GenerationEvent }
  /** A native failure: the device is poisoned until recycled. */
  | { type: "fault"; reason: string }
  /** After a self-driven step that decoded something or changed the KV use. */
  | ({ type: "step" } & StepStats)
  /** A model's prefix-reuse figures changed (cumulative since its load). */
  | { type: "prefix-stats"; modelId: string; stats: PrefixReuseStats }
  /**
   * Everything one self-driven step sent (its sequences' events, then its
   * stats), in order: one message per step instead of one per token and
   * sequence, since each costs a structured clone and a wake-up of the main
   * thread while the decode thread waits for a core.
   */
  | { type: "batch"; messages: WorkerToMain[] };
