/**
 * Tensor-parallel job messages between the device pool (main thread) and a
 * rank's device Worker. The engine's job channel carries them next to its own
 * jobs; the reference Worker (cpu-rank-worker.ts) speaks exactly these.
 * Plain objects only: they cross postMessage.
 */
import type { WireError } from "../../core/errors.ts";
import type { CommunicatorInit } from "./communicator.ts";

export type TpRankRequest =
  /** Rank 0 of an nccl group, before the join: ncclGetUniqueId (128 bytes) for the pool to hand to every rank. */
  | { type: "tp-unique-id"; id: number; libraryPath: string }
  /** Join the group. Every rank concurrently; `faults` is the fault-injection spec ("" = none). */
  | { type: "tp-join"; id: number; init: CommunicatorInit; faults: string }
  /** One step: the lockstep collective on every rank, then (leader only) the forward. */
  | { type: "tp-step"; id: number; step: number; batchSize: number; tokens: number }
  /** Leave the group: destroy the communicator (a no-op after an abort). */
  | { type: "tp-leave"; id: number }
  /** Liveness probe; a wedged Worker never answers. */
  | { type: "ping"; id: number }
  /** Reference Worker only: stands in for the engine's unload job. */
  | { type: "unload"; id: number };

export type TpRankReply =
  | { id: number; ok: true; value?: unknown }
  | { id: number; ok: false; error: WireError };

/** Posted once by a fresh Worker when it can take jobs. */
export interface TpRankReady {
  type: "ready";
  /** The rank Worker's OS thread id (src/core/worker-thread.ts). */
  threadId: number;
}
