/**
 * Failures before the first byte, with three real neurons: a node that went
 * down since the gateway last polled it, and a model another gateway replica
 * unloaded. The gateways poll rarely here on purpose, so their view is stale
 * when the request arrives and only the request itself can find out.
 */
import { afterAll, beforeAll, expect, test } from "bun:test";
import { chat } from "./helpers/gateway-requests.ts";
import {
  configToml,
  fleetNodes,
  loadCount,
  loadedIds,
  profile,
  RealFleet,
  servedCount,
  type TestGateway,
} from "./helpers/real-fleet.ts";

let fleet: RealFleet;
let gateway: TestGateway;

const TOML = configToml({
  gateway: { poll_interval_ms: 60_000 },
  // Failover alone: among equal copies the first node is tried first (no conversation routing).
  routing: { cache_affinity: false },
  models: [profile("alpha", "a.gguf"), profile("beta", "b.gguf"), profile("gamma", "c.gguf")],
});

beforeAll(async () => {
  fleet = await RealFleet.start([
    { name: "n1", files: ["a.gguf", "b.gguf"] },
    { name: "n2", files: ["a.gguf", "b.gguf"] },
    { name: "n3", files: ["a.gguf", "b.gguf", "c.gguf"] },
  ]);
  gateway = await fleet.gateway({ toml: TOML });
}, 60_000);

afterAll(async () => {
  await fleet?.stop();
});

async function adminLoad(url: string, model: string, node: string): Promise<void> {
  const response = await fetch(`${url}/admin/models/load`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ model, node }),
  });
  expect(response.status).toBe(200);
}

// Runs first: it needs every node up.
test("a model another replica unloaded is reloaded, not a 404", async () => {
  expect((await chat(gateway.url, "gamma")).status).toBe(200);
  expect(await loadedIds(fleet.neuron("n3").url)).toEqual(["gamma"]);
  const replica = await fleet.gateway({ toml: TOML });
  const unload = await fetch(`${replica.url}/admin/models/unload`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ model: "gamma" }),
  });
  expect(unload.status).toBe(200);
  expect(await loadedIds(fleet.neuron("n3").url)).toEqual([]);
  await replica.stop();

  // This gateway has not polled since: it still believes gamma is loaded on n3.
  const response = await chat(gateway.url, "gamma");
  expect(response.status).toBe(200);
  expect(await loadedIds(fleet.neuron("n3").url)).toEqual(["gamma"]);
});

test("a node down before the first byte: the request goes to another ready copy", async () => {
  await adminLoad(gateway.url, "alpha", "n1");
  await adminLoad(gateway.url, "alpha", "n2");
  await fleet.neuron("n1").stop();
  // Not polled since: the gateway still routes to n1, which comes first among equal copies.
  expect((await fleetNodes(gateway.url)).find((node) => node.name === "n1")?.state).toBe("up");

  const response = await chat(gateway.url, "alpha");
  expect(response.status).toBe(200);
  expect(await servedCount(fleet.neuron("n2").url, "alpha")).toBe(1);
  expect(await loadCount(fleet.neuron("n3").url, "alpha")).toBe(0);
  const n1 = (await fleetNodes(gateway.url)).find((node) => node.name === "n1");
  expect(n1?.state).toBe("down");
  expect(n1?.error).toMatch(/unreachable/);
});

test("a node down before the first byte with no other copy: loaded elsewhere, then served", async () => {
  await adminLoad(gateway.url, "beta", "n2");
  await fleet.neuron("n2").stop();

  const response = await chat(gateway.url, "beta");
  expect(response.status).toBe(200);
  const body = (await response.json()) as { choices: Array<{ message: { content: string } }> };
  expect(body.choices[0]?.message.content.length).toBeGreaterThan(0);
  expect(await loadCount(fleet.neuron("n3").url, "beta")).toBe(1);
  expect(await servedCount(fleet.neuron("n3").url, "beta")).toBe(1);
  const states = Object.fromEntries((await fleetNodes(gateway.url)).map((node) => [node.name, node.state]));
  expect(states).toEqual({ n1: "down", n2: "down", n3: "up" });
});
