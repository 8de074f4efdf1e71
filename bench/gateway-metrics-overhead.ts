/**
 * What the gateway's metrics cost (results in BENCHMARKS.md):
 *
 *   bun bench/gateway-metrics-overhead.ts [--rounds 15] [--seconds 1] [--concurrency 16] [--warmup 3]
 *
 * Two gateways run side by side as `cortex serve` subprocesses, identical but
 * for `gateway.metrics` (on / off), in front of one scripted neuron that
 * answers every chat with the same small canned completion at once, so the
 * gateway's own work is what is measured. Rounds alternate between the two
 * (order swapped every round); each round sends small non-streaming OpenAI
 * chat requests from a fixed number of concurrent clients for a fixed time.
 * The "on" gateway is also scraped once per round, far more often than
 * Prometheus would.
 *
 * Two figures per side, each compared as the median of per-round ratios:
 * - the request rate the clients got;
 * - the gateway process's CPU time per request (Linux schedstat), i.e. the
 *   inverse of the request rate one gateway core can sustain. On a small or
 *   shared machine the clients and the neuron share the cores with the
 *   gateway and the rate mostly measures them and the neighbours; CPU per
 *   request is the gateway's own cost either way, so the verdict uses it.
 * Target: metrics cost under 5%.
 */
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { cpus, release } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { consola } from "consola";
import type { HealthResponse, LoadedModel, ModelsResponse } from "../src/core/neuron-api.ts";
import { parseExposition, sumSamples } from "../src/gateway/metrics/parse-exposition.ts";
import { fixed, median, pairedRatio, range } from "./stats.ts";

const ROOT = join(import.meta.dir, "..");
const MODEL = "bench";
const WORDS = ["The", " garden", " in", " the", " evening", " light", " is", " quiet", "."];

interface Options {
  rounds: number;
  seconds: number;
  concurrency: number;
  warmup: number;
}

function parseOptions(): Options {
  const { values } = parseArgs({
    options: {
      rounds: { type: "string", default: "15" },
      seconds: { type: "string", default: "1" },
      concurrency: { type: "string", default: "16" },
      warmup: { type: "string", default: "3" },
    },
  });
  return {
    rounds: Number(values.rounds),
    seconds: Number(values.seconds),
    concurrency: Number(values.concurrency),
    warmup: Number(values.warmup),
  };
}

/** The canned upstream answer: OpenAI chat chunks as the neuron streams them, usage last. */
function cannedStream(): Uint8Array {
  const base = {
    id: "chatcmpl-bench",
    object: "chat.completion.chunk",
    created: 1_700_000_000,
    model: MODEL,
  };
  const chunks = [
    { ...base, choices: [{ index: 0, delta: { role: "assistant", content: "" }, finish_reason: null }] },
    ...WORDS.map((word) => ({
      ...base,
      choices: [{ index: 0, delta: { content: word }, finish_reason: null }],
    })),
    { ...base, choices: [{ index: 0, delta: {}, finish_reason: "stop" }] },
    { ...base, choices: [], usage: { prompt_tokens: 12, completion_tokens: WORDS.length, total_tokens: 21 } },
  ];
  const text = `${chunks.map((chunk) => `data: ${JSON.stringify(chunk)}\n\n`).join("")}data: [DONE]\n\n`;
  return new TextEncoder().encode(text);
}

/** A neuron that has MODEL loaded and answers every chat with the canned stream. */
function serveScriptedNeuron() {
  const loaded: LoadedModel = {
    id: MODEL,
    file: `${MODEL}.gguf`,
    state: "ready",
    devices: ["cpu-0"],
    contextSize: 2048,
    slots: 64,
    lastUsed: Date.now(),
    loadedAt: Date.now(),
    inFlight: 0,
    queued: 0,
    memoryBytes: 1024 ** 2,
    pinned: true,
    priority: 0,
  };
  const health: HealthResponse = {
    status: "ok",
    version: "bench",
    node: "scripted",
    startedAt: Date.now(),
    devices: [
      {
        id: "cpu-0",
        kind: "cpu",
        index: 0,
        name: "scripted",
        memoryTotal: 8 * 1024 ** 3,
        memoryFree: 7 * 1024 ** 3,
        poisoned: false,
        loadCycles: 0,
      },
    ],
    loaded: [loaded],
  };
  const models: ModelsResponse = { available: [], loaded: [loaded] };
  const body = cannedStream();
  return Bun.serve({
    hostname: "127.0.0.1",
    port: 0,
    async fetch(request) {
      const path = new URL(request.url).pathname;
      if (path === "/health") return Response.json(health);
      if (path === "/models") return Response.json(models);
      if (path === "/v1/chat/completions") {
        await request.arrayBuffer();
        return new Response(body, { headers: { "content-type": "text/event-stream" } });
      }
      return new Response("not found", { status: 404 });
    },
  });
}

async function freePort(): Promise<number> {
  const probe = Bun.serve({ hostname: "127.0.0.1", port: 0, fetch: () => new Response() });
  const port = probe.port ?? 0;
  await probe.stop(true);
  return port;
}

interface Gateway {
  name: string;
  url: string;
  metricsUrl: string | undefined;
  process: ReturnType<typeof Bun.spawn>;
}

async function startGatewayProcess(
  dir: string,
  name: string,
  neuronUrl: string,
  metrics: boolean,
): Promise<Gateway> {
  const port = await freePort();
  const metricsPort = await freePort();
  const path = join(dir, `${name}.toml`);
  writeFileSync(
    path,
    [
      "[log]",
      // The request log line is written either way; keep it out of both so the difference is the metrics.
      'level = "warn"',
      "[gateway]",
      `listen = "127.0.0.1:${port}"`,
      `metrics_listen = "127.0.0.1:${metricsPort}"`,
      `metrics = ${metrics}`,
      "max_concurrency_per_model = 256",
      "[[neurons]]",
      'name = "scripted"',
      `endpoint = "${neuronUrl}"`,
      "[[models]]",
      `id = "${MODEL}"`,
      `file = "${MODEL}.gguf"`,
      "context_size = 2048",
      "",
    ].join("\n"),
  );
  const process = Bun.spawn(
    [globalThis.process.execPath, join(ROOT, "src/cli/main.ts"), "serve", "--config", path],
    {
      cwd: ROOT,
      stdout: "ignore",
      stderr: "inherit",
      env: { ...globalThis.process.env, CORTEX_CONFIG: undefined },
    },
  );
  const gateway: Gateway = {
    name,
    url: `http://127.0.0.1:${port}`,
    metricsUrl: metrics ? `http://127.0.0.1:${metricsPort}/metrics` : undefined,
    process,
  };
  // Ready when a chat goes through (the first poll has seen the neuron).
  for (let i = 0; i < 200; i++) {
    const status = await chat(gateway.url).catch(() => 0);
    if (status === 200) return gateway;
    await Bun.sleep(50);
  }
  throw new Error(`gateway ${name} did not become ready`);
}

const REQUEST = JSON.stringify({
  model: MODEL,
  messages: [{ role: "user", content: "Tell me about the garden." }],
  max_tokens: 16,
});

async function chat(url: string): Promise<number> {
  const response = await fetch(`${url}/v1/chat/completions`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: REQUEST,
  });
  await response.arrayBuffer();
  return response.status;
}

/** CPU time the process has used, in ns (Linux schedstat: all its threads). */
function cpuNs(pid: number): number {
  const tasks = readdirSync(`/proc/${pid}/task`);
  let total = 0;
  for (const task of tasks) {
    const text = readFileSync(`/proc/${pid}/task/${task}/schedstat`, "utf8");
    total += Number(text.split(" ")[0]);
  }
  return total;
}

interface Round {
  /** Requests per second the clients got. */
  rate: number;
  /** Gateway CPU time per request, µs. */
  cpuUs: number;
}

async function measureRound(gateway: Gateway, concurrency: number, seconds: number): Promise<Round> {
  const cpuBefore = cpuNs(gateway.process.pid);
  const { rate, requests } = await measure(gateway.url, concurrency, seconds);
  return { rate, cpuUs: (cpuNs(gateway.process.pid) - cpuBefore) / 1000 / requests };
}

/** Requests per second from `concurrency` clients, each sending one request after another, for `seconds`. */
async function measure(
  url: string,
  concurrency: number,
  seconds: number,
): Promise<{ rate: number; requests: number }> {
  const started = performance.now();
  const until = started + seconds * 1000;
  let done = 0;
  let failed = 0;
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (performance.now() < until) {
        if ((await chat(url)) === 200) done += 1;
        else failed += 1;
      }
    }),
  );
  if (failed > 0) throw new Error(`${failed} requests failed at ${url}`);
  return { rate: (done * 1000) / (performance.now() - started), requests: done };
}

async function main(): Promise<void> {
  const options = parseOptions();
  const dir = mkdtempSync(join(globalThis.process.env.TMPDIR ?? "/tmp", "cortex-bench-metrics-"));
  const neuron = serveScriptedNeuron();
  const neuronUrl = `http://127.0.0.1:${neuron.port}`;
  const gateways: Gateway[] = [];
  try {
    const on = await startGatewayProcess(dir, "metrics-on", neuronUrl, true);
    gateways.push(on);
    const off = await startGatewayProcess(dir, "metrics-off", neuronUrl, false);
    gateways.push(off);
    consola.info(
      `gateway metrics overhead: ${options.rounds} rounds x ${options.seconds} s, concurrency ${options.concurrency}; ${cpus().length} CPUs (${cpus()[0]?.model ?? "?"}), Linux ${release()}, bun ${Bun.version}`,
    );
    // Warm both (JIT, connection pools) before anything counts.
    await measure(on.url, options.concurrency, options.warmup);
    await measure(off.url, options.concurrency, options.warmup);
    const rounds = { on: [] as Round[], off: [] as Round[] };
    // Scrapes happen between rounds (Prometheus scrapes every 15 s or so, not every second): timed apart.
    const scrapeMs: number[] = [];
    for (let round = 0; round < options.rounds; round++) {
      const order = round % 2 === 0 ? [on, off] : [off, on];
      for (const gateway of order)
        (gateway === on ? rounds.on : rounds.off).push(
          await measureRound(gateway, options.concurrency, options.seconds),
        );
      if (on.metricsUrl) {
        const started = performance.now();
        await (await fetch(on.metricsUrl)).text();
        scrapeMs.push(performance.now() - started);
      }
      const last = (side: Round[]) => side.at(-1) ?? { rate: 0, cpuUs: 0 };
      consola.info(
        `round ${round + 1}: on ${fixed(last(rounds.on).rate)} req/s ${fixed(last(rounds.on).cpuUs)} µs/req, off ${fixed(last(rounds.off).rate)} req/s ${fixed(last(rounds.off).cpuUs)} µs/req`,
      );
    }
    // The "on" gateway must really have counted: a benchmark of a disabled path proves nothing.
    const samples = parseExposition(await (await fetch(on.metricsUrl ?? "")).text());
    const counted = sumSamples(samples, "cortex_gateway_requests_total", {
      model: MODEL,
      status_class: "2xx",
    });
    const tokens = sumSamples(samples, "cortex_gateway_completion_tokens_total", { model: MODEL });
    if (counted === 0 || tokens !== counted * WORDS.length)
      throw new Error(
        `metrics did not count the requests (requests ${counted}, completion tokens ${tokens})`,
      );
    const rate = { on: rounds.on.map((r) => r.rate), off: rounds.off.map((r) => r.rate) };
    const cpu = { on: rounds.on.map((r) => r.cpuUs), off: rounds.off.map((r) => r.cpuUs) };
    const rateRatio = pairedRatio(rate.on, rate.off);
    // Capacity ratio: what one gateway core sustains with metrics on, relative to off.
    const capacityRatio = pairedRatio(cpu.off, cpu.on);
    const spread = (values: number[]) =>
      range(values)
        .map((v) => fixed(v))
        .join("-");
    console.log("");
    console.log(
      `request rate   on ${fixed(median(rate.on))} req/s (${spread(rate.on)}), off ${fixed(median(rate.off))} req/s (${spread(rate.off)}); on/off ${fixed(rateRatio, 3)}`,
    );
    console.log(
      `gateway CPU    on ${fixed(median(cpu.on))} µs/req (${spread(cpu.on)}), off ${fixed(median(cpu.off))} µs/req (${spread(cpu.off)}); capacity on/off ${fixed(capacityRatio, 3)}`,
    );
    console.log(
      `metrics cost: ${fixed((1 - capacityRatio) * 100, 1)}% of gateway capacity (CPU per request), ${fixed((1 - rateRatio) * 100, 1)}% of the measured request rate`,
    );
    console.log(
      `one scrape of the "on" gateway: median ${fixed(median(scrapeMs), 1)} ms (every 15 s: ${fixed(median(scrapeMs) / 150, 2)}% of a core)`,
    );
    console.log(`requests counted by the "on" gateway: ${counted}`);
    console.log(capacityRatio >= 0.95 ? "PASS: cost under 5%" : "OVER: cost is 5% or more");
  } finally {
    for (const gateway of gateways) gateway.process.kill();
    await Promise.all(gateways.map((gateway) => gateway.process.exited));
    await neuron.stop(true);
    rmSync(dir, { recursive: true, force: true });
  }
}

await main();
