import { describe, expect, test } from "bun:test";
import type { CudaDevice } from "../../ffi/cuda.ts";
import { type CudaFacts, checkCudaBackend } from "../../src/neuron/engine/cuda-check.ts";
import { usableMemory } from "../../src/neuron/engine/memory-estimate.ts";

const h200 = (index: number): CudaDevice => ({
  index,
  name: "NVIDIA H200",
  uuid: `GPU-0000000${index}-0000-0000-0000-000000000000`,
  computeCapability: "9.0",
  memoryTotal: 150_754_820_096,
});

const cudaSet = { dir: "/opt/cortex/native/cuda", flavor: "cuda" as const, cudaLooked: [] };
const loaded = {
  runtimeLibs: { "libcudart.so.13": "/usr/local/cuda/lib64/libcudart.so.13" },
  missing: [],
  loadError: undefined,
};
const ggml = (...names: Array<[string, string]>) =>
  names.map(([name, description]) => ({ name, description }));

function facts(over: Partial<CudaFacts>): CudaFacts {
  return {
    cuda: [h200(0), h200(1)],
    driverVersion: "13.0",
    set: cudaSet,
    backend: loaded,
    ggmlDevices: ggml(["CUDA0", "NVIDIA H200"], ["CUDA1", "NVIDIA H200"], ["CPU", "Intel Xeon"]),
    ...over,
  };
}

describe("is a GPU node computing on its GPUs", () => {
  test("no GPU: a CPU node, whatever the native set", () => {
    expect(checkCudaBackend(facts({ cuda: [], set: { ...cudaSet, flavor: "cpu" } }))).toEqual({
      kind: "cpu-node",
    });
  });

  test("ggml registered every GPU libcuda lists, by the same names: a GPU node", () => {
    expect(checkCudaBackend(facts({}))).toEqual({ kind: "gpu-node", devices: [h200(0), h200(1)] });
  });

  test.each([
    [
      "a CPU-only set",
      facts({ set: { dir: "/srv/node_modules/x", flavor: "cpu", cudaLooked: ["/srv/.cortex-native/cuda"] } }),
      [
        "2 CUDA device(s) (NVIDIA H200 ×2; compute capability 9.0",
        "looked in /srv/.cortex-native/cuda",
        "npm run setup:cuda",
      ],
    ],
    [
      "libcudart missing (the loader's own words, and where it looked)",
      facts({
        backend: {
          runtimeLibs: {},
          missing: [
            { soname: "libcudart.so.13", looked: ["/usr/local/cuda/lib64", "/venv/nvidia/cuda_runtime/lib"] },
          ],
          loadError:
            'Failed to open library "x/libggml-cuda.so": libcudart.so.13: cannot open shared object file',
        },
        ggmlDevices: ggml(["CPU", "Intel Xeon"]),
      }),
      [
        "did not load: Failed to open library",
        "libcudart.so.13: cannot open shared object file",
        "libcudart.so.13 not found (looked in /usr/local/cuda/lib64, /venv/nvidia/cuda_runtime/lib)",
        "CORTEX_CUDA_LIB_DIR",
      ],
    ],
    [
      "a driver too old for CUDA 13",
      facts({
        driverVersion: "12.8",
        backend: { ...loaded, loadError: "libcuda.so.1: version `libcuda.so.1' not found" },
      }),
      ["driver supports CUDA 12.8", "needs CUDA 13 (driver 580 or later)", "npm run build:native:cuda"],
    ],
    [
      "the backend loaded but registered fewer devices",
      facts({ ggmlDevices: ggml(["CUDA0", "NVIDIA H200"], ["CPU", "Intel Xeon"]) }),
      ["registered 1 (CUDA0; ggml devices: CUDA0, CPU)"],
    ],
    [
      "devices in another order than libcuda's",
      facts({ ggmlDevices: ggml(["CUDA0", "NVIDIA H100"], ["CUDA1", "NVIDIA H200"]) }),
      ['CUDA0 is "NVIDIA H100" where libcuda\'s device 0 is "NVIDIA H200"'],
    ],
  ])("refused: %s", (_case, input, phrases) => {
    const verdict = checkCudaBackend(input);
    expect(verdict.kind).toBe("refused");
    for (const phrase of phrases) expect(verdict.kind === "refused" ? verdict.reason : "").toContain(phrase);
  });
});

describe("memory placement may use", () => {
  const GiB = 2 ** 30;
  test.each([
    [
      "the driver's free figure when it is lower than the estimate",
      { physicalTotal: 80 * GiB, cap: undefined, estimatedUsed: 10 * GiB, liveFree: 50 * GiB },
      { total: 80 * GiB, free: 50 * GiB },
    ],
    [
      "the estimate when the driver has more free (another model is still loading)",
      { physicalTotal: 80 * GiB, cap: undefined, estimatedUsed: 30 * GiB, liveFree: 70 * GiB },
      { total: 80 * GiB, free: 50 * GiB },
    ],
    [
      "the cap over the device's size",
      { physicalTotal: 80 * GiB, cap: 16 * GiB, estimatedUsed: 4 * GiB, liveFree: 70 * GiB },
      { total: 16 * GiB, free: 12 * GiB },
    ],
    [
      "the estimate alone when the driver cannot say",
      { physicalTotal: 80 * GiB, cap: undefined, estimatedUsed: 90 * GiB, liveFree: undefined },
      { total: 80 * GiB, free: 0 },
    ],
  ])("%s", (_case, input, expected) => {
    expect(usableMemory(input)).toEqual(expected);
  });
});
