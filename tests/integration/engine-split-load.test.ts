/**
 * The CUDA group leader's load path (a model split over the group's ggml
 * devices), exercised on CPU: the shim resolves devices by name, says which
 * one is missing, and loads when every name exists.
 */
import { describe, expect, test } from "bun:test";
import { prepareNativeProcess } from "../../ffi/native-process.ts";
import { NativeModel, NativeRuntime } from "../../src/neuron/engine/native-runtime.ts";
import { ensureDemoModel } from "../../src/neuron/gguf/tiny-model.ts";

describe("model split over a device list", () => {
  test("unknown ggml devices fail the load with the names; known ones load", async () => {
    const path = await ensureDemoModel(`${import.meta.dir}/../.tmp/models`);
    const native = prepareNativeProcess({ cudaAvailable: false, logLevel: 3 });
    const rt = NativeRuntime.open({
      libllama: native.set.libllama,
      shimAddresses: native.shimAddresses,
      abortFlag: new SharedArrayBuffer(4),
      logLevel: 3,
    });
    const config = { path, contextSize: 256, slots: 1, gpuIndex: 0, threads: 1, memoryBudgetBytes: 2 ** 34 };
    expect(() => NativeModel.load(rt, { ...config, splitDevices: ["CUDA0", "CUDA1"] })).toThrow(
      /could not load .* over CUDA0,CUDA1/,
    );
    // The CPU native set has one ggml device, "CPU": listing it twice still goes through the split path.
    const model = NativeModel.load(rt, { ...config, splitDevices: ["CPU", "CPU"] });
    expect(model.tokenize("Tell me about the garden.").length).toBeGreaterThan(1);
    model.free();
  });
});
