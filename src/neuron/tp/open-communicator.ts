/**
 * Backend dispatch: join a group from a rank's Worker, or abort a rank from
 * anywhere through its handle. Kept apart from communicator.ts so the pure
 * contract can be imported without loading bun:ffi.
 */
import type { AbortOutcome, Communicator, CommunicatorHandle, CommunicatorInit } from "./communicator.ts";
import { abortNcclRank, initNcclCommunicator } from "./nccl-communicator.ts";
import { abortShmRank, initShmCommunicator } from "./shm-communicator.ts";

/** Joins the group; blocks the calling Worker until every rank has joined, or throws CommunicatorError. */
export function initCommunicator(init: CommunicatorInit): Communicator {
  switch (init.backend) {
    case "shm":
      return initShmCommunicator(init);
    case "nccl":
      return initNcclCommunicator(init);
    default: {
      const never: never = init;
      throw new TypeError(`unknown communicator backend ${JSON.stringify(never)}`);
    }
  }
}

/**
 * Aborts one rank. shm never blocks; nccl calls ncclCommAbort, which can hang
 * on a sick device, so call this in the aborter Worker, never the main thread.
 */
export function abortCommunicatorHandle(handle: CommunicatorHandle): AbortOutcome {
  switch (handle.backend) {
    case "shm":
      return abortShmRank(handle.control, handle.rank);
    case "nccl":
      return abortNcclRank(handle);
    default: {
      const never: never = handle.backend;
      throw new TypeError(`unknown communicator backend ${String(never)}`);
    }
  }
}
