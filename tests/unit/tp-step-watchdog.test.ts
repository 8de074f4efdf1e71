import { describe, expect, test } from "bun:test";
import type { Aborter, AbortReport } from "../../src/neuron/tp/aborter.ts";
import { type CommunicatorHandle, groupHandles } from "../../src/neuron/tp/communicator.ts";
import { createControlBlock } from "../../src/neuron/tp/control-block.ts";
import {
  createTpCounters,
  DEFAULT_TIMINGS,
  type FatalReport,
  type RecoveryHooks,
  StepWatchdog,
  type TpLogger,
  watchdogTimingsFromEnv,
} from "../../src/neuron/tp/step-watchdog.ts";

const never = new Promise<never>(() => {});

function handles(backend: "nccl" | "shm" = "nccl"): CommunicatorHandle[] {
  return groupHandles({
    backend,
    groupId: "g1",
    size: 2,
    control: createControlBlock(2, backend),
    libraryPath: "/x",
  });
}

function fakeAborter(answer: (handles: readonly CommunicatorHandle[]) => Promise<AbortReport>) {
  const calls: { handles: readonly CommunicatorHandle[]; timeoutMs: number }[] = [];
  const aborter: Aborter = {
    abortAll(h, timeoutMs) {
      calls.push({ handles: h, timeoutMs });
      return answer(h);
    },
    warm: async () => {},
    close: () => {},
  };
  return { aborter, calls };
}

const abortedAll = async (h: readonly CommunicatorHandle[]): Promise<AbortReport> => ({
  completed: true,
  elapsedMs: 1,
  ranks: h.map((x) => ({ rank: x.rank, outcome: "aborted" as const, ms: 1 })),
});

function setup(
  options: {
    answer?: (h: readonly CommunicatorHandle[]) => Promise<AbortReport>;
    hooks?: Partial<RecoveryHooks>;
    h?: CommunicatorHandle[];
    now?: () => number;
  } = {},
) {
  const events: string[] = [];
  const lines: string[] = [];
  const fatals: FatalReport[] = [];
  const counters = createTpCounters();
  const { aborter, calls } = fakeAborter(options.answer ?? abortedAll);
  const logger: TpLogger = {
    error: (l) => lines.push(`ERROR ${l}`),
    warn: (l) => lines.push(`WARN ${l}`),
    info: (l) => lines.push(`INFO ${l}`),
    debug: () => {},
  };
  const cached = options.h ?? handles();
  const watchdog = new StepWatchdog({
    group: { groupId: "g1", model: "m", devices: ["cuda-dev-0", "cuda-dev-1"] },
    handles: cached,
    aborter,
    raiseAbortFlag: () => events.push("flag"),
    recovery: {
      unload: async () => void events.push("unload"),
      terminateWorkers: async () => void events.push("terminate"),
      startWorkers: async () => void events.push("start"),
      reportUnloaded: () => void events.push("reported"),
      ...options.hooks,
    },
    onFatal: (report) => fatals.push(report),
    timings: { stepTimeoutMs: 40, abortTimeoutMs: 100, graceMs: 300 },
    logger,
    counters,
    ...(options.now === undefined ? {} : { now: options.now }),
  });
  watchdog.markReady();
  return { watchdog, events, lines, fatals, counters, calls, cached };
}

const meta = { batchSize: 1, tokens: 8 };

describe("step watchdog", () => {
  test("steps that finish in time leave the group ready and are numbered from 1", async () => {
    const { watchdog, counters } = setup();
    expect(await watchdog.runStep(async (step) => step * 10, meta)).toBe(10);
    expect(await watchdog.runStep(async (step) => step * 10, meta)).toBe(20);
    expect(watchdog.state).toBe("ready");
    expect(watchdog.recorder.snapshot().map((r) => r.outcome)).toEqual(["ok", "ok"]);
    expect(counters.stepTimeouts).toBe(0);
  });

  test("an ordinary error fails the step but does not poison the group", async () => {
    const { watchdog, calls } = setup();
    await expect(watchdog.runStep(async () => Promise.reject(new Error("bad prompt")), meta)).rejects.toThrow(
      "bad prompt",
    );
    expect(watchdog.state).toBe("ready");
    expect(calls).toHaveLength(0);
  });

  test("a hung step fails at once, aborts every cached handle, raises the flag and runs Stage 1 in order", async () => {
    let leaderReply: (value: unknown) => void = () => {};
    const leader = new Promise((resolve) => {
      leaderReply = resolve;
    });
    const { watchdog, events, calls, cached, counters, lines } = setup();
    const failure = await watchdog.runStep(() => leader, meta).catch((error: unknown) => error);
    // Failed once the whole timeout had passed by the watchdog's clock, and at once: the leader has
    // not answered, so Stage 1 has not begun (events below).
    expect(failure).toMatchObject({ code: "device_fault", details: { step: 1 } });
    expect((failure as { details: { ranMs: number } }).details.ranMs).toBeGreaterThanOrEqual(40);
    expect(calls).toEqual([{ handles: cached, timeoutMs: 100 }]);
    expect(events).toEqual(["flag"]);
    leaderReply({ aborted: true });
    expect(await watchdog.recovery).toMatchObject({ stage: 1, result: "gone" });
    expect(events).toEqual(["flag", "unload", "terminate", "start", "reported"]);
    expect(watchdog.state).toBe("gone");
    expect(counters).toMatchObject({
      stepTimeouts: 1,
      abortsIssued: 1,
      stage1Started: 1,
      stage1Recovered: 1,
    });
    const errors = lines.filter((l) => l.startsWith("ERROR"));
    expect(errors.every((l) => l.includes("tp watchdog:"))).toBe(true);
    expect(errors.filter((l) => l.includes("ncclCommAbort ") && l.includes("outcome=aborted"))).toHaveLength(
      2,
    );
    expect(errors.some((l) => l.includes("step=1") && l.includes("devices=[cuda-dev-0,cuda-dev-1]"))).toBe(
      true,
    );
    await expect(watchdog.runStep(async () => 1, meta)).rejects.toMatchObject({ code: "unavailable" });
  });

  test("a device fault from the step poisons the group without waiting for the timeout", async () => {
    const { watchdog, calls } = setup();
    const fault = { code: "device_fault", message: "nccl remote error", status: 503 };
    await expect(watchdog.runStep(async () => Promise.reject(fault), meta)).rejects.toBe(fault);
    expect(calls).toHaveLength(1);
    expect(await watchdog.recovery).toMatchObject({ stage: 1 });
  });

  test("Stage 2 when ncclCommAbort itself hangs", async () => {
    const { watchdog, fatals, counters, lines } = setup({
      answer: async (h) => ({
        completed: false,
        elapsedMs: 100,
        ranks: [
          { rank: 0, outcome: "hung" },
          { rank: 1, outcome: "not-started" },
        ].slice(0, h.length) as AbortReport["ranks"],
      }),
    });
    await watchdog.runStep(() => never, meta).catch(() => {});
    expect(await watchdog.recovery).toMatchObject({ stage: 2 });
    expect(watchdog.state).toBe("fatal");
    expect(fatals).toHaveLength(1);
    expect(fatals[0]?.reason).toContain("hung on rank 0");
    expect(counters).toMatchObject({ abortsHung: 1, stage2Fatal: 1, stage1Started: 0 });
    expect(
      lines.some((l) => l.startsWith("ERROR") && l.includes("Stage 2") && l.includes("ncclCommAbort")),
    ).toBe(true);
  });

  test("Stage 2 when the leader does not answer within the grace period after the abort", async () => {
    const { watchdog, fatals, events, lines } = setup();
    await watchdog.runStep(() => never, meta).catch(() => {});
    const outcome = await watchdog.recovery;
    expect(outcome).toMatchObject({ stage: 2 });
    expect(fatals[0]?.reason).toContain("leader did not answer within 300 ms");
    // Not before the grace ran out, by the watchdog's own clock.
    expect(fatals[0]?.elapsedMs).toBeGreaterThanOrEqual(300);
    expect(lines.some((l) => /Stage 2 .* step=1 after=\d+ms: the leader did not answer/.test(l))).toBe(true);
    expect(events).toEqual(["flag"]);
  });

  test("Stage 2 when a recovery stage hangs; a failed unload is logged and recovery goes on", async () => {
    const hung = setup({ hooks: { terminateWorkers: () => never } });
    await hung.watchdog
      .runStep(async () => Promise.reject({ code: "device_fault", message: "x" }), meta)
      .catch(() => {});
    expect(await hung.watchdog.recovery).toMatchObject({
      stage: 2,
      reason: "Stage 1 terminate-workers hung",
    });

    const failing = setup({ hooks: { unload: async () => Promise.reject(new Error("no context")) } });
    await failing.watchdog
      .runStep(async () => Promise.reject({ code: "device_fault", message: "x" }), meta)
      .catch(() => {});
    expect(await failing.watchdog.recovery).toMatchObject({ stage: 1, result: "gone" });
    expect(failing.lines.some((l) => l.includes("Stage 1 unload: failed") && l.includes("no context"))).toBe(
      true,
    );
  });

  test("a step times out by the watchdog's clock, however early the timer fires by it", async () => {
    // A clock at half the timers' speed: the 40 ms timer fires when it reads ~20 ms, and again for the rest.
    const origin = performance.now();
    const { watchdog, lines } = setup({ now: () => Math.floor((performance.now() - origin) / 2) });
    const failure = await watchdog.runStep(() => never, meta).catch((error: unknown) => error);
    expect((failure as { details: { ranMs: number } }).details.ranMs).toBeGreaterThanOrEqual(40);
    expect(lines.some((l) => /step=1 ran=(\d+)ms: step exceeded the 40 ms step timeout/.test(l))).toBe(true);
    const ran = Number(/step=1 ran=(\d+)ms/.exec(lines.join("\n"))?.[1]);
    expect(ran).toBeGreaterThanOrEqual(40);
  });
});

describe("watchdog timings from the environment", () => {
  test("default to 120 s step timeout", () => {
    expect(watchdogTimingsFromEnv({})).toEqual(DEFAULT_TIMINGS);
    expect(DEFAULT_TIMINGS.stepTimeoutMs).toBe(120_000);
  });

  test("read seconds, fractions allowed", () => {
    expect(
      watchdogTimingsFromEnv({ NEURON_TP_STEP_TIMEOUT_S: "2.5", NEURON_TP_RECOVERY_GRACE_S: "7" }),
    ).toMatchObject({ stepTimeoutMs: 2_500, graceMs: 7_000 });
  });

  test.each(["0", "-1", "soon"])("reject %s naming the variable", (value) => {
    expect(() => watchdogTimingsFromEnv({ NEURON_TP_STEP_TIMEOUT_S: value })).toThrow(
      /NEURON_TP_STEP_TIMEOUT_S/,
    );
  });
});
