/**
 * Neurons found in DNS: a real DNS server (dnsmasq, which re-reads its hosts
 * folder on change) answers for `cortex-neuron.test`, real neurons listen on
 * 127.0.0.x at one port like pods behind a headless Service, and a gateway
 * resolves the name every 200 ms. Two neurons are there at start, a third
 * joins, one leaves, one comes back at a new address under its old name;
 * steady traffic runs through all of it and nothing fails.
 */
import { afterAll, beforeAll, expect, test } from "bun:test";
import { chmodSync, copyFileSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { NeuronSection } from "../../src/core/config/config-schema.ts";
import { loadConfig } from "../../src/core/config/load-config.ts";
import { configureLogging } from "../../src/core/logger.ts";
import { type RunningGateway, startGateway } from "../../src/gateway/run-gateway.ts";
import { ensureDemoModel } from "../../src/neuron/gguf/tiny-model.ts";
import { type RunningNeuron, startNeuron } from "../../src/neuron/start-neuron.ts";
import { findTool } from "../../scripts/debian-tools.ts";
import { chat } from "./helpers/gateway-requests.ts";
import type { FleetNode } from "../../src/core/admin-api.ts";
import { configToml, FLEET_SIZING, profile } from "./helpers/real-fleet.ts";

const dnsmasq = findTool("dnsmasq");
const NAME = "cortex-neuron.test";

let dir: string;
let source: string;
let port: number;
let dnsPort: number;
let dns: ReturnType<typeof Bun.spawn> | undefined;
const neurons = new Map<string, RunningNeuron>();
let gateway: RunningGateway;

/** A port free on the loopback addresses the neurons use (each binds its own 127.0.0.x). */
function freePort(): number {
  const probe = Bun.listen({ hostname: "127.0.0.2", port: 0, socket: { data() {} } });
  const free = probe.port;
  probe.stop(true);
  return free;
}

/** What the DNS server answers for NAME: one A record per address. */
function publish(addresses: readonly string[]): void {
  writeFileSync(join(dir, "hosts", "neurons"), addresses.map((address) => `${address} ${NAME}\n`).join(""));
}

async function startNode(name: string, address: string): Promise<RunningNeuron> {
  const models = join(dir, `${name}-${address}`);
  mkdirSync(models, { recursive: true });
  copyFileSync(source, join(models, "tiny.gguf"));
  const neuron = await startNeuron({
    config: NeuronSection.parse({
      models_dir: models,
      node_name: name,
      memory_limit: FLEET_SIZING.memoryLimit,
      default_context_size: FLEET_SIZING.contextSize,
      default_slots: FLEET_SIZING.slots,
    }),
    listen: { hostname: address, port },
  });
  neurons.set(`${name}@${address}`, neuron);
  return neuron;
}

beforeAll(async () => {
  if (dnsmasq === undefined) return;
  configureLogging({ level: "warn", format: "text" });
  dir = mkdtempSync(join(tmpdir(), "cortex-discovery-"));
  mkdirSync(join(dir, "hosts"));
  // dnsmasq started as root reads its hosts as nobody: the folders must be readable to all.
  chmodSync(dir, 0o755);
  chmodSync(join(dir, "hosts"), 0o755);
  source = await ensureDemoModel(join(dir, "source"));
  port = freePort();
  const udp = await Bun.udpSocket({ hostname: "127.0.0.1", port: 0 });
  dnsPort = udp.port;
  udp.close();
  publish(["127.0.0.2", "127.0.0.3"]);
  dns = Bun.spawn(
    [
      dnsmasq,
      "--keep-in-foreground",
      `--port=${dnsPort}`,
      "--listen-address=127.0.0.1",
      "--bind-interfaces",
      "--no-resolv",
      "--no-hosts",
      "--pid-file=",
      // Watched with inotify: a change is served at once.
      `--hostsdir=${join(dir, "hosts")}`,
    ],
    { stdout: "ignore", stderr: "ignore" },
  );
  await Promise.all([startNode("n2", "127.0.0.2"), startNode("n3", "127.0.0.3")]);
  const path = join(dir, "gateway.toml");
  writeFileSync(
    path,
    configToml({
      log: { level: "warn" },
      gateway: { listen: "127.0.0.1:0", metrics: false, poll_interval_ms: 100, load_timeout_s: 30 },
      discovery: { dns: `${NAME}:${port}`, dns_server: `127.0.0.1:${dnsPort}`, interval_s: 0.2 },
      models: [profile("tiny", "tiny.gguf")],
    }),
  );
  gateway = await startGateway(loadConfig({ path, env: {} }));
}, 60_000);

afterAll(async () => {
  await gateway?.stop();
  for (const neuron of neurons.values()) await neuron.stop().catch(() => {});
  dns?.kill();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

function nodes(ready: (nodes: FleetNode[]) => boolean): Promise<FleetNode[]> {
  return gateway.whenFleet(ready);
}

const upNames = (all: FleetNode[]) =>
  all
    .filter((node) => node.state === "up")
    .map((node) => node.name)
    .sort()
    .join(",");

test.skipIf(dnsmasq === undefined)(
  "nodes join, leave and move as DNS changes; a steady load sees no failure",
  async () => {
    await nodes((all) => upNames(all) === "n2,n3");
    const failures: string[] = [];
    let served = 0;
    let running = true;
    const loops = Array.from({ length: 3 }, async () => {
      while (running) {
        const response = await chat(gateway.url, "tiny", { extra: { max_tokens: 8 } });
        const body = await response.text();
        if (response.ok) served++;
        else failures.push(`${response.status} ${body}`);
      }
    });

    // A third neuron appears in DNS: it joins under the name it reports.
    await startNode("n4", "127.0.0.4");
    publish(["127.0.0.2", "127.0.0.3", "127.0.0.4"]);
    const joined = await nodes((all) => upNames(all) === "n2,n3,n4");
    expect(joined.find((node) => node.name === "n4")?.endpoint).toBe(`http://127.0.0.4:${port}`);

    // n2 leaves DNS (its pod is being deleted): it is retired, its running requests finish.
    publish(["127.0.0.3", "127.0.0.4"]);
    await nodes(
      (all) =>
        all
          .map((node) => node.name)
          .sort()
          .join(",") === "n3,n4",
    );

    // n3's pod comes back at a new address: the same node, not a new one.
    const old = neurons.get("n3@127.0.0.3");
    await startNode("n3", "127.0.0.5");
    publish(["127.0.0.4", "127.0.0.5"]);
    const moved = await nodes(
      (all) =>
        all.find((node) => node.name === "n3")?.endpoint === `http://127.0.0.5:${port}` &&
        upNames(all) === "n3,n4",
    );
    expect(moved.map((node) => node.name).sort()).toEqual(["n3", "n4"]);
    await old?.drain(30_000);

    const before = served;
    await nodes(() => served >= before + 6);
    running = false;
    await Promise.all(loops);
    expect(failures).toEqual([]);
    expect(served).toBeGreaterThan(0);
  },
  120_000,
);
