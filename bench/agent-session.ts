/**
 * Recorded real agent sessions (bench/record-agent-session.ts writes
 * bench/__fixtures__/) replayed turn by turn, each body as the CLI sent it
 * (streamed, answer length cut to --answer-tokens), against cortex (`cortex
 * serve`'s gateway over an in-process neuron) and against llama-server built
 * from the same llama.cpp source (bench/peers/build-llama-server.ts; its own
 * endpoint for the same API, `--jinja`, so both render the GGUF's template),
 * on the same GGUF (the demo model `cortex-tiny`: Claude Code's prompts are
 * ~35k tokens in its word vocabulary, too long for SmolLM2's 8k context),
 * threads, per-slot context, slots and host-memory prompt-cache budget.
 *
 * - Claude Code (`/v1/messages` on both sides), two variants: the bodies as
 *   recorded, and with the billing block's `cch=<5 hex>` rotated per request,
 *   as Claude Code versions that hash each body send it (the recorded CLI
 *   sends a constant block without `cch`).
 * - Codex `exec` (`/v1/responses` on both sides: this llama-server converts
 *   Responses input items to chat messages itself), the bodies as recorded.
 *
 * Each variant --runs times (default 3), each run on freshly started servers,
 * cortex then llama-server.
 *
 *   bun bench/agent-session.ts
 *   bun bench/agent-session.ts --sessions codex --threads 4 --json /tmp/agent-session.json
 *
 * Prints per turn the medians over the runs: TTFT, prompt tokens and tokens
 * computed (prefill: prompt tokens less those read from cache, from each
 * API's usage), the ratio cortex ÷ llama-server, the session totals, and
 * whether the targets hold.
 */
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { z } from "zod";
import { startLocalNeuron } from "../src/cli/local-neuron.ts";
import { loadConfig } from "../src/core/config/load-config.ts";
import { configureLogging } from "../src/core/logger.ts";
import { SseDecoder } from "../src/dialects/sse/sse-parser.ts";
import { startGateway } from "../src/gateway/run-gateway.ts";
import { ensureDemoModel, TINY_MODEL_FILE } from "../src/neuron/gguf/tiny-model.ts";
import { withLlamaServer } from "./peers/llama-server-process.ts";
import { ensureLlamaServer } from "./peers/build-llama-server.ts";
import { fixed, median, pairedRatio } from "./stats.ts";

const { values: args } = parseArgs({
  options: {
    fixture: { type: "string", default: join(import.meta.dir, "__fixtures__", "claude-code-agent-session") },
    "codex-fixture": {
      type: "string",
      default: join(import.meta.dir, "__fixtures__", "codex-agent-session"),
    },
    sessions: { type: "string", default: "claude-code,codex" },
    "answer-tokens": { type: "string", default: "16" },
    slots: { type: "string", default: "4" },
    threads: { type: "string", default: "1" },
    "context-size": { type: "string", default: "65536" },
    "cache-mib": { type: "string", default: "2048" },
    runs: { type: "string", default: "3" },
    json: { type: "string" },
  },
});
const opts = {
  answerTokens: Number(args["answer-tokens"]),
  slots: Number(args.slots),
  threads: Number(args.threads),
  contextSize: Number(args["context-size"]),
  cacheMiB: Number(args["cache-mib"]),
  runs: Number(args.runs),
};
for (const [key, value] of Object.entries(opts))
  if (!Number.isInteger(value) || value <= 0)
    throw new Error(`--${key}: expected a positive integer, got ${value}`);

const MODEL_ID = "cortex-tiny";
const BATCH = 512;
const LLAMA_SERVER_LOG = join(tmpdir(), "cortex-bench-agent-session-llama-server.log");
const BILLING = "x-anthropic-billing-header:";

type Body = Record<string, unknown>;

function loadTurns(dir: string): Body[] {
  return readdirSync(dir)
    .filter((name) => name.endsWith(".json"))
    .sort()
    .map((name) => JSON.parse(readFileSync(join(dir, name), "utf8")) as Body);
}

/** The body with its billing block's `cch` set to `hash` (added where the CLI sent none). */
function withCch(body: Body, hash: string): Body {
  const system = body.system;
  if (!Array.isArray(system)) return body;
  return {
    ...body,
    system: system.map((block: { type?: string; text?: string }) => {
      if (typeof block.text !== "string" || !block.text.startsWith(BILLING)) return block;
      const text = /cch=[0-9a-f]+;/.test(block.text)
        ? block.text.replace(/cch=[0-9a-f]+;/, `cch=${hash};`)
        : `${block.text.trimEnd()} cch=${hash};`;
      return { ...block, text };
    }),
  };
}

const Usage = z
  .object({
    input_tokens: z.number().optional(),
    cache_read_input_tokens: z.number().nullish(),
  })
  .passthrough();
const Event = z
  .object({
    type: z.string(),
    message: z.object({ usage: Usage.optional() }).passthrough().optional(),
    usage: Usage.optional(),
  })
  .passthrough();
const ResponsesEvent = z
  .object({
    type: z.string(),
    response: z
      .object({
        usage: z
          .object({
            input_tokens: z.number(),
            input_tokens_details: z.object({ cached_tokens: z.number() }).passthrough().nullish(),
          })
          .passthrough()
          .nullish(),
      })
      .passthrough()
      .optional(),
  })
  .passthrough();

/** What one SSE event says: whether it is the first output, and the usage it carries. */
interface Reading {
  output: boolean;
  /** Prompt tokens in all, and those computed (not read from cache). */
  usage?: { prompt?: number; computed?: number; cached?: number };
}

/** One API as the replay speaks it: the path, headers, the body sent and how its stream reads. */
interface Dialect {
  path: string;
  headers: Record<string, string>;
  request(body: Body): Body;
  read(data: unknown): Reading;
  /** A short request with its own system prompt, so loading the model is not timed and nothing of the session is cached. */
  warmUp: Body;
}

const ANTHROPIC: Dialect = {
  path: "/v1/messages",
  headers: { "anthropic-version": "2023-06-01", "x-api-key": "sk-bench" },
  request: (body) => ({
    ...body,
    model: MODEL_ID,
    max_tokens: opts.answerTokens,
    stream: true,
    temperature: 0,
  }),
  read(raw) {
    const data = Event.parse(raw);
    const output = data.type === "content_block_delta" || data.type === "message_delta";
    let usage: Reading["usage"];
    // Anthropic's input_tokens is net of cache reads: it is what was computed.
    for (const u of [data.message?.usage, data.usage]) {
      if (u?.input_tokens !== undefined) usage = { ...usage, computed: u.input_tokens };
      if (typeof u?.cache_read_input_tokens === "number")
        usage = { ...usage, cached: u.cache_read_input_tokens };
    }
    return usage === undefined ? { output } : { output, usage };
  },
  warmUp: { system: "warm up", messages: [{ role: "user", content: "hello" }] },
};

const RESPONSES: Dialect = {
  path: "/v1/responses",
  headers: { authorization: "Bearer sk-bench" },
  request: (body) => ({
    ...body,
    model: MODEL_ID,
    max_output_tokens: opts.answerTokens,
    stream: true,
    temperature: 0,
  }),
  read(raw) {
    const data = ResponsesEvent.parse(raw);
    // Text, tool-call arguments or reasoning: whichever the model starts with.
    const output = data.type.endsWith(".delta");
    const u = data.response?.usage;
    if (data.type !== "response.completed" || !u) return { output };
    // OpenAI's input_tokens counts the whole prompt, cached_tokens the part read from cache.
    const cached = u.input_tokens_details?.cached_tokens ?? 0;
    return { output, usage: { prompt: u.input_tokens, computed: u.input_tokens - cached, cached } };
  },
  warmUp: { instructions: "warm up", input: "hello" },
};

interface TurnResult {
  turn: number;
  ttftMs: number;
  totalMs: number;
  promptTokens: number;
  computed: number;
}

async function streamTurn(dialect: Dialect, url: string, body: Body, turn: number): Promise<TurnResult> {
  const started = performance.now();
  const response = await fetch(`${url}${dialect.path}`, {
    method: "POST",
    // One connection per request: reusing a kept-alive connection after a stream, this llama-server dropped the next request (ECONNRESET).
    headers: { "content-type": "application/json", ...dialect.headers, connection: "close" },
    body: JSON.stringify(dialect.request(body)),
  });
  if (!response.ok || !response.body) throw new Error(`${url}: ${response.status} ${await response.text()}`);
  const sse = new SseDecoder();
  let ttftMs = 0;
  let computed: number | undefined;
  let prompt: number | undefined;
  let cached = 0;
  for await (const chunk of response.body) {
    const now = performance.now();
    for (const event of sse.push(chunk)) {
      if (event.data === "[DONE]" || event.data === "") continue;
      const raw = JSON.parse(event.data) as { type?: string };
      if (raw.type === "error" || raw.type === "response.failed") throw new Error(`${url}: ${event.data}`);
      const reading = dialect.read(raw);
      if (reading.output && ttftMs === 0) ttftMs = now - started;
      if (reading.usage?.computed !== undefined) computed = reading.usage.computed;
      if (reading.usage?.prompt !== undefined) prompt = reading.usage.prompt;
      if (reading.usage?.cached !== undefined) cached = reading.usage.cached;
    }
  }
  const totalMs = performance.now() - started;
  if (ttftMs === 0) ttftMs = totalMs;
  if (computed === undefined) throw new Error(`${url}: no usage in the stream`);
  return { turn, ttftMs, totalMs, promptTokens: prompt ?? computed + cached, computed };
}

async function replay(
  dialect: Dialect,
  name: string,
  url: string,
  turns: Body[],
  rotate: boolean,
): Promise<TurnResult[]> {
  await streamTurn(dialect, url, dialect.warmUp, 0);
  const results: TurnResult[] = [];
  for (const [i, body] of turns.entries()) {
    const hash = (BigInt(Bun.hash(`${name}-${i}`)) % 0x100000n).toString(16).padStart(5, "0");
    const result = await streamTurn(dialect, url, rotate ? withCch(body, hash) : body, i + 1);
    results.push(result);
    console.error(
      `${name}${rotate ? " (cch rotated)" : ""}: turn ${i + 1} TTFT ${fixed(result.ttftMs, 0)} ms, prompt ${result.promptTokens}, computed ${result.computed}`,
    );
  }
  return results;
}

async function withCortex<T>(run: (url: string) => Promise<T>): Promise<T> {
  const dir = mkdtempSync(join(tmpdir(), "cortex-bench-agent-session-"));
  const modelsDir = join(dir, "models");
  await ensureDemoModel(modelsDir);
  const path = join(dir, "cortex.toml");
  writeFileSync(
    path,
    [
      "[log]",
      'level = "warn"',
      "[gateway]",
      'listen = "127.0.0.1:0"',
      "metrics = false",
      "api_keys = []",
      "poll_interval_ms = 200",
      "[neuron]",
      `models_dir = ${JSON.stringify(modelsDir)}`,
      `threads = ${opts.threads}`,
      `prompt_cache_bytes = ${opts.cacheMiB * 2 ** 20}`,
      "[[models]]",
      `id = ${JSON.stringify(MODEL_ID)}`,
      `file = ${JSON.stringify(TINY_MODEL_FILE)}`,
      `context_size = ${opts.contextSize}`,
      `slots = ${opts.slots}`,
      "",
    ].join("\n"),
  );
  const config = loadConfig({ path, env: {} });
  configureLogging(config.file.log);
  const gateway = await startGateway(config, { startLocalNeuron });
  try {
    await gateway.whenFleet((nodes) => nodes.length > 0 && nodes.every((node) => node.state === "up"));
    return await run(gateway.url);
  } finally {
    await gateway.stop();
    rmSync(dir, { recursive: true, force: true });
  }
}

async function withPeer<T>(server: string, run: (url: string) => Promise<T>): Promise<T> {
  const modelsDir = mkdtempSync(join(tmpdir(), "cortex-bench-agent-session-ls-"));
  try {
    await ensureDemoModel(modelsDir);
    return await withLlamaServer(
      {
        server,
        model: join(modelsDir, TINY_MODEL_FILE),
        threads: opts.threads,
        slots: opts.slots,
        contextSize: opts.contextSize,
        batch: BATCH,
        cacheMiB: opts.cacheMiB,
        extra: ["--jinja"],
        log: LLAMA_SERVER_LOG,
      },
      run,
    );
  } finally {
    rmSync(modelsDir, { recursive: true, force: true });
  }
}

interface Variant {
  name: string;
  /** Per turn, the medians over the runs. */
  cortex: TurnResult[];
  llamaServer: TurnResult[];
  /** Every run, as measured. */
  runs: Array<{ cortex: TurnResult[]; llamaServer: TurnResult[] }>;
}

/** Per turn, the median of each measure over the runs (each run on fresh servers). */
function medianTurns(runs: ReadonlyArray<readonly TurnResult[]>): TurnResult[] {
  return runs[0]!.map((first, i) => {
    const of = (f: (r: TurnResult) => number) => median(runs.map((run) => f(run[i]!)));
    return {
      turn: first.turn,
      ttftMs: of((r) => r.ttftMs),
      totalMs: of((r) => r.totalMs),
      promptTokens: of((r) => r.promptTokens),
      computed: of((r) => r.computed),
    };
  });
}

function report(variant: Variant): void {
  console.log(`\n${variant.name} (medians of ${variant.runs.length} run(s))`);
  console.log(
    "turn | prompt tokens cortex / llama-server | computed cortex / llama-server | TTFT ms cortex / llama-server | TTFT ratio of medians | median of per-run ratios",
  );
  // Each run's cortex ÷ llama-server for a turn, paired: drift that hits a whole run cancels.
  const paired = variant.cortex.map((_, i) =>
    pairedRatio(
      variant.runs.map((run) => run.cortex[i]!.ttftMs),
      variant.runs.map((run) => run.llamaServer[i]!.ttftMs),
    ),
  );
  variant.cortex.forEach((c, i) => {
    const l = variant.llamaServer[i]!;
    console.log(
      `${c.turn} | ${c.promptTokens} / ${l.promptTokens} | ${c.computed} (${fixed((100 * c.computed) / c.promptTokens, 1)} %) / ${l.computed} (${fixed((100 * l.computed) / l.promptTokens, 1)} %) | ${fixed(c.ttftMs, 0)} / ${fixed(l.ttftMs, 0)} | ${fixed(c.ttftMs / l.ttftMs, 2)} | ${fixed(paired[i]!, 2)}`,
    );
  });
  const sum = (rs: TurnResult[], f: (r: TurnResult) => number) => rs.reduce((n, r) => n + f(r), 0);
  const later = (rs: TurnResult[]) => rs.filter((r) => r.turn > 1);
  const c = variant.cortex;
  const l = variant.llamaServer;
  console.log(
    `session: total ${fixed(
      sum(c, (r) => r.totalMs),
      0,
    )} ms / ${fixed(
      sum(l, (r) => r.totalMs),
      0,
    )} ms (ratio ${fixed(sum(c, (r) => r.totalMs) / sum(l, (r) => r.totalMs), 2)}); ` +
      `computed ${sum(c, (r) => r.computed)} / ${sum(l, (r) => r.computed)} tokens; ` +
      `turns ≥ 2 TTFT sum ${fixed(
        sum(later(c), (r) => r.ttftMs),
        0,
      )} / ${fixed(
        sum(later(l), (r) => r.ttftMs),
        0,
      )} ms (ratio ${fixed(sum(later(c), (r) => r.ttftMs) / sum(later(l), (r) => r.ttftMs), 2)})`,
  );
  const maxShare = Math.max(...later(c).map((r) => r.computed / r.promptTokens));
  console.log(
    `target turns ≥ 2 prefill ≤ 10 % of prompt: cortex max ${fixed(100 * maxShare, 1)} % → ${maxShare <= 0.1 ? "met" : "NOT met"}`,
  );
  // Both sides render the GGUF's template themselves: the same conversation should be about the same tokens.
  const drift = c.map((r, i) => r.promptTokens - l[i]!.promptTokens);
  console.log(`prompt tokens cortex − llama-server per turn: ${drift.join(", ")}`);
  // Where llama-server reused its cache (computed under half its prompt), cortex should be no slower.
  const reused = later(c).filter((r) => {
    const peer = l[r.turn - 1]!;
    return peer.computed < peer.promptTokens / 2;
  });
  const worst = Math.max(...reused.map((r) => r.ttftMs / l[r.turn - 1]!.ttftMs));
  const worstPaired = Math.max(...reused.map((r) => paired[r.turn - 1]!));
  console.log(
    `target TTFT ≤ 1.0 × llama-server on turns ≥ 2 where it reused its cache (${reused.length} turns): ` +
      `worst ratio of medians ${fixed(worst, 2)}, worst paired ${fixed(worstPaired, 2)} → ${Math.max(worst, worstPaired) <= 1 ? "met" : "NOT met"}`,
  );
}

/** A recorded session: its fixture, the API it speaks and the variants replayed. */
interface Session {
  name: string;
  fixture: string;
  dialect: Dialect;
  /** Whether each variant rotates the billing block's `cch` (Claude Code only). */
  rotations: boolean[];
}

const SESSIONS: Record<string, Session> = {
  "claude-code": {
    name: "Claude Code, /v1/messages",
    fixture: args.fixture,
    dialect: ANTHROPIC,
    rotations: [false, true],
  },
  codex: {
    name: "Codex exec, /v1/responses",
    fixture: args["codex-fixture"],
    dialect: RESPONSES,
    rotations: [false],
  },
};

async function main(): Promise<void> {
  const sessions = args.sessions.split(",").map((name) => {
    const session = SESSIONS[name.trim()];
    if (!session) throw new Error(`--sessions: expected claude-code and/or codex, got ${name}`);
    return session;
  });
  const { server, version } = await ensureLlamaServer();
  console.error(
    `model ${MODEL_ID}; llama-server from node-llama-cpp ${version}'s llama.cpp; ` +
      `${opts.slots} slots × ${opts.contextSize} context, ${opts.threads} thread(s), host cache ${opts.cacheMiB} MiB, ${opts.answerTokens}-token answers`,
  );
  const variants: Variant[] = [];
  for (const session of sessions) {
    const turns = loadTurns(session.fixture);
    console.error(`${session.name}: ${turns.length} recorded requests`);
    for (const rotate of session.rotations) {
      const runs: Variant["runs"] = [];
      // The two servers one after the other in each run, so drift on a shared machine hits both alike.
      for (let run = 0; run < opts.runs; run++) {
        const cortex = await withCortex((url) => replay(session.dialect, "cortex", url, turns, rotate));
        const llamaServer = await withPeer(server, (url) =>
          replay(session.dialect, "llama-server", url, turns, rotate),
        );
        runs.push({ cortex, llamaServer });
      }
      variants.push({
        name: `${session.name}: ${rotate ? "billing block with cch rotated per request" : "bodies as recorded"}`,
        cortex: medianTurns(runs.map((r) => r.cortex)),
        llamaServer: medianTurns(runs.map((r) => r.llamaServer)),
        runs,
      });
    }
  }
  for (const variant of variants) report(variant);
  if (args.json) await Bun.write(args.json, JSON.stringify({ opts, variants }, null, 2));
}

await main();
