import { expect, test } from "bun:test";
import {
  type LifecycleEvent,
  type LifecycleState,
  LifecycleTable,
  nextState,
} from "../../src/neuron/model-lifecycle.ts";

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
  const table = new LifecycleTable();
  const seen: string[] = [];
  table.onTransition((record) => seen.push(`${record.id}:${record.from}->${record.to}`));
  expect(table.transition("m", "load")).toBe(true);
  expect(table.transition("m", "loaded", "loading")).toBe(true);
  expect(table.transition("m", "unload", "ready")).toBe(true);
  expect(table.transition("m", "unload", "ready")).toBe(false);
  expect(table.transition("m", "unloaded")).toBe(true);
  expect(table.state("m")).toBe("absent");
  expect(table.ids()).toEqual([]);
  expect(seen).toEqual([
    "m:absent->loading",
    "m:loading->ready",
    "m:ready->unloading",
    "m:unloading->absent",
  ]);
});
