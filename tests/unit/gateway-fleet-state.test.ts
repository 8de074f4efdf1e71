import { expect, test } from "bun:test";
import type { HealthResponse, ModelsResponse } from "../../src/core/neuron-api.ts";
import { FleetState } from "../../src/gateway/fleet/fleet-state.ts";
import { device, GiB, model, NOW } from "./gateway-fixtures.ts";

function poll(
  loaded = [model("a", { memoryBytes: 4 * GiB })],
  free = 10 * GiB,
): [HealthResponse, ModelsResponse] {
  const { reserved: _r, ...plain } = loaded[0] ?? model("none");
  const models = loaded.length === 0 ? [] : [plain];
  return [
    {
      status: "ok",
      version: "1",
      node: "n",
      startedAt: 0,
      devices: [device("cuda-dev-0", { memoryTotal: 24 * GiB, memoryFree: free })],
      loaded: models,
    },
    { available: [], loaded: models },
  ];
}

/** A 6 GiB copy of `b` being loaded on the node's one device. */
const LOAD_B = {
  id: "b",
  file: "b.gguf",
  devices: ["cuda-dev-0"],
  memoryBytes: 6 * GiB,
  contextSize: 8192,
  slots: 4,
  pinned: false,
  priority: 0,
};

function store() {
  const state = new FleetState({ nodes: [{ name: "n", endpoint: "http://n" }], now: () => NOW });
  const changes: string[] = [];
  state.onStateChange((c) => changes.push(`${c.from}>${c.to}`));
  return { state, changes };
}

function nodeView(state: FleetState) {
  return state.view().nodes[0]!;
}

test("polls drive the node state: unknown → up → down → up", () => {
  const { state, changes } = store();
  expect(state.stateOf("n")).toBe("unknown");
  state.applyPoll("n", ...poll(), state.epoch("n"));
  state.applyPollFailure("n", "neuron n is unreachable (ECONNREFUSED)");
  expect(state.fleetNodes()[0]).toMatchObject({
    state: "down",
    error: "neuron n is unreachable (ECONNREFUSED)",
  });
  state.applyPoll("n", ...poll(), state.epoch("n"));
  expect(changes).toEqual(["unknown>up", "up>down", "down>up"]);
  expect(state.fleetNodes()[0]?.error).toBeUndefined();
});

test("a load in progress shows as loading and takes its memory from its device", () => {
  const { state } = store();
  state.applyPoll("n", ...poll(), state.epoch("n"));
  const end = state.beginLoad("n", LOAD_B);
  expect(nodeView(state).loaded.map((m) => `${m.id}:${m.state}`)).toEqual(["a:ready", "b:loading"]);
  expect(nodeView(state).devices[0]?.memoryFree).toBe(4 * GiB);
  end();
  expect(nodeView(state).loaded.map((m) => m.id)).toEqual(["a"]);
  expect(nodeView(state).devices[0]?.memoryFree).toBe(10 * GiB);
});

test("a victim being unloaded is no candidate and its memory counts as about to be free", () => {
  const { state } = store();
  state.applyPoll("n", ...poll(), state.epoch("n"));
  const end = state.beginUnload("n", "a");
  expect(nodeView(state).loaded[0]?.state).toBe("unloading");
  expect(nodeView(state).devices[0]?.memoryFree).toBe(14 * GiB);
  end();
  expect(nodeView(state).loaded[0]?.state).toBe("ready");
});

test("requests sent here count as in flight until the neuron reports more", () => {
  const { state } = store();
  state.applyPoll("n", ...poll([model("a", { inFlight: 0 })]), state.epoch("n"));
  const end1 = state.beginRequest("n", "a");
  state.beginRequest("n", "a");
  expect(nodeView(state).loaded[0]?.inFlight).toBe(2);
  state.applyPoll("n", ...poll([model("a", { inFlight: 5 })]), state.epoch("n"));
  expect(nodeView(state).loaded[0]?.inFlight).toBe(5);
  end1();
  end1();
  state.applyPoll("n", ...poll([model("a", { inFlight: 0 })]), state.epoch("n"));
  expect(nodeView(state).loaded[0]?.inFlight).toBe(1);
});

test("reservations are counted until released", () => {
  const { state } = store();
  state.applyPoll("n", ...poll(), state.epoch("n"));
  const r1 = state.reserve("n", "a");
  const r2 = state.reserve("n", "a");
  expect(nodeView(state).loaded[0]?.reserved).toBe(2);
  r1();
  r2();
  expect(nodeView(state).loaded[0]?.reserved).toBe(0);
});

test("counts move in the next view, a loading copy's too, never in a view already handed out", () => {
  const { state } = store();
  state.applyPoll("n", ...poll([model("a", { inFlight: 1 })]), state.epoch("n"));
  state.beginLoad("n", LOAD_B);
  const counts = (view: ReturnType<typeof nodeView>) =>
    view.loaded.map((m) => `${m.id}:${m.state}:${m.inFlight}:${m.reserved}`);
  const before = nodeView(state);
  const endA = state.beginRequest("n", "a");
  const endA2 = state.beginRequest("n", "a");
  const release = state.reserve("n", "b");
  const during = nodeView(state);
  expect(counts(before)).toEqual(["a:ready:1:0", "b:loading:0:0"]);
  expect(counts(during)).toEqual(["a:ready:2:0", "b:loading:0:1"]);
  expect(during.devices[0]?.memoryFree).toBe(4 * GiB);
  endA();
  endA2();
  release();
  state.beginUnload("n", "a");
  expect(counts(nodeView(state))).toEqual(["a:unloading:1:0", "b:loading:0:0"]);
  expect(counts(during)).toEqual(["a:ready:2:0", "b:loading:0:1"]);
});

test("a poll that began before a confirmed load cannot hide it", () => {
  const { state } = store();
  state.applyPoll("n", ...poll([]), state.epoch("n"));
  const epochBefore = state.epoch("n");
  const { reserved: _r, ...loaded } = model("fresh");
  state.applyLoaded("n", loaded);
  state.applyPoll("n", ...poll([]), epochBefore);
  expect(nodeView(state).loaded.map((m) => m.id)).toEqual(["fresh"]);
  state.applyPoll("n", ...poll([]), state.epoch("n"));
  expect(nodeView(state).loaded).toEqual([]);
});
