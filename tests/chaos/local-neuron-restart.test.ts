/**
 * Issue 18 §13: in single-process mode (`cortex serve`, no `[[neurons]]`) a
 * Stage 2 exit of the neuron took the whole gateway down. The neuron is now
 * a supervised child process: killed, it is reported (ERROR line, counter),
 * the gateway keeps answering, and it is started again; a child that keeps
 * failing at start is retried with growing delays; and the gateway's own
 * SIGTERM leaves no child behind.
 */
import { afterAll, beforeAll, expect, test } from "bun:test";
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { type SupervisedLocalNeuron, startLocalNeuron } from "../../src/cli/local-neuron.ts";
import type { SupervisorEvent } from "../../src/cli/local-neuron-supervisor.ts";
import { loadConfig } from "../../src/core/config/load-config.ts";
import { configureLogging } from "../../src/core/logger.ts";
import { type RunningGateway, startGateway } from "../../src/gateway/run-gateway.ts";
import { ensureDemoModel, TINY_MODEL_FILE } from "../../src/neuron/gguf/tiny-model.ts";
import { noEndBias } from "../integration/helpers/real-fleet.ts";

const root = join(import.meta.dir, "../..");
const MODEL = "tiny";
const BACKOFF = { initialMs: 50, factor: 2, maxMs: 800, healthyResetMs: 60_000 };

let dir: string;
let configPath: string;
let gateway: RunningGateway;
let local: SupervisedLocalNeuron;
const logLines: string[] = [];
const childLines: string[] = [];
const events: SupervisorEvent[] = [];
const waiters: Array<{
  match: (event: SupervisorEvent) => boolean;
  resolve: (event: SupervisorEvent) => void;
}> = [];

/** Resolves at the first event from now on that matches. */
function nextEvent<T extends SupervisorEvent["type"]>(
  type: T,
  match: (event: Extract<SupervisorEvent, { type: T }>) => boolean = () => true,
): Promise<Extract<SupervisorEvent, { type: T }>> {
  return new Promise((resolve) =>
    waiters.push({
      match: (event) => event.type === type && match(event as Extract<SupervisorEvent, { type: T }>),
      resolve: resolve as (event: SupervisorEvent) => void,
    }),
  );
}

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), "cortex-supervise-"));
  const models = join(dir, "models");
  await ensureDemoModel(models);
  configPath = join(dir, "cortex.toml");
  writeFileSync(
    configPath,
    [
      "[log]",
      'level = "info"',
      'format = "json"',
      "[gateway]",
      'listen = "127.0.0.1:0"',
      'metrics_listen = "127.0.0.1:0"',
      "poll_interval_ms = 100",
      "[neuron]",
      `models_dir = ${JSON.stringify(models)}`,
      "threads = 1",
      "[[models]]",
      `id = "${MODEL}"`,
      `file = "${TINY_MODEL_FILE}"`,
      "context_size = 512",
      "",
    ].join("\n"),
  );
  const config = loadConfig({ path: configPath, env: {} });
  configureLogging({ ...config.file.log, write: (line) => logLines.push(line) });
  gateway = await startGateway(config, {
    startLocalNeuron: async (c) => {
      local = await startLocalNeuron(c, {
        backoff: BACKOFF,
        forward: (_stream, line) => childLines.push(line),
      });
      local.supervisor.subscribe((event) => {
        events.push(event);
        for (const waiter of waiters.splice(0))
          if (waiter.match(event)) waiter.resolve(event);
          else waiters.push(waiter);
      });
      return local;
    },
  });
  await gateway.whenFleet((nodes) => nodes.some((node) => node.state === "up"));
}, 60_000);

afterAll(async () => {
  await gateway?.stop();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

function chat(body: Record<string, unknown> = {}): Promise<Response> {
  return fetch(`${gateway.url}/v1/chat/completions`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({
      model: MODEL,
      max_tokens: 4,
      messages: [{ role: "user", content: "Tell me about the cat." }],
      ...body,
    }),
  });
}

/** A restarted neuron has nothing loaded: wait until the fleet has seen it so. */
function fleetSeesFreshNeuron() {
  return gateway.whenFleet((nodes) => nodes.some((node) => node.state === "up" && node.loaded.length === 0));
}

async function restarts(): Promise<Map<string, number>> {
  const text = await (await fetch(gateway.metricsUrl!)).text();
  const counts = new Map<string, number>();
  for (const match of text.matchAll(
    /^cortex_gateway_local_neuron_restarts_total\{reason="([^"]+)"\} (\d+)$/gm,
  ))
    counts.set(match[1]!, Number(match[2]));
  return counts;
}

test("the neuron runs as a child process and its log lines reach the gateway's log, marked", async () => {
  const pid = local.supervisor.pid!;
  expect(pid).not.toBe(process.pid);
  expect((await chat()).status).toBe(200);
  const forwarded = childLines.map((line) => JSON.parse(line) as Record<string, unknown>);
  expect(forwarded.some((line) => line.process === "local-neuron" && line.pid === pid)).toBe(true);
  expect(forwarded.some((line) => String(line.msg).includes("listening on 127.0.0.1:"))).toBe(true);
}, 30_000);

test("SIGKILLed, the neuron is reported, counted and restarted, and the gateway serves again", async () => {
  const pid = local.supervisor.pid!;
  const exited = nextEvent("exited", (event) => event.pid === pid);
  const healthy = nextEvent("healthy");
  process.kill(pid, "SIGKILL");
  expect((await exited).reason.label).toBe("signal_SIGKILL");
  const again = await healthy;
  expect(again.pid).not.toBe(pid);
  expect(existsSync(`/proc/${pid}`)).toBe(false);

  const error = logLines
    .map((line) => JSON.parse(line) as Record<string, unknown>)
    .find(
      (line) =>
        line.level === "error" && String(line.msg).includes(`local neuron pid=${pid} killed by SIGKILL`),
    );
  expect(error?.msg).toContain("restarting it in");
  expect((await restarts()).get("signal_SIGKILL")).toBe(1);

  await fleetSeesFreshNeuron();
  const response = await chat();
  expect(response.status).toBe(200);
  const body = (await response.json()) as { choices: Array<{ message: { content: string } }> };
  expect(body.choices[0]?.message.content.length).toBeGreaterThan(0);
}, 60_000);

test("a neuron that keeps failing at start is retried with growing delays; meanwhile requests get a clean 503", async () => {
  const pid = local.supervisor.pid!;
  const port = Number(new URL(local.url).port);
  // Taken the moment the child is gone, before its restart: every new start fails to bind.
  let blocker: { stop(closeActive?: boolean): void } | undefined;
  const unsubscribe = local.supervisor.subscribe((event) => {
    if (event.type === "exited" && event.pid === pid)
      blocker = Bun.listen({ hostname: "127.0.0.1", port, socket: { data() {} } });
  });
  const scheduled: Array<Extract<SupervisorEvent, { type: "restart-scheduled" }>> = [];
  const thirdFailedStart = new Promise<void>((resolve) =>
    local.supervisor.subscribe((event) => {
      if (event.type !== "restart-scheduled") return;
      scheduled.push(event);
      if (scheduled.filter((e) => e.reason.label === "exit_1").length === 3) resolve();
    }),
  );
  process.kill(pid, "SIGKILL");
  await thirdFailedStart;
  unsubscribe();

  const startFailures = scheduled.filter((event) => event.reason.label === "exit_1");
  expect(startFailures).toHaveLength(3);
  // Each failure in a row doubles the delay, up to the cap, counted on from the kill before it.
  const delays = scheduled.map((event) => event.delayMs);
  for (let i = 1; i < delays.length; i += 1) {
    expect(delays[i]).toBe(Math.min(BACKOFF.maxMs, delays[i - 1]! * BACKOFF.factor));
    expect(scheduled[i]!.failures).toBe(scheduled[i - 1]!.failures + 1);
  }
  const exits = events.filter((event) => event.type === "exited" && event.reason.label === "exit_1");
  expect(exits.every((event) => event.type === "exited" && event.healthyMs === undefined)).toBe(true);
  expect((await restarts()).get("exit_1")).toBeGreaterThanOrEqual(3);
  const said = childLines.map((line) => JSON.parse(line) as Record<string, unknown>);
  expect(said.some((line) => String(line.msg).includes(`127.0.0.1:${port}: address already in use`))).toBe(
    true,
  );

  // The gateway keeps answering: the node is down, and a chat is a clean 503 in the caller's dialect.
  await gateway.whenFleet((nodes) => nodes.every((node) => node.state !== "up"));
  const down = await chat();
  expect(down.status).toBe(503);
  expect(down.headers.get("retry-after")).toMatch(/^\d+$/);
  expect(((await down.json()) as { error: { code: string } }).error.code).toBe("unavailable");
  const anthropic = await fetch(`${gateway.url}/v1/messages`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ model: MODEL, max_tokens: 4, messages: [{ role: "user", content: "hi" }] }),
  });
  // Anthropic's "try again later" is 529 overloaded_error.
  expect(anthropic.status).toBe(529);
  expect(anthropic.headers.get("retry-after")).toMatch(/^\d+$/);
  expect(await anthropic.json()).toMatchObject({ type: "error", error: { type: "overloaded_error" } });

  const healthy = nextEvent("healthy");
  blocker?.stop(true);
  await healthy;
  await fleetSeesFreshNeuron();
  expect((await chat()).status).toBe(200);
}, 60_000);

test.each([
  ["SIGTERM to the gateway (systemd, KillMode=mixed)", "SIGTERM", false],
  ["SIGINT to its whole process group (Ctrl-C in a terminal)", "SIGINT", true],
] as const)(
  "%s: the gateway stops and leaves no neuron process behind, none restarted",
  async (_name, signal, group) => {
    // A drain that takes a moment: a neuron that got the signal too would be gone, and restarted, before it ends.
    const drainingConfig = join(dir, "draining.toml");
    writeFileSync(
      drainingConfig,
      readFileSync(configPath, "utf8").replace("[gateway]\n", "[gateway]\ndrain_delay_s = 1\n"),
    );
    const proc = Bun.spawn([process.execPath, "src/cli/main.ts", "serve", "--config", drainingConfig], {
      cwd: root,
      // Its own process group, as a shell gives a foreground job, so the group signal spares this test.
      detached: group,
      env: { ...process.env, CORTEX_LOG_FORMAT: "text", CORTEX_LOG_LEVEL: "info" },
      stdin: "ignore",
      stdout: "pipe",
      stderr: "pipe",
    });
    let seen = "";
    const { promise: listening, resolve, reject } = Promise.withResolvers<number>();
    const drain = async (stream: ReadableStream<Uint8Array>) => {
      const decoder = new TextDecoder();
      for await (const chunk of stream) {
        seen += decoder.decode(chunk, { stream: true });
        const child = /local neuron pid=(\d+) started/.exec(seen);
        if (child && /gateway \S+ listening on/.test(seen)) resolve(Number(child[1]));
      }
    };
    const drained = Promise.all([drain(proc.stdout), drain(proc.stderr)]).then(() =>
      reject(new Error(`the gateway never said it was listening:\n${seen}`)),
    );
    const childPid = await listening;
    expect(existsSync(`/proc/${childPid}`)).toBe(true);
    // An answer means the gateway is past start-up, its signal handlers in place.
    const url = /gateway \S+ listening on ([\d.]+:\d+)/.exec(seen)![1];
    expect((await fetch(`http://${url}/v1/models`)).status).toBe(200);
    process.kill(group ? -proc.pid : proc.pid, signal);
    expect(await proc.exited).toBe(0);
    await drained.catch(() => {});
    expect(seen).not.toContain("restarting it in");
    // Reaped by the gateway before it exited: not running, not a zombie, not adopted by init.
    expect(existsSync(`/proc/${childPid}`)).toBe(false);
    expect(seen).toContain(`[local-neuron ${childPid}]`);
  },
  60_000,
);

test("a Stage 2 exit (exit 70) of the neuron is counted and restarted; the gateway answers throughout", async () => {
  const models = join(dir, "models");
  const noEnd = await noEndBias(await ensureDemoModel(models));
  const path = join(dir, "stage2.toml");
  writeFileSync(
    path,
    [
      "[log]",
      'level = "info"',
      'format = "json"',
      "[gateway]",
      'listen = "127.0.0.1:0"',
      'metrics_listen = "127.0.0.1:0"',
      "poll_interval_ms = 100",
      "[neuron]",
      `models_dir = ${JSON.stringify(models)}`,
      "threads = 1",
      "cpu_devices = 2",
      "step_timeout_s = 1",
      "stage2_grace_s = 1",
      "[[models]]",
      'id = "tiny-tp"',
      `file = "${TINY_MODEL_FILE}"`,
      "context_size = 512",
      "slots = 1",
      "devices = 2",
      "",
    ].join("\n"),
  );
  let stage2Local: SupervisedLocalNeuron | undefined;
  const seen: SupervisorEvent[] = [];
  const restarted = Promise.withResolvers<void>();
  // The child takes its environment at start: the fault is its, not this test process's.
  process.env.CORTEX_FAULT_INJECTION = "hang-forward:rank=0,step=2,abort=ignore";
  const stage2Gateway = await startGateway(loadConfig({ path, env: {} }), {
    startLocalNeuron: async (c) => {
      stage2Local = await startLocalNeuron(c, {
        backoff: BACKOFF,
        forward: (_s, line) => childLines.push(line),
      });
      stage2Local.supervisor.subscribe((event) => {
        seen.push(event);
        if (event.type === "healthy") restarted.resolve();
      });
      return stage2Local;
    },
  }).finally(() => {
    delete process.env.CORTEX_FAULT_INJECTION;
  });
  try {
    const pid = stage2Local!.supervisor.pid!;
    // Step 1 decodes; the leader's forward of step 2 never returns: the watchdog fails the request and,
    // the abort reaching nothing, the neuron exits 70.
    const response = await fetch(`${stage2Gateway.url}/v1/chat/completions`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({
        model: "tiny-tp",
        max_tokens: 10,
        temperature: 0,
        logit_bias: noEnd,
        messages: [{ role: "user", content: "Tell me about the garden." }],
      }),
    });
    expect(response.status).toBe(503);
    expect(((await response.json()) as { error: { message: string } }).error.message).toContain(
      "tp watchdog",
    );
    await restarted.promise;
    const exit = seen.find((event) => event.type === "exited");
    expect(exit).toMatchObject({ pid, reason: { label: "exit_70" } });
    expect(exit?.type === "exited" && exit.reason.text).toContain("Stage 2");
    const text = await (await fetch(stage2Gateway.metricsUrl!)).text();
    expect(text).toContain('cortex_gateway_local_neuron_restarts_total{reason="exit_70"} 1');
    // The gateway never went away, and its fleet sees the new neuron.
    await stage2Gateway.whenFleet((nodes) => nodes.some((n) => n.state === "up" && n.loaded.length === 0));
    expect((await fetch(`${stage2Gateway.url}/v1/models`)).status).toBe(200);
  } finally {
    await stage2Gateway.stop();
  }
}, 60_000);

test("a neuron that cannot start at all stops `cortex serve` at start with the neuron's own reason", async () => {
  const missing = join(dir, "no-such-models");
  const path = join(dir, "missing.toml");
  writeFileSync(
    path,
    `[gateway]\nlisten = "127.0.0.1:0"\nmetrics = false\n[neuron]\nmodels_dir = ${JSON.stringify(missing)}\n`,
  );
  const error = await startLocalNeuron(loadConfig({ path, env: {} }), {
    forward: (_s, line) => childLines.push(line),
  }).catch((e: unknown) => e);
  expect(error).toBeInstanceOf(Error);
  expect(String(error)).toContain(
    "the local neuron (attempt 1) exited with code 2 before it answered /health",
  );
  expect(String(error)).toContain(`neuron.models_dir "${missing}": no such directory`);
}, 30_000);
