// The benchmark's peer: node-llama-cpp driving the same prebuilt libllama,
// run under Node.js as a child of bench/neuron-decode.ts. It is plain ESM
// JavaScript because Node 20 cannot run TypeScript and node-llama-cpp is not
// installed in the main tree (see bench/README.md).
//
// Protocol: one JSON command per stdin line, one JSON answer per stdout line.
//   {"cmd":"load","model":path,"threads":n,"contextSize":n,"sequences":n}
//       → {"ok":true,"systemInfo":...,"contextSize":n}
//   {"cmd":"run","prompt":text,"tokens":n,"streams":n}
//       → {"ok":true,"wallMs":ms,"streams":[{"promptTokens","tokens","decodeMs","text"}, …]}
//   Streams run concurrently, each on its own context sequence, so
//   node-llama-cpp batches them into shared llama_decode calls.
//   {"cmd":"exit"}
// Errors answer {"ok":false,"error":message}. Nothing else is written to stdout.
import { createInterface } from "node:readline";
import { getLlama, LlamaLogLevel } from "node-llama-cpp";

let llama;
let model;
let context;
let sequences = [];

function reply(message) {
  process.stdout.write(`${JSON.stringify(message)}\n`);
}

async function load({ model: path, threads, contextSize, sequences: count = 1 }) {
  // Prebuilt binaries only: never download, never compile (the machine may have no toolchain).
  llama = await getLlama({
    gpu: false,
    build: "never",
    usePrebuiltBinaries: true,
    skipDownload: true,
    progressLogs: false,
    logLevel: LlamaLogLevel.warn,
    maxThreads: threads,
  });
  model = await llama.loadModel({ modelPath: path, gpuLayers: 0 });
  // Same shape as the neuron's context: `contextSize` tokens per sequence,
  // n_batch = n_ubatch = 512, flash attention left to llama.cpp ("auto"), a fixed thread count.
  context = await model.createContext({
    contextSize,
    sequences: count,
    batchSize: 512,
    flashAttention: "auto",
    threads: { ideal: threads, min: threads },
  });
  sequences = Array.from({ length: count }, () => context.getSequence());
  return { systemInfo: llama.systemInfo, contextSize: context.contextSize, threads: context.currentThreads };
}

/** Prompt tokens as the neuron makes them: special tokens parsed, BOS added when the vocabulary asks for it. */
function promptTokens(text) {
  const tokens = model.tokenize(text, true);
  const bos = model.tokens.bos;
  if (bos != null && model.tokens.shouldPrependBosToken && tokens[0] !== bos) tokens.unshift(bos);
  return tokens;
}

async function generate(sequence, input, wanted) {
  await sequence.clearHistory();
  const generated = [];
  let firstAt = 0;
  let lastAt = 0;
  // Greedy; the end-of-generation token is yielded like any other, so every run makes exactly `wanted` tokens.
  for await (const token of sequence.evaluate(input, { temperature: 0, yieldEogToken: true })) {
    lastAt = performance.now();
    if (generated.length === 0) firstAt = lastAt;
    generated.push(token);
    if (generated.length >= wanted) break;
  }
  return {
    promptTokens: input.length,
    tokens: generated.length,
    decodeMs: lastAt - firstAt,
    text: model.detokenize(generated),
  };
}

async function run({ prompt, tokens: wanted, streams = 1 }) {
  if (streams > sequences.length)
    throw new Error(`${streams} streams, but the context has ${sequences.length}`);
  const input = promptTokens(prompt);
  const started = performance.now();
  const results = await Promise.all(sequences.slice(0, streams).map((s) => generate(s, input, wanted)));
  return { wallMs: performance.now() - started, streams: results };
}

const lines = createInterface({ input: process.stdin });
for await (const line of lines) {
  if (line.trim() === "") continue;
  let command;
  try {
    command = JSON.parse(line);
    if (command.cmd === "exit") break;
    if (command.cmd === "load") reply({ ok: true, ...(await load(command)) });
    else if (command.cmd === "run") reply({ ok: true, ...(await run(command)) });
    else reply({ ok: false, error: `unknown command ${command.cmd}` });
  } catch (error) {
    reply({ ok: false, error: error instanceof Error ? (error.stack ?? error.message) : String(error) });
  }
}
await context?.dispose();
sequences = [];
await model?.dispose();
await llama?.dispose();
process.exit(0);
