/**
 * The gateway's own cost per request: latency (p50, p99) at concurrency 1
 * and request rate at high concurrency, for small non-streaming and
 * streaming chat completions, against calling the (fake) neuron directly and
 * against nginx as a plain reverse proxy in front of the same upstream, all
 * in one run. A minimal Bun relay (bench/bun-proxy.ts) is measured too: the
 * floor for any proxy on this runtime, so the gap to nginx that is Bun's is
 * told apart from the gap that is the gateway's own work. Target: p50 added latency under 1 ms, and at least half of
 * nginx's request rate. Each rate run also reads the CPU the proxy's process used (Linux /proc), per request: a
 * figure that does not move with what else the machine runs, and whose busiest thread (Bun's JS thread, nginx's
 * worker) bounds the rate once every thread has a core of its own.
 *
 *   bun bench/gateway-overhead.ts [--rounds 5] [--duration 2] [--concurrency 32]
 *                                 [--nginx-workers 1] [--metrics on|off] [--json out.json]
 *
 * Needs `wrk` and `nginx` on PATH (Debian: apt-get install -y wrk nginx).
 */
import { writeFileSync } from "node:fs";
import { cpus } from "node:os";
import { parseArgs } from "node:util";
import { consola } from "consola";
import {
  direct,
  findNginx,
  NGINX_INSTALL_HINT,
  type Service,
  startBunProxy,
  startFakeUpstream,
  startGateway,
  startNginx,
} from "./bench-services.ts";
import { DEFAULT_DELTAS, expectedText, FAKE_MODEL } from "./fake-upstream.ts";
import { cpuBetween, snapshotCpu } from "./process-cpu.ts";
import { fixed, median, pairedRatio, range } from "./stats.ts";
import { findWrk, type LoadResult, runWrk, WRK_INSTALL_HINT } from "./wrk-load.ts";

const { values: args } = parseArgs({
  options: {
    rounds: { type: "string", default: "5" },
    duration: { type: "string", default: "2" },
    concurrency: { type: "string", default: "32" },
    "nginx-workers": { type: "string", default: "1" },
    metrics: { type: "string", default: "on" },
    json: { type: "string" },
  },
});

const ROUNDS = bounded(args.rounds, 1, 50, "--rounds");
const DURATION_S = bounded(args.duration, 1, 30, "--duration");
const CONCURRENCY = bounded(args.concurrency, 2, 512, "--concurrency");
const NGINX_WORKERS = bounded(args["nginx-workers"], 1, 64, "--nginx-workers");

function bounded(value: string | undefined, min: number, max: number, flag: string): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < min || n > max) {
    consola.error(`${flag}: expected an integer in [${min}, ${max}], got ${value}`);
    process.exit(2);
  }
  return n;
}

type Mode = "json" | "sse";
const MODES: readonly Mode[] = ["json", "sse"];
const MODE_LABEL: Record<Mode, string> = {
  json: `non-streaming (${DEFAULT_DELTAS}-word completion)`,
  sse: `streaming (${DEFAULT_DELTAS} deltas + finish + usage + [DONE])`,
};

function requestBody(mode: Mode): string {
  return JSON.stringify({
    model: FAKE_MODEL,
    messages: [{ role: "user", content: "Say four words." }],
    max_tokens: DEFAULT_DELTAS,
    stream: mode === "sse",
    ...(mode === "sse" ? { stream_options: { include_usage: true } } : {}),
  });
}

/** Checks that a target answers both modes with the whole canned completion. */
async function checkTarget(target: Service): Promise<void> {
  const want = expectedText(DEFAULT_DELTAS);
  for (const mode of MODES) {
    const response = await fetch(`${target.url}/v1/chat/completions`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: requestBody(mode),
    });
    const text = await response.text();
    let got = "";
    if (mode === "json") {
      got = (JSON.parse(text) as { choices: Array<{ message: { content: string } }> }).choices[0]?.message
        .content as string;
    } else {
      for (const event of text.split("\n\n")) {
        const data = event.startsWith("data: ") ? event.slice(6) : "";
        if (data === "" || data === "[DONE]") continue;
        const chunk = JSON.parse(data) as { choices: Array<{ delta?: { content?: string | null } }> };
        got += chunk.choices[0]?.delta?.content ?? "";
      }
    }
    if (response.status !== 200 || got !== want)
      throw new Error(`${target.name} (${mode}): HTTP ${response.status}, text ${JSON.stringify(got)}`);
  }
}

interface Sample {
  latency: LoadResult;
  rate: LoadResult;
  /** CPU per request of the rate run, µs (the fake's own for `direct`); undefined without /proc. */
  cpu: { totalUs: number; busiestThreadUs: number } | undefined;
}

async function main(): Promise<number> {
  const wrk = findWrk();
  const nginx = findNginx();
  if (wrk === undefined || nginx === undefined) {
    if (wrk === undefined) consola.error(`wrk is not on PATH: ${WRK_INSTALL_HINT}`);
    if (nginx === undefined) consola.error(`nginx is not on PATH: ${NGINX_INSTALL_HINT}`);
    return 2;
  }
  const services: Service[] = [];
  try {
    const upstream = await startFakeUpstream();
    services.push(upstream);
    const proxy = await startNginx({ nginx, upstreamUrl: upstream.url, workers: NGINX_WORKERS });
    services.push(proxy);
    const bunProxy = await startBunProxy(upstream.url);
    services.push(bunProxy);
    const gateway = await startGateway({ upstreamUrl: upstream.url, metrics: args.metrics !== "off" });
    services.push(gateway);
    const targets = [direct(upstream), proxy, bunProxy, gateway];
    for (const target of targets) await checkTarget(target);

    const load = (target: Service, mode: Mode, connections: number, durationS: number) =>
      runWrk({
        wrk,
        url: `${target.url}/v1/chat/completions`,
        body: requestBody(mode),
        connections,
        durationS,
      });

    consola.start("warming up (JIT, connection pools)");
    for (const target of targets) for (const mode of MODES) await load(target, mode, CONCURRENCY, 1);

    const samples = new Map<string, Sample[]>();
    const key = (target: Service, mode: Mode) => `${target.name}/${mode}`;
    for (let round = 0; round < ROUNDS; round++) {
      // Rotate who goes first, so drift on this shared machine does not favour one target.
      const order = targets.map((_, i) => targets[(i + round) % targets.length]!);
      for (const mode of MODES)
        for (const target of order) {
          const latency = await load(target, mode, 1, DURATION_S);
          const pid = target.pid ?? upstream.pid;
          const before = pid === undefined ? undefined : snapshotCpu(pid);
          const rate = await load(target, mode, CONCURRENCY, DURATION_S);
          const after = pid === undefined ? undefined : snapshotCpu(pid);
          const used = before && after ? cpuBetween(before, after) : undefined;
          const cpu = used && {
            totalUs: (used.totalMs * 1000) / rate.requests,
            busiestThreadUs: (used.busiestThreadMs * 1000) / rate.requests,
          };
          const list = samples.get(key(target, mode)) ?? [];
          list.push({ latency, rate, cpu });
          samples.set(key(target, mode), list);
        }
      consola.info(`round ${round + 1}/${ROUNDS} done`);
    }

    const report: Record<string, unknown> = {
      machine: `${cpus().length} × ${cpus()[0]?.model ?? "cpu"}`,
      bun: Bun.version,
      rounds: ROUNDS,
      durationS: DURATION_S,
      concurrency: CONCURRENCY,
      nginxWorkers: NGINX_WORKERS,
      gatewayMetrics: args.metrics !== "off",
      modes: {},
    };
    let allMet = true;
    console.log(
      `\ngateway overhead — ${report.machine}; wrk 1 thread; ${ROUNDS} rounds × ${DURATION_S} s per run; nginx ${NGINX_WORKERS} worker(s); gateway metrics ${args.metrics}`,
    );
    const p50 = (s: Sample[]) => s.map((x) => x.latency.p50Ms);
    const p99 = (s: Sample[]) => s.map((x) => x.latency.p99Ms);
    const rps = (s: Sample[]) => s.map((x) => x.rate.requestsPerS);
    const cpuTotal = (s: Sample[]) => s.map((x) => x.cpu?.totalUs ?? Number.NaN);
    const cpuBusiest = (s: Sample[]) => s.map((x) => x.cpu?.busiestThreadUs ?? Number.NaN);
    const spread = (values: number[], digits: number) => {
      const [lo, hi] = range(values);
      return `${fixed(median(values), digits)} (${fixed(lo, digits)}–${fixed(hi, digits)})`;
    };
    /** Per-round differences, then their median: each round's pair shares that round's noise. */
    const pairedDiff = (a: number[], b: number[]) => median(a.map((v, i) => v - b[i]!));
    for (const mode of MODES) {
      const of = (target: Service) => samples.get(key(target, mode)) ?? [];
      const d = of(targets[0]!);
      const n = of(proxy);
      const b = of(bunProxy);
      const g = of(gateway);
      console.log(`\n${MODE_LABEL[mode]}`);
      console.log(
        `  ${"target".padEnd(10)} ${"p50 ms @c1".padEnd(24)} ${"p99 ms @c1".padEnd(24)} ${`req/s @c${CONCURRENCY}`.padEnd(26)} CPU µs/req: all threads, busiest`,
      );
      for (const target of targets) {
        const s = of(target);
        console.log(
          `  ${target.name.padEnd(10)} ${spread(p50(s), 3).padEnd(24)} ${spread(p99(s), 3).padEnd(24)} ${spread(rps(s), 0).padEnd(26)} ${fixed(median(cpuTotal(s)), 1)}, ${fixed(median(cpuBusiest(s)), 1)}`,
        );
      }
      const added = {
        gatewayP50Ms: pairedDiff(p50(g), p50(d)),
        gatewayP99Ms: pairedDiff(p99(g), p99(d)),
        nginxP50Ms: pairedDiff(p50(n), p50(d)),
        bunProxyP50Ms: pairedDiff(p50(b), p50(d)),
      };
      const rate = {
        gatewayVsNginx: pairedRatio(rps(g), rps(n)),
        gatewayVsBunProxy: pairedRatio(rps(g), rps(b)),
        gatewayVsDirect: pairedRatio(rps(g), rps(d)),
        bunProxyVsNginx: pairedRatio(rps(b), rps(n)),
      };
      // CPU per request does not move with the machine's load as rates do; the busiest thread
      // bounds a proxy whose work is on one thread once every thread has a core of its own.
      const cpu = {
        gatewayVsNginxTotal: pairedRatio(cpuTotal(g), cpuTotal(n)),
        gatewayVsBunProxyTotal: pairedRatio(cpuTotal(g), cpuTotal(b)),
        singleThreadBound: NGINX_WORKERS === 1 ? pairedRatio(cpuBusiest(n), cpuBusiest(g)) : Number.NaN,
      };
      const latencyMet = added.gatewayP50Ms < 1;
      const rateMet = rate.gatewayVsNginx >= 0.5;
      allMet &&= latencyMet && rateMet;
      console.log(
        `  added latency vs direct: gateway p50 ${fixed(added.gatewayP50Ms, 3)} ms, p99 ${fixed(added.gatewayP99Ms, 3)} ms; nginx p50 ${fixed(added.nginxP50Ms, 3)} ms; bun-proxy p50 ${fixed(added.bunProxyP50Ms, 3)} ms`,
      );
      console.log(`  target gateway p50 added < 1 ms: ${latencyMet ? "met" : "MISSED"}`);
      console.log(
        `  request rate: gateway / nginx ${fixed(rate.gatewayVsNginx, 2)}, gateway / bun-proxy ${fixed(rate.gatewayVsBunProxy, 2)}, bun-proxy / nginx ${fixed(rate.bunProxyVsNginx, 2)}, gateway / direct ${fixed(rate.gatewayVsDirect, 2)}`,
      );
      console.log(`  target gateway / nginx ≥ 0.5: ${rateMet ? "met" : "MISSED"}`);
      console.log(
        `  CPU per request: gateway / nginx ${fixed(cpu.gatewayVsNginxTotal, 2)}×, gateway / bun-proxy ${fixed(cpu.gatewayVsBunProxyTotal, 2)}×; rate bound by the busiest thread (a core each), gateway / nginx: ${fixed(cpu.singleThreadBound, 2)}`,
      );
      (report.modes as Record<string, unknown>)[mode] = {
        medians: Object.fromEntries(
          targets.map((target) => {
            const s = of(target);
            return [
              target.name,
              {
                p50Ms: median(p50(s)),
                p99Ms: median(p99(s)),
                requestsPerS: median(rps(s)),
                cpuUsPerRequest: median(cpuTotal(s)),
                busiestThreadUsPerRequest: median(cpuBusiest(s)),
              },
            ];
          }),
        ),
        added,
        rate,
        cpu,
        latencyMet,
        rateMet,
        samples: Object.fromEntries(targets.map((target) => [target.name, of(target)])),
      };
    }
    if (args.json) writeFileSync(args.json, `${JSON.stringify(report, null, 2)}\n`);
    console.log(`\ntargets ${allMet ? "met" : "MISSED"}`);
    return 0;
  } finally {
    for (const service of services.reverse()) await service.stop();
  }
}

process.exit(await main());
