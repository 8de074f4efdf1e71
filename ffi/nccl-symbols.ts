/**
 * Every bun:ffi signature of libnccl (and the few libcuda driver calls the
 * liveness collective needs), in one place. The calls that take an
 * ncclUniqueId by value go through the TinyCC shim in ffi/nccl.ts instead.
 */
import { FFIType } from "bun:ffi";

export const NCCL_SYMBOLS = {
  ncclGetVersion: { args: [FFIType.ptr], returns: FFIType.i32 },
  ncclGetUniqueId: { args: [FFIType.ptr], returns: FFIType.i32 },
  // (sendbuff, recvbuff, count, datatype, op, comm, stream)
  ncclAllReduce: {
    args: [FFIType.ptr, FFIType.ptr, FFIType.u64, FFIType.i32, FFIType.i32, FFIType.ptr, FFIType.ptr],
    returns: FFIType.i32,
  },
  ncclCommAbort: { args: [FFIType.ptr], returns: FFIType.i32 },
  ncclCommDestroy: { args: [FFIType.ptr], returns: FFIType.i32 },
  ncclCommGetAsyncError: { args: [FFIType.ptr, FFIType.ptr], returns: FFIType.i32 },
  ncclGetErrorString: { args: [FFIType.i32], returns: FFIType.cstring },
} as const;

/** Shim entry points compiled with bun:ffi `cc` (see NCCL_SHIM_SOURCE). */
export const NCCL_SHIM_SYMBOLS = {
  cortex_nccl_bind: { args: [FFIType.cstring], returns: FFIType.i32 },
  cortex_nccl_has_init_config: { args: [], returns: FFIType.i32 },
  // (comm out, nranks, const ncclUniqueId*, rank, blocking)
  cortex_nccl_init_rank_config: {
    args: [FFIType.ptr, FFIType.i32, FFIType.ptr, FFIType.i32, FFIType.i32],
    returns: FFIType.i32,
  },
  // (comm out, nranks, const ncclUniqueId*, rank)
  cortex_nccl_init_rank: { args: [FFIType.ptr, FFIType.i32, FFIType.ptr, FFIType.i32], returns: FFIType.i32 },
} as const;

export const CUDA_LIVENESS_SYMBOLS = {
  cuInit: { args: [FFIType.u32], returns: FFIType.i32 },
  cuDeviceGet: { args: [FFIType.ptr, FFIType.i32], returns: FFIType.i32 },
  cuDevicePrimaryCtxRetain: { args: [FFIType.ptr, FFIType.i32], returns: FFIType.i32 },
  cuCtxSetCurrent: { args: [FFIType.ptr], returns: FFIType.i32 },
  cuMemAlloc_v2: { args: [FFIType.ptr, FFIType.u64], returns: FFIType.i32 },
  cuMemFree_v2: { args: [FFIType.u64], returns: FFIType.i32 },
  cuMemcpyHtoD_v2: { args: [FFIType.u64, FFIType.ptr, FFIType.u64], returns: FFIType.i32 },
  cuMemcpyDtoH_v2: { args: [FFIType.ptr, FFIType.u64, FFIType.u64], returns: FFIType.i32 },
  cuStreamQuery: { args: [FFIType.ptr], returns: FFIType.i32 },
} as const;

/** ncclResult_t (nccl.h). */
export const NCCL_RESULT = {
  success: 0,
  unhandledCudaError: 1,
  systemError: 2,
  internalError: 3,
  invalidArgument: 4,
  invalidUsage: 5,
  remoteError: 6,
  inProgress: 7,
  timeout: 8,
} as const;

/** ncclDataType_t / ncclRedOp_t values used by the liveness collective (nccl.h). */
export const NCCL_FLOAT64 = 8;
export const NCCL_RED_OP = { sum: 0, max: 2, min: 3 } as const;

export const CUDA_SUCCESS = 0;
export const CUDA_ERROR_NOT_READY = 600;
