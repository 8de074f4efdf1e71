#!/usr/bin/env bun
/**
 * A longer reliability run an operator can start (issue 18):
 *
 *   bun bench/soak.ts --minutes 10 [--concurrency 6] [--out soak.json]
 *
 * A real `cortex serve` (single-process mode: the gateway and its supervised
 * `cortex neuron` child) on the demo model, under steady mixed load from
 * `--concurrency` clients: OpenAI and Anthropic dialects (and Responses),
 * streamed and not, tool and structured-output requests, clients that abort
 * mid-stream, and bad inputs from the list (empty messages, a tool
 * schema nested 50,000 levels, the wrong content type, broken JSON, unknown
 * models, out-of-range fields, a prompt past the context, a body over the
 * 32 MiB limit). During the run it unloads and reloads a model through the
 * admin API and SIGKILLs the neuron (the supervisor restarts it).
 *
 * Every request is classified: `ok` (a complete answer, a stream that ended
 * properly), `clean_error` (a JSON error in the caller's dialect, or a
 * stream's error event), `aborted` (the client's own abort), or `lost` (a
 * connection error, a non-JSON error, a stream cut without an ending, a bad
 * input answered 2xx/5xx, no answer within 120 s). It samples RSS, open fds
 * and threads (Workers: `cx-*` threads) of both processes from /proc after
 * warm-up and at the end, scrapes the gateway's metrics, stops the gateway
 * with SIGTERM and checks that no neuron process outlives it. Prints a
 * summary; exits 1 when anything was lost or leaked.
 */
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { ensureDemoModel, TINY_MODEL_FILE } from "../src/neuron/gguf/tiny-model.ts";
import { parseStatusRssBytes } from "./process-cpu.ts";

const { values: args } = parseArgs({
  options: {
    minutes: { type: "string", default: "5" },
    concurrency: { type: "string", default: "6" },
    out: { type: "string" },
  },
});
const MINUTES = Number(args.minutes);
const CONCURRENCY = Number(args.concurrency);
if (!(MINUTES > 0) || !(CONCURRENCY > 0)) {
  console.error("usage: bun bench/soak.ts --minutes N [--concurrency C] [--out file.json]");
  process.exit(2);
}
const DURATION_MS = MINUTES * 60_000;
const REQUEST_TIMEOUT_MS = 120_000;
const root = join(import.meta.dir, "..");

type Outcome = "ok" | "clean_error" | "aborted" | "lost";

// ---------------------------------------------------------------- the server

const dir = mkdtempSync(join(tmpdir(), "cortex-soak-"));
const modelsDir = join(dir, "models");
await ensureDemoModel(modelsDir);
const configPath = join(dir, "cortex.toml");
writeFileSync(
  configPath,
  [
    "[log]",
    'level = "info"',
    'format = "json"',
    "[gateway]",
    'listen = "127.0.0.1:0"',
    'metrics_listen = "127.0.0.1:0"',
    "poll_interval_ms = 500",
    "[neuron]",
    `models_dir = ${JSON.stringify(modelsDir)}`,
    "threads = 1",
    "[[models]]",
    'id = "soak"',
    `file = "${TINY_MODEL_FILE}"`,
    "context_size = 2048",
    "slots = 4",
    "[[models]]",
    'id = "soak-b"',
    `file = "${TINY_MODEL_FILE}"`,
    "context_size = 1024",
    "slots = 2",
    "",
  ].join("\n"),
);

const gatewayProc = Bun.spawn(
  [process.execPath, join(root, "src/cli/main.ts"), "serve", "--config", configPath],
  {
    cwd: root,
    env: { ...process.env, XDG_CACHE_HOME: join(dir, "cache") },
    stdin: "ignore",
    stdout: "pipe",
    stderr: "pipe",
  },
);

let gatewayUrl = "";
let metricsUrl = "";
let neuronPid = 0;
const errorLines: string[] = [];
const logCounts = { gateway: 0, neuron: 0 };
const healthyWaiters: Array<(pid: number) => void> = [];
const listening = Promise.withResolvers<void>();

function onLogLine(text: string): void {
  let line: Record<string, unknown>;
  try {
    line = JSON.parse(text) as Record<string, unknown>;
  } catch {
    return;
  }
  if (line.process === "local-neuron") logCounts.neuron += 1;
  else logCounts.gateway += 1;
  const msg = String(line.msg ?? "");
  if (line.level === "error" || line.level === "fatal") errorLines.push(text);
  const healthy = /^local neuron pid=(\d+) is healthy/.exec(msg);
  if (healthy) {
    neuronPid = Number(healthy[1]);
    for (const waiter of healthyWaiters.splice(0)) waiter(neuronPid);
  }
  const listen = /gateway \S+ listening on ([\d.]+:\d+), metrics on ([\d.]+:\d+)/.exec(msg);
  if (listen) {
    gatewayUrl = `http://${listen[1]}`;
    metricsUrl = `http://${listen[2]}/metrics`;
    listening.resolve();
  }
}

async function readLines(stream: ReadableStream<Uint8Array>): Promise<void> {
  const decoder = new TextDecoder();
  let pending = "";
  for await (const chunk of stream) {
    pending += decoder.decode(chunk, { stream: true });
    const lines = pending.split("\n");
    pending = lines.pop() ?? "";
    for (const line of lines) onLogLine(line);
  }
}
const logsDone = Promise.all([readLines(gatewayProc.stdout), readLines(gatewayProc.stderr)]);
void gatewayProc.exited.then(() => listening.reject(new Error("cortex serve exited before it listened")));
await listening.promise;
console.log(`soak: cortex serve at ${gatewayUrl} (pid ${gatewayProc.pid}), neuron pid ${neuronPid}`);

// ---------------------------------------------------------------- /proc samples

interface Sample {
  rssMiB: number;
  fds: number;
  threads: number;
  workers: number;
}

function sample(pid: number): Sample {
  const status = readFileSync(`/proc/${pid}/status`, "utf8");
  const field = (name: string) =>
    Number(new RegExp(`^${name}:\\s+(\\d+)`, "m").exec(status)?.[1] ?? Number.NaN);
  const tasks = readdirSync(`/proc/${pid}/task`);
  const workers = tasks.filter((task) => {
    try {
      return readFileSync(`/proc/${pid}/task/${task}/comm`, "utf8").startsWith("cx-");
    } catch {
      return false;
    }
  }).length;
  return {
    rssMiB: Math.round((parseStatusRssBytes(status) / 1024 / 1024) * 10) / 10,
    fds: readdirSync(`/proc/${pid}/fd`).length,
    threads: field("Threads"),
    workers,
  };
}

// ---------------------------------------------------------------- requests

const counts = new Map<string, Record<Outcome, number>>();
const lostExamples: string[] = [];
/** Clean errors, by request class, status and error code/type: what a client met during faults. */
const cleanErrors = new Map<string, number>();
const errorExamples = new Map<string, string[]>();
function noteCleanError(kind: string, status: number, body: unknown): void {
  const error = (body as { error?: { code?: unknown; type?: unknown; message?: unknown } }).error;
  const key = `${kind.startsWith("bad:") ? "bad input" : "request"} ${status} ${String(error?.code ?? error?.type)}`;
  cleanErrors.set(key, (cleanErrors.get(key) ?? 0) + 1);
  const examples = errorExamples.get(key) ?? [];
  const message = `${kind} at ${elapsedS()} s: ${String(error?.message ?? "").slice(0, 160)}`;
  if (examples.length < 3) examples.push(message);
  errorExamples.set(key, examples);
}
function count(kind: string, outcome: Outcome, detail?: string): void {
  let row = counts.get(kind);
  if (row === undefined) {
    row = { ok: 0, clean_error: 0, aborted: 0, lost: 0 };
    counts.set(kind, row);
  }
  row[outcome] += 1;
  if (outcome === "lost" && lostExamples.length < 20) lostExamples.push(`${kind}: ${detail ?? "?"}`);
}

const PROMPTS = [
  "Tell me about the cat.",
  "What is in the garden?",
  "Say something about the river.",
  "Hello",
];
const pick = <T>(items: readonly T[]): T => items[Math.floor(Math.random() * items.length)]!;
const userMessage = () => [{ role: "user", content: pick(PROMPTS) }];

const WEATHER_TOOL_OPENAI = {
  type: "function",
  function: {
    name: "get_weather",
    description: "Weather for a city",
    parameters: {
      type: "object",
      properties: { city: { type: "string", maxLength: 10 } },
      required: ["city"],
    },
  },
};

function deepSchema(depth: number): string {
  return `${'{"type":"object","properties":{"a":'.repeat(depth)}{"type":"string"}${"}}".repeat(depth)}`;
}
const DEEP_TOOL_BODY = `{"model":"soak","max_tokens":4,"messages":[{"role":"user","content":"hi"}],"tools":[{"type":"function","function":{"name":"deep","parameters":${deepSchema(50_000)}}}]}`;

type Dialect = "openai" | "anthropic" | "responses";

interface Call {
  path: string;
  dialect: Dialect;
  body: string;
  contentType?: string;
  stream?: boolean;
  /** A bad input: the right answer is a 4xx in the dialect's shape. */
  bad?: boolean;
  /** Abort the stream after its first chunk. */
  abortAfterFirstChunk?: boolean;
  /** Check a complete answer's content (structured output). */
  check?: (body: unknown) => string | undefined;
}

const json = (value: unknown) => JSON.stringify(value);

const KINDS: Array<{ kind: string; weight: number; make: () => Call }> = [
  {
    kind: "openai",
    weight: 6,
    make: () => ({
      path: "/v1/chat/completions",
      dialect: "openai",
      body: json({ model: pick(["soak", "soak-b"]), max_tokens: 16, messages: userMessage() }),
    }),
  },
  {
    kind: "openai-stream",
    weight: 6,
    make: () => ({
      path: "/v1/chat/completions",
      dialect: "openai",
      stream: true,
      body: json({ model: "soak", max_tokens: 16, stream: true, messages: userMessage() }),
    }),
  },
  {
    kind: "anthropic",
    weight: 5,
    make: () => ({
      path: "/v1/messages",
      dialect: "anthropic",
      body: json({ model: pick(["soak", "soak-b"]), max_tokens: 16, messages: userMessage() }),
    }),
  },
  {
    kind: "anthropic-stream",
    weight: 5,
    make: () => ({
      path: "/v1/messages",
      dialect: "anthropic",
      stream: true,
      body: json({ model: "soak", max_tokens: 16, stream: true, messages: userMessage() }),
    }),
  },
  {
    kind: "responses",
    weight: 2,
    make: () => ({
      path: "/v1/responses",
      dialect: "responses",
      body: json({ model: "soak", max_output_tokens: 16, input: pick(PROMPTS) }),
    }),
  },
  {
    kind: "openai-tools",
    weight: 3,
    make: () => ({
      path: "/v1/chat/completions",
      dialect: "openai",
      body: json({
        model: "soak",
        max_tokens: 200,
        messages: [{ role: "user", content: "What is the weather in Paris?" }],
        tools: [WEATHER_TOOL_OPENAI],
        tool_choice: "required",
      }),
      check: (body) => {
        const choice = (
          body as { choices?: Array<{ message?: { tool_calls?: unknown[] }; finish_reason?: string }> }
        ).choices?.[0];
        if (choice?.finish_reason === "length") return undefined;
        const calls = choice?.message?.tool_calls;
        return Array.isArray(calls) && calls.length > 0 ? undefined : "tool_choice required but no tool call";
      },
    }),
  },
  {
    kind: "anthropic-tools-stream",
    weight: 2,
    make: () => ({
      path: "/v1/messages",
      dialect: "anthropic",
      stream: true,
      body: json({
        model: "soak",
        max_tokens: 200,
        stream: true,
        messages: [{ role: "user", content: "What is the weather in Paris?" }],
        tools: [{ name: "get_weather", input_schema: WEATHER_TOOL_OPENAI.function.parameters }],
        tool_choice: { type: "any" },
      }),
    }),
  },
  {
    kind: "openai-structured",
    weight: 3,
    make: () => ({
      path: "/v1/chat/completions",
      dialect: "openai",
      body: json({
        model: "soak",
        max_tokens: 48,
        messages: [{ role: "user", content: "Name a city as JSON." }],
        response_format: {
          type: "json_schema",
          json_schema: {
            name: "city",
            strict: true,
            schema: {
              type: "object",
              properties: { city: { type: "string", maxLength: 12 } },
              required: ["city"],
              additionalProperties: false,
            },
          },
        },
      }),
      check: (body) => {
        const choice = (
          body as { choices?: Array<{ message?: { content?: string }; finish_reason?: string }> }
        ).choices?.[0];
        if (choice?.finish_reason === "length") return undefined;
        try {
          JSON.parse(choice?.message?.content ?? "");
          return undefined;
        } catch {
          return `structured answer is not JSON: ${choice?.message?.content}`;
        }
      },
    }),
  },
  {
    kind: "abort-mid-stream",
    weight: 3,
    make: () => ({
      path: pick(["/v1/chat/completions", "/v1/messages"]),
      dialect: "openai",
      stream: true,
      abortAfterFirstChunk: true,
      body: json({ model: "soak", max_tokens: 400, stream: true, messages: userMessage() }),
    }),
  },
  // Bad inputs (issue 18): each must be a 4xx in the caller's dialect, nothing worse.
  {
    kind: "bad:empty-messages",
    weight: 1,
    make: () => ({
      path: "/v1/messages",
      dialect: "anthropic",
      bad: true,
      body: json({ model: "soak", max_tokens: 4, messages: [] }),
    }),
  },
  {
    kind: "bad:deep-tool-schema",
    weight: 1,
    make: () => ({ path: "/v1/chat/completions", dialect: "openai", bad: true, body: DEEP_TOOL_BODY }),
  },
  {
    kind: "bad:text-plain",
    weight: 1,
    make: () => ({
      path: "/v1/chat/completions",
      dialect: "openai",
      bad: true,
      contentType: "text/plain",
      body: json({ model: "soak", max_tokens: 4, messages: userMessage() }),
    }),
  },
  {
    kind: "bad:broken-json",
    weight: 1,
    make: () => ({
      path: "/v1/messages",
      dialect: "anthropic",
      bad: true,
      body: '{"model":"soak","messages":[',
    }),
  },
  {
    kind: "bad:unknown-model",
    weight: 1,
    make: () => ({
      path: "/v1/chat/completions",
      dialect: "openai",
      bad: true,
      body: json({ model: "no-such-model", max_tokens: 4, messages: userMessage() }),
    }),
  },
  {
    kind: "bad:negative-max-tokens",
    weight: 1,
    make: () => ({
      path: "/v1/messages",
      dialect: "anthropic",
      bad: true,
      body: json({ model: "soak", max_tokens: -1, messages: userMessage() }),
    }),
  },
  {
    kind: "bad:n-3",
    weight: 1,
    make: () => ({
      path: "/v1/chat/completions",
      dialect: "openai",
      bad: true,
      body: json({ model: "soak", n: 3, max_tokens: 4, messages: userMessage() }),
    }),
  },
  {
    kind: "bad:past-context",
    weight: 1,
    make: () => ({
      path: "/v1/chat/completions",
      dialect: "openai",
      bad: true,
      body: json({
        model: "soak-b",
        max_tokens: 4,
        messages: [{ role: "user", content: "cat ".repeat(6000) }],
      }),
    }),
  },
];
const TOTAL_WEIGHT = KINDS.reduce((sum, kind) => sum + kind.weight, 0);
function pickKind() {
  let r = Math.random() * TOTAL_WEIGHT;
  for (const kind of KINDS) {
    r -= kind.weight;
    if (r < 0) return kind;
  }
  return KINDS[0]!;
}

/** A JSON error envelope in the caller's dialect. */
function isDialectError(body: unknown, dialect: Dialect): boolean {
  if (typeof body !== "object" || body === null) return false;
  const error = (body as { error?: unknown }).error;
  if (typeof error !== "object" || error === null) return false;
  if (dialect === "anthropic") return (body as { type?: unknown }).type === "error";
  return typeof (error as { message?: unknown }).message === "string";
}

/** Whether a finished stream's text ended properly, or with an error event. */
function streamEnding(text: string, path: string): "done" | "error" | "cut" {
  if (/^event: error$/m.test(text) || /^data: \{"error"/m.test(text) || /"type":"error"/.test(text))
    return "error";
  if (path === "/v1/messages") return /event: message_stop/.test(text) ? "done" : "cut";
  return /data: \[DONE\]/.test(text) ? "done" : "cut";
}

/** Seconds a client waits after a 503/529, as its Retry-After says (capped): what a polite client does. */
const MAX_RETRY_WAIT_S = 2;
let retryWaitS = 0;

/** The error event that ended a stream, as an error envelope with its code marked as a stream's. */
function streamError(text: string): { error: { code: string; message: string } } {
  const data = text
    .split("\n")
    .filter((line) => line.startsWith("data: {") && line.includes('"error"'))
    .pop();
  let error: { code?: unknown; type?: unknown; message?: unknown } = {};
  try {
    error = (JSON.parse(data?.slice(6) ?? "{}") as { error?: typeof error }).error ?? {};
  } catch {
    // reported as an unknown code below
  }
  return {
    error: { code: `stream:${String(error.code ?? error.type)}`, message: String(error.message ?? "") },
  };
}

async function send(kind: string, call: Call): Promise<void> {
  const controller = new AbortController();
  const timeout = setTimeout(() => controller.abort(new Error("timeout")), REQUEST_TIMEOUT_MS);
  try {
    const response = await fetch(`${gatewayUrl}${call.path}`, {
      method: "POST",
      headers: { "content-type": call.contentType ?? "application/json" },
      body: call.body,
      signal: controller.signal,
    });
    if (call.bad) {
      const text = await response.text();
      let body: unknown;
      try {
        body = JSON.parse(text);
      } catch {
        return count(kind, "lost", `${response.status} non-JSON: ${text.slice(0, 80)}`);
      }
      // A bad input for a model that is down can meet the 503 first: still a clean answer.
      const clean = response.status >= 400 && response.status < 500;
      if (
        (clean || response.status === 503 || response.status === 529) &&
        isDialectError(body, call.dialect)
      ) {
        noteCleanError(kind, response.status, body);
        return count(kind, "clean_error");
      }
      return count(kind, "lost", `bad input answered ${response.status}: ${text.slice(0, 120)}`);
    }
    if (!response.ok) {
      if (response.status === 503 || response.status === 529)
        retryWaitS = Math.min(MAX_RETRY_WAIT_S, Number(response.headers.get("retry-after") ?? 1) || 1);
      const text = await response.text();
      let body: unknown;
      try {
        body = JSON.parse(text);
      } catch {
        return count(kind, "lost", `${response.status} non-JSON: ${text.slice(0, 80)}`);
      }
      const dialect = call.path === "/v1/messages" ? "anthropic" : call.dialect;
      if (!isDialectError(body, dialect))
        return count(kind, "lost", `${response.status} not in the dialect's shape: ${text.slice(0, 120)}`);
      noteCleanError(kind, response.status, body);
      return count(kind, "clean_error");
    }
    if (call.stream) {
      const reader = response.body!.getReader();
      const decoder = new TextDecoder();
      let text = "";
      for (;;) {
        const { done, value } = await reader.read();
        if (done) break;
        text += decoder.decode(value, { stream: true });
        if (call.abortAfterFirstChunk && text.includes("\n\n")) {
          controller.abort(new Error("client abort"));
          await reader.cancel().catch(() => {});
          return count(kind, "aborted");
        }
      }
      const ending = streamEnding(text, call.path);
      if (ending === "done") return count(kind, "ok");
      if (ending === "error") {
        noteCleanError(kind, 200, streamError(text));
        return count(kind, "clean_error");
      }
      return count(kind, "lost", `stream cut: ${text.slice(-120)}`);
    }
    const body = (await response.json()) as unknown;
    const problem = call.check?.(body);
    return problem === undefined ? count(kind, "ok") : count(kind, "lost", problem);
  } catch (error) {
    if (controller.signal.aborted && String(controller.signal.reason).includes("client abort"))
      return count(kind, "aborted");
    return count(kind, "lost", error instanceof Error ? error.message : String(error));
  } finally {
    clearTimeout(timeout);
  }
}

// ---------------------------------------------------------------- faults

interface FaultRecord {
  at_s: number;
  fault: string;
  result: string;
}
const faults: FaultRecord[] = [];
const started = performance.now();
const elapsedS = () => Math.round((performance.now() - started) / 100) / 10;

async function admin(path: string, body: unknown): Promise<number> {
  const response = await fetch(`${gatewayUrl}${path}`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify(body),
  });
  await response.arrayBuffer();
  return response.status;
}

async function unloadReload(): Promise<void> {
  const at = elapsedS();
  const unloaded = await admin("/admin/models/unload", { model: "soak-b", force: true });
  const loaded = await admin("/admin/models/load", { model: "soak-b" });
  faults.push({
    at_s: at,
    fault: "admin unload + load of soak-b",
    result: `unload ${unloaded}, load ${loaded}`,
  });
}

let restartedNeuronPid = 0;
async function killNeuron(): Promise<void> {
  const at = elapsedS();
  const victim = neuronPid;
  const healthy = new Promise<number>((resolve) => healthyWaiters.push(resolve));
  const t0 = performance.now();
  process.kill(victim, "SIGKILL");
  restartedNeuronPid = await healthy;
  const downMs = Math.round(performance.now() - t0);
  faults.push({
    at_s: at,
    fault: `SIGKILL of the neuron (pid ${victim})`,
    result: `restarted as pid ${restartedNeuronPid}, healthy again after ${downMs} ms`,
  });
}

async function oversizedBody(): Promise<void> {
  const kind = "bad:body-over-32MiB";
  const filler = "x".repeat(33 * 2 ** 20);
  await send(kind, {
    path: "/v1/chat/completions",
    dialect: "openai",
    bad: true,
    body: `{"model":"soak","messages":[{"role":"user","content":"${filler}"}]}`,
  });
}

// ---------------------------------------------------------------- the run

const deadline = started + DURATION_MS;
let stopLoad = false;
async function client(): Promise<void> {
  while (!stopLoad && performance.now() < deadline) {
    const kind = pickKind();
    retryWaitS = 0;
    await send(kind.kind, kind.make());
    if (retryWaitS > 0) await Bun.sleep(retryWaitS * 1000);
  }
}

const samples: Record<string, { gateway: Sample; neuron: Sample }> = {};
const clients = Array.from({ length: CONCURRENCY }, () => client());
const at = (fraction: number) => new Promise((resolve) => setTimeout(resolve, DURATION_MS * fraction));
const schedule = (async () => {
  const warm = Math.min(20_000, DURATION_MS * 0.1);
  await Bun.sleep(warm);
  samples.start = { gateway: sample(gatewayProc.pid), neuron: sample(neuronPid) };
  let oversized = 0;
  const oversizedTimer = setInterval(() => {
    oversized += 1;
    void oversizedBody();
  }, 60_000);
  await at(0.3 - warm / DURATION_MS);
  await unloadReload();
  await at(0.2);
  await killNeuron();
  await Bun.sleep(warm);
  samples.neuron_restarted = { gateway: sample(gatewayProc.pid), neuron: sample(restartedNeuronPid) };
  await at(0.2);
  await unloadReload();
  clearInterval(oversizedTimer);
  if (oversized === 0) await oversizedBody();
})();
await Promise.all(clients);
stopLoad = true;
await schedule;
// Let the fleet's poll and any cancelled sequences settle before the last sample.
await Bun.sleep(3_000);
samples.end = { gateway: sample(gatewayProc.pid), neuron: sample(neuronPid) };
const loadSeconds = (performance.now() - started) / 1000;

const metricsText = await (await fetch(metricsUrl)).text();
const metric = (pattern: RegExp) =>
  [...metricsText.matchAll(pattern)].map((m) => `${m[1]}=${m[2]}`).join(", ") || "none";
const restartsMetric = metric(/^cortex_gateway_local_neuron_restarts_total\{reason="([^"]+)"\} (\S+)$/gm);
const inFlight = metric(/^cortex_gateway_in_flight_requests\{model="([^"]+)"\} (\S+)$/gm);

// ---------------------------------------------------------------- shutdown

const lastNeuron = neuronPid;
gatewayProc.kill("SIGTERM");
const gatewayExit = await gatewayProc.exited;
await logsDone;
const orphan = existsSync(`/proc/${lastNeuron}`);
rmSync(dir, { recursive: true, force: true });

// ---------------------------------------------------------------- summary

const totals: Record<Outcome, number> = { ok: 0, clean_error: 0, aborted: 0, lost: 0 };
for (const row of counts.values())
  for (const key of Object.keys(totals) as Outcome[]) totals[key] += row[key];
const requests = Object.values(totals).reduce((a, b) => a + b, 0);
const drift = (a: Sample, b: Sample) => ({
  rssMiB: Math.round((b.rssMiB - a.rssMiB) * 10) / 10,
  rssPct: Math.round(((b.rssMiB - a.rssMiB) / a.rssMiB) * 1000) / 10,
  fds: b.fds - a.fds,
  threads: b.threads - a.threads,
  workers: b.workers - a.workers,
});
const summary = {
  minutes: MINUTES,
  concurrency: CONCURRENCY,
  seconds: Math.round(loadSeconds),
  requests,
  requestsPerS: Math.round((requests / loadSeconds) * 10) / 10,
  totals,
  byKind: Object.fromEntries([...counts.entries()].sort()),
  cleanErrors: Object.fromEntries([...cleanErrors.entries()].sort()),
  errorExamples: Object.fromEntries([...errorExamples.entries()].sort()),
  badInputKinds: [...counts.keys()].filter((kind) => kind.startsWith("bad:")).sort(),
  faults,
  restartsMetric,
  inFlightAtEnd: inFlight,
  errorLogLines: errorLines.length,
  logLines: logCounts,
  samples,
  drift: {
    gateway: samples.start && samples.end ? drift(samples.start.gateway, samples.end.gateway) : undefined,
    neuronSinceRestart:
      samples.neuron_restarted && samples.end
        ? drift(samples.neuron_restarted.neuron, samples.end.neuron)
        : undefined,
  },
  shutdown: { gatewayExit, neuronLeftBehind: orphan },
  lostExamples,
};

console.log("\nsoak: requests by kind (ok / clean_error / aborted / lost)");
for (const [kind, row] of [...counts.entries()].sort())
  console.log(`  ${kind.padEnd(24)} ${row.ok} / ${row.clean_error} / ${row.aborted} / ${row.lost}`);
console.log(
  `soak: ${requests} requests in ${summary.seconds} s (${summary.requestsPerS}/s, ${CONCURRENCY} clients): ok ${totals.ok}, clean errors ${totals.clean_error}, aborted ${totals.aborted}, lost ${totals.lost}`,
);
console.log("soak: clean errors by status and code");
for (const [key, n] of [...cleanErrors.entries()].sort()) {
  console.log(`  ${key.padEnd(44)} ${n}`);
  if (!key.startsWith("bad input"))
    for (const example of errorExamples.get(key) ?? []) console.log(`      e.g. ${example}`);
}
for (const fault of faults) console.log(`soak: at ${fault.at_s} s: ${fault.fault}: ${fault.result}`);
console.log(`soak: restarts counted by the gateway: ${restartsMetric}; in flight at the end: ${inFlight}`);
console.log(`soak: /proc samples ${JSON.stringify(samples)}`);
console.log(`soak: drift ${JSON.stringify(summary.drift)}`);
console.log(`soak: SIGTERM: gateway exit ${gatewayExit}, neuron left behind: ${orphan}`);
if (lostExamples.length > 0) console.log(`soak: lost:\n  ${lostExamples.join("\n  ")}`);
if (args.out) writeFileSync(args.out, `${JSON.stringify(summary, null, 2)}\n`);

const gatewayDrift = summary.drift.gateway;
const neuronDrift = summary.drift.neuronSinceRestart;
const leaked =
  (neuronDrift !== undefined && neuronDrift.workers !== 0) ||
  (gatewayDrift !== undefined && gatewayDrift.fds > 20) ||
  (neuronDrift !== undefined && neuronDrift.fds > 20);
process.exit(totals.lost === 0 && !leaked && !orphan && gatewayExit === 0 ? 0 : 1);
