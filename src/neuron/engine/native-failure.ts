/**
 * Where ffi's NativeError becomes the product's CortexError: ffi knows
 * nothing of the error table, the engine decides what a native failure
 * means to a client. Used wherever an error leaves the engine (a Worker's
 * answer, the neuron's start).
 */
import { NativeError, type NativeErrorCode } from "../../../ffi/native-error.ts";
import { CortexError, type ErrorCode, toCortexError } from "../../core/errors.ts";

const CODE_OF = {
  // A missing optional library (libnccl, a CUDA driver): try another node or another communicator.
  unavailable: "unavailable",
  // A missing or mismatched native set is a broken install, not something a retry fixes.
  broken: "internal",
} as const satisfies Record<NativeErrorCode, ErrorCode>;

/** A NativeError as the CortexError it means (same message, the NativeError as its cause); anything else as it is. */
export function fromNative(error: unknown): unknown {
  if (!(error instanceof NativeError)) return error;
  return new CortexError(CODE_OF[error.code], error.message, { cause: error });
}

/** toCortexError for anything thrown in the engine, native failures included. */
export function toEngineError(error: unknown): CortexError {
  return toCortexError(fromNative(error));
}
