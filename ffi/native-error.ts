/**
 * The one error type of `ffi/`: the bindings know nothing of the product's
 * error table (ffi imports nothing from src/), so they say what kind of
 * native failure this is and the engine maps it to its CortexError
 * (src/neuron/engine/native-failure.ts).
 */

/**
 * `unavailable`: the machine lacks something optional (libnccl, a CUDA
 * driver); `broken`: the native set is missing, mismatched or misbehaves.
 */
export type NativeErrorCode = "unavailable" | "broken";

export class NativeError extends Error {
  readonly code: NativeErrorCode;

  constructor(code: NativeErrorCode, message: string, options: { cause?: unknown } = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = "NativeError";
    this.code = code;
  }
}
