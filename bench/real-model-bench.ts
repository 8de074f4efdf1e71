/**
 * Real quantized models (scripts/fetch-models.ts: SmolLM2-135M-Instruct
 * Q4_1, Gemma 3 270M Q4_K_M), side by side in one run, same threads:
 *
 * - llama-bench built from the same llama.cpp source (bench/peers/
 *   build-llama-server.ts): prefill `pp` and decode `tg` tokens/s;
 * - llama-server from the same build, over HTTP: TTFT and decode tokens/s
 *   of one streamed completion, and the aggregate of 4 streams vs 1;
 * - cortex (`cortex serve`, gateway and neuron in one process, as `npm
 *   start` runs) over HTTP, the same measurements, once with each native
 *   set: the prebuilt package and, when present, the one `npm run
 *   build:native` built for this CPU (.cortex-native/cpu-built).
 *
 * cortex's decode is set against llama-bench `tg` (target ≥ 0.95), its
 * prefill (prompt tokens / TTFT) against `pp` (≥ 0.95), and its TTFT and
 * tokens/s against llama-server's (≥ 1.0). Medians of --rounds; ratios from
 * this run only.
 *
 * Every runner is up at once and sampled in turn each round (llama-bench
 * one repetition per round), so a change in a shared machine's load falls
 * on all of them alike.
 *
 *   bun bench/real-model-bench.ts [--threads 2] [--rounds 3] [--tokens 64] [--prompt 128]
 */
import { existsSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { parseArgs } from "node:util";
import { z } from "zod";
import { ensureModel, MODELS, type ModelName } from "../scripts/fetch-models.ts";
import { SseDecoder } from "../src/dialects/sse/sse-parser.ts";
import { freePort, waitUntil } from "./bench-services.ts";
import { ensureLlamaServer } from "./peers/build-llama-server.ts";
import { fixed, median } from "./stats.ts";

const ROOT = join(import.meta.dir, "..");
const { values } = parseArgs({
  options: {
    threads: { type: "string", default: "2" },
    rounds: { type: "string", default: "3" },
    tokens: { type: "string", default: "64" },
    prompt: { type: "string", default: "128" },
  },
});
const threads = Number(values.threads);
const rounds = Number(values.rounds);
const tokens = Number(values.tokens);
const promptTokens = Number(values.prompt);
const CONTEXT = 1024;

/** A prompt of about `n` tokens for either tokenizer (common English words are one token each). */
function promptOf(n: number): string {
  const words = "the garden in the evening light is quiet and the river runs past the old stone wall".split(
    " ",
  );
  return Array.from({ length: n }, (_, i) => words[i % words.length]).join(" ");
}

interface StreamRun {
  ttftMs: number;
  /** Tokens after the first, per second of the time after the first. */
  decodeTps: number;
  tokens: number;
  totalMs: number;
}

/** One streamed text completion (the chunks with text counted as tokens). */
async function streamCompletion(
  url: string,
  model: string,
  prompt: string,
  maxTokens: number,
): Promise<StreamRun> {
  const started = performance.now();
  const response = await fetch(`${url}/v1/completions`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    // A fresh connection each time: llama-server closes idle keep-alive sockets, which Bun would reuse.
    keepalive: false,
    body: JSON.stringify({ model, prompt, max_tokens: maxTokens, temperature: 0, stream: true }),
  });
  if (!response.ok || !response.body)
    throw new Error(`${url}: HTTP ${response.status} ${await response.text()}`);
  const sse = new SseDecoder();
  let first = 0;
  let last = 0;
  let chunks = 0;
  for await (const bytes of response.body) {
    for (const event of sse.push(bytes)) {
      if (event.data === "[DONE]") continue;
      const text =
        (JSON.parse(event.data) as { choices?: Array<{ text?: string }> }).choices?.[0]?.text ?? "";
      if (text.length === 0) continue;
      const now = performance.now();
      if (chunks === 0) first = now;
      last = now;
      chunks++;
    }
  }
  return {
    ttftMs: first - started,
    decodeTps: chunks > 1 ? ((chunks - 1) * 1000) / (last - first) : 0,
    tokens: chunks,
    totalMs: last - started,
  };
}

/** Per-round samples of one HTTP runner. */
interface Samples {
  ttftMs: number[];
  decodeTps: number[];
  aggregate1: number[];
  aggregate4: number[];
}

function noSamples(): Samples {
  return { ttftMs: [], decodeTps: [], aggregate1: [], aggregate4: [] };
}

/** One round against a server: a single stream of a fresh prompt, then the aggregate of 1 and of 4 streams. */
async function sampleRound(url: string, round: number, samples: Samples): Promise<void> {
  // A new prompt each round (a number in front) so no prefix cache serves it.
  const run = await streamCompletion(url, "m", `${round + 1}. ${promptOf(promptTokens)}`, tokens);
  samples.ttftMs.push(run.ttftMs);
  samples.decodeTps.push(run.decodeTps);
  for (const streams of [1, 4]) {
    const started = performance.now();
    const done = await Promise.all(
      Array.from({ length: streams }, (_, i) =>
        streamCompletion(url, "m", `${i} ${round} ${promptOf(16)}`, tokens),
      ),
    );
    const rate = (done.reduce((sum, r) => sum + r.tokens, 0) * 1000) / (performance.now() - started);
    (streams === 1 ? samples.aggregate1 : samples.aggregate4).push(rate);
  }
}

interface HttpFigures {
  ttftMs: number;
  decodeTps: number;
  prefillTps: number;
  scaling: number;
}

function figures(samples: Samples): HttpFigures {
  const ttftMs = median(samples.ttftMs);
  return {
    ttftMs,
    decodeTps: median(samples.decodeTps),
    prefillTps: (promptTokens * 1000) / ttftMs,
    scaling: median(samples.aggregate4) / median(samples.aggregate1),
  };
}

const LlamaBenchRow = z.object({ n_prompt: z.number(), n_gen: z.number(), avg_ts: z.number() });

async function llamaBench(bench: string, model: string): Promise<{ pp: number; tg: number }> {
  const child = Bun.spawn(
    [
      bench,
      "-m",
      model,
      "-t",
      String(threads),
      "-p",
      String(promptTokens),
      "-n",
      String(tokens),
      "-r",
      "1",
      "-o",
      "json",
    ],
    { env: { ...process.env, LD_LIBRARY_PATH: dirname(bench) }, stdout: "pipe", stderr: "ignore" },
  );
  const rows = z.array(LlamaBenchRow).parse(JSON.parse(await new Response(child.stdout).text()));
  await child.exited;
  return {
    pp: rows.find((row) => row.n_prompt > 0)?.avg_ts ?? 0,
    tg: rows.find((row) => row.n_gen > 0)?.avg_ts ?? 0,
  };
}

interface Server {
  url: string;
  stop(): Promise<void>;
}

async function startServer(cmd: string[], env: Record<string, string>, url: string): Promise<Server> {
  const child = Bun.spawn(cmd, {
    env: { ...process.env, ...env },
    stdout: "ignore",
    stderr: "ignore",
    cwd: ROOT,
  });
  const stop = async () => {
    child.kill();
    await child.exited;
  };
  try {
    await waitUntil(
      cmd[0] ?? "server",
      async () => (await fetch(`${url}/health`)).ok,
      180_000,
      () => child.exitCode === null,
    );
    await streamCompletion(url, "m", "warm up", 4);
  } catch (error) {
    await stop();
    throw error;
  }
  return { url, stop };
}

function startLlamaServer(server: string, model: string): Promise<Server> {
  const port = freePort();
  return startServer(
    [
      server,
      "-m",
      model,
      "--host",
      "127.0.0.1",
      "--port",
      String(port),
      "-t",
      String(threads),
      "-tb",
      String(threads),
      "-np",
      "4",
      "-c",
      String(CONTEXT * 4),
      "--no-webui",
    ],
    { LD_LIBRARY_PATH: dirname(server) },
    `http://127.0.0.1:${port}`,
  );
}

/** `cortex serve` over the one model, on the native set in `nativeDir` (CORTEX_NATIVE_DIR). */
async function startCortex(modelPath: string, nativeDir: string): Promise<Server> {
  const dir = mkdtempSync(join(tmpdir(), "cortex-real-bench-"));
  const models = join(dir, "models");
  await Bun.write(join(models, ".keep"), "");
  symlinkSync(modelPath, join(models, "model.gguf"));
  const port = freePort();
  writeFileSync(
    join(dir, "cortex.toml"),
    [
      "[log]",
      'level = "warn"',
      "[gateway]",
      `listen = "127.0.0.1:${port}"`,
      "metrics = false",
      "[neuron]",
      `models_dir = ${JSON.stringify(models)}`,
      `threads = ${threads}`,
      "[[models]]",
      'id = "m"',
      'file = "model.gguf"',
      `context_size = ${CONTEXT}`,
      "slots = 4",
      "",
    ].join("\n"),
  );
  const server = await startServer(
    [process.execPath, join(ROOT, "src/cli/main.ts"), "serve", "--config", join(dir, "cortex.toml")],
    { CORTEX_NATIVE_DIR: nativeDir },
    `http://127.0.0.1:${port}`,
  ).catch((error: unknown) => {
    rmSync(dir, { recursive: true, force: true });
    throw error;
  });
  return {
    url: server.url,
    stop: async () => {
      await server.stop();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

const { server, bench } = await ensureLlamaServer();
// Each set named explicitly: run from the repository, the neuron would otherwise prefer the native build.
const sets: Array<[string, string]> = [
  ["prebuilt", join(ROOT, "node_modules", "@node-llama-cpp", "linux-x64", "bins", "linux-x64")],
];
const native = join(ROOT, ".cortex-native", "cpu-built");
if (existsSync(join(native, "libllama.so"))) sets.push(["build:native", native]);
else console.log(`(no ${native}: run npm run build:native to compare the native build)`);

const lines = [
  `threads ${threads}, prompt ${promptTokens} tokens, ${tokens} generated, medians of ${rounds} interleaved rounds`,
  "",
  "| model | runner | prefill tok/s | decode tok/s | TTFT ms | HTTP decode tok/s | 4 streams / 1 | decode / llama-bench tg | prefill / llama-bench pp | TTFT llama-server / cortex | tok/s cortex / llama-server |",
  "|---|---|---|---|---|---|---|---|---|---|---|",
];
for (const name of Object.keys(MODELS) as ModelName[]) {
  const model = await ensureModel(name);
  // Every runner up at once and sampled in turn each round, so a change in the machine's load
  // (it is shared) falls on all of them alike.
  const runners: Array<[string, Server]> = [];
  try {
    runners.push(["llama-server", await startLlamaServer(server, model)]);
    for (const [label, dir] of sets) runners.push([`cortex (${label})`, await startCortex(model, dir)]);
    const pp: number[] = [];
    const tg: number[] = [];
    const samples = new Map(runners.map(([label]) => [label, noSamples()]));
    for (let round = 0; round < rounds; round++) {
      const lb = await llamaBench(bench, model);
      pp.push(lb.pp);
      tg.push(lb.tg);
      for (const [label, runner] of runners)
        await sampleRound(runner.url, round, samples.get(label) ?? noSamples());
      console.log(`${name}: round ${round + 1} of ${rounds} done`);
    }
    const lbPp = median(pp);
    const lbTg = median(tg);
    const ls = figures(samples.get("llama-server") ?? noSamples());
    lines.push(
      `| ${name} | llama-bench | ${fixed(lbPp, 1)} | ${fixed(lbTg, 1)} | | | | | | | |`,
      `| ${name} | llama-server | ${fixed(ls.prefillTps, 1)} | | ${fixed(ls.ttftMs, 1)} | ${fixed(ls.decodeTps, 1)} | ${fixed(ls.scaling, 2)} | | | | |`,
    );
    for (const [label] of runners.slice(1)) {
      const cx = figures(samples.get(label) ?? noSamples());
      lines.push(
        `| ${name} | ${label} | ${fixed(cx.prefillTps, 1)} | | ${fixed(cx.ttftMs, 1)} | ${fixed(cx.decodeTps, 1)} | ${fixed(cx.scaling, 2)} | ${fixed(cx.decodeTps / lbTg, 2)} | ${fixed(cx.prefillTps / lbPp, 2)} | ${fixed(ls.ttftMs / cx.ttftMs, 2)} | ${fixed(cx.decodeTps / ls.decodeTps, 2)} |`,
      );
    }
    console.log(lines.slice(-runners.length - 1).join("\n"));
  } finally {
    for (const [, runner] of runners) await runner.stop();
  }
}
console.log(`\n${lines.join("\n")}`);
