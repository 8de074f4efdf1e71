import { expect, test } from "bun:test";
import { loadingEntry, ModelRegistry, untilIdle } from "../../src/neuron/engine/model-registry.ts";
import { type LifecycleEvent, type LifecycleState, nextState } from "../../src/neuron/model-lifecycle.ts";

test.each([
  ["absent", "load", "loading"],
  ["loading", "loaded", "ready"],
  ["loading", "failed", "failed"],
  ["ready", "unload", "unloading"],
  ["ready", "fault", "failed"],
  ["unloading", "unloaded", "absent"],
  ["failed", "load", "loading"],
  ["failed", "unload", "unloading"],
  ["absent", "unload", undefined],
  ["loading", "unload", undefined],
  ["unloading", "load", undefined],
  ["ready", "load", undefined],
] as Array<[LifecycleState, LifecycleEvent, LifecycleState | undefined]>)(
  "%s --%s--> %s",
  (from, event, to) => {
    expect(nextState(from, event)).toBe(to);
  },
);

test("compare-and-swap: only one of two racing unloads wins, and listeners see each transition once", () => {
  const seen: string[] = [];
  const lost: string[] = [];
  const registry = new ModelRegistry({
    transition: (record) => seen.push(`${record.id}:${record.from}->${record.to}`),
    lost: (id, reason) => lost.push(`${id}: ${reason}`),
  });
  const entry = loadingEntry({ id: "m", path: "/m.gguf" }, ["cpu-0"], { contextSize: 64, slots: 1 });
  registry.add(entry);
  expect(() =>
    registry.add(loadingEntry({ id: "m", path: "/m.gguf" }, ["cpu-0"], { contextSize: 64, slots: 1 })),
  ).toThrow("model m is loading");
  expect(registry.transition(entry, "loaded", "loading")).toBe(true);
  expect(registry.transition(entry, "unload", "ready")).toBe(true);
  expect(registry.transition(entry, "unload", "ready")).toBe(false);
  registry.drop(entry, "unloaded", { lost: false });
  expect(registry.get("m")).toBeUndefined();
  expect(registry.describe()).toEqual([]);
  expect(seen).toEqual([
    "m:absent->loading",
    "m:loading->ready",
    "m:ready->unloading",
    "m:unloading->absent",
  ]);
  expect(lost).toEqual([]);
});

test("every removal goes through one path: a ready model that is dropped leaves the table, wakes its waiters, fails its queue and is reported lost once", async () => {
  const seen: string[] = [];
  const lost: string[] = [];
  const registry = new ModelRegistry({
    transition: (record) => seen.push(`${record.from}->${record.to} (${record.event})`),
    lost: (id, reason) => lost.push(`${id}: ${reason}`),
  });
  const entry = loadingEntry({ id: "m", path: "/m.gguf", pinned: true }, ["cpu-0"], {
    contextSize: 64,
    slots: 1,
  });
  registry.add(entry);
  registry.transition(entry, "loaded");
  const pushed: unknown[] = [];
  entry.queue.push({
    seqKey: 1,
    params: { prompt: "x" },
    channel: { push: (e: unknown) => pushed.push(e) } as never,
  });
  const idle = untilIdle(entry);
  registry.drop(entry, "cpu-0 was recycled", { lost: true });
  registry.drop(entry, "twice", { lost: true });
  await idle;
  expect(registry.describe()).toEqual([]);
  expect(pushed).toEqual([{ type: "error", error: expect.objectContaining({ code: "unavailable" }) }]);
  expect(lost).toEqual(["m: cpu-0 was recycled"]);
  expect(seen).toEqual([
    "absent->loading (load)",
    "loading->ready (loaded)",
    "ready->failed (fault)",
    "failed->absent (unloaded)",
  ]);
});
