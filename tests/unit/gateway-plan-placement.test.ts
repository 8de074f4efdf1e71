import { describe, expect, test } from "bun:test";
import type { ModelProfile } from "../../src/core/config/config-schema.ts";
import { CortexError } from "../../src/core/errors.ts";
import { estimateMemoryBytes } from "../../src/gateway/routing/memory-need.ts";
import { planPlacement, planPlacements } from "../../src/gateway/routing/plan-placement.ts";
import { device, file, fleet, GiB, model, NOW, node, profile } from "./gateway-fixtures.ts";

const qwen = profile({ id: "qwen", vram_estimate: 6 * GiB });
const qwenFile = file("qwen.gguf", 4 * GiB);

function gpu(freeGiB: number, id = "cuda-dev-0") {
  return device(id, { memoryTotal: 24 * GiB, memoryFree: freeGiB * GiB });
}

function planOf(result: ReturnType<typeof planPlacements>) {
  if (!result.ok) throw result.error;
  return result.plans.map((p) => ({ node: p.node, devices: p.devices, victims: p.victims.map((v) => v.id) }));
}

function errorOf(fn: () => unknown): CortexError {
  try {
    fn();
  } catch (error) {
    if (error instanceof CortexError) return error;
    throw error;
  }
  throw new Error("expected a CortexError");
}

describe("planPlacement ranks candidates", () => {
  test("a node needing no eviction beats one with more free memory after eviction", () => {
    const result = planPlacements(
      qwen,
      fleet(
        node("a", { devices: [gpu(7)], available: [qwenFile] }),
        node("b", {
          devices: [gpu(5)],
          available: [qwenFile],
          loaded: [model("x", { memoryBytes: 15 * GiB })],
        }),
      ),
      "lru",
    );
    expect(planOf(result)).toEqual([
      { node: "a", devices: ["cuda-dev-0"], victims: [] },
      { node: "b", devices: ["cuda-dev-0"], victims: ["x"] },
    ]);
  });

  test("among nodes needing no eviction, the most free memory wins", () => {
    const result = planPlacements(
      qwen,
      fleet(
        node("a", { devices: [gpu(8)], available: [qwenFile] }),
        node("b", { devices: [gpu(20)], available: [qwenFile] }),
      ),
      "lru",
    );
    expect(planOf(result).map((p) => p.node)).toEqual(["b", "a"]);
  });

  test("the device with room is chosen on a multi-device node", () => {
    const plan = planPlacement(
      qwen,
      fleet(node("a", { devices: [gpu(2, "cuda-dev-0"), gpu(10, "cuda-dev-1")], available: [qwenFile] })),
      "lru",
    );
    expect(plan.devices).toEqual(["cuda-dev-1"]);
    expect(plan.victims).toEqual([]);
  });

  test("among nodes needing eviction, lower-priority victims win under the priority strategy", () => {
    const result = planPlacements(
      qwen,
      fleet(
        node("a", {
          devices: [gpu(2)],
          available: [qwenFile],
          loaded: [model("important", { priority: 10 })],
        }),
        node("b", { devices: [gpu(2)], available: [qwenFile], loaded: [model("scratch", { priority: -5 })] }),
      ),
      "priority",
    );
    expect(planOf(result).map((p) => p.node)).toEqual(["b", "a"]);
  });

  test("pinned, busy and reserved models are never victims", () => {
    const result = planPlacements(
      qwen,
      fleet(
        node("a", {
          devices: [gpu(1)],
          available: [qwenFile],
          loaded: [
            model("pinned", { pinned: true, memoryBytes: 8 * GiB }),
            model("busy", { inFlight: 2, memoryBytes: 8 * GiB }),
            model("reserved", { reserved: 1, memoryBytes: 8 * GiB }),
            model("idle", { memoryBytes: 6 * GiB, lastUsed: NOW }),
          ],
        }),
      ),
      "lru",
    );
    expect(planOf(result)).toEqual([{ node: "a", devices: ["cuda-dev-0"], victims: ["idle"] }]);
  });

  test("a tensor-parallel model gets k devices, each with need / k", () => {
    const tp = profile({ id: "big", devices: 2, vram_estimate: 20 * GiB });
    const plan = planPlacement(
      tp,
      fleet(
        node("a", {
          devices: [gpu(11, "cuda-dev-0"), gpu(4, "cuda-dev-1"), gpu(12, "cuda-dev-2")],
          available: [file("big.gguf", 10 * GiB)],
        }),
      ),
      "lru",
    );
    expect(plan.devices.sort()).toEqual(["cuda-dev-0", "cuda-dev-2"]);
  });

  test("poisoned devices are not used", () => {
    const plan = planPlacement(
      qwen,
      fleet(
        node("a", {
          state: "degraded",
          devices: [device("cuda-dev-0", { memoryFree: 20 * GiB, poisoned: true }), gpu(7, "cuda-dev-1")],
          available: [qwenFile],
        }),
      ),
      "lru",
    );
    expect(plan.devices).toEqual(["cuda-dev-1"]);
  });
});

describe("planPlacement respects affinity, files and node state", () => {
  const candidates = [
    node("beast", { devices: [gpu(20)], available: [qwenFile, file("qwen-beast.gguf", 4 * GiB)] }),
    node("small", { devices: [gpu(10)], available: [qwenFile] }),
    node("down", { state: "down", devices: [gpu(24)], available: [qwenFile] }),
  ];

  const cases: { name: string; profile: Partial<ModelProfile>; expected: string[] }[] = [
    { name: "affinity limits the nodes", profile: { affinity: ["small"] }, expected: ["small"] },
    { name: "down nodes are skipped", profile: {}, expected: ["beast", "small"] },
    {
      name: "a per-node file must be in that node's models directory",
      profile: { files: { small: "missing.gguf" } },
      expected: ["beast"],
    },
    {
      name: "the per-node file is what gets loaded",
      profile: { files: { beast: "qwen-beast.gguf" } },
      expected: ["beast", "small"],
    },
  ];
  for (const c of cases) {
    test(c.name, () => {
      const result = planPlacements({ ...qwen, ...c.profile }, fleet(...candidates), "lru");
      expect(planOf(result).map((p) => p.node)).toEqual(c.expected);
    });
  }

  test("the plan names the node's own file", () => {
    const plan = planPlacement({ ...qwen, files: { beast: "qwen-beast.gguf" } }, fleet(...candidates), "lru");
    expect(plan).toMatchObject({ node: "beast", file: "qwen-beast.gguf" });
  });

  test("excluded nodes are skipped", () => {
    const result = planPlacements(qwen, fleet(...candidates), "lru", { exclude: new Set(["beast"]) });
    expect(planOf(result).map((p) => p.node)).toEqual(["small"]);
  });

  test("nodes already holding the model are not candidates for another copy", () => {
    const result = planPlacements(
      qwen,
      fleet(
        node("a", { devices: [gpu(20)], available: [qwenFile], loaded: [model("qwen")] }),
        candidates[1]!,
      ),
      "lru",
    );
    expect(planOf(result).map((p) => p.node)).toEqual(["small"]);
  });
});

describe("planPlacement explains failure", () => {
  test("the only node is unloading the model (a forced unload, another replica's eviction): retry, never 404", () => {
    const error = errorOf(() =>
      planPlacement(
        qwen,
        fleet(
          node("a", {
            devices: [gpu(20)],
            available: [qwenFile],
            loaded: [model("qwen", { state: "unloading" })],
          }),
        ),
        "lru",
      ),
    );
    expect(error.code).toBe("unavailable");
    expect(error.retryAfterS).toBeGreaterThan(0);
    expect(error.message).toContain("a: qwen is being unloaded there");
  });

  test("insufficient memory names the need and the most any node can free", () => {
    const error = errorOf(() =>
      planPlacement(
        qwen,
        fleet(
          node("beast", {
            devices: [gpu(1.2)],
            available: [qwenFile],
            loaded: [
              model("idle", { memoryBytes: 2 * GiB }),
              model("pinned", { pinned: true, memoryBytes: 9 * GiB }),
            ],
          }),
          node("small", { devices: [gpu(0.5)], available: [qwenFile] }),
        ),
        "lru",
      ),
    );
    expect(error.code).toBe("insufficient_memory");
    expect(error.status).toBe(507);
    expect(error.message).toBe("qwen needs 6.0 GiB; the most any node can free is 3.2 GiB (beast)");
  });

  test("room held only by busy models is a 503 with Retry-After, not a 507", () => {
    const error = errorOf(() =>
      planPlacement(
        qwen,
        fleet(
          node("beast", {
            devices: [gpu(1)],
            available: [qwenFile],
            loaded: [model("busy", { inFlight: 3, memoryBytes: 8 * GiB })],
          }),
        ),
        "lru",
      ),
    );
    expect(error.code).toBe("unavailable");
    expect(error.retryAfterS).toBeGreaterThan(0);
    expect(error.message).toContain("needs 6.0 GiB");
  });

  test("no node with the file is a 404 that says so", () => {
    const error = errorOf(() => planPlacement(qwen, fleet(node("beast", { devices: [gpu(20)] })), "lru"));
    expect(error.code).toBe("model_not_found");
    expect(error.message).toContain('beast: no file "qwen.gguf"');
  });

  test("every allowed node down is a 503 with Retry-After", () => {
    const error = errorOf(() =>
      planPlacement(qwen, fleet(node("beast", { state: "down", available: [qwenFile] })), "lru"),
    );
    expect(error.code).toBe("unavailable");
    expect(error.retryAfterS).toBeGreaterThan(0);
    expect(error.message).toContain("beast: down");
  });
});

describe("memory need", () => {
  test("vram_estimate wins when given", () => {
    expect(estimateMemoryBytes({ vram_estimate: 6 * GiB, context_size: 8192, slots: 4 }, 1)).toBe(6 * GiB);
  });

  test("otherwise file size × 1.1 plus a KV estimate that grows with context and slots", () => {
    const small = estimateMemoryBytes({ vram_estimate: undefined, context_size: 4096, slots: 1 }, 4 * GiB);
    const large = estimateMemoryBytes({ vram_estimate: undefined, context_size: 8192, slots: 4 }, 4 * GiB);
    expect(small).toBeGreaterThan(4.4 * GiB);
    expect(large - 4.4 * GiB).toBeCloseTo(8 * (small - 4.4 * GiB), -3);
    // A 4 GiB 7B-class model at 8k × 4 slots: about 2 GiB of KV, as llama.cpp would allocate.
    expect(large / GiB).toBeCloseTo(6.4, 1);
  });
});
