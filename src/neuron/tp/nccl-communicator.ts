/**
 * NCCL communicator for CUDA ranks. Init is nonblocking (blocking=0 in the
 * config), so no rank ever sits inside NCCL waiting for a peer: it polls
 * ncclCommGetAsyncError, and in "cuda" memory mode polls the stream too, in
 * short sleeps an abort cuts short. The communicator pointer is published in
 * the group control block the moment init returns it, so the aborter can reach
 * a rank even while its init or its collective is wedged.
 */
import { ptr } from "bun:ffi";
import {
  CUDA_ERROR_NOT_READY,
  CUDA_SUCCESS,
  checkCuda,
  loadCudaLiveness,
  loadNccl,
  NCCL_RED_OP,
  NCCL_RESULT,
  type NcclLibrary,
  useCudaDevice,
} from "../../../ffi/nccl.ts";
import {
  type AbortOutcome,
  type Communicator,
  CommunicatorError,
  type CommunicatorFailure,
  type CommunicatorHandle,
  type CommunicatorInit,
  handleFor,
  type ReduceOp,
} from "./communicator.ts";
import {
  awaitShortCalls,
  beginShortCall,
  bumpSequence,
  type ControlView,
  claimAbort,
  claimDestroy,
  completeAbort,
  controlView,
  endShortCall,
  enterCall,
  leaveCall,
  markFailed,
  publishLive,
  publishPointer,
  rankState,
  setPhase,
  sleepOnState,
} from "./control-block.ts";

type NcclInit = Extract<CommunicatorInit, { backend: "nccl" }>;

const POLL_MS = 1;
const ASYNC_CHECK_EVERY = 16;

interface CudaBuffers {
  send: bigint;
  recv: bigint;
}

export function initNcclCommunicator(init: NcclInit): Communicator {
  const view = controlView(init.control);
  if (view.backend !== "nccl") throw new TypeError("control block was created for shm, not nccl");
  const lib = loadNccl(init.libraryPath);
  const fail = (reason: CommunicatorFailure, message: string, code?: number) =>
    new CommunicatorError(reason, `nccl rank ${init.rank} of ${init.groupId}: ${message}`, {
      groupId: init.groupId,
      rank: init.rank,
      backend: "nccl",
      ...(code === undefined ? {} : { code }),
    });

  const buffers = init.memory === "cuda" ? allocateCudaBuffers(init.device ?? 0) : undefined;
  setPhase(view, init.rank, "init");
  const { result, comm } = lib.initRank(view.size, init.uniqueId, init.rank, false);
  if (comm !== 0) publishPointer(view, init.rank, BigInt(comm));
  if (result !== NCCL_RESULT.success && result !== NCCL_RESULT.inProgress) {
    markFailed(view, init.rank, result);
    if (comm !== 0) lib.commAbort(comm);
    throw fail("init-failed", `ncclCommInitRankConfig: ${lib.errorString(result)}`, result);
  }
  const deadline = Date.now() + (init.initTimeoutMs ?? 120_000);
  for (;;) {
    const state = rankState(view, init.rank);
    if (state !== "uninit") {
      // Aborted while still joining: the aborter could not reach an uninitialised rank, so it is ours to abort.
      lib.commAbort(comm);
      completeAbort(view, init.rank);
      throw fail("aborted", "aborted during init");
    }
    const status = lib.asyncError(comm);
    if (status === NCCL_RESULT.success) break;
    if (status !== NCCL_RESULT.inProgress || Date.now() > deadline) {
      markFailed(view, init.rank, status);
      lib.commAbort(comm);
      throw fail("init-failed", `init did not complete: ${lib.errorString(status)}`, status);
    }
    sleepOnState(view, init.rank, "uninit", POLL_MS * 5);
  }
  setPhase(view, init.rank, "idle");
  if (!publishLive(view, init.rank, BigInt(comm))) {
    lib.commAbort(comm);
    completeAbort(view, init.rank);
    throw fail("aborted", "aborted as init completed");
  }
  return new NcclCommunicator(view, init, lib, comm, buffers, fail);
}

/**
 * Aborts one nccl rank from any thread but the main one (ncclCommAbort may
 * hang; run it where the main thread can time it: the aborter Worker).
 */
export function abortNcclRank(handle: CommunicatorHandle): AbortOutcome {
  const view = controlView(handle.control);
  const claim = claimAbort(view, handle.rank);
  if (!claim.proceed) {
    if (claim.previous !== "uninit") return "already";
    completeAbort(view, handle.rank);
    return "pre-init";
  }
  if (!handle.libraryPath) throw new TypeError("nccl handle without libraryPath");
  awaitShortCalls(view, handle.rank, 1_000);
  const lib = loadNccl(handle.libraryPath);
  const result = lib.commAbort(Number(claim.commPtr));
  completeAbort(view, handle.rank);
  return result === NCCL_RESULT.success ? "aborted" : "error";
}

function allocateCudaBuffers(device: number): CudaBuffers {
  useCudaDevice(device);
  const cu = loadCudaLiveness();
  const out = new BigUint64Array(1);
  checkCuda("cuMemAlloc", cu.cuMemAlloc_v2(ptr(out), 8));
  const send = out[0]!;
  checkCuda("cuMemAlloc", cu.cuMemAlloc_v2(ptr(out), 8));
  return { send, recv: out[0]! };
}

class NcclCommunicator implements Communicator {
  readonly backend = "nccl" as const;
  readonly size: number;
  readonly groupId: string;
  readonly rank: number;
  private host = new Float64Array(2);
  private freed = false;

  constructor(
    private readonly view: ControlView,
    private readonly init: NcclInit,
    private readonly lib: NcclLibrary,
    private readonly comm: number,
    private readonly buffers: CudaBuffers | undefined,
    private readonly fail: (reason: CommunicatorFailure, message: string, code?: number) => CommunicatorError,
  ) {
    this.size = view.size;
    this.groupId = init.groupId;
    this.rank = init.rank;
  }

  allReduce(value: number, op: ReduceOp = "sum"): number {
    if (!enterCall(this.view, this.rank)) throw this.fail("aborted", `all-reduce refused (${this.state()})`);
    setPhase(this.view, this.rank, "collective");
    bumpSequence(this.view, this.rank);
    let outcome: { ok: true; value: number } | { ok: false; error: CommunicatorError };
    try {
      outcome = this.buffers ? this.deviceAllReduce(this.buffers, value, op) : this.hostAllReduce(value, op);
    } finally {
      setPhase(this.view, this.rank, "idle");
    }
    if (!leaveCall(this.view, this.rank)) throw this.fail("aborted", "all-reduce aborted");
    if (!outcome.ok) throw outcome.error;
    return outcome.value;
  }

  /** The stand-in library's collective: host buffers, and the call itself blocks until all arrive or an abort. */
  private hostAllReduce(value: number, op: ReduceOp) {
    this.host[0] = value;
    const send = ptr(this.host);
    const recv = ptr(this.host, 8);
    const r = this.lib.allReduce(send, recv, 1, NCCL_RED_OP[op], this.comm);
    if (r !== NCCL_RESULT.success) {
      return {
        ok: false as const,
        error: this.fail("remote-error", `ncclAllReduce: ${this.lib.errorString(r)}`, r),
      };
    }
    return { ok: true as const, value: this.host[1]! };
  }

  private deviceAllReduce(buffers: CudaBuffers, value: number, op: ReduceOp) {
    const cu = loadCudaLiveness();
    this.host[0] = value;
    cu.cuMemcpyHtoD_v2(buffers.send, ptr(this.host), 8);
    const r = this.lib.allReduce(Number(buffers.send), Number(buffers.recv), 1, NCCL_RED_OP[op], this.comm);
    if (r !== NCCL_RESULT.success && r !== NCCL_RESULT.inProgress) {
      return {
        ok: false as const,
        error: this.fail("remote-error", `ncclAllReduce: ${this.lib.errorString(r)}`, r),
      };
    }
    // Nonblocking: the kernel is only enqueued once the async state leaves ncclInProgress; then the stream drains.
    let enqueued = r === NCCL_RESULT.success;
    for (let i = 0; ; i++) {
      if (!beginShortCall(this.view, this.rank))
        return { ok: false as const, error: this.fail("aborted", "aborted") };
      let status: number = NCCL_RESULT.success;
      let query: number = CUDA_ERROR_NOT_READY;
      try {
        if (!enqueued || i % ASYNC_CHECK_EVERY === 0) status = this.lib.asyncError(this.comm);
        if (status === NCCL_RESULT.success) {
          enqueued = true;
          query = cu.cuStreamQuery(null);
        }
      } finally {
        endShortCall(this.view, this.rank);
      }
      if (status !== NCCL_RESULT.success && status !== NCCL_RESULT.inProgress) {
        const error = this.fail("remote-error", `async error: ${this.lib.errorString(status)}`, status);
        return { ok: false as const, error };
      }
      if (enqueued && query === CUDA_SUCCESS) break;
      if (enqueued && query !== CUDA_ERROR_NOT_READY) {
        return {
          ok: false as const,
          error: this.fail("library-error", `cuStreamQuery: CUresult ${query}`, query),
        };
      }
      sleepOnState(this.view, this.rank, "busy", POLL_MS);
    }
    cu.cuMemcpyDtoH_v2(ptr(this.host, 8), buffers.recv, 8);
    return { ok: true as const, value: this.host[1]! };
  }

  abort(): void {
    abortNcclRank(this.handle());
  }

  asyncError(): CommunicatorError | undefined {
    const state = this.state();
    if (state !== "live") {
      return state === "busy" ? undefined : this.fail("aborted", `communicator is ${state}`);
    }
    if (!enterCall(this.view, this.rank)) return this.fail("aborted", "communicator was aborted");
    let status: number;
    try {
      status = this.lib.asyncError(this.comm);
    } finally {
      leaveCall(this.view, this.rank);
    }
    if (status === NCCL_RESULT.success || status === NCCL_RESULT.inProgress) return undefined;
    return this.fail("remote-error", this.lib.errorString(status), status);
  }

  destroy(): void {
    if (claimDestroy(this.view, this.rank)) {
      setPhase(this.view, this.rank, "destroy");
      this.lib.commDestroy(this.comm);
      setPhase(this.view, this.rank, "idle");
    }
    this.freeBuffers();
  }

  private freeBuffers(): void {
    if (this.freed || !this.buffers) return;
    this.freed = true;
    const cu = loadCudaLiveness();
    cu.cuMemFree_v2(this.buffers.send);
    cu.cuMemFree_v2(this.buffers.recv);
  }

  private state() {
    return rankState(this.view, this.rank);
  }

  handle(): CommunicatorHandle {
    return handleFor(
      { backend: "nccl", groupId: this.groupId, rank: this.rank, control: this.view.sab },
      this.size,
      this.init.libraryPath,
    );
  }
}
