/**
 * Streaming translation cost: events per second and added latency per event
 * for an Anthropic client through the gateway (OpenAI upstream → Anthropic
 * SSE) against an OpenAI client through the gateway (the same pipeline with
 * the OpenAI encoder), and against @musistudio/claude-code-router 3.1.1
 * translating the same stream from the same upstream, all in one run. The
 * upstream (bench/fake-upstream.ts) streams N small content deltas at once;
 * "direct" (an OpenAI client reading the fake itself) is the baseline that
 * added latency is measured from.
 *
 *   bun bench/translation.ts [--deltas 2000] [--rounds 7] [--streams 5] [--no-peer] [--json out.json]
 */
import { writeFileSync } from "node:fs";
import { cpus } from "node:os";
import { parseArgs } from "node:util";
import { consola } from "consola";
import { direct, type Service, startFakeUpstream, startGateway } from "./bench-services.ts";
import { CCR_PACKAGE, CCR_VERSION, ccrUnavailable, ensureCcrInstalled, startCcr } from "./ccr-peer.ts";
import { expectedText, FAKE_MODEL } from "./fake-upstream.ts";
import { fixed, median, pairedRatio, range } from "./stats.ts";

const { values: args } = parseArgs({
  options: {
    deltas: { type: "string", default: "2000" },
    rounds: { type: "string", default: "7" },
    streams: { type: "string", default: "5" },
    "no-peer": { type: "boolean", default: false },
    json: { type: "string" },
  },
});

function bounded(value: string | undefined, min: number, max: number, flag: string): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < min || n > max) {
    consola.error(`${flag}: expected an integer in [${min}, ${max}], got ${value}`);
    process.exit(2);
  }
  return n;
}

const DELTAS = bounded(args.deltas, 10, 50_000, "--deltas");
const ROUNDS = bounded(args.rounds, 1, 50, "--rounds");
const STREAMS = bounded(args.streams, 1, 50, "--streams");
const WARMUP_STREAMS = 10;

type Client = "openai" | "anthropic";

interface Target {
  label: string;
  service: Service;
  client: Client;
}

interface StreamRun {
  totalMs: number;
  /** Request sent → first content delta. */
  firstMs: number;
  deltas: number;
}

function request(client: Client): { path: string; body: string } {
  const messages = [{ role: "user", content: "Count to two thousand." }];
  return client === "openai"
    ? {
        path: "/v1/chat/completions",
        body: JSON.stringify({ model: FAKE_MODEL, messages, max_tokens: DELTAS, stream: true }),
      }
    : {
        path: "/v1/messages",
        body: JSON.stringify({ model: FAKE_MODEL, messages, max_tokens: DELTAS, stream: true }),
      };
}

/** The text a data payload carries, in the client's dialect ("" for events without text). */
function textOf(client: Client, data: string): string {
  if (data === "[DONE]") return "";
  const event = JSON.parse(data) as {
    type?: string;
    delta?: { type?: string; text?: string };
    choices?: Array<{ delta?: { content?: string | null } }>;
  };
  if (client === "openai") return event.choices?.[0]?.delta?.content ?? "";
  return event.type === "content_block_delta" && event.delta?.type === "text_delta"
    ? (event.delta.text ?? "")
    : "";
}

/** One streamed request, read to its end the way a client would (SSE events, JSON each). */
async function stream(target: Target): Promise<StreamRun> {
  const { path, body } = request(target.client);
  const started = performance.now();
  const response = await fetch(`${target.service.url}${path}`, {
    method: "POST",
    headers: { "content-type": "application/json", "x-api-key": "bench", "anthropic-version": "2023-06-01" },
    body,
  });
  if (response.status !== 200 || response.body === null)
    throw new Error(`${target.label}: HTTP ${response.status}: ${await response.text()}`);
  const decoder = new TextDecoder();
  let buffered = "";
  let text = "";
  let deltas = 0;
  let firstMs = Number.NaN;
  for await (const chunk of response.body) {
    buffered += decoder.decode(chunk, { stream: true });
    let end = buffered.indexOf("\n\n");
    while (end >= 0) {
      const event = buffered.slice(0, end);
      buffered = buffered.slice(end + 2);
      for (const line of event.split("\n")) {
        if (!line.startsWith("data:")) continue;
        const piece = textOf(target.client, line.slice(5).trimStart());
        if (piece === "") continue;
        if (deltas === 0) firstMs = performance.now() - started;
        deltas++;
        text += piece;
      }
      end = buffered.indexOf("\n\n");
    }
  }
  const totalMs = performance.now() - started;
  if (text !== expectedText(DELTAS))
    throw new Error(`${target.label}: the stream did not carry the whole text (${deltas} deltas)`);
  return { totalMs, firstMs, deltas };
}

async function main(): Promise<number> {
  const services: Service[] = [];
  try {
    const upstream = await startFakeUpstream();
    services.push(upstream);
    const gateway = await startGateway({ upstreamUrl: upstream.url });
    services.push(gateway);
    const targets: Target[] = [
      { label: "direct, OpenAI client", service: direct(upstream), client: "openai" },
      { label: "gateway, OpenAI client", service: gateway, client: "openai" },
      { label: "gateway, Anthropic client", service: gateway, client: "anthropic" },
    ];
    let peerNote: string | undefined;
    if (args["no-peer"]) peerNote = "skipped (--no-peer)";
    else {
      peerNote = ccrUnavailable();
      if (peerNote === undefined) {
        try {
          await ensureCcrInstalled();
          const ccr = await startCcr({ upstreamUrl: upstream.url, model: FAKE_MODEL });
          services.push(ccr);
          targets.push({ label: `ccr ${CCR_VERSION}, Anthropic client`, service: ccr, client: "anthropic" });
        } catch (error) {
          peerNote = error instanceof Error ? error.message : String(error);
        }
      }
      if (peerNote !== undefined) consola.warn(`${CCR_PACKAGE}@${CCR_VERSION} not measured: ${peerNote}`);
    }

    consola.start(`warming up (${WARMUP_STREAMS} streams per target)`);
    for (const target of targets) for (let i = 0; i < WARMUP_STREAMS; i++) await stream(target);

    // Per target, per round: the median stream of that round.
    const rounds = new Map<string, StreamRun[]>(targets.map((t) => [t.label, []]));
    for (let round = 0; round < ROUNDS; round++) {
      const order = targets.map((_, i) => targets[(i + round) % targets.length]!);
      for (const target of order) {
        const runs: StreamRun[] = [];
        for (let i = 0; i < STREAMS; i++) runs.push(await stream(target));
        const byTotal = [...runs].sort((a, b) => a.totalMs - b.totalMs);
        rounds.get(target.label)!.push(byTotal[Math.floor(byTotal.length / 2)]!);
      }
      consola.info(`round ${round + 1}/${ROUNDS} done`);
    }

    const totals = (label: string) => (rounds.get(label) ?? []).map((r) => r.totalMs);
    const rates = (label: string) => totals(label).map((ms) => (DELTAS * 1000) / ms);
    const baseline = targets[0]!.label;
    const addedUsPerEvent = (label: string) =>
      median(totals(label).map((ms, i) => ((ms - totals(baseline)[i]!) * 1000) / DELTAS));
    const spread = (values: number[], digits: number) => {
      const [lo, hi] = range(values);
      return `${fixed(median(values), digits)} (${fixed(lo, digits)}–${fixed(hi, digits)})`;
    };

    console.log(
      `\nstreaming translation — ${cpus().length} × ${cpus()[0]?.model ?? "cpu"}; ${DELTAS} deltas per stream; ${ROUNDS} rounds × median of ${STREAMS} streams; concurrency 1`,
    );
    console.log(
      `  ${"target".padEnd(30)} ${"events/s".padEnd(26)} ${"stream ms".padEnd(24)} ${"first delta ms".padEnd(16)} added µs/event`,
    );
    const summary: Record<string, unknown> = {};
    for (const target of targets) {
      const runs = rounds.get(target.label) ?? [];
      const added = target === targets[0] ? 0 : addedUsPerEvent(target.label);
      console.log(
        `  ${target.label.padEnd(30)} ${spread(rates(target.label), 0).padEnd(26)} ${spread(totals(target.label), 1).padEnd(24)} ${fixed(median(runs.map((r) => r.firstMs)), 2).padEnd(16)} ${target === targets[0] ? "—" : fixed(added, 2)}`,
      );
      summary[target.label] = {
        eventsPerS: median(rates(target.label)),
        streamMs: median(totals(target.label)),
        firstDeltaMs: median(runs.map((r) => r.firstMs)),
        addedUsPerEvent: added,
        rounds: runs,
      };
    }
    const [, gwOpenAI, gwAnthropic, ccr] = targets;
    console.log(
      `  events/s ratio, gateway Anthropic / gateway OpenAI: ${fixed(pairedRatio(rates(gwAnthropic!.label), rates(gwOpenAI!.label)), 2)}`,
    );
    if (ccr)
      console.log(
        `  events/s ratio, gateway Anthropic / ccr Anthropic: ${fixed(pairedRatio(rates(gwAnthropic!.label), rates(ccr.label)), 2)}`,
      );
    else console.log(`  ccr: not measured (${peerNote})`);
    if (args.json)
      writeFileSync(
        args.json,
        `${JSON.stringify({ machine: `${cpus().length} × ${cpus()[0]?.model}`, bun: Bun.version, deltas: DELTAS, rounds: ROUNDS, streams: STREAMS, peer: ccr ? `${CCR_PACKAGE}@${CCR_VERSION}` : peerNote, targets: summary }, null, 2)}\n`,
      );
    return 0;
  } finally {
    for (const service of services.reverse()) await service.stop();
  }
}

process.exit(await main());
