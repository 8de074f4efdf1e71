/**
 * Tensor-parallel groups in a real neuron, through its HTTP API, on CPU: two
 * `cpu-N` devices form a shm group serving the tiny model; an injected hung
 * collective (rank 1, step 3 of every group) trips the step watchdog; the
 * request in flight fails with a clear 503, the group is aborted and
 * recovered (Stage 1) without a restart, and the model loads and serves
 * again, ten times over without leaking Workers, threads or memory. It
 * waits on the watchdog's log lines and checks the watchdog's own
 * measurements, never this test's clock, so a loaded machine cannot fail it.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { NeuronSection } from "../../src/core/config/config-schema.ts";
import { ensureDemoModel, TINY_MODEL_FILE } from "../../src/neuron/gguf/tiny-model.ts";
import { type RunningNeuron, startNeuron } from "../../src/neuron/start-neuron.ts";
import { noEndBias } from "./helpers/real-fleet.ts";
import { aliveOf, threadListing } from "./helpers/threads.ts";

const MODELS = `${import.meta.dir}/../.tmp/models`;
const STEP_TIMEOUT_S = 1;
const CYCLES = 10;

let neuron: RunningNeuron;
const lines: string[] = [];
/** Resolved as the watchdog logs lines: each waits for a count of lines that match. */
const lineWaiters: Array<{ match: (line: string) => boolean; count: number; resolve: () => void }> = [];

function logLine(line: string): void {
  lines.push(line);
  for (const waiter of [...lineWaiters])
    if (lines.filter(waiter.match).length >= waiter.count) {
      lineWaiters.splice(lineWaiters.indexOf(waiter), 1);
      waiter.resolve();
    }
}

/** Resolves once `count` logged lines match (at once when they already do). */
function logged(match: (line: string) => boolean, count: number): Promise<void> {
  if (lines.filter(match).length >= count) return Promise.resolve();
  return new Promise((resolve) => lineWaiters.push({ match, count, resolve }));
}
let noEnd: Record<string, number> = {};

function api(path: string, body?: unknown): Promise<Response> {
  return fetch(`${neuron.url}${path}`, {
    method: body === undefined ? "GET" : "POST",
    headers: { "content-type": "application/json" },
    ...(body === undefined ? {} : { body: JSON.stringify(body) }),
  });
}

const chat = (maxTokens: number) => ({
  model: "tiny-tp",
  messages: [{ role: "user", content: "Tell me about the garden." }],
  temperature: 0,
  max_tokens: maxTokens,
  logit_bias: noEnd,
});

async function loadGroup(): Promise<void> {
  const response = await api("/models/load", {
    id: "tiny-tp",
    file: TINY_MODEL_FILE,
    deviceCount: 2,
    contextSize: 512,
    slots: 1,
  });
  const body = (await response.json()) as { model: { devices: string[] } };
  expect(response.status).toBe(201);
  expect(body.model.devices).toEqual(["cpu-0", "cpu-1"]);
}

/**
 * Waits for Stage 1 of the `cycle`th recovery to complete (the watchdog's line, logged after the
 * model was dropped and the fresh Workers answered), then checks that the neuron shows it.
 */
async function recovered(cycle: number): Promise<void> {
  await logged((line) => line.includes("Stage 1 recovery complete"), cycle + 1);
  const health = (await (await api("/health")).json()) as { status: string; loaded: Array<{ id: string }> };
  expect(health.status).toBe("ok");
  expect(health.loaded.map((m) => m.id)).not.toContain("tiny-tp");
}

beforeAll(async () => {
  noEnd = await noEndBias(await ensureDemoModel(MODELS));
  neuron = await startNeuron({
    config: NeuronSection.parse({
      models_dir: MODELS,
      cpu_devices: 2,
      step_timeout_s: STEP_TIMEOUT_S,
      stage2_grace_s: 10,
    }),
    listen: { hostname: "127.0.0.1", port: 0 },
    faultInjection: "hang-collective:rank=1,step=3",
    pool: {
      tpLogger: {
        error: (line) => logLine(`ERROR ${line}`),
        warn: (line) => logLine(`WARN ${line}`),
        info: (line) => logLine(`INFO ${line}`),
        debug: () => {},
      },
      onFatal: (report) => logLine(`UNEXPECTED STAGE 2 ${report.reason}`),
    },
  });
}, 60_000);

afterAll(async () => {
  await neuron?.stop();
});

describe("tensor-parallel group in the neuron (2 CPU devices, shm)", () => {
  test("a hung collective fails the request at once with a clear 503, the group recovers without a restart, and the model serves again; ten times without leaks", async () => {
    expect(neuron.pool.devices().map((d) => d.id)).toEqual(["cpu-0", "cpu-1"]);
    expect(neuron.pool.workerCount).toBe(2);
    const hangToFailure: number[] = [];
    const recoveries: number[] = [];
    let rssBefore = 0;
    /** The device Workers' threads of each generation: every recovery replaces both. */
    const deviceThreads = () => neuron.pool.devices().map((d) => d.threadId ?? -1);
    const retiredThreads: number[] = [];

    for (let cycle = 0; cycle < CYCLES; cycle++) {
      await loadGroup();
      // This cycle's hang replaces both device Workers.
      retiredThreads.push(...deviceThreads());
      // Step 1 of the group: served.
      const ok = await api("/v1/chat/completions", chat(1));
      expect(ok.status).toBe(200);
      const okBody = (await ok.json()) as { usage: { completion_tokens: number } };
      expect(okBody.usage.completion_tokens).toBe(1);

      // Steps 2 and 3: rank 1 never joins step 3's collective.
      const started = performance.now();
      const streamed = cycle % 2 === 1;
      const hung = await api("/v1/chat/completions", { ...chat(20), stream: streamed });
      let message: string;
      if (streamed) {
        // The stream had started (step 2's token went out): the error ends it, in OpenAI's envelope.
        expect(hung.status).toBe(200);
        const frames = (await hung.text()).split("\n\n").filter((f) => f.startsWith("data: "));
        expect(frames.some((f) => f.includes('"content"'))).toBe(true);
        const last = JSON.parse(frames.at(-1)!.slice(6)) as { error?: { message: string } };
        message = last.error?.message ?? "";
      } else {
        // Nothing sent yet: a plain 503, which the gateway retries elsewhere.
        expect(hung.status).toBe(503);
        message = ((await hung.json()) as { error: { message: string } }).error.message;
      }
      const failedAt = performance.now();
      hangToFailure.push(failedAt - started);
      expect(message).toContain("tp watchdog: step 3 of tiny-tp timed out");
      expect(message).toContain("the group was aborted and is recovering");
      // The step timer failed it, never before the timeout, as the watchdog measured the step.
      const ranMs = Number(/timed out after (\d+) ms/.exec(message)?.[1]);
      expect(ranMs).toBeGreaterThanOrEqual(STEP_TIMEOUT_S * 1000);

      await recovered(cycle);
      recoveries.push(performance.now() - failedAt);
      expect(neuron.pool.workerCount).toBe(2);
      if (cycle === 0) {
        // Measure memory from the first recovered state (first-use allocations excluded).
        Bun.gc(true);
        rssBefore = process.memoryUsage().rss;
      }
    }

    // After the last recovery the model loads and serves again.
    await loadGroup();
    const after = await api("/v1/chat/completions", chat(2));
    expect(after.status).toBe(200);
    expect(neuron.pool.workerCount).toBe(2);
    // Every recovery awaited its old Workers' exit: their threads are gone, the two live devices' run.
    expect(new Set(retiredThreads).size, "each device Worker reported its own thread").toBe(2 * CYCLES);
    expect(aliveOf(retiredThreads), threadListing()).toEqual([]);
    expect(aliveOf(deviceThreads()), threadListing()).toHaveLength(2);
    expect(process.memoryUsage().rss - rssBefore).toBeLessThan(150 * 1024 * 1024);

    expect(neuron.pool.tpCounters).toMatchObject({
      stepTimeouts: CYCLES,
      abortsIssued: CYCLES,
      abortsHung: 0,
      stage1Started: CYCLES,
      stage1Recovered: CYCLES,
      stage2Fatal: 0,
    });
    expect(lines.filter((l) => l.startsWith("UNEXPECTED"))).toEqual([]);
    const errors = lines.filter((l) => l.startsWith("ERROR"));
    expect(errors.every((l) => l.includes("tp watchdog:"))).toBe(true);
    expect(
      errors.filter(
        (l) =>
          l.includes("step=3 ran=") &&
          l.includes("devices=[cpu-0,cpu-1]") &&
          l.includes("model=tiny-tp") &&
          l.includes("via ncclCommAbort[shm] (ranks 0,1)"),
      ),
    ).toHaveLength(CYCLES);
    // Both ranks aborted each time, never twice.
    expect(
      errors.filter((l) => l.includes("ncclCommAbort[shm]") && l.includes("outcome=aborted")),
    ).toHaveLength(2 * CYCLES);
    expect(errors.filter((l) => l.includes("outcome=already"))).toEqual([]);
    expect(
      errors.some(
        (l) => l.includes("flight-recorder") && l.includes("step=3") && l.includes("outcome=timeout"),
      ),
    ).toBe(true);
    expect(errors.filter((l) => l.includes("Stage 1 unload: ok"))).toHaveLength(CYCLES);
    expect(errors.filter((l) => l.includes("Stage 1 recovery complete"))).toHaveLength(CYCLES);

    const sorted = (xs: number[]) => [...xs].sort((a, b) => a - b);
    console.log(
      `hang → failed request: median ${Math.round(sorted(hangToFailure)[CYCLES >> 1]!)} ms, max ${Math.round(Math.max(...hangToFailure))} ms ` +
        `(step timeout ${STEP_TIMEOUT_S * 1000} ms); failure → recovered: median ${Math.round(sorted(recoveries)[CYCLES >> 1]!)} ms, max ${Math.round(Math.max(...recoveries))} ms`,
    );
  }, 120_000);

  test("a model on more devices than the neuron has is refused with a clear error", async () => {
    const response = await api("/models/load", { id: "too-big", file: TINY_MODEL_FILE, deviceCount: 3 });
    expect(response.status).toBe(400);
    const error = ((await response.json()) as { error: { message: string } }).error;
    expect(error.message).toContain("asks for 3 devices; this neuron has 2");
  });
});
