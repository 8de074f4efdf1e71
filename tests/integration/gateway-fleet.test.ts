/**
 * The gateway's fleet layer against scripted fake neurons: small HTTP
 * servers on loopback that implement the neuron contract in memory.
 */
import { afterEach, describe, expect, test } from "bun:test";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { loadConfig } from "../../src/core/config/load-config.ts";
import { CortexError } from "../../src/core/errors.ts";
import { LoadRequest, PinRequest, RecycleRequest, UnloadRequest } from "../../src/core/neuron-api.ts";
import { FleetState } from "../../src/gateway/fleet/fleet-state.ts";
import { NodePoller } from "../../src/gateway/fleet/poller.ts";
import { NeuronClient } from "../../src/gateway/neuron-client.ts";
import { createRoutingServices } from "../../src/gateway/routing/routing-services.ts";
import { device, file, GiB, MemoryNeuron } from "../unit/gateway-fixtures.ts";

const TOKEN = "s3cret";
const servers: { stop: (force?: boolean) => unknown }[] = [];

afterEach(() => {
  for (const server of servers.splice(0)) server.stop(true);
});

/** Serves a MemoryNeuron over HTTP like a neuron would, bearer token included. */
function serveNeuron(neuron: MemoryNeuron, options: { port?: number; token?: string } = {}) {
  const token = options.token ?? TOKEN;
  const server = Bun.serve({
    port: options.port ?? 0,
    hostname: "127.0.0.1",
    async fetch(request) {
      const path = new URL(request.url).pathname;
      if (path !== "/health" && request.headers.get("authorization") !== `Bearer ${token}`)
        return Response.json({ error: { code: "unauthorized", message: "bad token" } }, { status: 401 });
      try {
        const body = request.method === "POST" ? await request.json() : undefined;
        switch (`${request.method} ${path}`) {
          case "GET /health":
            return Response.json(await neuron.health());
          case "GET /models":
            return Response.json(await neuron.models());
          case "POST /models/load":
            return Response.json(await neuron.load(LoadRequest.parse(body)));
          case "POST /models/unload":
            await neuron.unload(UnloadRequest.parse(body));
            return Response.json({ ok: true });
          case "POST /models/pin":
            await neuron.pin(PinRequest.parse(body));
            return Response.json({ ok: true });
          case "POST /devices/recycle":
            await neuron.recycle(RecycleRequest.parse(body));
            return Response.json({ ok: true });
          case "GET /broken":
            return Response.json({ nonsense: true });
          case "GET /slow":
            // Answers only once the client has given up: its timeout is the only way out.
            await new Promise((resolve) => request.signal.addEventListener("abort", resolve));
            return Response.json({});
          default:
            return Response.json({ error: { code: "not_found", message: path } }, { status: 404 });
        }
      } catch (error) {
        const e = error instanceof CortexError ? error : new CortexError("internal", String(error));
        return Response.json({ error: { code: e.code, message: e.message } }, { status: e.status });
      }
    },
  });
  servers.push(server);
  return server;
}

function fakeNeuron(name: string, freeGiB = 20) {
  return new MemoryNeuron(name, {
    devices: [device("cuda-dev-0", { memoryTotal: 24 * GiB, memoryFree: freeGiB * GiB })],
    available: [file("qwen.gguf", 4 * GiB)],
  });
}

describe("NeuronClient", () => {
  test("sends the bearer token and validates answers", async () => {
    const server = serveNeuron(fakeNeuron("beast"));
    const client = new NeuronClient({
      name: "beast",
      endpoint: `http://127.0.0.1:${server.port}/`,
      token: TOKEN,
    });
    expect((await client.health()).node).toBe("beast");
    expect((await client.models()).available.map((f) => f.file)).toEqual(["qwen.gguf"]);
    const loaded = await client.load({ id: "qwen", file: "qwen.gguf", memoryEstimateBytes: 6 * GiB });
    expect(loaded).toMatchObject({ alreadyLoaded: false, model: { id: "qwen", state: "ready" } });
    expect(client.target("/v1/chat/completions")).toEqual({
      url: `http://127.0.0.1:${server.port}/v1/chat/completions`,
      headers: { authorization: `Bearer ${TOKEN}` },
    });
  });

  test("a wrong token is a non-retryable 401", async () => {
    const server = serveNeuron(fakeNeuron("beast"));
    const client = new NeuronClient({
      name: "beast",
      endpoint: `http://127.0.0.1:${server.port}`,
      token: "wrong",
    });
    const error = await client.models().catch((e: unknown) => e);
    expect(error).toMatchObject({ code: "unauthorized", status: 401, retryable: false });
  });

  test("507 from the neuron keeps its code", async () => {
    const server = serveNeuron(fakeNeuron("beast", 2));
    const client = new NeuronClient({
      name: "beast",
      endpoint: `http://127.0.0.1:${server.port}`,
      token: TOKEN,
    });
    const error = await client
      .load({ id: "qwen", file: "qwen.gguf", memoryEstimateBytes: 6 * GiB })
      .catch((e: unknown) => e);
    expect(error).toMatchObject({ code: "insufficient_memory", status: 507 });
  });

  test("a refused connection is retryable `unavailable`; a slow neuron is `timeout`", async () => {
    const server = serveNeuron(fakeNeuron("beast"));
    const port = server.port;
    server.stop(true);
    const gone = new NeuronClient({ name: "gone", endpoint: `http://127.0.0.1:${port}` });
    const refused = await gone.health().catch((e: unknown) => e);
    expect(refused).toMatchObject({ code: "unavailable", retryable: true });
    expect((refused as Error).message).toContain("ECONNREFUSED");

    const slowServer = serveNeuron(fakeNeuron("slow"));
    const slow = new NeuronClient({
      name: "slow",
      endpoint: `http://127.0.0.1:${slowServer.port}`,
      token: TOKEN,
      timeoutMs: 30,
      fetch: redirect("/health", "/slow"),
    });
    const timedOut = await slow.health().catch((e: unknown) => e);
    expect(timedOut).toMatchObject({ code: "timeout", status: 504, retryable: true });
  });

  test("an answer in the wrong shape is an upstream_error naming the call", async () => {
    const server = serveNeuron(fakeNeuron("beast"));
    const client = new NeuronClient({
      name: "beast",
      endpoint: `http://127.0.0.1:${server.port}`,
      token: TOKEN,
      fetch: redirect("/health", "/broken"),
    });
    const error = await client.health().catch((e: unknown) => e);
    expect(error).toMatchObject({ code: "upstream_error" });
    expect((error as Error).message).toContain("GET /health");
  });
});

/** A fetch that sends one path to another (to reach the fake's scripted routes). */
function redirect(from: string, to: string): typeof fetch {
  return ((input: string | URL | Request, init?: RequestInit) =>
    fetch(String(input).replace(from, to), init)) as typeof fetch;
}

describe("NodePoller", () => {
  test("unknown → up, down with growing backoff while unreachable, up again when it returns", async () => {
    const neuron = fakeNeuron("beast");
    let server = serveNeuron(neuron);
    const port = server.port;
    const state = new FleetState({ nodes: [{ name: "beast", endpoint: `http://127.0.0.1:${port}` }] });
    const changes: string[] = [];
    state.onStateChange((c) => changes.push(`${c.from}>${c.to}`));
    const client = new NeuronClient({ name: "beast", endpoint: `http://127.0.0.1:${port}`, token: TOKEN });
    const poller = new NodePoller(client, state, { intervalMs: 10, maxBackoffMs: 40, random: () => 0.999 });
    // Waits for the store's own changes: each poll's answer or failure is one.
    const until = (condition: () => boolean) =>
      new Promise<void>((resolve) => {
        if (condition()) return resolve();
        const unsubscribe = state.onChange(() => {
          if (!condition()) return;
          unsubscribe();
          resolve();
        });
      });
    poller.start();
    try {
      await until(() => state.stateOf("beast") === "up");
      expect(state.fleetNodes()[0]).toMatchObject({ state: "up", version: "test" });

      server.stop(true);
      await until(() => poller.failures >= 3);
      expect(state.stateOf("beast")).toBe("down");
      expect(state.fleetNodes()[0]?.error).toContain("unreachable");

      server = serveNeuron(neuron, { port });
      await until(() => state.stateOf("beast") === "up");
      expect(poller.failures).toBe(0);
      expect(changes).toEqual(["unknown>up", "up>down", "down>up"]);
    } finally {
      poller.stop();
    }
  });

  test("a poisoned device makes the node degraded", async () => {
    const neuron = fakeNeuron("beast");
    neuron.devices[0]!.poisoned = true;
    const server = serveNeuron(neuron);
    const state = new FleetState({ nodes: [{ name: "beast", endpoint: "x" }] });
    const client = new NeuronClient({
      name: "beast",
      endpoint: `http://127.0.0.1:${server.port}`,
      token: TOKEN,
    });
    await new NodePoller(client, state, { intervalMs: 1000 }).refresh();
    expect(state.stateOf("beast")).toBe("degraded");
  });
});

describe("routing services from a config", () => {
  test("catalogue, load on demand, fleet view", async () => {
    const a = serveNeuron(fakeNeuron("a", 4));
    const b = serveNeuron(fakeNeuron("b", 20));
    const dir = mkdtempSync(join(tmpdir(), "cortex-gateway-"));
    const path = join(dir, "cortex.toml");
    writeFileSync(
      path,
      `[gateway]
poll_interval_ms = 100
load_timeout_s = 5

[[neurons]]
name = "a"
endpoint = "http://127.0.0.1:${a.port}"
token = "${TOKEN}"

[[neurons]]
name = "b"
endpoint = "http://127.0.0.1:${b.port}"
token = "${TOKEN}"

[[models]]
id = "qwen"
aliases = ["q"]
file = "qwen.gguf"
vram_estimate = "6GiB"
`,
    );
    const services = createRoutingServices(loadConfig({ path, env: {} }), {
      version: "0.1.0",
      startedAt: 1_000,
    });
    try {
      await services.fleet.refreshAll();
      expect(services.catalogue().map((e) => [e.id, e.cortex.state, e.cortex.servable_on])).toEqual([
        ["qwen", "available", ["a", "b"]],
      ]);
      const routed = await services.route("q", async (target) => target.upstream("/v1/chat/completions"));
      expect(routed.node).toBe("b");
      expect(routed.value.headers).toEqual({ authorization: `Bearer ${TOKEN}` });
      routed.finish();
      expect(services.catalogue()[0]?.cortex).toMatchObject({ state: "loaded", loaded_on: [{ node: "b" }] });
      const view = services.fleetView();
      expect(view.gateway).toEqual({ version: "0.1.0", startedAt: 1_000 });
      expect(view.nodes.map((n) => [n.name, n.state, n.loaded.map((m) => m.id)])).toEqual([
        ["a", "up", []],
        ["b", "up", ["qwen"]],
      ]);
    } finally {
      services.stop();
    }
  });
});
