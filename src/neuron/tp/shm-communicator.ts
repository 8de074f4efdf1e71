/**
 * Shared-memory communicator for CPU ranks (each rank in its own Worker) and
 * for tests. The all-reduce is a generation-counted barrier that really blocks
 * (Atomics.wait without a timeout), so a rank that never arrives wedges the
 * others exactly as a hung NCCL collective would; the only way out is an
 * abort, which sets the group flag, bumps the generation and wakes everyone.
 */

import {
  type AbortOutcome,
  type Communicator,
  CommunicatorError,
  type CommunicatorHandle,
  handleFor,
  type ReduceOp,
} from "./communicator.ts";
import {
  bumpSequence,
  type ControlView,
  claimAbort,
  claimDestroy,
  completeAbort,
  controlView,
  enterCall,
  H_ARRIVED,
  H_GEN,
  isGroupAborted,
  leaveCall,
  publishLive,
  rankState,
  setPhase,
  valuesByteOffset,
} from "./control-block.ts";

export function initShmCommunicator(init: {
  groupId: string;
  rank: number;
  control: SharedArrayBuffer;
}): Communicator {
  const view = controlView(init.control);
  if (view.backend !== "shm") throw new TypeError("control block was created for nccl, not shm");
  const comm = new ShmCommunicator(view, init.groupId, init.rank);
  if (!publishLive(view, init.rank, 0n)) {
    throw comm.failure("aborted", "aborted before the group formed");
  }
  return comm;
}

/** Aborts one shm rank from any thread; never blocks. */
export function abortShmRank(control: SharedArrayBuffer, rank: number): AbortOutcome {
  const view = controlView(control);
  const claim = claimAbort(view, rank);
  if (!claim.proceed && claim.previous !== "uninit") return "already";
  completeAbort(view, rank);
  return claim.previous === "uninit" ? "pre-init" : "aborted";
}

class ShmCommunicator implements Communicator {
  readonly backend = "shm" as const;
  readonly size: number;
  private readonly values: Float64Array;

  constructor(
    private readonly view: ControlView,
    readonly groupId: string,
    readonly rank: number,
  ) {
    this.size = view.size;
    this.values = new Float64Array(view.sab, valuesByteOffset(view.size), 2 * view.size + 2);
  }

  failure(reason: "aborted" | "destroyed", message: string): CommunicatorError {
    return new CommunicatorError(
      reason,
      `shm communicator rank ${this.rank} of ${this.groupId}: ${message}`,
      {
        groupId: this.groupId,
        rank: this.rank,
        backend: "shm",
      },
    );
  }

  allReduce(value: number, op: ReduceOp = "sum"): number {
    const { i32 } = this.view;
    if (!enterCall(this.view, this.rank)) {
      const state = rankState(this.view, this.rank);
      throw this.failure(state === "destroyed" ? "destroyed" : "aborted", `all-reduce refused (${state})`);
    }
    setPhase(this.view, this.rank, "collective");
    bumpSequence(this.view, this.rank);
    let result: number;
    try {
      result = this.barrier(i32, value, op);
    } finally {
      setPhase(this.view, this.rank, "idle");
      if (!leaveCall(this.view, this.rank)) {
        // An abort claimed the communicator during the call; whatever the barrier said, the step failed.
        result = Number.NaN;
      }
    }
    if (Number.isNaN(result) || isGroupAborted(this.view))
      throw this.failure("aborted", "all-reduce aborted");
    return result;
  }

  private barrier(i32: Int32Array, value: number, op: ReduceOp): number {
    const gen = Atomics.load(i32, H_GEN);
    if (isGroupAborted(this.view)) throw this.failure("aborted", "all-reduce aborted");
    const parity = gen & 1;
    this.values[parity * this.size + this.rank] = value;
    const arrived = Atomics.add(i32, H_ARRIVED, 1) + 1;
    const resultSlot = 2 * this.size + parity;
    if (arrived === this.size) {
      let acc = this.values[parity * this.size]!;
      for (let r = 1; r < this.size; r++) acc = reduce(op, acc, this.values[parity * this.size + r]!);
      this.values[resultSlot] = acc;
      Atomics.store(i32, H_ARRIVED, 0);
      Atomics.add(i32, H_GEN, 1);
      Atomics.notify(i32, H_GEN);
      return acc;
    }
    for (;;) {
      // No timeout on purpose: a missing rank must wedge this thread until someone aborts.
      Atomics.wait(i32, H_GEN, gen);
      if (isGroupAborted(this.view)) throw this.failure("aborted", "all-reduce aborted");
      if (Atomics.load(i32, H_GEN) !== gen) return this.values[resultSlot]!;
    }
  }

  abort(): void {
    abortShmRank(this.view.sab, this.rank);
  }

  asyncError(): CommunicatorError | undefined {
    if (!isGroupAborted(this.view)) return undefined;
    return this.failure("aborted", "the group was aborted");
  }

  destroy(): void {
    claimDestroy(this.view, this.rank);
  }

  handle(): CommunicatorHandle {
    return handleFor(
      { backend: "shm", groupId: this.groupId, rank: this.rank, control: this.view.sab },
      this.size,
    );
  }
}

function reduce(op: ReduceOp, a: number, b: number): number {
  switch (op) {
    case "sum":
      return a + b;
    case "max":
      return Math.max(a, b);
    case "min":
      return Math.min(a, b);
    default: {
      const never: never = op;
      throw new TypeError(`unknown reduce op ${String(never)}`);
    }
  }
}
