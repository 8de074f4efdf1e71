import { describe, expect, test } from "bun:test";
import { NativeError } from "../../ffi/native-error.ts";
import { CortexError } from "../../src/core/errors.ts";
import { fromNative, toEngineError } from "../../src/neuron/engine/native-failure.ts";

describe("native failures as clients see them", () => {
  test.each([
    ["unavailable", "unavailable", 503, true],
    ["broken", "internal", 500, false],
  ] as const)("NativeError %s answers %s (%d)", (native, code, status, retryable) => {
    const cause = new NativeError(native, "libnccl at /x lacks ncclCommInitRank");
    const error = toEngineError(cause);
    expect(error).toMatchObject({ code, status, retryable, message: cause.message, cause });
  });

  test("any other error passes through untouched", () => {
    const plain = new TypeError("not native");
    expect(fromNative(plain)).toBe(plain);
    const cortex = new CortexError("device_fault", "poisoned");
    expect(toEngineError(cortex)).toBe(cortex);
  });
});
