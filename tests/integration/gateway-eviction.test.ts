/**
 * Eviction with a real neuron whose device holds two tiny models: a third
 * forces the gateway to unload one. Which one goes, and which never do
 * (pinned by profile or at run time, busy with a request), for both
 * strategies; and the idle TTL. Each strategy is its own gateway in front
 * of the same neuron, as replicas would be.
 */
import { afterAll, beforeAll, beforeEach, describe, expect, test } from "bun:test";
import { chat, holdStream } from "./helpers/gateway-requests.ts";
import {
  configToml,
  loadCount,
  loadedIds,
  neuronModels,
  noEndBias,
  profile,
  RealFleet,
  type TestGateway,
  waitForFleet,
} from "./helpers/real-fleet.ts";

let fleet: RealFleet;
let lru: TestGateway;
let priority: TestGateway;
let noEnd: Record<string, number>;
let neuronUrl: string;

beforeAll(async () => {
  fleet = await RealFleet.start([{ name: "n1", files: ["a.gguf", "b.gguf", "c.gguf"] }]);
  neuronUrl = fleet.neuron("n1").url;
  noEnd = await noEndBias(fleet.modelPath);
  lru = await fleet.gateway({
    toml: configToml({
      eviction: { strategy: "lru" },
      models: [
        profile("a", "a.gguf"),
        profile("b", "b.gguf"),
        profile("c", "c.gguf"),
        profile("p", "a.gguf", { pinned: true }),
      ],
    }),
  });
  priority = await fleet.gateway({
    toml: configToml({
      eviction: { strategy: "priority" },
      models: [
        profile("hi", "a.gguf", { priority: 10 }),
        profile("mid", "b.gguf", { priority: 5 }),
        profile("lo", "c.gguf", { priority: 1 }),
        profile("lo2", "a.gguf", { priority: 1 }),
      ],
    }),
  });
}, 60_000);

afterAll(async () => {
  await fleet?.stop();
});

beforeEach(async () => {
  await fleet.unloadAll();
  for (const gateway of [lru, priority])
    await waitForFleet(gateway, (nodes) => nodes.every((node) => node.loaded.length === 0));
});

/** Chats with each model in turn, so the last one is the most recently used. */
async function use(gateway: TestGateway, ...models: string[]): Promise<void> {
  for (const model of models) {
    const response = await chat(gateway.url, model);
    expect(`${model}: ${response.status}`).toBe(`${model}: 200`);
    await response.arrayBuffer();
    // The gateway counts the request until its answer has gone out, a moment after the client has it.
    await waitForFleet(gateway, (nodes) =>
      nodes.every((node) => node.loaded.every((copy) => copy.id !== model || copy.inFlight === 0)),
    );
  }
}

async function admin(gateway: TestGateway, action: string, model: string): Promise<void> {
  const response = await fetch(`${gateway.url}/admin/models/${action}`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ model }),
  });
  expect(response.status).toBe(200);
}

describe("lru", () => {
  test("the least recently used model makes room", async () => {
    await use(lru, "a", "b", "a");
    expect(await loadedIds(neuronUrl)).toEqual(["a", "b"]);
    await use(lru, "c");
    expect(await loadedIds(neuronUrl)).toEqual(["a", "c"]);
  });

  test("never a model pinned by its profile", async () => {
    await use(lru, "p", "a");
    expect((await neuronModels(neuronUrl)).find((model) => model.id === "p")?.pinned).toBe(true);
    await use(lru, "c");
    expect(await loadedIds(neuronUrl)).toEqual(["c", "p"]);
  });

  test("never a model pinned at run time through the admin API", async () => {
    await use(lru, "a", "b");
    await admin(lru, "pin", "a");
    expect((await neuronModels(neuronUrl)).find((model) => model.id === "a")?.pinned).toBe(true);
    await use(lru, "c");
    expect(await loadedIds(neuronUrl)).toEqual(["a", "c"]);
    await admin(lru, "unpin", "a");
    expect((await neuronModels(neuronUrl)).find((model) => model.id === "a")?.pinned).toBe(false);
  });

  test("never a model with a request in flight", async () => {
    const held = await holdStream(lru.url, "a", noEnd);
    try {
      await use(lru, "b");
      // a is the least recently used, but busy.
      await use(lru, "c");
      expect(await loadedIds(neuronUrl)).toEqual(["a", "c"]);
      expect((await neuronModels(neuronUrl)).find((model) => model.id === "a")?.inFlight).toBe(1);
    } finally {
      await held.release();
    }
  });

  test("room held only by busy or pinned models: 503 with Retry-After, it will fit later", async () => {
    const held = await holdStream(lru.url, "a", noEnd);
    try {
      await use(lru, "b");
      await admin(lru, "pin", "b");
      const response = await chat(lru.url, "c");
      expect(response.status).toBe(503);
      expect(Number(response.headers.get("retry-after"))).toBeGreaterThan(0);
      const body = (await response.json()) as { error: { message: string } };
      expect(body.error.message).toContain("more once busy models finish");
      expect(await loadedIds(neuronUrl)).toEqual(["a", "b"]);
    } finally {
      await held.release();
      await admin(lru, "unpin", "b");
    }
  });
});

describe("priority", () => {
  test("the lowest priority makes room, even when used more recently", async () => {
    await use(priority, "lo", "hi", "lo");
    await use(priority, "mid");
    expect(await loadedIds(neuronUrl)).toEqual(["hi", "mid"]);
  });

  test("among equal priorities, the least recently used", async () => {
    await use(priority, "lo2", "lo");
    await use(priority, "hi");
    expect(await loadedIds(neuronUrl)).toEqual(["hi", "lo"]);
  });

  test("never a pinned model, whatever its priority", async () => {
    await use(priority, "lo", "mid");
    await admin(priority, "pin", "lo");
    await use(priority, "hi");
    expect(await loadedIds(neuronUrl)).toEqual(["hi", "lo"]);
    await admin(priority, "unpin", "lo");
  });
});

describe("idle ttl", () => {
  // Idle time is measured on the gateway's clock, which these tests set; passes run when they ask.
  const TTL_S = 3600;
  const NO_TIMED_PASSES = 24 * 3600 * 1000;

  /** The neuron's own last use of `id` (epoch ms). */
  async function lastUsed(id: string): Promise<number> {
    const model = (await neuronModels(neuronUrl)).find((m) => m.id === id);
    if (model === undefined) throw new Error(`${id} is not loaded`);
    return model.lastUsed;
  }

  test("an idle model is unloaded once idle_ttl_s has passed, not before; a pinned one stays", async () => {
    let at: number | undefined;
    const idle = await fleet.gateway({
      toml: configToml({
        eviction: { idle_ttl_s: TTL_S },
        models: [profile("a", "a.gguf"), profile("p", "b.gguf", { pinned: true })],
      }),
      evictorIntervalMs: NO_TIMED_PASSES,
      now: () => at ?? Date.now(),
    });
    try {
      await use(idle, "p", "a");
      const used = await lastUsed("a");
      // One millisecond short of the TTL: nothing goes.
      at = used + TTL_S * 1000 - 1;
      await idle.running.evictNow();
      expect(await loadedIds(neuronUrl)).toEqual(["a", "p"]);
      // At the TTL: a goes; the pinned one, idle at least as long, stays.
      at = used + TTL_S * 1000;
      await idle.running.evictNow();
      expect(await loadedIds(neuronUrl)).toEqual(["p"]);
    } finally {
      await idle.stop();
    }
  });

  test("a model in use is not idle, even when the gateway has not polled since", async () => {
    let at: number | undefined;
    const idle = await fleet.gateway({
      toml: configToml({
        gateway: { poll_interval_ms: 60_000 },
        eviction: { idle_ttl_s: TTL_S },
        models: [profile("a", "a.gguf")],
      }),
      evictorIntervalMs: NO_TIMED_PASSES,
      now: () => at ?? Date.now(),
    });
    try {
      const loadsBefore = await loadCount(neuronUrl, "a");
      // Loaded idle (the gateway re-reads the node right after), then only used.
      await admin(idle, "load", "a");
      const seen = (await waitForFleet(idle, () => true))[0]?.loaded.find((m) => m.id === "a")?.lastUsed;
      if (seen === undefined) throw new Error("the gateway does not show a");
      let used = await lastUsed("a");
      while (used <= seen) {
        await use(idle, "a");
        used = await lastUsed("a");
      }
      // By the gateway's last read a is idle past the TTL; by the neuron's, 1 ms short of it.
      at = used + TTL_S * 1000 - 1;
      expect(at - seen).toBeGreaterThanOrEqual(TTL_S * 1000);
      await idle.running.evictNow();
      expect(await loadedIds(neuronUrl)).toEqual(["a"]);
      expect(await loadCount(neuronUrl, "a")).toBe(loadsBefore + 1);
    } finally {
      await idle.stop();
    }
  });
});
