/**
 * Decode benchmark of the neuron (see bench/README.md, results in BENCHMARKS.md).
 *
 *   bun bench/neuron-decode.ts [--threads 1] [--rounds 5] [--tokens 128] [--streams 4]
 *                              [--concurrent-tokens 64] [--context 1024] [--json out.json]
 *
 * 1. Single-stream decode tokens/s of the neuron engine (DevicePool.generate,
 *    in-process) against node-llama-cpp driving the same libllama, same model,
 *    threads, context, prompt and token count, in alternating rounds.
 * 2. Aggregate tokens/s of 4 concurrent streams against 1 on the larger
 *    model (continuous batching, one model with 4 slots).
 * 3. Milliseconds per token of a bare FFI decode loop, the engine, and the
 *    neuron's HTTP API (streamed chat completions): the neuron's added latency.
 *
 * Speed is judged by ratios against a peer measured in the same run, never
 * by absolute numbers (the machines are noisy and differ).
 */
import { existsSync, mkdirSync, writeFileSync } from "node:fs";
import { cpus, release, totalmem } from "node:os";
import { join, resolve } from "node:path";
import { parseArgs } from "node:util";
import { consola } from "consola";
import { z } from "zod";
import { NeuronSection } from "../src/core/config/config-schema.ts";
import { SseDecoder } from "../src/dialects/sse/sse-parser.ts";
import type { DevicePool } from "../src/neuron/engine/device-pool.ts";
import { type RunningNeuron, startNeuron } from "../src/neuron/start-neuron.ts";
import { BareDecoder } from "./bare-decode.ts";
import { ensurePeerInstalled, PEER_PACKAGE, PEER_VERSION, PeerProcess } from "./peer-process.ts";
import { decodeRate, fixed, median, pairedRatio, range } from "./stats.ts";

const MODELS_DIR = join(import.meta.dir, ".models");
/** Words of the tiny model's corpus, so the prompt tokenizes into whole words. */
const PROMPT = "Tell me about the garden in the evening light.";
/**
 * Random-weight models (scripts/make-model.ts). `tokenScale` multiplies
 * --tokens so each run lasts long enough to time on the tiny one, whose
 * decode is so cheap that per-token overhead dominates it.
 */
const MODELS = {
  tiny: { name: "rand-8m", size: "8M", tokenScale: 4 },
  small: { name: "rand-100m", size: "100M", tokenScale: 1 },
  large: { name: "rand-300m", size: "300M", tokenScale: 1 },
} as const;
type ModelSpec = (typeof MODELS)[keyof typeof MODELS];

interface Options {
  threads: number;
  rounds: number;
  tokens: number;
  contextSize: number;
  streams: number;
  /** Tokens per stream in the concurrency section (4 streams take 4× the work). */
  concurrentTokens: number;
  json: string | undefined;
}

function parseOptions(): Options {
  const { values } = parseArgs({
    options: {
      threads: { type: "string", default: "1" },
      rounds: { type: "string", default: "5" },
      tokens: { type: "string", default: "128" },
      context: { type: "string", default: "1024" },
      streams: { type: "string", default: "4" },
      "concurrent-tokens": { type: "string", default: "64" },
      json: { type: "string" },
    },
  });
  const int = (name: string, text: string, min: number): number => {
    const value = Number(text);
    if (!Number.isInteger(value) || value < min) throw new Error(`--${name} must be an integer ≥ ${min}`);
    return value;
  };
  return {
    threads: int("threads", values.threads, 1),
    rounds: int("rounds", values.rounds, 1),
    tokens: int("tokens", values.tokens, 8),
    contextSize: int("context", values.context, 256),
    streams: int("streams", values.streams, 2),
    concurrentTokens: int("concurrent-tokens", values["concurrent-tokens"], 8),
    json: values.json,
  };
}

async function ensureModel(name: string, size: string): Promise<string> {
  const path = join(MODELS_DIR, `${name}.gguf`);
  if (existsSync(path)) return path;
  mkdirSync(MODELS_DIR, { recursive: true });
  const make = Bun.spawn(
    [
      process.execPath,
      join(import.meta.dir, "..", "scripts", "make-model.ts"),
      "--out",
      path,
      "--size",
      size,
    ],
    { stdout: "inherit", stderr: "inherit" },
  );
  if ((await make.exited) !== 0) throw new Error(`generating ${path} failed`);
  return path;
}

interface DecodeRun {
  promptTokens: number;
  tokens: number;
  decodeMs: number;
  text: string;
}

/** One greedy generation through the engine; the window runs from the first text event to `done`. */
async function engineRun(pool: DevicePool, id: string, prompt: string, tokens: number): Promise<DecodeRun> {
  const stream = pool.generate(id, { prompt, maxTokens: tokens, temperature: 0 });
  let firstAt = 0;
  let text = "";
  for await (const event of stream) {
    if (event.type === "text") {
      if (text === "") firstAt = performance.now();
      text += event.text;
    } else if (event.type === "error") {
      throw new Error(`engine: ${event.error.message}`);
    } else if (event.type === "done") {
      return {
        promptTokens: event.usage.promptTokens,
        tokens: event.usage.completionTokens,
        decodeMs: performance.now() - firstAt,
        text,
      };
    }
  }
  throw new Error("engine: the stream ended without a done event");
}

/** The parts of an OpenAI chat.completion.chunk the benchmark reads. */
const StreamChunk = z.object({
  choices: z.array(z.object({ delta: z.object({ content: z.string().nullish() }).optional() })),
  usage: z.object({ prompt_tokens: z.number(), completion_tokens: z.number() }).nullish(),
});

/** One streamed chat completion; the window runs from the first content chunk to the last. */
async function httpRun(url: string, id: string, prompt: string, tokens: number): Promise<DecodeRun> {
  const response = await fetch(`${url}/v1/chat/completions`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({
      model: id,
      messages: [{ role: "user", content: prompt }],
      max_tokens: tokens,
      temperature: 0,
      stream: true,
      stream_options: { include_usage: true },
    }),
  });
  if (!response.ok || !response.body) throw new Error(`http: ${response.status} ${await response.text()}`);
  // The project's own SSE parser, as the gateway reads a neuron; timed per network chunk.
  const sse = new SseDecoder();
  let firstAt = 0;
  let lastAt = 0;
  let text = "";
  let usage = { prompt_tokens: 0, completion_tokens: 0 };
  for await (const chunk of response.body) {
    const now = performance.now();
    for (const event of sse.push(chunk)) {
      if (event.data === "[DONE]") continue;
      const data = StreamChunk.parse(JSON.parse(event.data));
      const content = data.choices[0]?.delta?.content;
      if (content) {
        if (text === "") firstAt = now;
        lastAt = now;
        text += content;
      }
      if (data.usage) usage = data.usage;
    }
  }
  return {
    promptTokens: usage.prompt_tokens,
    tokens: usage.completion_tokens,
    decodeMs: lastAt - firstAt,
    text,
  };
}

function checkCount(what: string, run: { tokens: number }, wanted: number): void {
  if (run.tokens !== wanted)
    throw new Error(
      `${what} made ${run.tokens} tokens instead of ${wanted} (end of generation?); try another --tokens`,
    );
}

interface SingleStreamResult {
  model: string;
  tokens: number;
  neuronTps: number[];
  peerTps: number[];
  ratio: number;
  sameOutput: boolean;
  promptTokens: { neuron: number; peer: number };
}

async function singleStream(
  neuron: RunningNeuron,
  opts: Options,
  spec: ModelSpec,
  path: string,
): Promise<SingleStreamResult> {
  const name = spec.name;
  const tokens = opts.tokens * spec.tokenScale;
  const id = `${name}-x1`;
  await neuron.service.load({ id, file: `${name}.gguf`, contextSize: opts.contextSize, slots: 1 });
  const peer = await PeerProcess.start({ model: path, threads: opts.threads, contextSize: opts.contextSize });
  try {
    // Warm-up: page the weights in, settle allocators and JITs on both sides.
    const warmNeuron = await engineRun(neuron.pool, id, PROMPT, tokens);
    const warmPeer = await peer.runOne(PROMPT, tokens);
    checkCount("the neuron", warmNeuron, tokens);
    checkCount("the peer", warmPeer, tokens);
    const neuronTps: number[] = [];
    const peerTps: number[] = [];
    for (let round = 0; round < opts.rounds; round++) {
      const sides = [
        async () => {
          const run = await engineRun(neuron.pool, id, PROMPT, tokens);
          checkCount("the neuron", run, tokens);
          neuronTps.push(decodeRate(run.tokens, run.decodeMs));
        },
        async () => {
          const run = await peer.runOne(PROMPT, tokens);
          checkCount("the peer", run, tokens);
          peerTps.push(decodeRate(run.tokens, run.decodeMs));
        },
      ];
      // Alternate who goes first, so drift within a round does not favour one side.
      if (round % 2 === 1) sides.reverse();
      for (const side of sides) await side();
      consola.info(
        `${name} round ${round + 1}/${opts.rounds}: neuron ${fixed(neuronTps.at(-1)!)} tok/s, ${PEER_PACKAGE} ${fixed(peerTps.at(-1)!)} tok/s`,
      );
    }
    return {
      model: name,
      tokens,
      neuronTps,
      peerTps,
      ratio: pairedRatio(neuronTps, peerTps),
      sameOutput: warmNeuron.text.trim() === warmPeer.text.trim(),
      promptTokens: { neuron: warmNeuron.promptTokens, peer: warmPeer.promptTokens },
    };
  } finally {
    await peer.close();
    await neuron.service.unload({ id });
  }
}

interface ConcurrencyResult {
  model: string;
  streams: number;
  neuron: { oneTps: number[]; manyTps: number[]; ratio: number };
  peer: { oneTps: number[]; manyTps: number[]; ratio: number };
  /** Neuron: generated tokens per llama_decode call during the concurrent runs (ideal: `streams`). */
  tokensPerDecode: number;
  /** Bare llama_decode, median ms per step with 1 and with `streams` sequences generating. */
  stepMs: { one: number; many: number };
  /** What libllama itself allows: streams × stepMs.one / stepMs.many. */
  ceiling: number;
}

/** Aggregate tokens/s of `count` streams started together: all tokens over the wall time until the last ends. */
async function aggregate(pool: DevicePool, id: string, count: number, tokens: number): Promise<number> {
  const started = performance.now();
  const runs = await Promise.all(Array.from({ length: count }, () => engineRun(pool, id, PROMPT, tokens)));
  const wallMs = performance.now() - started;
  for (const run of runs) checkCount("a concurrent stream", run, tokens);
  return (runs.reduce((sum, run) => sum + run.tokens, 0) * 1000) / wallMs;
}

async function peerAggregate(peer: PeerProcess, count: number, tokens: number): Promise<number> {
  const run = await peer.run(PROMPT, tokens, count);
  for (const stream of run.streams) checkCount("a concurrent peer stream", stream, tokens);
  return (run.streams.reduce((sum, stream) => sum + stream.tokens, 0) * 1000) / run.wallMs;
}

async function concurrency(
  neuron: RunningNeuron,
  opts: Options,
  name: string,
  path: string,
): Promise<ConcurrencyResult> {
  const id = `${name}-x${opts.streams}`;
  const streams = opts.streams;
  await neuron.service.load({ id, file: `${name}.gguf`, contextSize: opts.contextSize, slots: streams });
  const peer = await PeerProcess.start({
    model: path,
    threads: opts.threads,
    contextSize: opts.contextSize,
    sequences: streams,
  });
  try {
    await aggregate(neuron.pool, id, streams, opts.concurrentTokens);
    await peerAggregate(peer, streams, opts.concurrentTokens);
    const neuronOne: number[] = [];
    const neuronMany: number[] = [];
    const peerOne: number[] = [];
    const peerMany: number[] = [];
    let sampled = 0;
    let decodeCalls = 0;
    const measureMany = async () => {
      const before = await neuron.pool.stats("cpu-0");
      neuronMany.push(await aggregate(neuron.pool, id, streams, opts.concurrentTokens));
      const after = await neuron.pool.stats("cpu-0");
      sampled += after.tokensSampled - before.tokensSampled;
      decodeCalls += after.decodeCalls - before.decodeCalls;
    };
    for (let round = 0; round < opts.rounds; round++) {
      const sides = [
        async () => neuronOne.push(await aggregate(neuron.pool, id, 1, opts.concurrentTokens)),
        measureMany,
        async () => peerOne.push(await peerAggregate(peer, 1, opts.concurrentTokens)),
        async () => peerMany.push(await peerAggregate(peer, streams, opts.concurrentTokens)),
      ];
      if (round % 2 === 1) sides.reverse();
      for (const side of sides) await side();
      consola.info(
        `${name} round ${round + 1}/${opts.rounds}: neuron 1 stream ${fixed(neuronOne.at(-1)!)} tok/s, ${streams} streams ${fixed(neuronMany.at(-1)!)}; ${PEER_PACKAGE} ${fixed(peerOne.at(-1)!)}, ${fixed(peerMany.at(-1)!)}`,
      );
    }
    // The hardware's own answer: a bare llama_decode step with 1 and with `streams` sequences.
    const bare = BareDecoder.open({
      model: path,
      threads: opts.threads,
      contextSize: opts.contextSize,
      sequences: streams,
    });
    const one: number[] = [];
    const many: number[] = [];
    try {
      for (let round = 0; round < 3; round++) {
        one.push(bare.stepMs(1, 32));
        many.push(bare.stepMs(streams, 32));
      }
    } finally {
      bare.close();
    }
    const stepMs = { one: median(one), many: median(many) };
    return {
      model: name,
      streams,
      stepMs,
      ceiling: (streams * stepMs.one) / stepMs.many,
      neuron: { oneTps: neuronOne, manyTps: neuronMany, ratio: pairedRatio(neuronMany, neuronOne) },
      peer: { oneTps: peerOne, manyTps: peerMany, ratio: pairedRatio(peerMany, peerOne) },
      tokensPerDecode: sampled / decodeCalls,
    };
  } finally {
    await peer.close();
    await neuron.service.unload({ id });
  }
}

interface LatencyResult {
  model: string;
  tokens: number;
  bareMs: number[];
  engineMs: number[];
  httpMs: number[];
}

async function latency(
  neuron: RunningNeuron,
  opts: Options,
  spec: ModelSpec,
  path: string,
): Promise<LatencyResult> {
  const name = spec.name;
  const tokens = opts.tokens * spec.tokenScale;
  const id = `${name}-x1`;
  await neuron.service.load({ id, file: `${name}.gguf`, contextSize: opts.contextSize, slots: 1 });
  const bare = BareDecoder.open({ model: path, threads: opts.threads, contextSize: opts.contextSize });
  try {
    const perToken = (run: { tokens: number; decodeMs: number }) => run.decodeMs / (run.tokens - 1);
    const kinds = {
      bare: async () => perToken(bare.run(PROMPT, tokens)),
      engine: async () => perToken(await engineRun(neuron.pool, id, PROMPT, tokens)),
      http: async () => {
        const run = await httpRun(neuron.url, id, PROMPT, tokens);
        checkCount("the HTTP stream", run, tokens);
        return perToken(run);
      },
    };
    for (const run of Object.values(kinds)) await run();
    const results: Record<keyof typeof kinds, number[]> = { bare: [], engine: [], http: [] };
    const order = Object.keys(kinds) as Array<keyof typeof kinds>;
    for (let round = 0; round < opts.rounds; round++) {
      // Rotate the order each round so no kind always runs right after another.
      for (let k = 0; k < order.length; k++) {
        const kind = order[(round + k) % order.length]!;
        results[kind].push(await kinds[kind]());
      }
      consola.info(
        `${name} round ${round + 1}/${opts.rounds}: bare ${fixed(results.bare.at(-1)!, 3)} ms/token, engine ${fixed(results.engine.at(-1)!, 3)}, http ${fixed(results.http.at(-1)!, 3)}`,
      );
    }
    return { model: name, tokens, bareMs: results.bare, engineMs: results.engine, httpMs: results.http };
  } finally {
    bare.close();
    await neuron.service.unload({ id });
  }
}

function spread(values: number[], digits = 1): string {
  const [low, high] = range(values);
  return `${fixed(median(values), digits)} (${fixed(low, digits)}–${fixed(high, digits)})`;
}

function report(
  opts: Options,
  machine: Record<string, string>,
  single: SingleStreamResult[],
  conc: ConcurrencyResult,
  lat: LatencyResult,
): string {
  const lines: string[] = [];
  lines.push(`date: ${new Date().toISOString()}`);
  for (const [key, value] of Object.entries(machine)) lines.push(`${key}: ${value}`);
  lines.push(
    `settings: threads ${opts.threads}, context ${opts.contextSize} per sequence, ${opts.tokens} generated tokens per stream (${opts.concurrentTokens} in section 2), greedy, ${opts.rounds} alternating rounds after a warm-up; medians (min–max)`,
  );
  lines.push("");
  lines.push(`1. Single-stream decode, neuron engine vs ${PEER_PACKAGE} ${PEER_VERSION} (same libllama)`);
  lines.push("");
  lines.push(
    "| model | tokens | neuron tok/s | node-llama-cpp tok/s | ratio (median of rounds) | same greedy text |",
  );
  lines.push("|---|---|---|---|---|---|");
  for (const s of single)
    lines.push(
      `| ${s.model} | ${s.tokens} | ${spread(s.neuronTps)} | ${spread(s.peerTps)} | **${fixed(s.ratio, 3)}** | ${s.sameOutput ? "yes" : "no"} |`,
    );
  lines.push("");
  lines.push(
    `2. Aggregate decode tokens/s, ${conc.streams} concurrent streams vs 1 (one model with ${conc.streams} slots / sequences)`,
  );
  lines.push("");
  lines.push(`| model | engine | 1 stream tok/s | ${conc.streams} streams tok/s | ratio |`);
  lines.push("|---|---|---|---|---|");
  lines.push(
    `| ${conc.model} | neuron | ${spread(conc.neuron.oneTps)} | ${spread(conc.neuron.manyTps)} | **${fixed(conc.neuron.ratio, 2)}** |`,
  );
  lines.push(
    `| ${conc.model} | ${PEER_PACKAGE} | ${spread(conc.peer.oneTps)} | ${spread(conc.peer.manyTps)} | ${fixed(conc.peer.ratio, 2)} |`,
  );
  lines.push("");
  lines.push(
    `neuron: ${fixed(conc.tokensPerDecode, 2)} generated tokens per llama_decode call during the ${conc.streams}-stream runs (ideal ${conc.streams})`,
  );
  lines.push(
    `bare llama_decode step: ${fixed(conc.stepMs.one, 2)} ms with 1 sequence, ${fixed(conc.stepMs.many, 2)} ms with ${conc.streams}: the hardware allows at most **${fixed(conc.ceiling, 2)}×**`,
  );
  lines.push("");
  lines.push(
    `3. Milliseconds per generated token (decode window, ${lat.tokens} tokens), and the neuron's added latency`,
  );
  lines.push("");
  const bare = median(lat.bareMs);
  lines.push("| model | path | ms/token | added over bare loop |");
  lines.push("|---|---|---|---|");
  lines.push(`| ${lat.model} | bare FFI loop | ${spread(lat.bareMs, 3)} | — |`);
  lines.push(
    `| ${lat.model} | engine (Worker, in-process) | ${spread(lat.engineMs, 3)} | ${fixed(median(lat.engineMs) - bare, 3)} ms |`,
  );
  lines.push(
    `| ${lat.model} | HTTP (streamed chat completion) | ${spread(lat.httpMs, 3)} | ${fixed(median(lat.httpMs) - bare, 3)} ms |`,
  );
  return lines.join("\n");
}

async function main(): Promise<void> {
  const opts = parseOptions();
  const started = performance.now();
  const paths = {
    tiny: await ensureModel(MODELS.tiny.name, MODELS.tiny.size),
    small: await ensureModel(MODELS.small.name, MODELS.small.size),
    large: await ensureModel(MODELS.large.name, MODELS.large.size),
  };
  await ensurePeerInstalled();
  const neuron = await startNeuron({
    config: NeuronSection.parse({
      models_dir: resolve(MODELS_DIR),
      threads: opts.threads,
      default_context_size: opts.contextSize,
    }),
    listen: { hostname: "127.0.0.1", port: 0 },
    preloadDemo: false,
  });
  try {
    const probe = await PeerProcess.start({
      model: paths.small,
      threads: opts.threads,
      contextSize: opts.contextSize,
    });
    const machine = {
      cpu: `${cpus()[0]?.model ?? "?"} × ${cpus().length} logical cores`,
      memory: `${Math.round(totalmem() / 2 ** 30)} GiB`,
      os: `Linux ${release()}`,
      runtimes: `bun ${Bun.version}, node ${await nodeVersion()}`,
      libllama: `@node-llama-cpp/linux-x64 ${PEER_VERSION} (CPU backend: ${probe.systemInfo.trim()})`,
    };
    await probe.close();
    const single: SingleStreamResult[] = [];
    for (const key of ["small", "large", "tiny"] as const)
      single.push(await singleStream(neuron, opts, MODELS[key], paths[key]));
    const conc = await concurrency(neuron, opts, MODELS.large.name, paths.large);
    const lat = await latency(neuron, opts, MODELS.tiny, paths.tiny);
    const text = report(opts, machine, single, conc, lat);
    console.log(`\n${text}\n`);
    consola.info(`benchmark took ${fixed((performance.now() - started) / 1000)} s`);
    if (opts.json)
      writeFileSync(opts.json, `${JSON.stringify({ opts, machine, single, conc, lat }, null, 2)}\n`);
  } finally {
    await neuron.stop();
  }
}

async function nodeVersion(): Promise<string> {
  const node = Bun.spawn(["node", "--version"], { stdout: "pipe" });
  return (await new Response(node.stdout).text()).trim();
}

if (import.meta.main) {
  main().then(
    () => process.exit(0),
    (error: unknown) => {
      consola.error(error instanceof Error ? (error.stack ?? error.message) : error);
      process.exit(1);
    },
  );
}
