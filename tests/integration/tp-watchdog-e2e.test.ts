/**
 * The whole tensor-parallel hang path on CPU, without llama: a 2-rank shm
 * group in real Workers (cpu-rank-worker.ts), an injected hung collective,
 * the watchdog's abort from the main thread, Stage 1 recovery with fresh
 * Workers, ten times over; and Stage 2 in a child process. Timeouts are
 * checked by the watchdog's own measurements and by the order of events,
 * never against this test's clock, so a loaded machine cannot fail them.
 */
import { afterAll, describe, expect, test } from "bun:test";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createWorkerAborter } from "../../src/neuron/tp/aborter.ts";
import { formGroup } from "../../src/neuron/tp/form-group.ts";
import { RankClient } from "../../src/neuron/tp/rank-client.ts";
import { createTpCounters, StepWatchdog, type TpLogger } from "../../src/neuron/tp/step-watchdog.ts";
import { aliveOf, threadListing } from "./helpers/threads.ts";

const RANK_WORKER = new URL("../../src/neuron/tp/cpu-rank-worker.ts", import.meta.url);
const TP_DIR = new URL("../../src/neuron/tp/", import.meta.url).pathname;

async function spawnRanks(n: number): Promise<RankClient[]> {
  const ranks = Array.from({ length: n }, () => RankClient.spawn(RANK_WORKER));
  await Promise.all(ranks.map((r) => r.ready));
  return ranks;
}

function captureLogger(lines: string[]): TpLogger {
  return {
    error: (line) => lines.push(`ERROR ${line}`),
    warn: (line) => lines.push(`WARN ${line}`),
    info: (line) => lines.push(`INFO ${line}`),
    debug: () => {},
  };
}

const aborter = createWorkerAborter();
afterAll(() => aborter.close());

describe("tp watchdog end to end (shm, CPU)", () => {
  test("a hung collective is aborted, the leader answers, and Stage 1 leaves the group gone with its Workers replaced by fresh ones, 10 times without leaking", async () => {
    const STEP_TIMEOUT_MS = 250;
    // Upper bounds only (the happy path never waits for them): generous, so a loaded machine is not a Stage 2.
    const BOUND_MS = 10_000;
    const counters = createTpCounters();
    const lines: string[] = [];
    let ranks = await spawnRanks(2);
    const retired: RankClient[] = [];
    Bun.gc(true);
    const rssBefore = process.memoryUsage().rss;

    for (let cycle = 0; cycle < 10; cycle++) {
      const members = ranks;
      const groupId = `e2e-${cycle}`;
      const { handles } = await formGroup({
        groupId,
        backend: "shm",
        ports: members,
        faults: "hang-collective:rank=1,step=3",
        timeoutMs: 5_000,
      });
      // The leader's llama abort flag, raised the way the device pool raises it.
      const flag = new SharedArrayBuffer(4);
      let unloadedBy = "";
      let reported = "";
      const watchdog = new StepWatchdog({
        group: { groupId, model: "tiny-bigram", devices: ["cpu-0", "cpu-1"] },
        handles,
        aborter,
        raiseAbortFlag: () => Atomics.store(new Int32Array(flag), 0, 1),
        recovery: {
          unload: async () => {
            await members[0]!.request({ type: "unload" });
            unloadedBy = "leader";
          },
          terminateWorkers: async () => {
            await Promise.all(members.map((r) => r.terminate(BOUND_MS)));
            retired.push(...members);
          },
          startWorkers: async () => {
            ranks = await spawnRanks(2);
          },
          reportUnloaded: (why) => {
            reported = why;
          },
        },
        onFatal: (report) => {
          throw new Error(`unexpected Stage 2: ${report.reason}`);
        },
        timings: { stepTimeoutMs: STEP_TIMEOUT_MS, abortTimeoutMs: BOUND_MS, graceMs: BOUND_MS },
        logger: captureLogger(lines),
        counters,
      });
      watchdog.markReady();
      const step = (n: number) => {
        const replies = members.map((r) => r.request({ type: "tp-step", step: n, batchSize: 1, tokens: 4 }));
        for (const follower of replies.slice(1)) follower.catch(() => {});
        return replies[0]!;
      };

      await watchdog.runStep(step, { batchSize: 1, tokens: 4 });
      await watchdog.runStep(step, { batchSize: 1, tokens: 4 });
      const failure = await watchdog.runStep(step, { batchSize: 1, tokens: 4 }).catch((e: unknown) => e);
      // The step timer failed it: never before the timeout, by the watchdog's own measurement ...
      expect(failure).toMatchObject({ code: "device_fault", details: { step: 3 } });
      expect((failure as { details: { ranMs: number } }).details.ranMs).toBeGreaterThanOrEqual(
        STEP_TIMEOUT_MS,
      );
      expect(lines).toContainEqual(
        expect.stringContaining(`(step exceeded the ${STEP_TIMEOUT_MS} ms step timeout)`),
      );
      // ... and at once: the abort it started had not come back yet.
      expect(watchdog.state).toBe("aborting");

      const outcome = await watchdog.recovery;
      expect(outcome).toMatchObject({ stage: 1, result: "gone" });
      expect(watchdog.state).toBe("gone");
      expect(unloadedBy).toBe("leader");
      expect(reported).toContain("hung");
      expect(Atomics.load(new Int32Array(flag), 0)).toBe(1);
      await expect(watchdog.runStep(step, { batchSize: 1, tokens: 1 })).rejects.toMatchObject({
        code: "unavailable",
      });
    }

    // Every retired Worker has closed and its thread is gone; the live group's two ranks run.
    expect(retired).toHaveLength(20);
    await Promise.all(retired.map((r) => r.closed));
    expect(await ranks[0]!.request({ type: "ping" })).toBe("pong");
    const retiredThreads = retired.map((r) => r.threadId);
    expect(new Set(retiredThreads).size, "every rank Worker reported its own thread").toBe(20);
    expect(aliveOf(retiredThreads), threadListing()).toEqual([]);
    expect(aliveOf(ranks.map((r) => r.threadId)), threadListing()).toHaveLength(2);
    expect(process.memoryUsage().rss - rssBefore).toBeLessThan(200 * 1024 * 1024);

    expect(counters).toMatchObject({
      stepTimeouts: 10,
      abortsIssued: 10,
      stage1Recovered: 10,
      stage2Fatal: 0,
    });
    const errors = lines.filter((l) => l.startsWith("ERROR"));
    expect(errors.every((l) => l.includes("tp watchdog:"))).toBe(true);
    expect(errors.filter((l) => l.includes("ncclCommAbort") && l.includes("outcome=aborted"))).toHaveLength(
      20,
    );
    expect(errors.some((l) => l.includes("flight-recorder") && l.includes("outcome=timeout"))).toBe(true);
    expect(errors.filter((l) => l.includes("Stage 1 recovery complete"))).toHaveLength(10);
    await Promise.all(ranks.map((r) => r.terminate()));
  }, 60_000);

  test("Stage 2: a hang that ignores the abort makes the process exit 70 once the grace period has run out", async () => {
    const dir = mkdtempSync(join(tmpdir(), "cortex-tp-stage2-"));
    const script = join(dir, "stage2.ts");
    writeFileSync(
      script,
      `
import { createWorkerAborter } from "${TP_DIR}aborter.ts";
import { formGroup } from "${TP_DIR}form-group.ts";
import { RankClient } from "${TP_DIR}rank-client.ts";
import { StepWatchdog, exitForSupervisor } from "${TP_DIR}step-watchdog.ts";
setTimeout(() => { console.log("NO STAGE 2"); process.exit(0); }, 30000).unref();
const ranks = [RankClient.spawn("${RANK_WORKER.pathname}"), RankClient.spawn("${RANK_WORKER.pathname}")];
await Promise.all(ranks.map((r) => r.ready));
const { handles } = await formGroup({ groupId: "stage2", backend: "shm", ports: ranks, faults: "hang-forward:rank=0,step=2,abort=ignore" });
const watchdog = new StepWatchdog({
  group: { groupId: "stage2", model: "tiny-bigram", devices: ["cpu-0", "cpu-1"] },
  handles,
  aborter: createWorkerAborter(),
  raiseAbortFlag: () => {},
  recovery: { unload: async () => {}, terminateWorkers: async () => {}, startWorkers: async () => {}, reportUnloaded: () => {} },
  onFatal: exitForSupervisor({ delayMs: 50 }),
  timings: { stepTimeoutMs: 300, abortTimeoutMs: 10000, graceMs: 700 },
});
watchdog.markReady();
const step = (n) => { const replies = ranks.map((r) => r.request({ type: "tp-step", step: n, batchSize: 2, tokens: 8 })); replies[1].catch(() => {}); return replies[0]; };
await watchdog.runStep(step, { batchSize: 2, tokens: 8 });
await watchdog.runStep(step, { batchSize: 2, tokens: 8 }).catch((e) => console.log("STEP2 FAILED " + e.code + " ran=" + e.details?.ranMs));
await new Promise(() => {});
`,
    );
    try {
      const child = Bun.spawn([process.execPath, script], { stdout: "pipe", stderr: "pipe" });
      const [out, err, code] = await Promise.all([
        new Response(child.stdout).text(),
        new Response(child.stderr).text(),
        child.exited,
      ]);
      const output = out + err;
      expect(code, output).toBe(70);
      expect(output).toContain("tp watchdog:");
      expect(output).toContain("ncclCommAbort");
      // The step failed by its timer (300 ms), the grace (700 ms) then ran out, both as the
      // watchdog measured them: never before either.
      const ran = Number(/STEP2 FAILED device_fault ran=(\d+)/.exec(output)?.[1]);
      expect(ran).toBeGreaterThanOrEqual(300);
      const after = Number(
        /Stage 2 .* after=(\d+)ms: the leader did not answer within 700 ms/.exec(output)?.[1],
      );
      expect(after).toBeGreaterThanOrEqual(700);
      expect(output).toContain("tp watchdog: Stage 2 exit 70 group=stage2");
      expect(output).not.toContain("NO STAGE 2");
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }, 45_000);
});
