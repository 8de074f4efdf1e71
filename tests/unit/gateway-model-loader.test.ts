import { describe, expect, test } from "bun:test";
import type { ModelProfile } from "../../src/core/config/config-schema.ts";
import { CortexError } from "../../src/core/errors.ts";
import { BackgroundEvictor } from "../../src/gateway/fleet/background-evictor.ts";
import { Fleet } from "../../src/gateway/fleet/fleet.ts";
import { errorFromResponse } from "../../src/gateway/neuron-client.ts";
import { routeWithFailover } from "../../src/gateway/routing/failover.ts";
import { ModelLoader } from "../../src/gateway/routing/model-loader.ts";
import { device, file, GiB, MemoryNeuron, profile, refused } from "./gateway-fixtures.ts";

const qwen = profile({ id: "qwen", aliases: ["q"], vram_estimate: 6 * GiB, priority: 3 });
const llama = profile({ id: "llama", vram_estimate: 6 * GiB });

function neuron(name: string, freeGiB: number) {
  return new MemoryNeuron(name, {
    devices: [device("cuda-dev-0", { memoryTotal: 24 * GiB, memoryFree: freeGiB * GiB })],
    available: [file("qwen.gguf", 4 * GiB), file("llama.gguf", 4 * GiB)],
  });
}

async function setup(neurons: MemoryNeuron[], profiles: ModelProfile[] = [qwen, llama], loadTimeoutS = 5) {
  const fleet = new Fleet({ clients: neurons, pollIntervalMs: 60_000 });
  await fleet.refreshAll();
  const loader = new ModelLoader({ fleet, profiles, strategy: "lru", loadTimeoutS, loadingPollMs: 5 });
  return { fleet, loader };
}

function deferred() {
  let open!: () => void;
  const promise = new Promise<void>((resolve) => {
    open = resolve;
  });
  return { promise, open };
}

describe("ensureLoaded", () => {
  test("10 concurrent requests for a cold model cause exactly one load", async () => {
    const beast = neuron("beast", 20);
    const gate = deferred();
    const { loader, fleet } = await setup([beast]);
    const loading = deferred();
    beast.beforeLoad = () => {
      loading.open();
      return gate.promise;
    };
    const waits = Array.from({ length: 10 }, () => loader.ensureLoaded("q"));
    // The neuron has been asked to load (and holds it there).
    await loading.promise;
    // While it loads, the model is reserved memory and shown as loading.
    expect(fleet.view().nodes[0]?.loaded.map((m) => `${m.id}:${m.state}`)).toEqual(["qwen:loading"]);
    gate.open();
    const targets = await Promise.all(waits);
    expect(beast.calls.load).toHaveLength(1);
    expect(beast.calls.load[0]).toMatchObject({
      id: "qwen",
      file: "qwen.gguf",
      contextSize: 8192,
      slots: 4,
      deviceCount: 1,
      devices: ["cuda-dev-0"],
      memoryEstimateBytes: 6 * GiB,
      pinned: false,
      priority: 3,
    });
    expect(new Set(targets.map((t) => `${t.node}/${t.modelId}/${t.loaded}`))).toEqual(
      new Set(["beast/qwen/true"]),
    );
    // Every waiter holds a reservation until it is served.
    expect(fleet.view().nodes[0]?.loaded[0]?.reserved).toBe(10);
    for (const target of targets) target.release();
    expect(fleet.view().nodes[0]?.loaded[0]?.reserved).toBe(0);
  });

  test("an already loaded model is returned without a load", async () => {
    const beast = neuron("beast", 20);
    const { loader } = await setup([beast]);
    await loader.ensureLoaded("qwen");
    const again = await loader.ensureLoaded("qwen");
    expect(again).toMatchObject({ node: "beast", loaded: false });
    expect(beast.calls.load).toHaveLength(1);
  });

  test("a model the neuron reports as loading is waited on until ready", async () => {
    const beast = neuron("beast", 20);
    const { loader } = await setup([beast]);
    beast.beforeLoad = async () => {
      // The neuron answers before the model is ready, then finishes a moment later.
      setTimeout(() => {
        const m = beast.loaded.find((x) => x.id === "qwen");
        if (m) m.state = "ready";
      }, 20);
    };
    const originalLoad = beast.load.bind(beast);
    beast.load = async (request, options) => {
      const response = await originalLoad(request, options);
      beast.loaded[0]!.state = "loading";
      return { ...response, model: { ...response.model, state: "loading" } };
    };
    expect(await loader.ensureLoaded("qwen")).toMatchObject({ node: "beast" });
  });

  test("a waiter that times out gets 503 with Retry-After; the load goes on for the others", async () => {
    const beast = neuron("beast", 20);
    const gate = deferred();
    beast.beforeLoad = () => gate.promise;
    const { loader } = await setup([beast]);
    const patient = loader.ensureLoaded("qwen");
    const hasty = loader.ensureLoaded("qwen", { deadline: Date.now() + 20 });
    const error = await hasty.catch((e: unknown) => e);
    expect(error).toBeInstanceOf(CortexError);
    expect(error).toMatchObject({ code: "unavailable", status: 503 });
    expect((error as CortexError).retryAfterS).toBeGreaterThan(0);
    gate.open();
    expect(await patient).toMatchObject({ node: "beast" });
  });

  test("load_timeout_s bounds every wait", async () => {
    const beast = neuron("beast", 20);
    beast.beforeLoad = () => new Promise(() => {});
    const { loader } = await setup([beast], [qwen], 0.03);
    await expect(loader.ensureLoaded("qwen")).rejects.toMatchObject({ code: "unavailable" });
  });

  test("a waiter's abort does not cancel the shared load", async () => {
    const beast = neuron("beast", 20);
    const gate = deferred();
    beast.beforeLoad = () => gate.promise;
    const { loader, fleet } = await setup([beast]);
    const controller = new AbortController();
    const leaving = loader.ensureLoaded("qwen", { signal: controller.signal });
    const staying = loader.ensureLoaded("qwen");
    controller.abort(new Error("client closed"));
    await expect(leaving).rejects.toThrow("client closed");
    gate.open();
    await staying;
    // The aborted waiter holds no reservation.
    expect(fleet.view().nodes[0]?.loaded[0]?.reserved).toBe(1);
  });

  test("507 from the neuron → the next candidate node", async () => {
    const roomy = neuron("roomy", 20);
    const other = neuron("other", 10);
    // roomy looks best, but refuses: its real free memory is lower than it reported.
    roomy.beforeLoad = async () => {
      roomy.devices[0]!.memoryFree = 1 * GiB;
    };
    const { loader } = await setup([roomy, other]);
    expect(await loader.ensureLoaded("qwen")).toMatchObject({ node: "other" });
    expect(roomy.calls.load).toHaveLength(1);
    expect(other.calls.load).toHaveLength(1);
  });

  test("when every candidate fails, the error says so", async () => {
    const only = neuron("only", 20);
    only.beforeLoad = async () => {
      throw errorFromResponse("only", 500, { error: { message: "bad GGUF" } });
    };
    const { loader } = await setup([only]);
    const error = (await loader.ensureLoaded("qwen").catch((e: unknown) => e)) as CortexError;
    expect(error.code).toBe("load_failed");
    expect(error.message).toContain("bad GGUF");
    expect(error.message).toContain("no other node can load qwen");
  });

  test("victims are unloaded first (not forced) and counted as make_room evictions", async () => {
    const beast = neuron("beast", 8);
    const { loader, fleet } = await setup([beast]);
    await loader.ensureLoaded("llama").then((t) => t.release());
    served(beast, "llama");
    expect(beast.devices[0]!.memoryFree).toBe(2 * GiB);
    await loader.ensureLoaded("qwen");
    expect(beast.calls.unload).toEqual([{ id: "llama", evict: true }]);
    expect(beast.loaded.map((m) => m.id)).toEqual(["qwen"]);
    expect(fleet.evictions.counts()).toEqual({ make_room: 1, idle_ttl: 0, admin: 0 });
  });

  test("a model just loaded for waiting requests is not evicted before they are served", async () => {
    const beast = neuron("beast", 8);
    const { loader } = await setup([beast]);
    const forWaiters = await loader.ensureLoaded("llama");
    // Its waiter has not sent its request yet: loading another model must not swap it out.
    await expect(loader.ensureLoaded("qwen")).rejects.toMatchObject({ code: "unavailable" });
    expect(beast.calls.unload).toEqual([]);
    forWaiters.release();
    served(beast, "llama");
    await loader.ensureLoaded("qwen");
    expect(beast.calls.unload).toEqual([{ id: "llama", evict: true }]);
  });

  test("unknown names are 404 model_not_found", async () => {
    const { loader } = await setup([neuron("beast", 20)]);
    await expect(loader.ensureLoaded("gpt-5")).rejects.toMatchObject({
      code: "model_not_found",
      status: 404,
    });
  });
});

describe("routeWithFailover", () => {
  test("a node that refuses connections before the first byte is marked down and another is used", async () => {
    const a = neuron("a", 20);
    const b = neuron("b", 20);
    const { loader, fleet } = await setup([a, b]);
    await loader.ensureLoaded("qwen", { only: "a" }).then((t) => t.release());
    await loader.ensureLoaded("qwen", { only: "b" }).then((t) => t.release());
    const seen: string[] = [];
    const routed = await routeWithFailover({ fleet, loader }, "q", async (target) => {
      seen.push(target.node);
      if (target.node === "a") {
        a.down = refused();
        throw refused();
      }
      return "ok";
    });
    expect(seen).toEqual(["a", "b"]);
    expect(routed).toMatchObject({ value: "ok", node: "b", modelId: "qwen", attempts: 2 });
    expect(fleet.state.stateOf("a")).toBe("down");
    await fleet.refresh("a");
    expect(fleet.state.stateOf("a")).toBe("down");
    // The request counts as in flight on b until finished.
    expect(fleet.view().nodes[1]?.loaded[0]?.inFlight).toBe(1);
    routed.finish();
    expect(fleet.view().nodes[1]?.loaded[0]?.inFlight).toBe(0);
  });

  test("a failover may load the model on another node", async () => {
    const a = neuron("a", 20);
    const b = neuron("b", 20);
    const { loader, fleet } = await setup([a, b]);
    await loader.ensureLoaded("qwen", { only: "a" }).then((t) => t.release());
    const routed = await routeWithFailover({ fleet, loader }, "qwen", async (target) => {
      if (target.node === "a")
        throw errorFromResponse("a", 503, { error: { code: "device_fault", message: "x" } });
      return target.node;
    });
    expect(routed.value).toBe("b");
    expect(b.calls.load).toHaveLength(1);
    routed.finish();
  });

  test("non-retryable errors are not retried", async () => {
    const { loader, fleet } = await setup([neuron("a", 20), neuron("b", 20)]);
    let calls = 0;
    const error = await routeWithFailover({ fleet, loader }, "qwen", async (target) => {
      calls++;
      throw errorFromResponse(target.node, 400, {
        error: { message: "bad request", code: "invalid_request" },
      });
    }).catch((e: unknown) => e);
    expect(error).toMatchObject({ code: "invalid_request", status: 400 });
    expect(calls).toBe(1);
  });

  test("when no node is left, the first failure is reported", async () => {
    const { loader, fleet } = await setup([neuron("a", 20)]);
    const error = await routeWithFailover({ fleet, loader }, "qwen", async () => {
      throw refused();
    }).catch((e: unknown) => e);
    expect(error).toMatchObject({ code: "unavailable" });
    expect((error as Error).message).toContain("neuron a is unreachable (ECONNREFUSED)");
  });
});

/** The requests a copy was loaded for have reached it (a neuron moves lastUsed past loadedAt). */
function served(neuron: { loaded: Array<{ id: string; lastUsed: number; loadedAt: number }> }, id: string) {
  const model = neuron.loaded.find((m) => m.id === id);
  if (model) model.lastUsed = model.loadedAt + 1;
}

describe("background evictor", () => {
  test("unloads idle models (idle_ttl) and recycles worn idle devices", async () => {
    const beast = neuron("beast", 20);
    const { loader, fleet } = await setup([beast]);
    await loader.ensureLoaded("qwen").then((t) => t.release());
    beast.loaded[0]!.loadedAt = Date.now() - 180_000;
    beast.loaded[0]!.lastUsed = Date.now() - 120_000;
    beast.devices[0]!.loadCycles = 10;
    await fleet.refreshAll();
    const evictor = new BackgroundEvictor(fleet, { idleTtlS: 60, defragAfterCycles: 5 });
    await evictor.runOnce();
    expect(beast.calls.unload).toEqual([{ id: "qwen", evict: true }]);
    expect(fleet.evictions.counts().idle_ttl).toBe(1);
    expect(beast.calls.recycle).toEqual([{ device: "cuda-dev-0" }]);
    expect(evictor.recycles).toBe(1);
  });

  test("admin unloads are counted under their own reason; a model already gone is fine", async () => {
    const beast = neuron("beast", 20);
    const { loader, fleet } = await setup([beast]);
    await loader.ensureLoaded("qwen").then((t) => t.release());
    await fleet.unload("beast", "qwen", { reason: "admin" });
    await fleet.unload("beast", "qwen", { reason: "admin" });
    expect(fleet.evictions.counts()).toEqual({ make_room: 0, idle_ttl: 0, admin: 1 });
  });
});
