/**
 * The gateway's own cost per request, side by side with what else could sit
 * in the same place, all in one run and in front of the same fake neuron
 * (bench/fake-upstream.ts): latency (p50, p99) at concurrency 1, request
 * rate at high concurrency, CPU per request and resident memory (idle, and
 * the peak during the rate runs) for small non-streaming and streaming chat
 * completions, and for an Anthropic client streaming through a gateway that
 * translates to the neuron's OpenAI API.
 *
 * Targets: the neuron called directly (the baseline that added latency is
 * measured from); nginx as a plain reverse proxy (the reference); a minimal
 * Bun relay (bench/bun-proxy.ts: the floor for any proxy on this runtime, so
 * the gap to nginx that is Bun's is told apart from the gateway's own); the
 * gateway; and the gateways users pick instead: LiteLLM's proxy
 * (bench/peers/litellm.ts), Portkey's gateway (bench/peers/portkey.ts), and
 * claude-code-router (bench/ccr-peer.ts, Anthropic-in only). Peers are
 * installed on first use under .cache/bench-peers/; one that cannot be
 * installed or started is left out with a warning.
 *
 * Targets (BENCHMARKS.md): gateway request rate ≥ 0.8 × the Bun relay's and
 * p50 added latency ≤ 0.2 ms; against the best peer, p50 added latency ≤ 0.5 ×,
 * request rate ≥ 2 ×, resident memory under load ≤. Each rate run reads the
 * CPU the target's processes used (Linux /proc), per request: a figure that
 * does not move with what else the machine runs, and whose busiest thread
 * bounds the rate once every thread has a core of its own.
 *
 *   bun bench/gateway-overhead.ts [--rounds 5] [--duration 2] [--concurrency 32]
 *                                 [--nginx-workers 1] [--metrics on|off]
 *                                 [--peers litellm,portkey,ccr|none] [--gateway-b other-checkout|dist/cortex]
 *                                 [--prompt-kib 0] [--json out.json]
 *
 * `--prompt-kib N` sends a coding agent's request of about N KiB instead of
 * one short message (bench/agent-conversation.ts: system prompt, tools, the
 * conversation so far), as Claude Code or Codex resend every turn.
 *
 * Needs `wrk` and `nginx` on PATH (Debian: apt-get install -y wrk nginx);
 * the peers need python3 (LiteLLM) and node (claude-code-router).
 */
import { statSync, writeFileSync } from "node:fs";
import { cpus, loadavg } from "node:os";
import { resolve } from "node:path";
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
import { agentConversation, type BenchMode, benchRequestBody } from "./agent-conversation.ts";
import { CCR_VERSION, ccrUnavailable, ensureCcrInstalled, startCcr } from "./ccr-peer.ts";
import { DEFAULT_DELTAS, expectedText, FAKE_MODEL } from "./fake-upstream.ts";
import {
  ensureLitellmInstalled,
  LITELLM_VERSION,
  litellmUnavailable,
  startLitellm,
} from "./peers/litellm.ts";
import { ensurePortkeyInstalled, PORTKEY_VERSION, startPortkey } from "./peers/portkey.ts";
import { cpuBetween, residentBytes, snapshotCpu } from "./process-cpu.ts";
import { fixed, median, pairedRatio, range } from "./stats.ts";
import { findWrk, type LoadResult, runWrk, WRK_INSTALL_HINT } from "./wrk-load.ts";

const { values: args } = parseArgs({
  options: {
    rounds: { type: "string", default: "5" },
    duration: { type: "string", default: "2" },
    concurrency: { type: "string", default: "32" },
    "nginx-workers": { type: "string", default: "1" },
    metrics: { type: "string", default: "on" },
    peers: { type: "string", default: "litellm,portkey,ccr" },
    /** Another checkout's root, or a built executable (dist/cortex): its gateway runs too, as "gateway-b" (an A/B, same run). */
    "gateway-b": { type: "string" },
    json: { type: "string" },
    "prompt-kib": { type: "string", default: "0" },
  },
});

const ROUNDS = bounded(args.rounds, 1, 50, "--rounds");
const DURATION_S = bounded(args.duration, 1, 30, "--duration");
const CONCURRENCY = bounded(args.concurrency, 2, 512, "--concurrency");
const NGINX_WORKERS = bounded(args["nginx-workers"], 1, 64, "--nginx-workers");
const PROMPT_KIB = bounded(args["prompt-kib"], 0, 4096, "--prompt-kib");
const CONVERSATION = PROMPT_KIB > 0 ? agentConversation(PROMPT_KIB) : undefined;
const PEER_NAMES = ["litellm", "portkey", "ccr"] as const;
type PeerName = (typeof PEER_NAMES)[number];
const PEERS = peerList(args.peers ?? "");

function bounded(value: string | undefined, min: number, max: number, flag: string): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < min || n > max) {
    consola.error(`${flag}: expected an integer in [${min}, ${max}], got ${value}`);
    process.exit(2);
  }
  return n;
}

function peerList(value: string): PeerName[] {
  if (value === "none" || value === "") return [];
  const names = value.split(",").map((name) => name.trim());
  for (const name of names)
    if (!(PEER_NAMES as readonly string[]).includes(name)) {
      consola.error(`--peers: expected "none" or a list of ${PEER_NAMES.join(", ")}, got ${name}`);
      process.exit(2);
    }
  return names as PeerName[];
}

/** json, sse: an OpenAI client; anthropic: an Anthropic client streaming through a gateway that translates. */
type Mode = BenchMode;
const MODES: readonly Mode[] = ["json", "sse", "anthropic"];
const MODE_LABEL: Record<Mode, string> = {
  json: `non-streaming (${DEFAULT_DELTAS}-word completion)`,
  sse: `streaming (${DEFAULT_DELTAS} deltas + finish + usage + [DONE])`,
  anthropic: `Anthropic in, OpenAI out (streamed /v1/messages, ${DEFAULT_DELTAS} deltas; added latency against the direct streamed call)`,
};
const ANTHROPIC_HEADERS = { "anthropic-version": "2023-06-01", "x-api-key": "bench" };

function requestPath(mode: Mode): string {
  return mode === "anthropic" ? "/v1/messages" : "/v1/chat/completions";
}

function requestBody(mode: Mode): string {
  return benchRequestBody(mode, CONVERSATION);
}

function requestHeaders(target: Service, mode: Mode): Record<string, string> {
  // The target's own (a peer's key) win over the Anthropic client's placeholder key.
  return { ...(mode === "anthropic" ? ANTHROPIC_HEADERS : {}), ...target.headers };
}

/** The text of a streamed answer's data payloads, in the mode's dialect. */
function streamedText(mode: Mode, text: string): string {
  let got = "";
  for (const event of text.split("\n\n"))
    for (const line of event.split("\n")) {
      const data = line.startsWith("data:") ? line.slice(5).trimStart() : "";
      if (data === "" || data === "[DONE]") continue;
      const chunk = JSON.parse(data) as {
        type?: string;
        delta?: { type?: string; text?: string };
        choices?: Array<{ delta?: { content?: string | null } }>;
      };
      if (mode === "anthropic")
        got +=
          chunk.type === "content_block_delta" && chunk.delta?.type === "text_delta" ? chunk.delta.text : "";
      else got += chunk.choices?.[0]?.delta?.content ?? "";
    }
  return got;
}

/** Checks that a target answers a mode with the whole canned completion. */
async function checkTarget(target: Service, mode: Mode): Promise<void> {
  const response = await fetch(`${target.url}${requestPath(mode)}`, {
    method: "POST",
    headers: { "content-type": "application/json", ...requestHeaders(target, mode) },
    body: requestBody(mode),
  });
  const text = await response.text();
  let got = text;
  if (response.status === 200)
    got =
      mode === "json"
        ? ((JSON.parse(text) as { choices: Array<{ message: { content: string } }> }).choices[0]?.message
            .content as string)
        : streamedText(mode, text);
  if (response.status !== 200 || got !== expectedText(DEFAULT_DELTAS))
    throw new Error(
      `${target.name} (${mode}): HTTP ${response.status}, text ${JSON.stringify(got.slice(0, 300))}`,
    );
}

/** What each target is to the comparison, and which modes it serves. */
type Role = "baseline" | "reference" | "gateway" | "peer";
interface Target {
  service: Service;
  role: Role;
  modes: readonly Mode[];
}

interface Sample {
  latency: LoadResult;
  rate: LoadResult;
  /** CPU per request of the rate run, µs (the fake's own for `direct`); undefined without /proc. */
  cpu: { totalUs: number; busiestThreadUs: number } | undefined;
  /** The most resident memory seen during the rate run, MiB; undefined without /proc. */
  rssLoadMiB: number | undefined;
}

const MIB = 1024 * 1024;

/** Starts a peer, or says why it is left out. */
async function startPeer(name: PeerName, upstreamUrl: string): Promise<Target | string> {
  try {
    switch (name) {
      case "litellm": {
        const why = litellmUnavailable();
        if (why) return why;
        await ensureLitellmInstalled();
        return {
          service: await startLitellm({ upstreamUrl }),
          role: "peer",
          modes: ["json", "sse", "anthropic"],
        };
      }
      case "portkey":
        await ensurePortkeyInstalled();
        return { service: await startPortkey({ upstreamUrl }), role: "peer", modes: ["json", "sse"] };
      case "ccr": {
        const why = ccrUnavailable();
        if (why) return why;
        await ensureCcrInstalled();
        return {
          service: await startCcr({ upstreamUrl, model: FAKE_MODEL }),
          role: "peer",
          modes: ["anthropic"],
        };
      }
    }
  } catch (error) {
    return error instanceof Error ? error.message : String(error);
  }
}

const PEER_VERSION: Record<string, string> = {
  litellm: `LiteLLM ${LITELLM_VERSION}`,
  portkey: `Portkey ${PORTKEY_VERSION}`,
  ccr: `claude-code-router ${CCR_VERSION}`,
};

async function main(): Promise<number> {
  const wrk = findWrk();
  const nginx = findNginx();
  if (wrk === undefined || nginx === undefined) {
    if (wrk === undefined) consola.error(`wrk is not on PATH: ${WRK_INSTALL_HINT}`);
    if (nginx === undefined) consola.error(`nginx is not on PATH: ${NGINX_INSTALL_HINT}`);
    return 2;
  }
  const services: Service[] = [];
  const loadAtStart = loadavg()[0]!;
  try {
    const upstream = await startFakeUpstream();
    services.push(upstream);
    const proxy = await startNginx({ nginx, upstreamUrl: upstream.url, workers: NGINX_WORKERS });
    services.push(proxy);
    const bunProxy = await startBunProxy(upstream.url);
    services.push(bunProxy);
    const gateway = await startGateway({ upstreamUrl: upstream.url, metrics: args.metrics !== "off" });
    services.push(gateway);
    const openai: readonly Mode[] = ["json", "sse"];
    const targets: Target[] = [
      { service: direct(upstream), role: "baseline", modes: openai },
      { service: proxy, role: "reference", modes: openai },
      { service: bunProxy, role: "reference", modes: openai },
      { service: gateway, role: "gateway", modes: MODES },
    ];
    if (args["gateway-b"]) {
      const b = args["gateway-b"];
      const other = await startGateway({
        upstreamUrl: upstream.url,
        metrics: args.metrics !== "off",
        ...(statSync(b).isFile() ? { executable: resolve(b) } : { root: b }),
        name: "gateway-b",
      });
      services.push(other);
      targets.push({ service: other, role: "reference", modes: MODES });
      consola.info(`gateway-b: the gateway of ${args["gateway-b"]}`);
    }
    const leftOut: Record<string, string> = {};
    for (const name of PEERS) {
      const peer = await startPeer(name, upstream.url);
      if (typeof peer === "string") {
        leftOut[name] = peer;
        consola.warn(`${PEER_VERSION[name]} not measured: ${peer}`);
      } else {
        services.push(peer.service);
        targets.push(peer);
      }
    }
    for (const target of targets) for (const mode of target.modes) await checkTarget(target.service, mode);

    const peerNames = new Set(targets.filter((t) => t.role === "peer").map((t) => t.service.name));
    const load = (target: Service, mode: Mode, connections: number, durationS: number) =>
      runWrk({
        // LiteLLM's slowest path may finish nothing at c32 within a run: a rate of 0, not a failed run.
        allowNone: peerNames.has(target.name),
        wrk,
        url: `${target.url}${requestPath(mode)}`,
        body: requestBody(mode),
        headers: requestHeaders(target, mode),
        connections,
        durationS,
      });

    consola.start("warming up (JIT, connection pools)");
    // A slow starter (LiteLLM's first requests take seconds) may finish nothing within a warm-up run.
    for (const target of targets)
      for (const mode of target.modes)
        await load(target.service, mode, CONCURRENCY, 2).catch((error: unknown) =>
          consola.warn(
            `warm-up of ${target.service.name} (${mode}): ${error instanceof Error ? error.message : error}`,
          ),
        );
    // Idle: after the warm-up, with nothing in flight, as a deployment sits between bursts.
    const rssIdleMiB = new Map<string, number | undefined>();
    for (const { service } of targets) {
      const pid = service.pid ?? upstream.pid;
      const bytes = pid === undefined ? undefined : residentBytes(pid);
      rssIdleMiB.set(service.name, bytes === undefined ? undefined : bytes / MIB);
    }

    const samples = new Map<string, Sample[]>();
    const key = (target: Service, mode: Mode) => `${target.name}/${mode}`;
    for (let round = 0; round < ROUNDS; round++) {
      // Rotate who goes first, so drift on this shared machine does not favour one target.
      const order = targets.map((_, i) => targets[(i + round) % targets.length]!);
      // Modes in the outer loop: `anthropic` is paired with `sse`'s direct run of the same round.
      for (const mode of MODES)
        for (const { service: target, modes } of order) {
          if (!modes.includes(mode)) continue;
          const latency = await load(target, mode, 1, DURATION_S);
          const pid = target.pid ?? upstream.pid;
          const before = pid === undefined ? undefined : snapshotCpu(pid);
          let peakRss: number | undefined;
          const sampleRss = () => {
            const bytes = pid === undefined ? undefined : residentBytes(pid);
            if (bytes !== undefined) peakRss = Math.max(peakRss ?? 0, bytes);
          };
          const sampler = setInterval(sampleRss, 200);
          const rate = await load(target, mode, CONCURRENCY, DURATION_S).finally(() =>
            clearInterval(sampler),
          );
          const after = pid === undefined ? undefined : snapshotCpu(pid);
          const used = before && after ? cpuBetween(before, after) : undefined;
          const cpu =
            used && rate.requests > 0
              ? {
                  totalUs: (used.totalMs * 1000) / rate.requests,
                  busiestThreadUs: (used.busiestThreadMs * 1000) / rate.requests,
                }
              : undefined;
          const list = samples.get(key(target, mode)) ?? [];
          list.push({ latency, rate, cpu, rssLoadMiB: peakRss === undefined ? undefined : peakRss / MIB });
          samples.set(key(target, mode), list);
        }
      consola.info(`round ${round + 1}/${ROUNDS} done`);
    }
    const report: Record<string, unknown> = {
      machine: `${cpus().length} × ${cpus()[0]?.model ?? "cpu"}`,
      loadAverage: { atStart: loadAtStart, atEnd: loadavg()[0] },
      bun: Bun.version,
      rounds: ROUNDS,
      durationS: DURATION_S,
      concurrency: CONCURRENCY,
      nginxWorkers: NGINX_WORKERS,
      promptKiB: PROMPT_KIB,
      requestBytes: { json: requestBody("json").length, anthropic: requestBody("anthropic").length },
      gatewayMetrics: args.metrics !== "off",
      peers: Object.fromEntries(
        PEERS.map((name) => [name, leftOut[name] ? `not measured: ${leftOut[name]}` : PEER_VERSION[name]]),
      ),
      rssIdleMiB: Object.fromEntries(rssIdleMiB),
      modes: {},
    };
    let allMet = true;
    console.log(
      `\ngateway overhead — ${report.machine}; load average ${fixed(loadAtStart, 1)} at start, ${fixed(loadavg()[0]!, 1)} at end; wrk 1 thread; ${ROUNDS} rounds × ${DURATION_S} s per run; nginx ${NGINX_WORKERS} worker(s); gateway metrics ${args.metrics}; request ${PROMPT_KIB > 0 ? `an agent's conversation, ${(requestBody("json").length / 1024).toFixed(0)} KiB` : "one short message"}`,
    );
    const p50 = (s: Sample[]) => s.map((x) => x.latency.p50Ms);
    const p99 = (s: Sample[]) => s.map((x) => x.latency.p99Ms);
    const rps = (s: Sample[]) => s.map((x) => x.rate.requestsPerS);
    const cpuTotal = (s: Sample[]) => s.map((x) => x.cpu?.totalUs ?? Number.NaN);
    const cpuBusiest = (s: Sample[]) => s.map((x) => x.cpu?.busiestThreadUs ?? Number.NaN);
    const rssLoad = (s: Sample[]) => s.map((x) => x.rssLoadMiB ?? Number.NaN);
    const spread = (values: number[], digits: number) => {
      const [lo, hi] = range(values);
      return `${fixed(median(values), digits)} (${fixed(lo, digits)}–${fixed(hi, digits)})`;
    };
    /** Per-round differences, then their median: each round's pair shares that round's noise. */
    const pairedDiff = (a: number[], b: number[]) => median(a.map((v, i) => v - b[i]!));
    const directSamples = (mode: Mode) =>
      samples.get(key(targets[0]!.service, mode === "anthropic" ? "sse" : mode)) ?? [];
    const verdict = (met: boolean) => (met ? "met" : "MISSED");
    for (const mode of MODES) {
      const inMode = targets.filter((t) => t.modes.includes(mode));
      const of = (target: Service) => samples.get(key(target, mode)) ?? [];
      const d = directSamples(mode);
      const g = of(gateway);
      console.log(`\n${MODE_LABEL[mode]}`);
      console.log(
        `  ${"target".padEnd(10)} ${"p50 ms @c1".padEnd(24)} ${"added p50, p99 ms".padEnd(18)} ${`req/s @c${CONCURRENCY}`.padEnd(26)} ${"CPU µs/req: all, busiest".padEnd(25)} RSS MiB: idle, load`,
      );
      const rows: Record<string, unknown> = {};
      for (const { service } of inMode) {
        const s = of(service);
        const addedP50 = pairedDiff(p50(s), p50(d));
        const addedP99 = pairedDiff(p99(s), p99(d));
        rows[service.name] = {
          p50Ms: median(p50(s)),
          p99Ms: median(p99(s)),
          addedP50Ms: addedP50,
          addedP99Ms: addedP99,
          requestsPerS: median(rps(s)),
          cpuUsPerRequest: median(cpuTotal(s)),
          busiestThreadUsPerRequest: median(cpuBusiest(s)),
          rssIdleMiB: rssIdleMiB.get(service.name),
          rssLoadMiB: median(rssLoad(s)),
        };
        console.log(
          `  ${service.name.padEnd(10)} ${spread(p50(s), 3).padEnd(24)} ${`${fixed(addedP50, 3)}, ${fixed(addedP99, 2)}`.padEnd(18)} ${spread(rps(s), 0).padEnd(26)} ${`${fixed(median(cpuTotal(s)), 1)}, ${fixed(median(cpuBusiest(s)), 1)}`.padEnd(25)} ${fixed(rssIdleMiB.get(service.name) ?? Number.NaN, 0)}, ${fixed(median(rssLoad(s)), 0)}`,
        );
      }
      const modeReport: Record<string, unknown> = { rows };
      const gatewayAdded = pairedDiff(p50(g), p50(d));
      if (mode !== "anthropic") {
        const n = of(proxy);
        const b = of(bunProxy);
        const rate = {
          gatewayVsBunProxy: pairedRatio(rps(g), rps(b)),
          gatewayVsNginx: pairedRatio(rps(g), rps(n)),
          bunProxyVsNginx: pairedRatio(rps(b), rps(n)),
          gatewayVsDirect: pairedRatio(rps(g), rps(d)),
        };
        // CPU per request does not move with the machine's load as rates do; the busiest thread
        // bounds a proxy whose work is on one thread once every thread has a core of its own.
        const cpu = {
          gatewayVsNginxTotal: pairedRatio(cpuTotal(g), cpuTotal(n)),
          gatewayVsBunProxyTotal: pairedRatio(cpuTotal(g), cpuTotal(b)),
          singleThreadBound: NGINX_WORKERS === 1 ? pairedRatio(cpuBusiest(n), cpuBusiest(g)) : Number.NaN,
        };
        const latencyMet = gatewayAdded <= 0.2;
        const rateMet = rate.gatewayVsBunProxy >= 0.8;
        allMet &&= latencyMet && rateMet;
        console.log(
          `  request rate: gateway / bun-proxy ${fixed(rate.gatewayVsBunProxy, 2)} (target ≥ 0.8: ${verdict(rateMet)}), gateway / nginx ${fixed(rate.gatewayVsNginx, 2)}, bun-proxy / nginx ${fixed(rate.bunProxyVsNginx, 2)}, gateway / direct ${fixed(rate.gatewayVsDirect, 2)}`,
        );
        console.log(
          `  gateway p50 added ${fixed(gatewayAdded, 3)} ms (target ≤ 0.2 ms: ${verdict(latencyMet)})`,
        );
        console.log(
          `  CPU per request: gateway / nginx ${fixed(cpu.gatewayVsNginxTotal, 2)}×, gateway / bun-proxy ${fixed(cpu.gatewayVsBunProxyTotal, 2)}×; rate bound by the busiest thread (a core each), gateway / nginx: ${fixed(cpu.singleThreadBound, 2)}`,
        );
        Object.assign(modeReport, { rate, cpu, latencyMet, rateMet });
      }
      const peers = inMode.filter((t) => t.role === "peer");
      if (peers.length > 0) {
        // Against the best peer on each figure: the lowest added latency and memory, the highest rate.
        const bestAdded = Math.min(...peers.map(({ service }) => pairedDiff(p50(of(service)), p50(d))));
        const bestRate = Math.max(...peers.map(({ service }) => median(rps(of(service)))));
        const bestRss = Math.min(...peers.map(({ service }) => median(rssLoad(of(service)))));
        const vsPeers = {
          addedP50VsBestPeer: gatewayAdded / bestAdded,
          rateVsBestPeer: median(rps(g)) / bestRate,
          rssLoadVsBestPeer: median(rssLoad(g)) / bestRss,
        };
        const met = {
          latency: vsPeers.addedP50VsBestPeer <= 0.5,
          rate: vsPeers.rateVsBestPeer >= 2,
          rss: vsPeers.rssLoadVsBestPeer <= 1,
        };
        allMet &&= met.latency && met.rate && met.rss;
        console.log(
          `  against the best peer (${peers.map((p) => p.service.name).join(", ")}): added p50 ${fixed(vsPeers.addedP50VsBestPeer, 2)}× (target ≤ 0.5: ${verdict(met.latency)}), request rate ${fixed(vsPeers.rateVsBestPeer, 1)}× (target ≥ 2: ${verdict(met.rate)}), RSS under load ${fixed(vsPeers.rssLoadVsBestPeer, 2)}× (target ≤ 1: ${verdict(met.rss)})`,
        );
        Object.assign(modeReport, { vsPeers, vsPeersMet: met });
      }
      modeReport.samples = Object.fromEntries(inMode.map(({ service }) => [service.name, of(service)]));
      (report.modes as Record<string, unknown>)[mode] = modeReport;
    }
    for (const [name, why] of Object.entries(leftOut))
      console.log(`\n${PEER_VERSION[name]}: not measured (${why})`);
    if (args.json) writeFileSync(args.json, `${JSON.stringify(report, null, 2)}\n`);
    console.log(`\ntargets ${verdict(allMet)}`);
    return 0;
  } finally {
    for (const service of services.reverse()) await service.stop();
  }
}

process.exit(await main());
