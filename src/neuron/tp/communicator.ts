/**
 * The communicator contract of a tensor-parallel group: one rank per device
 * Worker, joined for the group's per-step lockstep/liveness all-reduce, and
 * abortable from any other thread through a plain, serialisable handle.
 */
import { CortexError } from "../../core/errors.ts";
import type { CommunicatorBackendName } from "./control-block.ts";

export type { CommunicatorBackendName } from "./control-block.ts";

export type ReduceOp = "sum" | "max" | "min";

/**
 * Everything another thread needs to abort one rank: structured-clonable, so
 * it crosses `postMessage` to the main thread or the aborter Worker. The
 * `control` SharedArrayBuffer is created by the main thread before the group
 * forms, so the handle exists even while a rank is still (or forever) in init.
 */
export interface CommunicatorHandle {
  backend: CommunicatorBackendName;
  groupId: string;
  rank: number;
  size: number;
  control: SharedArrayBuffer;
  /** nccl only: the library file the ranks loaded (the aborter must call the same one). */
  libraryPath?: string;
}

/** How a rank joins: the backend, its place in the group and the shared state. */
export type CommunicatorInit =
  | { backend: "shm"; groupId: string; rank: number; control: SharedArrayBuffer }
  | {
      backend: "nccl";
      groupId: string;
      rank: number;
      control: SharedArrayBuffer;
      /** 128-byte ncclUniqueId from rank 0's ncclGetUniqueId, shared with every rank. */
      uniqueId: Uint8Array;
      /** Resolved library path (see ffi/nccl.ts findNcclLibrary); every rank and the aborter use the same. */
      libraryPath: string;
      /** "cuda": device buffers on the default stream (real GPUs); "host": host buffers (the stand-in library). */
      memory: "cuda" | "host";
      /** CUDA ordinal the rank's Worker is bound to (memory "cuda"). */
      device?: number;
      /** How long nonblocking init may take before the rank gives up. */
      initTimeoutMs?: number;
    };

/** A joined rank. Lives in the rank's own Worker; every method but `handle` is for that Worker only. */
export interface Communicator {
  readonly backend: CommunicatorBackendName;
  readonly groupId: string;
  readonly rank: number;
  readonly size: number;
  /**
   * Collective: every rank must call it, and it blocks the calling thread
   * until all have (the result is the reduction) or the communicator is
   * aborted (throws CommunicatorError with reason "aborted").
   */
  allReduce(value: number, op?: ReduceOp): number;
  /** Aborts this rank from its own thread; from any other thread use the handle. */
  abort(): void;
  /** An asynchronous failure the backend has recorded, if any; never blocks. */
  asyncError(): CommunicatorError | undefined;
  /** Frees the communicator. Idempotent; after an abort it does nothing. */
  destroy(): void;
  handle(): CommunicatorHandle;
}

export type CommunicatorFailure = "aborted" | "remote-error" | "init-failed" | "library-error" | "destroyed";

/** A device fault seen through a communicator. Crosses Worker boundaries as its `toWire()`. */
export class CommunicatorError extends CortexError {
  readonly reason: CommunicatorFailure;

  constructor(
    reason: CommunicatorFailure,
    message: string,
    details: { groupId: string; rank: number; backend: CommunicatorBackendName; code?: number },
  ) {
    super("device_fault", message, { details: { ...details, reason } });
    this.name = "CommunicatorError";
    this.reason = reason;
  }
}

export function handleFor(
  init: Pick<CommunicatorInit, "backend" | "groupId" | "rank" | "control">,
  size: number,
  libraryPath?: string,
): CommunicatorHandle {
  return {
    backend: init.backend,
    groupId: init.groupId,
    rank: init.rank,
    size,
    control: init.control,
    ...(libraryPath === undefined ? {} : { libraryPath }),
  };
}

/** Every rank's handle of a group, built on the main thread from the control block it created. */
export function groupHandles(options: {
  backend: CommunicatorBackendName;
  groupId: string;
  size: number;
  control: SharedArrayBuffer;
  libraryPath?: string;
}): CommunicatorHandle[] {
  return Array.from({ length: options.size }, (_, rank) =>
    handleFor({ ...options, rank }, options.size, options.libraryPath),
  );
}

/** What happened when one rank's handle was aborted. */
export type AbortOutcome =
  /** This call ran the backend's abort. */
  | "aborted"
  /** Someone else aborted, or the rank was already destroyed: nothing to do. */
  | "already"
  /** The rank had no communicator yet; it aborts its own when its init returns. */
  | "pre-init"
  | "error";
