/**
 * Where the gateway's CPU goes under load: starts the fake neuron and the
 * gateway under `bun --cpu-prof`, drives it with wrk, stops it, and prints
 * the functions with the most self time and the most inclusive time (share
 * of all samples). The profile file is kept for a closer look.
 *
 *   bun bench/gateway-profile.ts [--mode json|sse|anthropic] [--duration 8] [--concurrency 32]
 *                                [--metrics on|off] [--top 30] [--out dir] [--prompt-kib 0]
 *
 * `--prompt-kib N`: a coding agent's request of about N KiB (see gateway-overhead.ts).
 */
import { mkdirSync, readdirSync, readFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { parseArgs } from "node:util";
import { consola } from "consola";
import { agentConversation, benchRequestBody } from "./agent-conversation.ts";
import { startFakeUpstream, startGateway, tempDir } from "./bench-services.ts";
import { findWrk, runWrk, WRK_INSTALL_HINT } from "./wrk-load.ts";

const { values: args } = parseArgs({
  options: {
    mode: { type: "string", default: "json" },
    duration: { type: "string", default: "8" },
    concurrency: { type: "string", default: "32" },
    metrics: { type: "string", default: "on" },
    top: { type: "string", default: "30" },
    out: { type: "string" },
    "prompt-kib": { type: "string", default: "0" },
  },
});

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
  children?: number[];
}

interface CpuProfile {
  nodes: ProfileNode[];
  samples: number[];
}

function frameName(node: ProfileNode): string {
  const { functionName, url, lineNumber } = node.callFrame;
  const file = url.replace(/^.*\/(src|node_modules)\//, "$1/");
  return `${functionName || "(anonymous)"} ${file}:${lineNumber + 1}`;
}

/** Self and inclusive sample counts per function name (a function counted once per stack). */
function summarise(profile: CpuProfile): {
  self: Map<string, number>;
  total: Map<string, number>;
  n: number;
} {
  const byId = new Map(profile.nodes.map((node) => [node.id, node]));
  const parent = new Map<number, number>();
  for (const node of profile.nodes) for (const child of node.children ?? []) parent.set(child, node.id);
  const self = new Map<string, number>();
  const total = new Map<string, number>();
  for (const id of profile.samples) {
    const leaf = byId.get(id);
    if (leaf === undefined) continue;
    const leafName = frameName(leaf);
    self.set(leafName, (self.get(leafName) ?? 0) + 1);
    const seen = new Set<string>();
    for (let at: number | undefined = id; at !== undefined; at = parent.get(at)) {
      const node = byId.get(at);
      if (node === undefined) break;
      const name = frameName(node);
      if (seen.has(name)) continue;
      seen.add(name);
      total.set(name, (total.get(name) ?? 0) + 1);
    }
  }
  return { self, total, n: profile.samples.length };
}

function print(title: string, counts: Map<string, number>, n: number, top: number): void {
  console.log(`\n${title}`);
  const rows = [...counts].sort((a, b) => b[1] - a[1]).slice(0, top);
  for (const [name, count] of rows) console.log(`  ${((100 * count) / n).toFixed(1).padStart(5)} %  ${name}`);
}

async function main(): Promise<number> {
  const wrk = findWrk();
  if (wrk === undefined) {
    consola.error(`wrk is not on PATH: ${WRK_INSTALL_HINT}`);
    return 2;
  }
  const mode = args.mode === "sse" || args.mode === "anthropic" ? args.mode : "json";
  const outDir = resolve(args.out ?? tempDir("profile"));
  mkdirSync(outDir, { recursive: true });
  const upstream = await startFakeUpstream();
  try {
    const gateway = await startGateway({
      upstreamUrl: upstream.url,
      metrics: args.metrics !== "off",
      bunArgs: ["--cpu-prof", "--cpu-prof-dir", outDir],
    });
    try {
      const kib = Number(args["prompt-kib"]);
      const body = benchRequestBody(mode, kib > 0 ? agentConversation(kib) : undefined);
      const url = `${gateway.url}${mode === "anthropic" ? "/v1/messages" : "/v1/chat/completions"}`;
      const headers = mode === "anthropic" ? { "anthropic-version": "2023-06-01" } : undefined;
      const connections = Number(args.concurrency);
      await runWrk({ wrk, url, body, headers, connections, durationS: 1 });
      const result = await runWrk({ wrk, url, body, headers, connections, durationS: Number(args.duration) });
      consola.info(`${mode}: ${result.requestsPerS.toFixed(0)} req/s at c${connections}`);
    } finally {
      await gateway.stop();
    }
  } finally {
    await upstream.stop();
  }
  const file = readdirSync(outDir).find((name) => name.endsWith(".cpuprofile"));
  if (file === undefined) {
    consola.error(`no .cpuprofile in ${outDir}`);
    return 1;
  }
  const path = join(outDir, file);
  const { self, total, n } = summarise(JSON.parse(readFileSync(path, "utf8")) as CpuProfile);
  const top = Number(args.top);
  print(`self time (${n} samples)`, self, n, top);
  print("inclusive time", total, n, top);
  console.log(`\nprofile: ${path}`);
  return 0;
}

process.exit(await main());
