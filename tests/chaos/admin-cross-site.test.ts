/**
 * Issue 18 §11: with no admin_token the admin API is "loopback only", yet a
 * web page could drive it: a `text/plain` POST with `Origin:
 * http://evil.example` pinned a model (no CORS preflight for that), and a
 * DNS name rebound to 127.0.0.1 reached it too.
 */
import { afterAll, beforeAll, expect, test } from "bun:test";
import { configToml, RealFleet, type TestGateway } from "../integration/helpers/real-fleet.ts";
import { type CrashingNeuron, startCrashingNeuron } from "./helpers/crashing-neuron.ts";

let fleet: RealFleet;
let gateway: TestGateway;
let neuron: CrashingNeuron;

beforeAll(async () => {
  fleet = await RealFleet.start([]);
  neuron = startCrashingNeuron("node", "cold.gguf");
  gateway = await fleet.gateway({
    toml: configToml({ models: [{ id: "cold", file: "cold.gguf" }] }),
    external: [{ name: neuron.name, endpoint: neuron.url }],
  });
}, 60_000);

afterAll(async () => {
  neuron?.stop();
  await fleet?.stop();
});

const port = () => new URL(gateway.url).port;

async function errorOf(response: Response): Promise<string> {
  return ((await response.json()) as { error: { message: string } }).error.message;
}

test("a cross-site text/plain POST is refused before it acts", async () => {
  const response = await fetch(`${gateway.url}/admin/models/load`, {
    method: "POST",
    headers: { "content-type": "text/plain", origin: "http://evil.example" },
    body: JSON.stringify({ model: "cold" }),
  });
  expect(response.status).toBe(403);
  expect(await errorOf(response)).toContain("another origin");
  expect(neuron.loads()).toBe(0);
});

test("an admin action must be application/json", async () => {
  const response = await fetch(`${gateway.url}/admin/models/load`, {
    method: "POST",
    headers: { "content-type": "text/plain" },
    body: JSON.stringify({ model: "cold" }),
  });
  expect(response.status).toBe(400);
  expect(await errorOf(response)).toContain("expected Content-Type: application/json");
  expect(neuron.loads()).toBe(0);
});

test("a rebound DNS name is refused; loopback names and the gateway's own origin are not", async () => {
  const rebound = await fetch(`${gateway.url}/admin/fleet`, { headers: { host: `evil.example:${port()}` } });
  expect(rebound.status).toBe(403);
  expect(await errorOf(rebound)).toContain("loopback host names");
  for (const host of [`127.0.0.1:${port()}`, `localhost:${port()}`]) {
    const response = await fetch(`${gateway.url}/admin/fleet`, {
      headers: { host, origin: `http://${host}` },
    });
    expect(response.status).toBe(200);
  }
});
