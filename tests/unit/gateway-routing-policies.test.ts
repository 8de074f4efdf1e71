import { describe, expect, test } from "bun:test";
import type { NodeState } from "../../src/core/admin-api.ts";
import { canTransition, NodeStateMachine, stateFromHealth } from "../../src/gateway/fleet/node-state.ts";
import { backoffDelay } from "../../src/gateway/fleet/poller.ts";
import { buildCatalogue } from "../../src/gateway/routing/build-catalogue.ts";
import { devicesToRecycle } from "../../src/gateway/routing/defrag-policy.ts";
import { idleModelsToUnload } from "../../src/gateway/routing/idle-policy.ts";
import { pickLoadedNode } from "../../src/gateway/routing/pick-loaded-node.ts";
import { resolveModel } from "../../src/gateway/routing/resolve-model.ts";
import { device, file, fleet, GiB, model, NOW, node, profile } from "./gateway-fixtures.ts";

const qwen = profile({ id: "qwen", aliases: ["qwen-latest", "q"] });
const llama = profile({ id: "llama", affinity: ["small"] });

describe("resolveModel", () => {
  const view = fleet(
    node("beast", { loaded: [model("adhoc"), model("broken", { state: "failed" })] }),
    node("gone", { state: "down", loaded: [model("stale")] }),
  );
  const cases: { name: string; expected: { kind: "profile" | "loaded"; id: string } | undefined }[] = [
    { name: "qwen", expected: { kind: "profile", id: "qwen" } },
    { name: "q", expected: { kind: "profile", id: "qwen" } },
    { name: "qwen-latest", expected: { kind: "profile", id: "qwen" } },
    { name: "adhoc", expected: { kind: "loaded", id: "adhoc" } },
    { name: "broken", expected: undefined },
    { name: "stale", expected: undefined },
    { name: "nope", expected: undefined },
  ];
  for (const c of cases) {
    test(`${c.name} → ${JSON.stringify(c.expected)}`, () => {
      const resolved = resolveModel([qwen, llama], view, c.name);
      expect(resolved === undefined ? undefined : { kind: resolved.kind, id: resolved.id }).toEqual(
        c.expected,
      );
    });
  }
});

describe("pickLoadedNode", () => {
  const cases: { name: string; nodes: ReturnType<typeof node>[]; expected: string | undefined }[] = [
    {
      name: "the copy with fewest requests in flight plus queued",
      nodes: [
        node("a", { loaded: [model("m", { inFlight: 2, queued: 1 })] }),
        node("b", { loaded: [model("m", { inFlight: 2 })] }),
      ],
      expected: "b",
    },
    {
      name: "ties go to the node with most free memory",
      nodes: [
        node("a", { devices: [device("cuda-dev-0", { memoryFree: 1 * GiB })], loaded: [model("m")] }),
        node("b", { devices: [device("cuda-dev-0", { memoryFree: 9 * GiB })], loaded: [model("m")] }),
      ],
      expected: "b",
    },
    {
      name: "only ready copies on live nodes count",
      nodes: [
        node("a", { state: "down", loaded: [model("m")] }),
        node("b", { loaded: [model("m", { state: "loading" })] }),
        node("c", { state: "degraded", loaded: [model("m", { inFlight: 9 })] }),
      ],
      expected: "c",
    },
    { name: "none loaded", nodes: [node("a", { loaded: [model("other")] })], expected: undefined },
  ];
  for (const c of cases) {
    test(c.name, () => {
      expect(pickLoadedNode(fleet(...c.nodes), "m")?.node).toBe(c.expected);
    });
  }

  test("excluded nodes are skipped", () => {
    const view = fleet(
      node("a", { loaded: [model("m")] }),
      node("b", { loaded: [model("m", { inFlight: 5 })] }),
    );
    expect(pickLoadedNode(view, "m", { exclude: new Set(["a"]) })?.node).toBe("b");
  });
});

describe("buildCatalogue", () => {
  const view = fleet(
    node("beast", {
      available: [file("qwen.gguf", GiB), file("llama.gguf", GiB)],
      loaded: [model("qwen", { inFlight: 2, pinned: true }), model("adhoc", { contextSize: 2048 })],
    }),
    node("small", { available: [file("llama.gguf", GiB)], loaded: [model("qwen", { state: "loading" })] }),
    node("down", { state: "down", available: [file("ghost.gguf", GiB)], loaded: [model("ghost")] }),
  );
  const profiles = [qwen, llama, profile({ id: "ghost" }), profile({ id: "nofile" })];
  const entries = buildCatalogue(profiles, view, { created: 123 });
  const byId = new Map(entries.map((entry) => [entry.id, entry]));

  test("lists servable profiles and loaded models, not profiles no live node can serve", () => {
    expect(entries.map((e) => e.id)).toEqual(["adhoc", "llama", "qwen"]);
  });

  test("a loaded profile says where, in what state, with its aliases", () => {
    expect(byId.get("qwen")).toMatchObject({
      object: "model",
      created: 123,
      owned_by: "cortex",
      cortex: {
        aliases: ["qwen-latest", "q"],
        state: "loaded",
        pinned: true,
        servable_on: ["beast"],
        loaded_on: [
          { node: "beast", state: "ready", inFlight: 2, pinned: true },
          { node: "small", state: "loading" },
        ],
      },
    });
  });

  test("affinity limits where a profile is servable", () => {
    expect(byId.get("llama")?.cortex).toMatchObject({
      state: "available",
      servable_on: ["small"],
      loaded_on: [],
    });
  });

  test("a model loaded without a profile is listed by its id", () => {
    expect(byId.get("adhoc")?.cortex).toMatchObject({
      aliases: [],
      state: "loaded",
      servable_on: ["beast"],
      context_size: 2048,
    });
  });
});

describe("idle TTL policy", () => {
  const view = fleet(
    node("a", {
      loaded: [
        model("idle", { lastUsed: NOW - 700_000 }),
        model("recent", { lastUsed: NOW - 10_000 }),
        model("pinned", { lastUsed: 0, pinned: true }),
        model("busy", { lastUsed: 0, inFlight: 1 }),
        model("reserved", { lastUsed: 0, reserved: 1 }),
        model("loading", { lastUsed: 0, state: "loading" }),
      ],
    }),
    node("b", { state: "down", loaded: [model("offline", { lastUsed: 0 })] }),
  );
  test("unloads only idle, unpinned, unused models on live nodes", () => {
    expect(idleModelsToUnload(view, 600).map((u) => `${u.node}/${u.model.id}`)).toEqual(["a/idle"]);
  });
  test("ttl 0 turns it off", () => {
    expect(idleModelsToUnload(view, 0)).toEqual([]);
  });
});

describe("defrag policy", () => {
  const worn = (id: string) => device(id, { loadCycles: 50 });
  const view = fleet(
    node("a", {
      devices: [
        worn("cuda-dev-0"),
        worn("cuda-dev-1"),
        device("cuda-dev-2", { loadCycles: 3 }),
        worn("cuda-dev-3"),
        worn("cuda-dev-4"),
      ],
      loaded: [
        model("idle", { devices: ["cuda-dev-0"] }),
        model("busy", { devices: ["cuda-dev-1"], inFlight: 1 }),
        model("loading", { devices: ["cuda-dev-3"], state: "loading" }),
        model("pinned", { devices: ["cuda-dev-4"], pinned: true }),
      ],
    }),
    node("b", { devices: [device("cuda-dev-0", { loadCycles: 80, poisoned: true })] }),
  );
  test("recycles worn devices that are idle, skips busy, loading, poisoned ones and those holding a pinned model", () => {
    expect(devicesToRecycle(view, 50).map((r) => `${r.node}/${r.device.id}`)).toEqual(["a/cuda-dev-0"]);
  });
  test("0 turns it off", () => {
    expect(devicesToRecycle(view, 0)).toEqual([]);
  });
});

describe("node state machine", () => {
  const table: [NodeState, NodeState, boolean][] = [
    ["unknown", "up", true],
    ["unknown", "down", true],
    ["up", "degraded", true],
    ["up", "down", true],
    ["degraded", "up", true],
    ["down", "up", true],
    ["down", "degraded", true],
    ["up", "unknown", false],
    ["down", "unknown", false],
    ["up", "draining", true],
    ["draining", "up", true],
    ["draining", "down", true],
    ["draining", "unknown", false],
  ];
  for (const [from, to, allowed] of table) {
    test(`${from} → ${to} ${allowed ? "allowed" : "refused"}`, () =>
      expect(canTransition(from, to)).toBe(allowed));
  }

  test("health maps to state", () => {
    expect(stateFromHealth({ status: "ok", devices: [device("cuda-dev-0")] })).toBe("up");
    expect(stateFromHealth({ status: "ok", devices: [device("cuda-dev-0", { poisoned: true })] })).toBe(
      "degraded",
    );
    expect(stateFromHealth({ status: "degraded", devices: [] })).toBe("degraded");
    expect(stateFromHealth({ status: "unhealthy", devices: [] })).toBe("down");
    expect(stateFromHealth({ status: "draining", devices: [device("cuda-dev-0")] })).toBe("draining");
  });

  test("compare-and-set emits each change once and refuses a stale expectation", () => {
    const changes: string[] = [];
    const machine = new NodeStateMachine("a", (c) => changes.push(`${c.from}>${c.to}:${c.reason}`));
    expect(machine.compareAndSet("unknown", "up", "poll ok")).toBe(true);
    expect(machine.compareAndSet("unknown", "down", "late")).toBe(false);
    expect(machine.moveTo("up", "again")).toBe(false);
    expect(machine.moveTo("down", "refused")).toBe(true);
    expect(changes).toEqual(["unknown>up:poll ok", "up>down:refused"]);
  });
});

describe("poll backoff", () => {
  test("doubles per failure from the interval, is capped, and jitters into [50 %, 100 %]", () => {
    const max = () => 0.999_999;
    expect([0, 1, 2, 3, 4, 10].map((f) => backoffDelay(f, 1000, 30_000, max))).toEqual([
      1000, 1000, 2000, 4000, 8000, 30_000,
    ]);
    expect(backoffDelay(3, 1000, 30_000, () => 0)).toBe(2000);
  });
});
