/**
 * The whole tensor-parallel hang path on CPU, without llama: a 2-rank shm
 * group in real Workers (cpu-rank-worker.ts), an injected hung collective,
 * the watchdog's abort from the main thread, Stage 1 recovery with fresh
 * Workers, ten times over; and Stage 2 in a child process.
 */
import { afterAll, describe, expect, test } from "bun:test";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createAbortFlag, isAbortRaised, raiseAbortFlag } from "../../src/neuron/tp/abort-flag.ts";
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
  test("a hung collective is aborted, the leader answers, and the group is rebuilt on fresh Workers, 10 times without leaking", async () => {
    const STEP_TIMEOUT_MS = 250;
    // Upper bounds only (the happy path never waits for them): generous, so a loaded machine is not a Stage 2.
    const BOUND_MS = 10_000;
    // How late the failure may come after the timeout on a loaded 2-core machine.
    const MARGIN_MS = 2_000;
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
      const flag = createAbortFlag();
      let unloadedBy = "";
      let reported = "";
      const watchdog = new StepWatchdog({
        group: { groupId, model: "tiny-bigram", devices: ["cpu-0", "cpu-1"] },
        handles,
        aborter,
        raiseAbortFlag: () => raiseAbortFlag(flag),
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
      const started = performance.now();
      const failure = await watchdog.runStep(step, { batchSize: 1, tokens: 4 }).catch((e: unknown) => e);
      const failedAfter = performance.now() - started;
      expect(failure).toMatchObject({ code: "device_fault" });
      expect(failedAfter).toBeGreaterThanOrEqual(STEP_TIMEOUT_MS - 20);
      expect(failedAfter).toBeLessThan(STEP_TIMEOUT_MS + MARGIN_MS);
      expect(watchdog.state).toBe("aborting");

      const outcome = await watchdog.recovery;
      expect(outcome).toMatchObject({ stage: 1, result: "gone" });
      expect(watchdog.state).toBe("gone");
      expect(unloadedBy).toBe("leader");
      expect(reported).toContain("hung");
      expect(isAbortRaised(flag)).toBe(true);
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

  test("Stage 2: a hang that ignores the abort makes the process exit non-zero within the grace period", async () => {
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
console.log("STEP2 START " + Date.now());
await watchdog.runStep(step, { batchSize: 2, tokens: 8 }).catch((e) => console.log("STEP2 FAILED " + e.code));
await new Promise(() => {});
`,
    );
    try {
      const started = Date.now();
      const child = Bun.spawn([process.execPath, script], { stdout: "pipe", stderr: "pipe" });
      const [out, err, code] = await Promise.all([
        new Response(child.stdout).text(),
        new Response(child.stderr).text(),
        child.exited,
      ]);
      const output = out + err;
      expect(code).toBe(70);
      expect(output).toContain("STEP2 FAILED device_fault");
      expect(output).toContain("tp watchdog:");
      expect(output).toContain("ncclCommAbort");
      expect(output).toMatch(/Stage 2 .*leader did not answer within 700 ms/);
      const stepStart = Number(output.match(/STEP2 START (\d+)/)?.[1]);
      // step timeout 300 + grace 700 + exit delay 50, with room for a loaded machine; never before the grace ran out.
      const exitedAfter = Date.now() - stepStart;
      expect(exitedAfter).toBeGreaterThanOrEqual(300 + 700);
      expect(exitedAfter).toBeLessThan(6_000);
      expect(Date.now() - started).toBeLessThan(30_000);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }, 45_000);
});
