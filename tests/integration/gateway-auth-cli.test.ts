/**
 * A gateway with API keys and an admin token in front of two real neurons:
 * what clients without the right key see (in their own dialect), and what
 * `cortex status` / `cortex models ls` show an operator.
 */
import { afterAll, beforeAll, beforeEach, describe, expect, test } from "bun:test";
import { runCli } from "./helpers/run-cli.ts";
import { chat, messages } from "./helpers/gateway-requests.ts";
import { configToml, profile, RealFleet, type TestGateway, waitForFleet } from "./helpers/real-fleet.ts";

const KEY = "sk-test-key";
const ADMIN = "admin-secret";

let fleet: RealFleet;
let gateway: TestGateway;

beforeAll(async () => {
  fleet = await RealFleet.start([
    { name: "n1", files: ["a.gguf", "b.gguf"] },
    { name: "n2", files: ["b.gguf"] },
  ]);
  gateway = await fleet.gateway({
    toml: configToml({
      gateway: { api_keys: [KEY], admin_token: ADMIN },
      models: [profile("alpha", "a.gguf", { aliases: ["al"] }), profile("beta", "b.gguf", { pinned: true })],
    }),
  });
  // Loaded through the gateway, so the CLI has something to show.
  for (const [model, node] of [
    ["alpha", "n1"],
    ["beta", "n2"],
  ] as const) {
    const response = await fetch(`${gateway.url}/admin/models/load`, {
      method: "POST",
      headers: { authorization: `Bearer ${ADMIN}`, "content-type": "application/json" },
      body: JSON.stringify({ model, node }),
    });
    expect(response.status).toBe(200);
  }
}, 60_000);

afterAll(async () => {
  await fleet?.stop();
});

describe("API keys", () => {
  test("no key: 401 in OpenAI's envelope on /v1/chat/completions", async () => {
    const response = await chat(gateway.url, "alpha");
    expect(response.status).toBe(401);
    const body = (await response.json()) as { error: { type: string; code: string; message: string } };
    expect(body.error.code).toBe("unauthorized");
    expect(body.error.message).toContain("API key");
  });

  test("no key: 401 in Anthropic's envelope on /v1/messages", async () => {
    const response = await messages(gateway.url, "alpha");
    expect(response.status).toBe(401);
    const body = (await response.json()) as { type: string; error: { type: string } };
    expect(body).toMatchObject({ type: "error", error: { type: "authentication_error" } });
  });

  test("a wrong key is refused like a missing one, /v1/models included", async () => {
    expect((await chat(gateway.url, "alpha", { headers: { authorization: "Bearer nope" } })).status).toBe(
      401,
    );
    expect((await messages(gateway.url, "alpha", { headers: { "x-api-key": "nope" } })).status).toBe(401);
    expect((await fetch(`${gateway.url}/v1/models`)).status).toBe(401);
  });

  test("the admin token may list the catalogue (cortex models ls) but not chat", async () => {
    const headers = { authorization: `Bearer ${ADMIN}` };
    expect((await fetch(`${gateway.url}/v1/models`, { headers })).status).toBe(200);
    expect((await chat(gateway.url, "alpha", { headers })).status).toBe(401);
  });

  test("the key is accepted as Authorization: Bearer and as x-api-key", async () => {
    const ways: Record<string, string>[] = [{ authorization: `Bearer ${KEY}` }, { "x-api-key": KEY }];
    for (const headers of ways) {
      expect((await chat(gateway.url, "al", { headers })).status).toBe(200);
      expect((await messages(gateway.url, "al", { headers })).status).toBe(200);
      expect((await fetch(`${gateway.url}/v1/models`, { headers })).status).toBe(200);
    }
  });
});

describe("admin API", () => {
  test("a missing or wrong admin token is a 401; the API key is not an admin token", async () => {
    const wrong: Record<string, string>[] = [
      {},
      { authorization: "Bearer wrong" },
      { authorization: `Bearer ${KEY}` },
    ];
    for (const headers of wrong) {
      expect((await fetch(`${gateway.url}/admin/fleet`, { headers })).status).toBe(401);
      const pin = await fetch(`${gateway.url}/admin/models/pin`, {
        method: "POST",
        headers: { ...headers, "content-type": "application/json" },
        body: JSON.stringify({ model: "alpha" }),
      });
      expect(pin.status).toBe(401);
    }
    const ok = await fetch(`${gateway.url}/admin/fleet`, { headers: { authorization: `Bearer ${ADMIN}` } });
    expect(ok.status).toBe(200);
  });
});

describe("cortex status and cortex models ls", () => {
  // The harness polls every 100 ms with a 1 s timeout, so on a loaded machine a node can
  // look down for a moment; these tests are about rendering, so start from a settled fleet.
  beforeEach(async () => {
    await waitForFleet(gateway, (nodes) => nodes.every((node) => node.state === "up"));
  });

  test("status shows the nodes, their devices' memory and the loaded models", async () => {
    const { code, stdout, stderr } = await runCli("status", "--gateway", gateway.url, "--token", ADMIN);
    expect(stderr).toBe("");
    expect(code).toBe(0);
    expect(stdout).toContain("2 node(s), 2 up");
    // One row per node: name, state, device and a memory bar with used / total.
    expect(stdout).toMatch(/n1\s+up\s+cpu-0 CPU\s+\[#*\.+\]\s+[\d.]+ MiB \/ 120\.0 MiB/);
    expect(stdout).toMatch(/n2\s+up\s+cpu-0 CPU\s+\[#*\.+\]\s+[\d.]+ MiB \/ 120\.0 MiB/);
    expect(stdout).toMatch(/alpha\s+n1\s+ready\s+cpu-0/);
    expect(stdout).toMatch(/beta\s+n2\s+ready\s+cpu-0\s.*yes$/m);
  });

  test("status --json is the fleet for scripts", async () => {
    const { code, stdout } = await runCli("status", "--json", "--gateway", gateway.url, "--token", ADMIN);
    expect(code).toBe(0);
    const fleetView = JSON.parse(stdout) as {
      nodes: Array<{
        name: string;
        state: string;
        devices: Array<{ memoryTotal: number }>;
        loaded: Array<{ id: string }>;
      }>;
    };
    expect(fleetView.nodes.map((node) => [node.name, node.state, node.loaded.map((m) => m.id)])).toEqual([
      ["n1", "up", ["alpha"]],
      ["n2", "up", ["beta"]],
    ]);
    expect(fleetView.nodes[0]?.devices[0]?.memoryTotal).toBe(120 * 1024 * 1024);
  });

  test("status with a wrong token says so and fails", async () => {
    const { code, stderr } = await runCli("status", "--gateway", gateway.url, "--token", "wrong");
    expect(code).not.toBe(0);
    expect(stderr).toContain("refused the admin token");
  });

  test("models ls shows where each model is loaded", async () => {
    const { code, stdout, stderr } = await runCli("models", "ls", "--gateway", gateway.url, "--token", ADMIN);
    expect(stderr).toBe("");
    expect(code).toBe(0);
    expect(stdout).toMatch(/alpha\s+loaded\s+n1\(ready\)\s+n1\s+al/);
    expect(stdout).toMatch(/beta\s+loaded\s+n2\(ready\)\s+n1, n2\s+yes/);
  });
});
