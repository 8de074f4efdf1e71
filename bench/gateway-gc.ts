/**
 * What the gateway's requests cost the JS heap, side by side with the bare
 * Bun relay (bench/bun-proxy.ts) in the same run: KiB allocated per request,
 * KiB that survive a young (eden) collection per request, collections and
 * their pauses, read from JSC's own GC log (`BUN_JSC_logGC=1`) during a wrk
 * run. These are the figures behind resident memory under load: JSC collects
 * the young generation concurrently, and what is allocated while a cycle runs
 * survives it, so the old generation (and RSS, until a full collection)
 * grows with the bytes each request allocates.
 *
 *   bun bench/gateway-gc.ts [--mode json|sse] [--duration 5] [--concurrency 32]
 *                           [--prompt-kib 0] [--gateway-b other-checkout]
 */
import { readFileSync, rmSync } from "node:fs";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { consola } from "consola";
import { agentConversation, benchRequestBody } from "./agent-conversation.ts";
import { type Service, startBunProxy, startFakeUpstream, startGateway, tempDir } from "./bench-services.ts";
import { fixed } from "./stats.ts";
import { findWrk, runWrk, WRK_INSTALL_HINT } from "./wrk-load.ts";

const { values: args } = parseArgs({
  options: {
    mode: { type: "string", default: "json" },
    duration: { type: "string", default: "5" },
    concurrency: { type: "string", default: "32" },
    "prompt-kib": { type: "string", default: "0" },
    "gateway-b": { type: "string" },
  },
});

const GC_LOG_ENV = { BUN_JSC_logGC: "1" };

/** One measured window of JSC's GC log. */
export interface GcWindow {
  /** Bytes the collections in the window were asked for ("bytes allocated this cycle"). */
  allocatedBytes: number;
  /** Growth of the heap after each eden collection over the one before it: what survived young. */
  promotedBytes: number;
  eden: number;
  full: number;
  pauseMs: number;
}

/** Reads JSC's `logGC` lines (the format of Bun 1.x's JavaScriptCore). */
export function readGcLog(text: string): GcWindow {
  const window: GcWindow = { allocatedBytes: 0, promotedBytes: 0, eden: 0, full: 0, pauseMs: 0 };
  let kind: string | undefined;
  let lastAfterKb: number | undefined;
  const pattern =
    /bytes allocated this cycle: (\d+)|START \S+ \d+kb => (\w+)Collection|=> (\d+)kb, p=([\d.]+)ms/g;
  for (const match of text.matchAll(pattern)) {
    if (match[1] !== undefined) window.allocatedBytes += Number(match[1]);
    else if (match[2] !== undefined) kind = match[2];
    else if (match[3] !== undefined && kind !== undefined) {
      const afterKb = Number(match[3]);
      window.pauseMs += Number(match[4]);
      if (kind === "Eden") {
        window.eden++;
        if (lastAfterKb !== undefined) window.promotedBytes += Math.max(0, afterKb - lastAfterKb) * 1024;
      } else window.full++;
      lastAfterKb = afterKb;
      kind = undefined;
    }
  }
  return window;
}

async function measure(
  name: string,
  start: (env: Record<string, string>, stderrPath: string) => Promise<Service>,
  body: string,
  mode: string,
): Promise<string> {
  const wrk = findWrk() as string;
  const dir = tempDir("gc");
  const log = join(dir, "gc.log");
  const service = await start(GC_LOG_ENV, log);
  try {
    const url = `${service.url}/v1/chat/completions`;
    const connections = Number(args.concurrency);
    await runWrk({ wrk, url, body, connections, durationS: 2 });
    const before = readFileSync(log, "utf8").length;
    const durationS = Number(args.duration);
    const result = await runWrk({ wrk, url, body, connections, durationS });
    const gc = readGcLog(readFileSync(log, "utf8").slice(before));
    const requests = result.requestsPerS * durationS;
    const kib = (bytes: number) => fixed(bytes / requests / 1024, 2).padStart(8);
    return `  ${name.padEnd(10)} ${mode.padEnd(5)} ${fixed(result.requestsPerS, 0).padStart(7)}   ${kib(gc.allocatedBytes)}   ${kib(gc.promotedBytes)}   ${String(gc.eden).padStart(4)} / ${String(gc.full).padEnd(4)} ${fixed((gc.pauseMs * 1000) / requests, 2).padStart(7)}`;
  } finally {
    await service.stop();
    rmSync(dir, { recursive: true, force: true });
  }
}

async function main(): Promise<number> {
  if (findWrk() === undefined) {
    consola.error(`wrk is not on PATH: ${WRK_INSTALL_HINT}`);
    return 2;
  }
  const mode = args.mode === "sse" ? "sse" : "json";
  const kib = Number(args["prompt-kib"]);
  const body = benchRequestBody(mode, kib > 0 ? agentConversation(kib) : undefined);
  const upstream = await startFakeUpstream();
  const rows: string[] = [];
  try {
    rows.push(
      await measure(
        "bun-proxy",
        (env, stderrPath) => startBunProxy(upstream.url, { env, stderrPath }),
        body,
        mode,
      ),
    );
    rows.push(
      await measure(
        "gateway",
        (env, stderrPath) => startGateway({ upstreamUrl: upstream.url, env, stderrPath }),
        body,
        mode,
      ),
    );
    const b = args["gateway-b"];
    if (b !== undefined)
      rows.push(
        await measure(
          "gateway-b",
          (env, stderrPath) =>
            startGateway({ upstreamUrl: upstream.url, root: b, env, stderrPath, name: "gateway-b" }),
          body,
          mode,
        ),
      );
  } finally {
    await upstream.stop();
  }
  console.log(
    `\nJS heap per request (JSC's GC log), wrk c${args.concurrency}, ${args.duration} s, request ${kib > 0 ? `an agent's conversation, ${(body.length / 1024).toFixed(0)} KiB` : "one short message"}`,
  );
  console.log("  target     mode    req/s   KiB alloc   KiB young→old   eden / full   GC pause µs/req");
  for (const row of rows) console.log(row);
  return 0;
}

if (import.meta.main) process.exit(await main());
