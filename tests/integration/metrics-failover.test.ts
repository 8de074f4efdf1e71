/**
 * Retries on another node, as the metrics show them: two scripted neurons
 * serve the same model; one fails every chat before its first byte (503
 * device_fault), so each request sent to it is retried on the other one.
 */
import { afterAll, beforeAll, expect, test } from "bun:test";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { loadConfig } from "../../src/core/config/load-config.ts";
import { configureLogging } from "../../src/core/logger.ts";
import { parseExposition, type Sample, sumSamples } from "../../src/gateway/metrics/parse-exposition.ts";
import { type RunningGateway, startGateway } from "../../src/gateway/run-gateway.ts";
import { device, GiB, health, loadedModel } from "../unit/gateway-fixtures.ts";

const MODEL = "scripted";
const USAGE = { prompt_tokens: 5, completion_tokens: 3, total_tokens: 8 };

function sse(): string {
  const base = { id: "chatcmpl-1", object: "chat.completion.chunk", created: 1, model: MODEL };
  const chunks = [
    { ...base, choices: [{ index: 0, delta: { role: "assistant", content: "one" }, finish_reason: null }] },
    { ...base, choices: [{ index: 0, delta: { content: " two three" }, finish_reason: "stop" }] },
    { ...base, choices: [], usage: USAGE },
  ];
  return `${chunks.map((chunk) => `data: ${JSON.stringify(chunk)}\n\n`).join("")}data: [DONE]\n\n`;
}

function completion() {
  return {
    id: "chatcmpl-1",
    object: "chat.completion",
    created: 1,
    model: MODEL,
    choices: [{ index: 0, message: { role: "assistant", content: "one two three" }, finish_reason: "stop" }],
    usage: USAGE,
  };
}

function scriptedNeuron(name: string, failChats: boolean) {
  const loaded = loadedModel(MODEL, {
    devices: ["cpu-0"],
    contextSize: 2048,
    memoryBytes: 1024 ** 2,
    pinned: true,
  });
  const neuronHealth = health(name, {
    devices: [device("cpu-0", { kind: "cpu", name: "cpu", memoryTotal: 8 * GiB, memoryFree: 6 * GiB })],
    loaded: [loaded],
  });
  const counts = { chats: 0 };
  const server = Bun.serve({
    hostname: "127.0.0.1",
    port: 0,
    async fetch(request) {
      const path = new URL(request.url).pathname;
      if (path === "/health") return Response.json(neuronHealth);
      if (path === "/models") return Response.json({ available: [], loaded: [loaded] });
      if (path === "/v1/chat/completions") {
        const { stream } = (await request.json()) as { stream?: boolean };
        counts.chats += 1;
        if (failChats)
          return Response.json(
            { error: { code: "device_fault", message: "scripted failure", type: "server_error" } },
            { status: 503 },
          );
        if (stream !== true) return Response.json(completion());
        return new Response(sse(), { headers: { "content-type": "text/event-stream" } });
      }
      return Response.json({ error: { code: "not_found", message: path } }, { status: 404 });
    },
  });
  return { server, counts, url: `http://127.0.0.1:${server.port}` };
}

const flaky = scriptedNeuron("flaky", true);
const steady = scriptedNeuron("steady", false);
let dir: string;
let gateway: RunningGateway;

async function scrape(): Promise<Sample[]> {
  return parseExposition(await (await fetch(gateway.metricsUrl ?? "")).text());
}

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), "cortex-metrics-failover-"));
  const path = join(dir, "cortex.toml");
  writeFileSync(
    path,
    [
      "[log]",
      'level = "error"',
      "[gateway]",
      'listen = "127.0.0.1:0"',
      'metrics_listen = "127.0.0.1:0"',
      "poll_interval_ms = 100",
      // Least busy, then by name: every request goes to the flaky node first. (With cache affinity a
      // conversation's node would follow its hash, which says nothing about retries.)
      "[routing]",
      "cache_affinity = false",
      "[[neurons]]",
      'name = "flaky"',
      `endpoint = "${flaky.url}"`,
      "[[neurons]]",
      'name = "steady"',
      `endpoint = "${steady.url}"`,
      "[[models]]",
      `id = "${MODEL}"`,
      `file = "${MODEL}.gguf"`,
      "",
    ].join("\n"),
  );
  const config = loadConfig({ path, env: {} });
  configureLogging(config.file.log);
  gateway = await startGateway(config);
  await bothUp();
  expect(sumSamples(await scrape(), "cortex_gateway_node_state", { state: "up" })).toBe(2);
});

/** Resolves once both nodes are up, on the gateway's fleet changes (a poll brings a node back). */
function bothUp() {
  return gateway.whenFleet((nodes) => nodes.length === 2 && nodes.every((node) => node.state === "up"));
}

afterAll(async () => {
  await gateway?.stop();
  flaky.server.stop(true);
  steady.server.stop(true);
  if (dir) rmSync(dir, { recursive: true, force: true });
});

test("each request that failed on one node before its first byte counts one retry from that node", async () => {
  const before = await scrape();
  const statuses: number[] = [];
  for (let i = 0; i < 6; i++) {
    const response = await fetch(`${gateway.url}/v1/chat/completions`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ model: MODEL, messages: [{ role: "user", content: "hi" }] }),
    });
    statuses.push(response.status);
    await response.arrayBuffer();
    // A poll brings the flaky node back into rotation (when its failure took it out), so it is tried again.
    await bothUp();
  }
  const after = await scrape();
  const delta = (name: string, match: Record<string, string>) =>
    sumSamples(after, name, match) - sumSamples(before, name, match);
  expect(statuses).toEqual([200, 200, 200, 200, 200, 200]);
  expect(flaky.counts.chats).toBeGreaterThan(0);
  expect(delta("cortex_gateway_retries_total", { model: MODEL, from_node: "flaky" })).toBe(
    flaky.counts.chats,
  );
  expect(delta("cortex_gateway_retries_total", { from_node: "steady" })).toBe(0);
  // Every request ended on the steady node, with its usage.
  expect(delta("cortex_gateway_requests_total", { node: "steady", status_class: "2xx" })).toBe(6);
  expect(delta("cortex_gateway_requests_total", { node: "flaky" })).toBe(0);
  expect(delta("cortex_gateway_completion_tokens_total", { model: MODEL, node: "steady" })).toBe(
    6 * USAGE.completion_tokens,
  );
});
