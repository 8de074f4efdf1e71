/**
 * Prefix reuse on an agent trace, cortex's neuron against llama-server built
 * from the same llama.cpp source (bench/peers/build-llama-server.ts), on the
 * same GGUF, slots, threads, per-slot context, batch size and host-memory
 * prompt-cache budget, in one run.
 *
 * The trace: N conversations of T turns each; every conversation has its own
 * fixed system prompt of about P tokens (an agent's system prompt and tools)
 * and adds about U tokens of user text per turn; turns are interleaved round
 * robin (turn 1 of every conversation, then turn 2 of every one, …) and sent
 * one at a time, so TTFT is the server's prefill work alone. With more
 * conversations than slots, a conversation's slot has been taken by another
 * one by the time it comes back: only a host-memory cache keeps its prefix.
 *
 *   bun bench/prefix-reuse.ts                          # 8 × 6 turns, ~3000-token prefixes, 4 slots
 *   bun bench/prefix-reuse.ts --turns 3 --prefix-tokens 1500 --json /tmp/prefix.json
 *
 * Prints TTFT per turn (median, p90) for both, prompt tokens each computed
 * (cortex: usage prompt_tokens − cached_tokens; llama-server: timings.prompt_n),
 * and the ratios.
 */
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { parseArgs } from "node:util";
import { z } from "zod";
import { ensureModel, MODELS, MODELS_DIR } from "../scripts/fetch-models.ts";
import { NeuronSection } from "../src/core/config/config-schema.ts";
import { SseDecoder } from "../src/dialects/sse/sse-parser.ts";
import { startNeuron } from "../src/neuron/start-neuron.ts";
import {
  type TraceMessage,
  systemPrompt as traceSystemPrompt,
  userTurn as traceUserTurn,
} from "./agent-trace.ts";
import { withLlamaServer } from "./peers/llama-server-process.ts";
import { ensureLlamaServer } from "./peers/build-llama-server.ts";
import { fixed, median } from "./stats.ts";

const { values: args } = parseArgs({
  options: {
    conversations: { type: "string", default: "8" },
    turns: { type: "string", default: "6" },
    "prefix-tokens": { type: "string", default: "3000" },
    "turn-tokens": { type: "string", default: "100" },
    "answer-tokens": { type: "string", default: "16" },
    slots: { type: "string", default: "4" },
    threads: { type: "string", default: "1" },
    "context-size": { type: "string", default: "4096" },
    "cache-mib": { type: "string", default: "2048" },
    json: { type: "string" },
  },
});
const opts = {
  conversations: Number(args.conversations),
  turns: Number(args.turns),
  prefixTokens: Number(args["prefix-tokens"]),
  turnTokens: Number(args["turn-tokens"]),
  answerTokens: Number(args["answer-tokens"]),
  slots: Number(args.slots),
  threads: Number(args.threads),
  contextSize: Number(args["context-size"]),
  cacheMiB: Number(args["cache-mib"]),
};
for (const [key, value] of Object.entries(opts))
  if (!Number.isInteger(value) || value < 0)
    throw new Error(`--${key}: expected a non-negative integer, got ${value}`);

const MODEL_ID = "smollm2-135m";
/** llama-server's own log, for when it fails. */
const LLAMA_SERVER_LOG = join(tmpdir(), "cortex-bench-llama-server.log");
const BATCH = 512;

function systemPrompt(c: number): string {
  return traceSystemPrompt(c, opts.prefixTokens);
}

function userTurn(c: number, t: number): string {
  return traceUserTurn(c, t, opts.turnTokens);
}

const Chunk = z.object({
  choices: z.array(z.object({ delta: z.object({ content: z.string().nullish() }).partial() })).optional(),
  usage: z
    .object({
      prompt_tokens: z.number(),
      prompt_tokens_details: z.object({ cached_tokens: z.number() }).nullish(),
    })
    .nullish(),
  timings: z.object({ prompt_n: z.number(), cache_n: z.number().optional() }).nullish(),
});

interface TurnResult {
  conversation: number;
  turn: number;
  ttftMs: number;
  promptTokens: number;
  computed: number;
  text: string;
}

async function streamTurn(
  url: string,
  model: string,
  messages: TraceMessage[],
): Promise<Omit<TurnResult, "conversation" | "turn">> {
  const started = performance.now();
  const response = await fetch(`${url}/v1/chat/completions`, {
    method: "POST",
    // A fresh connection per turn on both sides: llama-server drops idle keep-alive
    // connections, and a reused one it has closed fails with ECONNRESET.
    headers: { "content-type": "application/json", connection: "close" },
    body: JSON.stringify({
      model,
      messages,
      max_tokens: opts.answerTokens,
      temperature: 0,
      stream: true,
      stream_options: { include_usage: true },
    }),
  });
  if (!response.ok || !response.body) throw new Error(`${url}: ${response.status} ${await response.text()}`);
  const sse = new SseDecoder();
  let ttftMs = 0;
  let text = "";
  let promptTokens = 0;
  let computed: number | undefined;
  let cached = 0;
  for await (const chunk of response.body) {
    const now = performance.now();
    for (const event of sse.push(chunk)) {
      if (event.data === "[DONE]") continue;
      const data = Chunk.parse(JSON.parse(event.data));
      const content = data.choices?.[0]?.delta?.content;
      if (content) {
        if (ttftMs === 0) ttftMs = now - started;
        text += content;
      }
      if (data.usage) {
        promptTokens = data.usage.prompt_tokens;
        cached = data.usage.prompt_tokens_details?.cached_tokens ?? 0;
      }
      // llama-server's own count of the prompt tokens it evaluated.
      if (data.timings) computed = data.timings.prompt_n;
    }
  }
  if (ttftMs === 0) ttftMs = performance.now() - started;
  return { ttftMs, promptTokens, computed: computed ?? promptTokens - cached, text };
}

/** The whole trace against one server; every conversation keeps its own history of that server's answers. */
async function runTrace(name: string, url: string, model: string): Promise<TurnResult[]> {
  const histories: TraceMessage[][] = Array.from({ length: opts.conversations }, (_, c) => [
    { role: "system", content: systemPrompt(c) },
  ]);
  const results: TurnResult[] = [];
  for (let turn = 0; turn < opts.turns; turn++) {
    for (let c = 0; c < opts.conversations; c++) {
      const history = histories[c] ?? [];
      history.push({ role: "user", content: userTurn(c, turn) });
      const result = await streamTurn(url, model, history);
      history.push({ role: "assistant", content: result.text });
      results.push({ conversation: c, turn, ...result });
    }
    const ofTurn = results.filter((r) => r.turn === turn);
    console.error(
      `${name}: turn ${turn + 1} TTFT median ${fixed(median(ofTurn.map((r) => r.ttftMs)), 0)} ms, prompt ${fixed(median(ofTurn.map((r) => r.promptTokens)), 0)} tokens, computed ${ofTurn.reduce((n, r) => n + r.computed, 0)}`,
    );
  }
  return results;
}

function percentile(values: readonly number[], p: number): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)] ?? Number.NaN;
}

async function runCortex(modelPath: string): Promise<TurnResult[]> {
  const neuron = await startNeuron({
    config: NeuronSection.parse({
      models_dir: resolve(MODELS_DIR),
      threads: opts.threads,
      prompt_cache_bytes: opts.cacheMiB * 2 ** 20,
    }),
    listen: { hostname: "127.0.0.1", port: 0 },
    preloadDemo: false,
  });
  try {
    const load = await fetch(`${neuron.url}/models/load`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({
        id: MODEL_ID,
        file: modelPath.slice(resolve(MODELS_DIR).length + 1),
        contextSize: opts.contextSize,
        slots: opts.slots,
      }),
    });
    if (!load.ok) throw new Error(`cortex load: ${load.status} ${await load.text()}`);
    return await runTrace("cortex", neuron.url, MODEL_ID);
  } finally {
    await neuron.stop();
  }
}

function runLlamaServer(server: string, modelPath: string): Promise<TurnResult[]> {
  return withLlamaServer(
    {
      server,
      model: modelPath,
      threads: opts.threads,
      slots: opts.slots,
      contextSize: opts.contextSize,
      batch: BATCH,
      cacheMiB: opts.cacheMiB,
      log: LLAMA_SERVER_LOG,
    },
    (url) => runTrace("llama-server", url, MODEL_ID),
  );
}

interface TurnSummary {
  turn: number;
  cortex: { median: number; p90: number };
  llamaServer: { median: number; p90: number };
  ratio: number;
}

function summarise(cortex: TurnResult[], peer: TurnResult[]) {
  const turns: TurnSummary[] = [];
  for (let turn = 0; turn < opts.turns; turn++) {
    const a = cortex.filter((r) => r.turn === turn).map((r) => r.ttftMs);
    const b = peer.filter((r) => r.turn === turn).map((r) => r.ttftMs);
    turns.push({
      turn: turn + 1,
      cortex: { median: median(a), p90: percentile(a, 90) },
      llamaServer: { median: median(b), p90: percentile(b, 90) },
      ratio: median(a) / median(b),
    });
  }
  const computed = (rs: TurnResult[]) => rs.reduce((n, r) => n + r.computed, 0);
  const prompt = (rs: TurnResult[]) => rs.reduce((n, r) => n + r.promptTokens, 0);
  const later = (rs: TurnResult[]) => median(rs.filter((r) => r.turn > 0).map((r) => r.ttftMs));
  const first = (rs: TurnResult[]) => median(rs.filter((r) => r.turn === 0).map((r) => r.ttftMs));
  return {
    turns,
    promptTokens: { cortex: prompt(cortex), llamaServer: prompt(peer) },
    computedTokens: { cortex: computed(cortex), llamaServer: computed(peer) },
    computedRatio: computed(cortex) / computed(peer),
    laterOverFirst: { cortex: later(cortex) / first(cortex), llamaServer: later(peer) / first(peer) },
    laterTtftRatio: later(cortex) / later(peer),
  };
}

async function main(): Promise<void> {
  const modelPath = await ensureModel(MODEL_ID);
  const { server, version } = await ensureLlamaServer();
  console.error(
    `model ${MODELS[MODEL_ID].description}; llama-server from node-llama-cpp ${version}'s llama.cpp; ` +
      `${opts.conversations} conversations × ${opts.turns} turns, ~${opts.prefixTokens}-token prefixes, ~${opts.turnTokens} tokens a turn, ` +
      `${opts.answerTokens}-token answers, ${opts.slots} slots × ${opts.contextSize} context, ${opts.threads} thread(s), host cache ${opts.cacheMiB} MiB`,
  );
  const cortex = await runCortex(modelPath);
  const peer = await runLlamaServer(server, modelPath);
  const summary = summarise(cortex, peer);

  console.log(
    "\nTTFT per turn (ms): cortex median / p90 | llama-server median / p90 | cortex ÷ llama-server (medians)",
  );
  for (const t of summary.turns)
    console.log(
      `turn ${t.turn}: ${fixed(t.cortex.median, 0)} / ${fixed(t.cortex.p90, 0)} | ${fixed(t.llamaServer.median, 0)} / ${fixed(t.llamaServer.p90, 0)} | ${fixed(t.ratio, 2)}`,
    );
  console.log(
    `prompt tokens computed: cortex ${summary.computedTokens.cortex} of ${summary.promptTokens.cortex}, ` +
      `llama-server ${summary.computedTokens.llamaServer} of ${summary.promptTokens.llamaServer} ` +
      `(cortex ÷ llama-server ${fixed(summary.computedRatio, 2)})`,
  );
  console.log(
    `turns ≥ 2 TTFT ÷ turn 1 TTFT (medians): cortex ${fixed(summary.laterOverFirst.cortex, 3)}, llama-server ${fixed(summary.laterOverFirst.llamaServer, 3)}; ` +
      `turns ≥ 2 TTFT cortex ÷ llama-server ${fixed(summary.laterTtftRatio, 2)}`,
  );
  if (args.json)
    await Bun.write(args.json, JSON.stringify({ opts, summary, cortex, llamaServer: peer }, null, 2));
}

await main();
