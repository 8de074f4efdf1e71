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
 * prefill against `pp` (≥ 0.95), and its TTFT and tokens/s against
 * llama-server's (≥ 1.0). Medians of --rounds; ratios from this run only.
 * TTFT is sampled apart, --ttft-samples times a round with the servers side
 * by side, and its ratio is the median of the side-by-side pairs.
 *
 * Prefill is measured inside each server, never over HTTP (a streamed TTFT
 * also holds the first decode step, the template and the hops): cortex's by
 * bench/neuron-steps.ts (the device Worker's own time for the step that
 * decodes the whole prompt, same context shape and threads as `cortex
 * serve` here), llama-server's by the `timings` of its last chunk; and
 * llama-bench's `pp` runs at exactly the neuron's prompt length (BOS
 * included), with its defaults otherwise, which are the neuron's: n_batch
 * ≥ the prompt, n_ubatch 512, flash attention auto, F16 KV, one thread
 * count for batch and decode. cortex's decode is set against `tg` the same
 * way, from inside (the median one-token step of neuron-steps.ts, sampling
 * included), and against llama-server's own `timings` decode rate (which
 * samples too), and over HTTP against llama-server.
 *
 * Tokens are counted from each stream's usage (cortex may join tokens that
 * waited into one chunk), and the CPU each server used per generated token
 * outside its busiest thread (the decode thread) is read from /proc: unlike
 * a rate it does not move with what else the machine runs, so it is where
 * a per-token cost of the streaming path shows. `cortex neuron` alone, over
 * its own API, is sampled too, to tell the gateway's hop from the neuron's
 * part. `--baseline <checkout>`
 * adds `cortex serve` from another checkout (prebuilt set), for an A/B of a
 * change in the same run.
 *
 * Every runner is up at once and sampled in turn each round (llama-bench
 * one repetition per round), so a change in a shared machine's load falls
 * on all of them alike.
 *
 *   bun bench/real-model-bench.ts [--threads 2] [--rounds 3] [--tokens 64] [--prompt 128]
 *                                 [--models smollm2-135m,gemma3-270m] [--baseline <checkout>]
 *                                 [--ttft-samples 4]
 */
import { existsSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { loadavg, tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { parseArgs } from "node:util";
import { z } from "zod";
import { ensureModel, MODELS, type ModelName } from "../scripts/fetch-models.ts";
import { SseDecoder } from "../src/dialects/sse/sse-parser.ts";
import { freePort, waitUntil } from "./bench-services.ts";
import type { StepsResult } from "./neuron-steps.ts";
import { promptOf } from "./neuron-steps.ts";
import { ensureLlamaServer } from "./peers/build-llama-server.ts";
import { llamaServerCommand } from "./peers/llama-server-process.ts";
import { cpuBetween, snapshotCpu } from "./process-cpu.ts";
import { fixed, median, pairedRatio } from "./stats.ts";

const ROOT = join(import.meta.dir, "..");
const { values } = parseArgs({
  options: {
    threads: { type: "string", default: "2" },
    rounds: { type: "string", default: "3" },
    tokens: { type: "string", default: "64" },
    prompt: { type: "string", default: "128" },
    baseline: { type: "string" },
    models: { type: "string" },
    "ttft-samples": { type: "string", default: "4" },
  },
});
const threads = Number(values.threads);
const rounds = Number(values.rounds);
const tokens = Number(values.tokens);
const promptTokens = Number(values.prompt);
const ttftSamples = Math.max(1, Number(values["ttft-samples"]));
const CONTEXT = 1024;

interface StreamRun {
  ttftMs: number;
  /** Tokens after the first, per second of the time after the first. */
  decodeTps: number;
  tokens: number;
  totalMs: number;
  /** The server's own prefill rate (llama-server's `timings`), when it reports one. */
  promptPerSecond: number | undefined;
  /** The server's own decode rate (llama-server's `timings`), when it reports one. */
  predictedPerSecond: number | undefined;
}

const StreamChunk = z.object({
  choices: z
    .array(
      z.object({ text: z.string().nullish(), delta: z.object({ content: z.string().nullish() }).nullish() }),
    )
    .nullish(),
  usage: z.object({ completion_tokens: z.number() }).nullish(),
  timings: z.object({ prompt_per_second: z.number(), predicted_per_second: z.number() }).nullish(),
});

/**
 * How a runner takes a raw-prompt completion: OpenAI's `/v1/completions`, or
 * the neuron's own API (a chat completion whose `cortex_completion` carries
 * the prompt past the chat template, as the gateway sends it).
 */
type Api = "completions" | "neuron";

/** One streamed text completion (the chunks with text counted as tokens). */
async function streamCompletion(
  server: Pick<Server, "url" | "api">,
  prompt: string,
  maxTokens: number,
): Promise<StreamRun> {
  const started = performance.now();
  const common = {
    model: "m",
    max_tokens: maxTokens,
    temperature: 0,
    stream: true,
    stream_options: { include_usage: true },
  };
  const neuron = server.api === "neuron";
  const response = await fetch(`${server.url}/v1/${neuron ? "chat/completions" : "completions"}`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    // A fresh connection each time: llama-server closes idle keep-alive sockets, which Bun would reuse.
    keepalive: false,
    body: JSON.stringify(
      neuron
        ? { ...common, messages: [{ role: "user", content: prompt }], cortex_completion: { prompt } }
        : { ...common, prompt },
    ),
  });
  if (!response.ok || !response.body)
    throw new Error(`${server.url}: HTTP ${response.status} ${await response.text()}`);
  const sse = new SseDecoder();
  let first = 0;
  let last = 0;
  let chunks = 0;
  let usageTokens: number | undefined;
  let promptPerSecond: number | undefined;
  let predictedPerSecond: number | undefined;
  for await (const bytes of response.body) {
    for (const event of sse.push(bytes)) {
      if (event.data === "[DONE]") continue;
      const chunk = StreamChunk.parse(JSON.parse(event.data));
      usageTokens = chunk.usage?.completion_tokens ?? usageTokens;
      promptPerSecond = chunk.timings?.prompt_per_second ?? promptPerSecond;
      predictedPerSecond = chunk.timings?.predicted_per_second ?? predictedPerSecond;
      const choice = chunk.choices?.[0];
      const text = choice?.text ?? choice?.delta?.content ?? "";
      if (text.length === 0) continue;
      const now = performance.now();
      if (chunks === 0) first = now;
      last = now;
      chunks++;
    }
  }
  // Usage counts the tokens; the first chunk is one token (nothing waited before it).
  const tokens = usageTokens ?? chunks;
  return {
    ttftMs: first - started,
    decodeTps: chunks > 1 ? ((tokens - 1) * 1000) / (last - first) : 0,
    tokens,
    totalMs: last - started,
    promptPerSecond,
    predictedPerSecond,
  };
}

/** Per-round samples of one HTTP runner. */
interface Samples {
  ttftMs: number[];
  decodeTps: number[];
  aggregate1: number[];
  aggregate4: number[];
  /** Prefill tok/s measured inside the server. */
  prefillTps: number[];
  /** Decode tok/s measured inside the server (neuron-steps.ts; llama-server's `timings`). */
  insideDecodeTps: number[];
  /** CPU ms per generated token outside the busiest (decode) thread. */
  sideCpuMs: number[];
}

function noSamples(): Samples {
  return {
    ttftMs: [],
    decodeTps: [],
    aggregate1: [],
    aggregate4: [],
    prefillTps: [],
    insideDecodeTps: [],
    sideCpuMs: [],
  };
}

/**
 * One round against a server: a single stream of a fresh prompt (decode
 * rates), then the aggregate of 1 and of 4 streams. Its TTFT samples are
 * taken apart, interleaved across servers (`sampleFirstTokens`).
 */
async function sampleRound(server: Server, round: number, samples: Samples): Promise<void> {
  // A new prompt each round (a number in front) so no prefix cache serves it.
  const before = snapshotCpu(server.pid);
  const run = await streamCompletion(server, `${round + 1}. ${promptOf(promptTokens)}`, tokens);
  let generated = run.tokens;
  samples.decodeTps.push(run.decodeTps);
  if (run.promptPerSecond !== undefined) samples.prefillTps.push(run.promptPerSecond);
  if (run.predictedPerSecond !== undefined) samples.insideDecodeTps.push(run.predictedPerSecond);
  for (const streams of [1, 4]) {
    const started = performance.now();
    const done = await Promise.all(
      Array.from({ length: streams }, (_, i) =>
        streamCompletion(server, `${i} ${round} ${promptOf(16)}`, tokens),
      ),
    );
    const streamed = done.reduce((sum, r) => sum + r.tokens, 0);
    generated += streamed;
    (streams === 1 ? samples.aggregate1 : samples.aggregate4).push(
      (streamed * 1000) / (performance.now() - started),
    );
  }
  // Over the whole round: /proc counts in 10 ms ticks, too coarse for one short stream.
  const after = snapshotCpu(server.pid);
  if (before && after && generated > 0) {
    const cpu = cpuBetween(before, after);
    samples.sideCpuMs.push((cpu.totalMs - cpu.busiestThreadMs) / generated);
  }
}

/**
 * First-token times, one server after another, `--ttft-samples` times a
 * round, the first server rotating: one server's prefill moves between two
 * modes (~230 and ~300 ms on Gemma here) from one request to the next and
 * over seconds, so samples taken side by side and compared pair by pair
 * (`pairedRatio`) are what tells a 2 % difference. Two tokens each, on a
 * fresh prompt of --prompt words.
 */
async function sampleFirstTokens(
  runners: ReadonlyArray<{ label: string; server: Server }>,
  round: number,
  samples: Map<string, Samples>,
): Promise<void> {
  for (let k = 0; k < ttftSamples; k++) {
    for (let i = 0; i < runners.length; i++) {
      const { label, server } = runners[(i + k) % runners.length]!;
      const run = await streamCompletion(server, `${round + 1}.${k} ${promptOf(promptTokens)}`, 2);
      const into = samples.get(label);
      into?.ttftMs.push(run.ttftMs);
      if (run.promptPerSecond !== undefined) into?.prefillTps.push(run.promptPerSecond);
    }
  }
}

interface HttpFigures {
  ttftMs: number;
  decodeTps: number;
  prefillTps: number;
  insideDecodeTps: number;
  sideCpuMs: number;
  scaling: number;
}

function figures(samples: Samples): HttpFigures {
  return {
    ttftMs: median(samples.ttftMs),
    decodeTps: median(samples.decodeTps),
    prefillTps: median(samples.prefillTps),
    insideDecodeTps: median(samples.insideDecodeTps),
    sideCpuMs: median(samples.sideCpuMs),
    scaling: median(samples.aggregate4) / median(samples.aggregate1),
  };
}

const LlamaBenchRow = z.object({ n_prompt: z.number(), n_gen: z.number(), avg_ts: z.number() });

/** `started`, whose temporary folder `dir` goes when it stops or fails to start. */
async function removingDir(dir: string, started: Promise<Server>): Promise<Server> {
  const server = await started.catch((error: unknown) => {
    rmSync(dir, { recursive: true, force: true });
    throw error;
  });
  return {
    ...server,
    stop: async () => {
      await server.stop();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** llama-bench `pp` at `nPrompt` tokens and `tg` at --tokens, one repetition. */
async function llamaBench(
  bench: string,
  model: string,
  nPrompt: number,
): Promise<{ pp: number; tg: number }> {
  const child = Bun.spawn(
    [
      bench,
      "-m",
      model,
      "-t",
      String(threads),
      "-p",
      String(nPrompt),
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
  api: Api;
  pid: number;
  stop(): Promise<void>;
}

async function startServer(
  cmd: string[],
  env: Record<string, string>,
  url: string,
  api: Api = "completions",
  /** Runs once the server is healthy, before the warm-up (the neuron's model load). */
  prepare: () => Promise<void> = async () => {},
): Promise<Server> {
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
    await prepare();
    await streamCompletion({ url, api }, "warm up", 4);
  } catch (error) {
    await stop();
    throw error;
  }
  return { url, api, pid: child.pid, stop };
}

function startLlamaServer(server: string, model: string): Promise<Server> {
  const port = freePort();
  return startServer(
    llamaServerCommand({ server, model, threads, slots: 4, contextSize: CONTEXT }, port),
    { LD_LIBRARY_PATH: dirname(server) },
    `http://127.0.0.1:${port}`,
  );
}

/** `cortex serve` from the checkout at `root` over the one model, on the native set in `nativeDir` (CORTEX_NATIVE_DIR). */
async function startCortex(modelPath: string, nativeDir: string, root = ROOT): Promise<Server> {
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
  return removingDir(
    dir,
    startServer(
      [process.execPath, join(root, "src/cli/main.ts"), "serve", "--config", join(dir, "cortex.toml")],
      { CORTEX_NATIVE_DIR: nativeDir },
      `http://127.0.0.1:${port}`,
    ),
  );
}

/**
 * `cortex neuron` alone, over its own HTTP API (no gateway in front): the
 * model loaded as `cortex serve` loads it. Where cortex serve's figures
 * differ from these, the difference is the gateway's hop.
 */
async function startNeuronDirect(modelPath: string, nativeDir: string): Promise<Server> {
  const dir = mkdtempSync(join(tmpdir(), "cortex-real-bench-"));
  const models = join(dir, "models");
  await Bun.write(join(models, ".keep"), "");
  symlinkSync(modelPath, join(models, "model.gguf"));
  const port = freePort();
  const url = `http://127.0.0.1:${port}`;
  writeFileSync(
    join(dir, "neuron.toml"),
    [
      "[log]",
      'level = "warn"',
      "[neuron]",
      `listen = "127.0.0.1:${port}"`,
      `models_dir = ${JSON.stringify(models)}`,
      `threads = ${threads}`,
      "",
    ].join("\n"),
  );
  const load = async () => {
    const response = await fetch(`${url}/models/load`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ id: "m", file: "model.gguf", contextSize: CONTEXT, slots: 4 }),
    });
    if (!response.ok) throw new Error(`neuron load: HTTP ${response.status} ${await response.text()}`);
  };
  return removingDir(
    dir,
    startServer(
      [process.execPath, join(ROOT, "src/cli/main.ts"), "neuron", "--config", join(dir, "neuron.toml")],
      { CORTEX_NATIVE_DIR: nativeDir },
      url,
      "neuron",
      load,
    ),
  );
}

const StepsLine = z.object({
  promptTokens: z.number(),
  stepMs: z.number(),
  engineTtftMs: z.number(),
  decodeStepMs: z.number(),
});

/**
 * bench/neuron-steps.ts in a process of its own on one native set (one
 * process loads one libllama); tried up to 3 times, since Bun's TinyCC has
 * been seen to fail the shim's compile twice running on a loaded machine
 * (ffi/shim.ts retries once itself).
 */
async function neuronSteps(model: string, nativeDir: string): Promise<StepsResult> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await neuronStepsOnce(model, nativeDir);
    } catch (error) {
      if (attempt === 3) throw error;
      console.log(`(neuron-steps failed, attempt ${attempt} of 3: ${String(error).split("\n")[0]})`);
    }
  }
}

async function neuronStepsOnce(model: string, nativeDir: string): Promise<StepsResult> {
  const child = Bun.spawn(
    [
      process.execPath,
      join(ROOT, "bench", "neuron-steps.ts"),
      "--model",
      model,
      "--prompt",
      String(promptTokens),
      "--tokens",
      String(tokens),
      "--threads",
      String(threads),
      "--reps",
      "3",
    ],
    { env: { ...process.env, CORTEX_NATIVE_DIR: nativeDir }, stdout: "pipe", stderr: "pipe", cwd: ROOT },
  );
  const [out, err] = await Promise.all([
    new Response(child.stdout).text(),
    new Response(child.stderr).text(),
  ]);
  if ((await child.exited) !== 0) throw new Error(`neuron-steps on ${nativeDir} failed:\n${err}`);
  return StepsLine.parse(JSON.parse(out.trim().split("\n").at(-1) ?? ""));
}

const { server, bench } = await ensureLlamaServer();
const prebuilt = join(ROOT, "node_modules", "@node-llama-cpp", "linux-x64", "bins", "linux-x64");
// Each set named explicitly: run from the repository, the neuron would otherwise prefer the native build.
const sets: Array<{ label: string; dir: string; root: string }> = [
  { label: "prebuilt", dir: prebuilt, root: ROOT },
];
const native = join(ROOT, ".cortex-native", "cpu-built");
if (existsSync(join(native, "libllama.so"))) sets.push({ label: "build:native", dir: native, root: ROOT });
else console.log(`(no ${native}: run npm run build:native to compare the native build)`);
if (values.baseline) sets.push({ label: "baseline, prebuilt", dir: prebuilt, root: values.baseline });

const lines = [
  `threads ${threads}, prompt ${promptTokens} words, ${tokens} generated, medians of ${rounds} interleaved rounds; TTFT: ${ttftSamples} first tokens a round, servers side by side, ratio the median of the pairs`,
  "",
  "| model | runner | prefill tok/s | decode tok/s | TTFT ms | HTTP decode tok/s | side CPU ms/token | 4 streams / 1 | decode / llama-bench tg | prefill / llama-bench pp | decode / llama-server's | TTFT llama-server / cortex | tok/s cortex / llama-server |",
  "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
];
const modelNames = (values.models?.split(",") ?? Object.keys(MODELS)) as ModelName[];
for (const name of modelNames)
  if (!(name in MODELS))
    throw new Error(`--models: unknown model ${name} (known: ${Object.keys(MODELS).join(", ")})`);
for (const name of modelNames) {
  const model = await ensureModel(name);
  // Every runner up at once and sampled in turn each round, so a change in the machine's load
  // (it is shared) falls on all of them alike.
  const runners: Array<{ label: string; server: Server; set?: (typeof sets)[number] }> = [];
  try {
    runners.push({ label: "llama-server", server: await startLlamaServer(server, model) });
    for (const set of sets)
      runners.push({
        label: `cortex (${set.label})`,
        server: await startCortex(model, set.dir, set.root),
        set,
      });
    runners.push({
      label: "cortex neuron alone (prebuilt)",
      server: await startNeuronDirect(model, prebuilt),
    });
    const pp: number[] = [];
    const tg: number[] = [];
    let nPrompt = 0;
    const samples = new Map(runners.map(({ label }) => [label, noSamples()]));
    for (let round = 0; round < rounds; round++) {
      for (const { label, set } of runners) {
        // The baseline's engine prefills as this one's does (nothing here changes it): not run twice.
        if (!set || set.root !== ROOT) continue;
        const prefill = await neuronSteps(model, set.dir);
        if (nPrompt !== 0 && prefill.promptTokens !== nPrompt)
          throw new Error(`${label}: ${prefill.promptTokens} prompt tokens, earlier ${nPrompt}`);
        nPrompt = prefill.promptTokens;
        samples.get(label)?.prefillTps.push((prefill.promptTokens * 1000) / prefill.stepMs);
        samples.get(label)?.insideDecodeTps.push(1000 / prefill.decodeStepMs);
      }
      const lb = await llamaBench(bench, model, nPrompt);
      pp.push(lb.pp);
      tg.push(lb.tg);
      await sampleFirstTokens(runners, round, samples);
      for (const { label, server: runner } of runners)
        await sampleRound(runner, round, samples.get(label) ?? noSamples());
      console.log(`${name}: round ${round + 1} of ${rounds} done (load average ${loadavg()[0]?.toFixed(1)})`);
    }
    const lbPp = median(pp);
    const lbTg = median(tg);
    const lsSamples = samples.get("llama-server") ?? noSamples();
    const ls = figures(lsSamples);
    lines.push(
      `| ${name} | llama-bench (pp${nPrompt}, tg${tokens}) | ${fixed(lbPp, 1)} | ${fixed(lbTg, 1)} | | | | | | | | | |`,
      `| ${name} | llama-server | ${fixed(ls.prefillTps, 1)} | ${fixed(ls.insideDecodeTps, 1)} | ${fixed(ls.ttftMs, 1)} | ${fixed(ls.decodeTps, 1)} | ${fixed(ls.sideCpuMs, 2)} | ${fixed(ls.scaling, 2)} | ${fixed(ls.insideDecodeTps / lbTg, 2)} | ${fixed(ls.prefillTps / lbPp, 2)} | | | |`,
    );
    for (const { label } of runners.slice(1)) {
      const cxSamples = samples.get(label) ?? noSamples();
      const cx = figures(cxSamples);
      lines.push(
        `| ${name} | ${label} | ${fixed(cx.prefillTps, 1)} | ${fixed(cx.insideDecodeTps, 1)} | ${fixed(cx.ttftMs, 1)} | ${fixed(cx.decodeTps, 1)} | ${fixed(cx.sideCpuMs, 2)} | ${fixed(cx.scaling, 2)} | ${fixed(cx.insideDecodeTps / lbTg, 2)} | ${fixed(cx.prefillTps / lbPp, 2)} | ${fixed(cx.insideDecodeTps / ls.insideDecodeTps, 2)} | ${fixed(pairedRatio(lsSamples.ttftMs, cxSamples.ttftMs), 2)} | ${fixed(cx.decodeTps / ls.decodeTps, 2)} |`,
      );
    }
    console.log(lines.slice(-runners.length - 1).join("\n"));
  } finally {
    for (const { server: runner } of runners) await runner.stop();
  }
}
console.log(`\n${lines.join("\n")}`);
