import { describe, expect, test } from "bun:test";
import type { FleetModel } from "../../src/gateway/fleet/fleet-types.ts";
import { chooseVictims, type EvictionStrategy } from "../../src/gateway/routing/choose-victims.ts";
import { GiB, model, NOW } from "./gateway-fixtures.ts";

const old = model("old", { lastUsed: NOW - 600_000, priority: 5 });
const mid = model("mid", { lastUsed: NOW - 300_000, priority: 0 });
const fresh = model("fresh", { lastUsed: NOW - 1_000, priority: 0 });
const low = model("low", { lastUsed: NOW - 1_000, priority: -1 });

const cases: {
  name: string;
  models: FleetModel[];
  need: number;
  strategy: EvictionStrategy;
  expected: string[] | undefined;
}[] = [
  { name: "nothing needed", models: [old, mid], need: 0, strategy: "lru", expected: [] },
  {
    name: "lru takes the least recently used",
    models: [fresh, mid, old],
    need: 1,
    strategy: "lru",
    expected: ["old"],
  },
  {
    name: "lru takes as many as the need requires, oldest first",
    models: [fresh, mid, old],
    need: 5 * GiB,
    strategy: "lru",
    expected: ["old", "mid"],
  },
  {
    name: "priority takes the lowest priority first",
    models: [old, mid, low],
    need: 1,
    strategy: "priority",
    expected: ["low"],
  },
  {
    name: "priority breaks ties by least recent use",
    models: [fresh, mid, old],
    need: 5 * GiB,
    strategy: "priority",
    expected: ["mid", "fresh"],
  },
  {
    name: "never a pinned model",
    models: [model("pinned", { pinned: true, lastUsed: 0 }), fresh],
    need: 1,
    strategy: "lru",
    expected: ["fresh"],
  },
  {
    name: "never one with requests in flight",
    models: [model("busy", { inFlight: 1, lastUsed: 0 }), fresh],
    need: 1,
    strategy: "lru",
    expected: ["fresh"],
  },
  {
    name: "never one with requests queued",
    models: [model("queued", { queued: 2, lastUsed: 0 }), fresh],
    need: 1,
    strategy: "lru",
    expected: ["fresh"],
  },
  {
    name: "never one reserved for requests that waited on its load",
    models: [model("reserved", { reserved: 1, lastUsed: 0 }), fresh],
    need: 1,
    strategy: "priority",
    expected: ["fresh"],
  },
  {
    name: "never one that is loading or unloading",
    models: [
      model("loading", { state: "loading", lastUsed: 0 }),
      model("unloading", { state: "unloading" }),
      fresh,
    ],
    need: 1,
    strategy: "lru",
    expected: ["fresh"],
  },
  {
    name: "undefined when all candidates together are not enough",
    models: [model("pinned", { pinned: true }), fresh],
    need: 5 * GiB,
    strategy: "lru",
    expected: undefined,
  },
];

describe("chooseVictims", () => {
  for (const c of cases) {
    test(c.name, () => {
      expect(chooseVictims(c.models, c.need, c.strategy)?.map((m) => m.id)).toEqual(c.expected);
    });
  }
});
