/**
 * ffi/nccl.ts against a stand-in libnccl (tests/fixtures/fake-nccl.c, built
 * with the system gcc): the same loading code, TinyCC shim and abort path as
 * with the real library, with threads where GPUs would be. The stand-in's
 * ncclAllReduce blocks inside native code until every rank arrives or the
 * communicator is aborted, so these tests show an abort reaching a thread
 * that JavaScript cannot interrupt.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { findNcclLibrary, loadNccl, ncclMissingMessage } from "../../ffi/nccl.ts";
import { createWorkerAborter } from "../../src/neuron/tp/aborter.ts";
import { controlView, phaseReached } from "../../src/neuron/tp/control-block.ts";
import { formGroup } from "../../src/neuron/tp/form-group.ts";
import { RankClient } from "../../src/neuron/tp/rank-client.ts";

const RANK_WORKER = new URL("../../src/neuron/tp/cpu-rank-worker.ts", import.meta.url);
const FAKE_SOURCE = new URL("../fixtures/fake-nccl.c", import.meta.url).pathname;
const TP_DIR = new URL("../../src/neuron/tp/", import.meta.url).pathname;
const gcc = Bun.which("gcc");
if (!gcc) console.warn("tp-nccl-fake: gcc not found; skipping the stand-in libnccl tests");

let dir = "";
let libraryPath = "";

beforeAll(() => {
  if (!gcc) return;
  dir = mkdtempSync(join(tmpdir(), "cortex-fake-nccl-"));
  libraryPath = join(dir, "libnccl.so.2");
  const build = Bun.spawnSync([gcc, "-shared", "-fPIC", "-O1", "-o", libraryPath, FAKE_SOURCE, "-lpthread"]);
  if (build.exitCode !== 0) throw new Error(`gcc failed: ${build.stderr.toString()}`);
});

afterAll(() => {
  if (dir) rmSync(dir, { recursive: true, force: true });
});

async function spawnRanks(n: number): Promise<RankClient[]> {
  const ranks = Array.from({ length: n }, () => RankClient.spawn(RANK_WORKER));
  await Promise.all(ranks.map((r) => r.ready));
  return ranks;
}

describe("libnccl lookup", () => {
  test("an absent library gives one message naming where it looked", () => {
    const lookup = findNcclLibrary({ CORTEX_NCCL_LIB: "/nonexistent/libnccl.so.2" });
    expect(lookup.path).toBeUndefined();
    expect(ncclMissingMessage(lookup)).toContain("CORTEX_NCCL_LIB=/nonexistent/libnccl.so.2");
    expect(ncclMissingMessage(lookup)).toContain("shm communicator or are refused");
  });
});

describe.skipIf(!gcc)("nccl communicator on the stand-in library", () => {
  test("CORTEX_NCCL_LIB is found and loaded; a 2-rank group forms with the id passed by value and all-reduces", async () => {
    const lookup = findNcclLibrary({ CORTEX_NCCL_LIB: libraryPath });
    expect(lookup.path).toBe(libraryPath);
    const lib = loadNccl(libraryPath);
    expect(lib.version).toBe(22105);
    expect(lib.hasInitRankConfig).toBe(true);

    const ranks = await spawnRanks(2);
    await formGroup({ groupId: "nccl-ok", backend: "nccl", ports: ranks, libraryPath, memory: "host" });
    for (let step = 1; step <= 3; step++) {
      const replies = await Promise.all(
        ranks.map((r) => r.request({ type: "tp-step", step, batchSize: 1, tokens: 2 })),
      );
      expect(replies[0]).toMatchObject({ step });
    }
    await Promise.all(ranks.map((r) => r.request({ type: "tp-leave" })));
    await Promise.all(ranks.map((r) => r.terminate()));
  });

  test("a rank stuck inside ncclAllReduce is freed by ncclCommAbort from the aborter Worker using only the cached handles", async () => {
    const aborter = createWorkerAborter();
    const ranks = await spawnRanks(2);
    const { handles } = await formGroup({
      groupId: "nccl-hang",
      backend: "nccl",
      ports: ranks,
      libraryPath,
      memory: "host",
      faults: "hang-collective:rank=1,step=2",
    });
    await aborter.warm([libraryPath]);
    await Promise.all(ranks.map((r) => r.request({ type: "tp-step", step: 1, batchSize: 1, tokens: 1 })));

    const leader = ranks[0]!.request({ type: "tp-step", step: 2, batchSize: 1, tokens: 1 });
    const follower = ranks[1]!.request({ type: "tp-step", step: 2, batchSize: 1, tokens: 1 });
    // Either may settle before the assertions below attach: keep that from counting as unhandled.
    follower.catch(() => {});
    let leaderSettled = false;
    leader.then(
      () => (leaderSettled = true),
      () => (leaderSettled = true),
    );
    // The leader has entered step 2's all-reduce, which its peer never joins: it cannot answer
    // anything until aborted.
    await phaseReached(controlView(handles[0]!.control), 0, "collective", 2);
    expect(leaderSettled).toBe(false);

    // Completed within its own 2 s limit, as the aborter measured it.
    const report = await aborter.abortAll(handles, 2_000);
    expect(report.completed).toBe(true);
    expect(report.ranks.map((r) => r.outcome)).toEqual(["aborted", "aborted"]);
    await expect(leader).rejects.toMatchObject({ code: "device_fault" });
    await expect(follower).rejects.toMatchObject({ code: "device_fault" });

    // Teardown after the abort: destroy is a no-op, the Workers stay alive, a second abort does nothing.
    await Promise.all(ranks.map((r) => r.request({ type: "tp-leave" })));
    expect(await Promise.all(ranks.map((r) => r.request({ type: "ping" })))).toEqual(["pong", "pong"]);
    const again = await aborter.abortAll(handles, 2_000);
    expect(again.ranks.map((r) => r.outcome)).toEqual(["already", "already"]);

    aborter.close();
    await Promise.all(ranks.map((r) => r.terminate()));
  });

  test("an ncclCommAbort that itself hangs is caught by the main thread's timer and ends in Stage 2", async () => {
    const scriptDir = mkdtempSync(join(tmpdir(), "cortex-tp-aborthang-"));
    const script = join(scriptDir, "abort-hang.ts");
    writeFileSync(
      script,
      `
import { createWorkerAborter } from "${TP_DIR}aborter.ts";
import { formGroup } from "${TP_DIR}form-group.ts";
import { RankClient } from "${TP_DIR}rank-client.ts";
import { StepWatchdog, exitForSupervisor } from "${TP_DIR}step-watchdog.ts";
setTimeout(() => { console.log("NO STAGE 2"); process.exit(0); }, 15000).unref();
const ranks = [RankClient.spawn("${RANK_WORKER.pathname}"), RankClient.spawn("${RANK_WORKER.pathname}")];
await Promise.all(ranks.map((r) => r.ready));
const libraryPath = process.env.CORTEX_NCCL_LIB;
const { handles } = await formGroup({ groupId: "aborthang", backend: "nccl", ports: ranks, libraryPath, memory: "host", faults: "hang-collective:rank=1,step=1" });
const watchdog = new StepWatchdog({
  group: { groupId: "aborthang", model: "tiny-bigram", devices: ["cuda-dev-0", "cuda-dev-1"] },
  handles,
  aborter: createWorkerAborter(),
  raiseAbortFlag: () => {},
  recovery: { unload: async () => {}, terminateWorkers: async () => {}, startWorkers: async () => {}, reportUnloaded: () => {} },
  onFatal: exitForSupervisor({ delayMs: 50 }),
  timings: { stepTimeoutMs: 300, abortTimeoutMs: 800, graceMs: 5000 },
});
watchdog.markReady();
const step = (n) => { const replies = ranks.map((r) => r.request({ type: "tp-step", step: n, batchSize: 1, tokens: 1 })); replies[1].catch(() => {}); return replies[0]; };
await watchdog.runStep(step, { batchSize: 1, tokens: 1 }).catch((e) => console.log("STEP FAILED " + e.code));
await new Promise(() => {});
`,
    );
    try {
      const child = Bun.spawn([process.execPath, script], {
        stdout: "pipe",
        stderr: "pipe",
        env: { ...process.env, CORTEX_NCCL_LIB: libraryPath, FAKE_NCCL_ABORT_HANG: "1" },
      });
      const [out, err, code] = await Promise.all([
        new Response(child.stdout).text(),
        new Response(child.stderr).text(),
        child.exited,
      ]);
      const output = out + err;
      expect(code, output).toBe(70);
      expect(output).toContain("STEP FAILED device_fault");
      expect(output).toMatch(/ncclCommAbort .*rank=0 .*outcome=hung/);
      expect(output).toMatch(/Stage 2 .*ncclCommAbort did not return within 800 ms \(hung on rank 0\)/);
      // The exit itself shows the hung abort did not hang the process (it would print NO STAGE 2).
      expect(output).not.toContain("NO STAGE 2");
    } finally {
      rmSync(scriptDir, { recursive: true, force: true });
    }
  }, 20_000);
});
