/**
 * Device check of the NCCL abort path, for a one-shot run on a machine with a
 * GPU and libnccl (and, in CI, on the stand-in library in host memory):
 *
 *   bun scripts/gpu-nccl-abort.ts [--out DIR] [--timeout-s N] [--hold-s S] [--memory auto|cuda|host]
 *
 * Scenarios: discovery (libcuda devices, libnccl path and version); a 1-rank
 * group through formGroup with liveness all-reduces and a clean leave; a
 * 2-rank init whose second rank never joins, aborted on its cached pointer
 * from another Worker; the same stuck formation through the neuron's own
 * handles and aborter; a rank stuck in the all-reduce freed by the aborter
 * (needs two devices on real hardware). Everything that can block in native
 * code runs in a Worker (this file, started again as one), so the main thread
 * only keeps time: a native call that hangs is reported, the JSON summary is
 * written, and the process exits 70. Exit 0: all passed; 1: one failed.
 * The summary goes to DIR/gpu-nccl-abort.json (--out, else $OUT when set).
 */
import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { type CudaDevice, cudaMemoryInfo, discoverCudaDevices } from "../ffi/cuda.ts";
import {
  findNcclLibrary,
  loadNccl,
  NCCL_RESULT,
  type NcclLibrary,
  ncclMissingMessage,
  useCudaDevice,
} from "../ffi/nccl.ts";
import type { CortexError } from "../src/core/errors.ts";
import { type Aborter, createWorkerAborter } from "../src/neuron/tp/aborter.ts";
import { groupHandles } from "../src/neuron/tp/communicator.ts";
import {
  commPointer,
  controlView,
  createControlBlock,
  publishPointer,
  snapshotRanks,
} from "../src/neuron/tp/control-block.ts";
import { exitImmediately, TP_FATAL_EXIT_CODE } from "../src/neuron/tp/fatal-exit.ts";
import { formGroup } from "../src/neuron/tp/form-group.ts";
import { RankClient } from "../src/neuron/tp/rank-client.ts";

const RANK_WORKER = new URL("../src/neuron/tp/cpu-rank-worker.ts", import.meta.url);

// ---------------------------------------------------------------------------
// Probe Worker: the native calls of the discovery and stuck-init scenarios.

type ProbeRequest =
  | { type: "discover"; libraryPath: string | undefined }
  | { type: "unique-id"; libraryPath: string }
  | {
      type: "init-nonblocking";
      libraryPath: string;
      uniqueId: Uint8Array;
      nranks: number;
      rank: number;
      device: number | undefined;
      control: SharedArrayBuffer;
    }
  | { type: "watch-async"; libraryPath: string; control: SharedArrayBuffer; rank: number; ms: number }
  | { type: "abort-pointer"; libraryPath: string; control: SharedArrayBuffer; rank: number }
  | { type: "ping" };

type ProbeReply = { id: number; ok: true; value: unknown } | { id: number; ok: false; error: string };

interface NcclInfo {
  path: string;
  version: number;
  versionText: string;
  hasInitRankConfig: boolean;
}

interface Discovery {
  devices: (CudaDevice & { memoryFree?: number })[];
  nccl?: NcclInfo;
  ncclError?: string;
}

/** NCCL_VERSION_CODE → "2.21.5" (codes from 2.9 on are major*10000 + minor*100 + patch). */
function versionText(code: number): string {
  return code >= 20900
    ? `${Math.floor(code / 10000)}.${Math.floor((code % 10000) / 100)}.${code % 100}`
    : `${Math.floor(code / 1000)}.${Math.floor((code % 1000) / 100)}.${code % 100}`;
}

function resultText(lib: NcclLibrary, result: number): string {
  return lib.errorString(result);
}

function probe(request: ProbeRequest): unknown {
  switch (request.type) {
    case "discover": {
      const devices = discoverCudaDevices().map((d) => {
        const memory = cudaMemoryInfo(d.index);
        return memory ? { ...d, memoryFree: memory.free } : d;
      });
      const out: Discovery = { devices };
      if (request.libraryPath) {
        try {
          const lib = loadNccl(request.libraryPath);
          out.nccl = {
            path: lib.path,
            version: lib.version,
            versionText: versionText(lib.version),
            hasInitRankConfig: lib.hasInitRankConfig,
          };
        } catch (error) {
          out.ncclError = (error as Error).message;
        }
      }
      return out;
    }
    case "unique-id":
      return loadNccl(request.libraryPath).getUniqueId();
    case "init-nonblocking": {
      const lib = loadNccl(request.libraryPath);
      if (!lib.hasInitRankConfig) throw new Error("libnccl has no ncclCommInitRankConfig (older than 2.14)");
      if (request.device !== undefined) useCudaDevice(request.device);
      const { result, comm } = lib.initRank(request.nranks, request.uniqueId, request.rank, false);
      // The cached handle: the pointer goes into the group's shared block the moment init returns it.
      if (comm !== 0) publishPointer(controlView(request.control), request.rank, BigInt(comm));
      return { result, text: resultText(lib, result), comm };
    }
    case "watch-async": {
      const lib = loadNccl(request.libraryPath);
      const comm = Number(commPointer(controlView(request.control), request.rank));
      const seen = new Map<number, number>();
      const deadline = performance.now() + request.ms;
      let samples = 0;
      do {
        const status = lib.asyncError(comm);
        seen.set(status, (seen.get(status) ?? 0) + 1);
        samples++;
        Bun.sleepSync(50);
      } while (performance.now() < deadline);
      return {
        samples,
        states: [...seen].map(([result, count]) => ({ result, text: resultText(lib, result), count })),
      };
    }
    case "abort-pointer": {
      const lib = loadNccl(request.libraryPath);
      const comm = Number(commPointer(controlView(request.control), request.rank));
      const started = performance.now();
      const result = lib.commAbort(comm);
      return { result, text: resultText(lib, result), ms: performance.now() - started };
    }
    case "ping":
      return "pong";
    default: {
      const never: never = request;
      throw new TypeError(`unknown probe request ${JSON.stringify(never)}`);
    }
  }
}

function probeWorkerMain(): void {
  const scope = globalThis as unknown as Worker;
  scope.onmessage = (message: MessageEvent<ProbeRequest & { id: number }>) => {
    let reply: ProbeReply;
    try {
      reply = { id: message.data.id, ok: true, value: probe(message.data) };
    } catch (error) {
      reply = { id: message.data.id, ok: false, error: (error as Error).message };
    }
    scope.postMessage(reply);
  };
}

/** Main-thread end of a probe Worker. */
class ProbeClient {
  readonly worker = new Worker(new URL(import.meta.url));
  readonly closed: Promise<void>;
  private nextId = 1;
  private readonly pending = new Map<number, (reply: ProbeReply) => void>();

  constructor() {
    // A probe wedged in native code must not keep the process alive.
    this.worker.unref();
    this.closed = new Promise((resolve) => this.worker.addEventListener("close", () => resolve()));
    this.worker.onmessage = (message: MessageEvent<ProbeReply>) => {
      this.pending.get(message.data.id)?.(message.data);
      this.pending.delete(message.data.id);
    };
  }

  request<T>(call: ProbeRequest): Promise<T> {
    const id = this.nextId++;
    return new Promise<T>((resolve, reject) => {
      this.pending.set(id, (reply) =>
        reply.ok ? resolve(reply.value as T) : reject(new Error(reply.error)),
      );
      this.worker.postMessage({ ...call, id });
    });
  }

  async terminate(timeoutMs: number): Promise<void> {
    this.worker.terminate();
    await within(this.closed, timeoutMs, "probe Worker close after terminate");
  }
}

// ---------------------------------------------------------------------------
// Main thread: scenarios, timing, summary.

type ScenarioStatus = "ok" | "failed" | "hung" | "skipped" | "not-run";

interface ScenarioResult {
  name: string;
  status: ScenarioStatus;
  ms: number;
  /** What it found: timings, NCCL result codes and their strings, outcomes. */
  detail: Record<string, unknown>;
  error?: string;
  note?: string;
}

/** A native call that did not return in time: the scenario is "hung" and the run ends with exit 70. */
class HungError extends Error {
  constructor(
    readonly what: string,
    readonly ms: number,
  ) {
    super(`${what} did not return within ${ms} ms`);
  }
}

function within<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const late = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new HungError(what, ms)), ms);
  });
  return Promise.race([promise, late]).finally(() => clearTimeout(timer));
}

function check(condition: boolean, message: string): void {
  if (!condition) throw new Error(message);
}

function say(line: string): void {
  console.log(`gpu-nccl-abort: ${line}`);
}

function sayAbort(scenario: string, rank: number, what: string): void {
  console.log(`tp watchdog: ncclCommAbort gpu-nccl-abort scenario=${scenario} rank=${rank} ${what}`);
}

/** A rank Worker that does not close after terminate is a thread stuck in native code: a hang, not a failure. */
async function terminateRanks(ranks: readonly RankClient[], timeoutMs: number): Promise<void> {
  await Promise.all(ranks.map((r) => r.terminate(timeoutMs))).catch(() => {
    throw new HungError("rank Worker close after terminate", timeoutMs);
  });
}

const ms = (value: number) => Math.round(value * 10) / 10;

interface Context {
  libraryPath: string;
  memory: "cuda" | "host";
  devices: CudaDevice[];
  timeoutMs: number;
  abortTimeoutMs: number;
  holdMs: number;
  aborter: Aborter;
}

async function singleRank(ctx: Context, detail: Record<string, unknown>): Promise<string | undefined> {
  const rank = RankClient.spawn(RANK_WORKER);
  await within(rank.ready, ctx.timeoutMs, "rank Worker start");
  let started = performance.now();
  await within(
    formGroup({
      groupId: "gpu-check-1rank",
      backend: "nccl",
      ports: [rank],
      libraryPath: ctx.libraryPath,
      memory: ctx.memory,
      ...(ctx.memory === "cuda" ? { deviceOrdinals: [0] } : {}),
      timeoutMs: ctx.timeoutMs / 2,
    }),
    ctx.timeoutMs,
    "1-rank ncclCommInitRankConfig",
  );
  detail.initMs = ms(performance.now() - started);
  const stepsMs: number[] = [];
  for (let step = 1; step <= 3; step++) {
    started = performance.now();
    const reply = await within(
      rank.request({ type: "tp-step", step, batchSize: 1, tokens: 1 }),
      ctx.timeoutMs / 4,
      `liveness all-reduce of step ${step}`,
    );
    stepsMs.push(ms(performance.now() - started));
    check((reply as { step?: number }).step === step, `step ${step} answered ${JSON.stringify(reply)}`);
  }
  detail.allReduceMs = stepsMs;
  started = performance.now();
  await within(rank.request({ type: "tp-leave" }), ctx.timeoutMs / 4, "ncclCommDestroy");
  detail.destroyMs = ms(performance.now() - started);
  await terminateRanks([rank], ctx.timeoutMs / 4);
  return `init ${detail.initMs} ms, 3 all-reduces (${stepsMs.join(", ")} ms), destroy ${detail.destroyMs} ms`;
}

async function stuckInit(ctx: Context, detail: Record<string, unknown>): Promise<string | undefined> {
  const rank = new ProbeClient();
  const aborter = new ProbeClient();
  const control = createControlBlock(2, "nccl");
  const { libraryPath } = ctx;
  await within(aborter.request({ type: "ping" }), ctx.timeoutMs / 4, "aborter Worker start");
  const uniqueId = await within(
    rank.request<Uint8Array>({ type: "unique-id", libraryPath }),
    ctx.timeoutMs / 4,
    "ncclGetUniqueId",
  );
  let started = performance.now();
  const init = await within(
    rank.request<{ result: number; text: string; comm: number }>({
      type: "init-nonblocking",
      libraryPath,
      uniqueId,
      nranks: 2,
      rank: 0,
      device: ctx.memory === "cuda" ? 0 : undefined,
      control,
    }),
    ctx.timeoutMs / 4,
    "nonblocking ncclCommInitRankConfig (rank 0 of 2)",
  );
  detail.init = { ...init, comm: `0x${init.comm.toString(16)}`, ms: ms(performance.now() - started) };
  say(
    `stuck-init: ncclCommInitRankConfig returned ${init.result} (${init.text}), comm=0x${init.comm.toString(16)}`,
  );
  check(init.comm !== 0, "init returned no communicator pointer");
  check(init.result === NCCL_RESULT.inProgress, `init returned ${init.result}, expected ncclInProgress (7)`);

  const watch = await within(
    rank.request<{ samples: number; states: { result: number; text: string; count: number }[] }>({
      type: "watch-async",
      libraryPath,
      control,
      rank: 0,
      ms: ctx.holdMs,
    }),
    ctx.holdMs + ctx.timeoutMs / 4,
    "ncclCommGetAsyncError while init is stuck",
  );
  detail.asyncErrorWhileStuck = { holdMs: ctx.holdMs, ...watch };
  const states = watch.states.map((s) => `${s.result} (${s.text}) x${s.count}`).join(", ");
  say(`stuck-init: ncclCommGetAsyncError over ${ctx.holdMs} ms: ${states}`);
  check(
    watch.states.length === 1 && watch.states[0]?.result === NCCL_RESULT.inProgress,
    "init did not stay ncclInProgress while the second rank was missing",
  );

  sayAbort("stuck-init", 0, "starting on the cached handle from another Worker (init in progress)");
  started = performance.now();
  const abort = await within(
    aborter.request<{ result: number; text: string; ms: number }>({
      type: "abort-pointer",
      libraryPath,
      control,
      rank: 0,
    }),
    ctx.abortTimeoutMs,
    "ncclCommAbort of a communicator in nonblocking init",
  );
  const wallMs = ms(performance.now() - started);
  detail.abort = { result: abort.result, text: abort.text, nativeMs: ms(abort.ms), wallMs };
  sayAbort("stuck-init", 0, `result=${abort.result} (${abort.text}) in ${ms(abort.ms)}ms (wall ${wallMs}ms)`);
  check(abort.result === NCCL_RESULT.success, `ncclCommAbort returned ${abort.result} (${abort.text})`);

  started = performance.now();
  await within(rank.request({ type: "ping" }), ctx.timeoutMs / 4, "rank Worker ping after the abort");
  detail.rankAnsweredMs = ms(performance.now() - started);
  await rank.terminate(ctx.timeoutMs / 4);
  await aborter.terminate(ctx.timeoutMs / 4);
  detail.terminated = true;
  return `abort took ${ms(abort.ms)} ms; the rank Worker answered and terminated`;
}

async function stuckFormation(ctx: Context, detail: Record<string, unknown>): Promise<string | undefined> {
  // formGroup's own steps, with the second rank's join never sent: formGroup hides the handles until
  // the group forms, so the check builds them itself, exactly as formGroup does.
  const leader = RankClient.spawn(RANK_WORKER);
  await within(leader.ready, ctx.timeoutMs / 4, "rank Worker start");
  const control = createControlBlock(2, "nccl");
  const handles = groupHandles({
    backend: "nccl",
    groupId: "gpu-check-formation",
    size: 2,
    control,
    libraryPath: ctx.libraryPath,
  });
  const uniqueId = (await within(
    leader.request({ type: "tp-unique-id", libraryPath: ctx.libraryPath }),
    ctx.timeoutMs / 4,
    "ncclGetUniqueId",
  )) as Uint8Array;
  const join = leader.request({
    type: "tp-join",
    init: {
      backend: "nccl",
      groupId: "gpu-check-formation",
      rank: 0,
      control,
      uniqueId,
      libraryPath: ctx.libraryPath,
      memory: ctx.memory,
      ...(ctx.memory === "cuda" ? { device: 0 } : {}),
      initTimeoutMs: ctx.timeoutMs,
    },
    faults: "",
  });
  let joinError: unknown;
  let joinSettledAt: number | undefined;
  const settled = join.then(
    () => {
      joinSettledAt = performance.now();
    },
    (error: unknown) => {
      joinSettledAt = performance.now();
      joinError = error;
    },
  );
  await Bun.sleep(ctx.holdMs);
  const [rank0] = snapshotRanks(controlView(control));
  detail.beforeAbort = { ...rank0, commPublished: commPointer(controlView(control), 0) !== 0n };
  check(
    joinSettledAt === undefined,
    `the join ended before the abort: ${joinError ? (joinError as Error).message : "it formed without rank 1"}`,
  );
  check(rank0?.state === "uninit" && rank0.phase === "init", `rank 0 is ${rank0?.state}/${rank0?.phase}`);

  sayAbort(
    "stuck-formation",
    0,
    "aborter.abortAll on the group's cached handles (rank 0 in init, rank 1 absent)",
  );
  const started = performance.now();
  const report = await ctx.aborter.abortAll(handles, ctx.abortTimeoutMs);
  for (const r of report.ranks) {
    sayAbort("stuck-formation", r.rank, `outcome=${r.outcome} in ${ms(r.ms ?? report.elapsedMs)}ms`);
  }
  check(report.completed, "the aborter did not return in time");
  // A rank still in init is aborted by its own Worker as its poll wakes: that ncclCommAbort ends the join.
  await within(settled, ctx.abortTimeoutMs, "the rank's own ncclCommAbort of its stuck init");
  const endedMs = ms((joinSettledAt ?? performance.now()) - started);
  const error = joinError as CortexError | undefined;
  detail.abort = {
    outcomes: report.ranks,
    joinEndedMs: endedMs,
    joinError: error?.message,
    code: error?.code,
  };
  sayAbort(
    "stuck-formation",
    0,
    `join ended ${endedMs}ms after the abort: ${error?.code}: ${error?.message}`,
  );
  check(error?.code === "device_fault", `the join ended with ${error ? error.code : "success"}`);
  check(
    report.ranks.every((r) => r.outcome === "pre-init"),
    `outcomes ${report.ranks.map((r) => r.outcome).join(",")}, expected pre-init`,
  );
  await within(leader.request({ type: "ping" }), ctx.timeoutMs / 4, "rank Worker ping after the abort");
  await terminateRanks([leader], ctx.timeoutMs / 4);
  return `the stuck join ended ${endedMs} ms after the abort; the rank Worker answered and terminated`;
}

async function collectiveAbort(ctx: Context, detail: Record<string, unknown>): Promise<string | undefined> {
  const ranks = [RankClient.spawn(RANK_WORKER), RankClient.spawn(RANK_WORKER)];
  await within(Promise.all(ranks.map((r) => r.ready)), ctx.timeoutMs / 4, "rank Worker start");
  const { handles } = await within(
    formGroup({
      groupId: "gpu-check-collective",
      backend: "nccl",
      ports: ranks,
      libraryPath: ctx.libraryPath,
      memory: ctx.memory,
      ...(ctx.memory === "cuda" ? { deviceOrdinals: [0, 1] } : {}),
      faults: "hang-collective:rank=1,step=2",
      timeoutMs: ctx.timeoutMs / 2,
    }),
    ctx.timeoutMs / 2,
    "2-rank group formation",
  );
  const step = (n: number) =>
    ranks.map((r) => r.request({ type: "tp-step", step: n, batchSize: 1, tokens: 1 }));
  await within(Promise.all(step(1)), ctx.timeoutMs / 4, "step 1 all-reduce");
  const [leader, follower] = step(2);
  follower?.catch(() => {});
  let leaderError: unknown;
  let leaderSettledAt: number | undefined;
  const settled = leader!.then(
    () => {
      leaderSettledAt = performance.now();
    },
    (error: unknown) => {
      leaderSettledAt = performance.now();
      leaderError = error;
    },
  );
  await Bun.sleep(Math.min(ctx.holdMs, 500));
  check(leaderSettledAt === undefined, "rank 0's all-reduce returned although rank 1 never joined it");
  const [rank0] = snapshotRanks(controlView(handles[0]!.control));
  detail.beforeAbort = rank0;

  const where = ctx.memory === "cuda" ? "waits on its all-reduce kernel" : "is blocked inside ncclAllReduce";
  sayAbort("collective-abort", 0, `aborter.abortAll while rank 0 ${where} (rank 1 never joined it)`);
  const started = performance.now();
  const report = await ctx.aborter.abortAll(handles, ctx.abortTimeoutMs);
  for (const r of report.ranks) {
    sayAbort("collective-abort", r.rank, `outcome=${r.outcome} in ${ms(r.ms ?? report.elapsedMs)}ms`);
  }
  check(report.completed, "the aborter did not return in time");
  await within(settled, ctx.abortTimeoutMs, "rank 0 leaving ncclAllReduce after the abort");
  const freedMs = ms((leaderSettledAt ?? performance.now()) - started);
  const error = leaderError as CortexError | undefined;
  detail.abort = { outcomes: report.ranks, elapsedMs: ms(report.elapsedMs), rank0FreedMs: freedMs };
  check(error?.code === "device_fault", `rank 0's step ended with ${error ? error.code : "success"}`);
  check(
    report.ranks.every((r) => r.outcome === "aborted"),
    `outcomes ${report.ranks.map((r) => r.outcome).join(",")}, expected aborted`,
  );
  await within(Promise.all(ranks.map((r) => r.request({ type: "tp-leave" }))), ctx.timeoutMs / 4, "leave");
  await within(Promise.all(ranks.map((r) => r.request({ type: "ping" }))), ctx.timeoutMs / 4, "ping");
  await terminateRanks(ranks, ctx.timeoutMs / 4);
  return `rank 0 left the all-reduce ${freedMs} ms after the abort; both Workers answered and terminated`;
}

function usage(): never {
  console.error(
    "usage: bun scripts/gpu-nccl-abort.ts [--out DIR] [--timeout-s N] [--hold-s S] [--memory auto|cuda|host]",
  );
  process.exit(2);
}

async function main(): Promise<void> {
  let values: { out?: string; "timeout-s"?: string; "hold-s"?: string; memory?: string; help?: boolean };
  try {
    ({ values } = parseArgs({
      options: {
        out: { type: "string" },
        "timeout-s": { type: "string" },
        "hold-s": { type: "string" },
        memory: { type: "string" },
        help: { type: "boolean", short: "h" },
      },
    }));
  } catch {
    usage();
  }
  const timeoutMs = Number(values["timeout-s"] ?? 60) * 1000;
  const holdMs = Number(values["hold-s"] ?? 2) * 1000;
  const memoryFlag = values.memory ?? "auto";
  if (values.help || !(timeoutMs > 0) || !(holdMs > 0) || !["auto", "cuda", "host"].includes(memoryFlag))
    usage();
  const outDir = values.out ?? process.env.OUT;
  const started = performance.now();
  const lookup = findNcclLibrary();
  const summary = {
    script: "gpu-nccl-abort",
    startedAt: new Date().toISOString(),
    mode: "host" as "cuda" | "host",
    nccl: undefined as NcclInfo | undefined,
    cuda: { devices: [] as Discovery["devices"] },
    timeoutS: timeoutMs / 1000,
    holdS: holdMs / 1000,
    scenarios: [] as ScenarioResult[],
    exitCode: 0,
    elapsedMs: 0,
  };
  let aborter: Aborter | undefined;

  const planned = ["discovery", "single-rank", "stuck-init", "stuck-formation", "collective-abort"];
  const finish = (): never => {
    for (const name of planned) {
      if (!summary.scenarios.some((s) => s.name === name)) {
        summary.scenarios.push({ name, status: "not-run", ms: 0, detail: {}, note: "an earlier step hung" });
      }
    }
    const statuses = summary.scenarios.map((s) => s.status);
    summary.exitCode = statuses.includes("hung") ? TP_FATAL_EXIT_CODE : statuses.includes("failed") ? 1 : 0;
    summary.elapsedMs = ms(performance.now() - started);
    if (outDir) {
      mkdirSync(outDir, { recursive: true });
      writeFileSync(join(outDir, "gpu-nccl-abort.json"), `${JSON.stringify(summary, null, 2)}\n`);
      say(`summary written to ${join(outDir, "gpu-nccl-abort.json")}`);
    }
    const counts = statuses.map((s, i) => `${summary.scenarios[i]?.name}=${s}`).join(" ");
    say(`done in ${summary.elapsedMs} ms: ${counts}; exit ${summary.exitCode}`);
    aborter?.close();
    // A Worker may still be in native code (a hang, a failure, NCCL's bootstrap thread for the rank that
    // never came): _exit, as the neuron's Stage 2 does, skips teardown (CUDA's included) that could hang too.
    exitImmediately(summary.exitCode);
  };

  const run = async (
    name: string,
    body: (detail: Record<string, unknown>) => Promise<string | undefined>,
  ): Promise<ScenarioResult> => {
    const result: ScenarioResult = { name, status: "ok", ms: 0, detail: {} };
    summary.scenarios.push(result);
    say(`[${name}] start`);
    const t0 = performance.now();
    try {
      const note = await within(body(result.detail), timeoutMs, `scenario ${name}`);
      if (note) result.note = note;
    } catch (error) {
      result.status = error instanceof HungError ? "hung" : "failed";
      result.error = (error as Error).message;
    }
    result.ms = ms(performance.now() - t0);
    const tail = result.error ?? result.note ?? "";
    say(`[${name}] ${result.status.toUpperCase()} in ${result.ms} ms${tail ? `: ${tail}` : ""}`);
    if (result.status === "hung") {
      console.log(
        `tp watchdog: gpu-nccl-abort scenario=${name} hung: ${result.error}; exiting ${TP_FATAL_EXIT_CODE}`,
      );
      finish();
    }
    return result;
  };
  const skip = (name: string, status: "skipped" | "not-run", note: string) => {
    summary.scenarios.push({ name, status, ms: 0, detail: {}, note });
    say(`[${name}] ${status.toUpperCase()}: ${note}`);
  };

  const discovery = await run("discovery", async (detail) => {
    const prober = new ProbeClient();
    const found = await prober.request<Discovery>({ type: "discover", libraryPath: lookup.path });
    await prober.terminate(5_000);
    summary.cuda.devices = found.devices;
    detail.devices = found.devices;
    for (const d of found.devices) {
      const free = d.memoryFree === undefined ? "" : `, ${(d.memoryFree / 2 ** 30).toFixed(1)} GiB free`;
      say(
        `cuda device ${d.index}: ${d.name} ${d.uuid} cc ${d.computeCapability}, ${(d.memoryTotal / 2 ** 30).toFixed(1)} GiB${free}`,
      );
    }
    if (found.devices.length === 0) say("no CUDA device (libcuda absent or no visible GPU)");
    if (!lookup.path) throw new Error(ncclMissingMessage(lookup));
    if (!found.nccl) throw new Error(found.ncclError ?? `libnccl at ${lookup.path} did not load`);
    summary.nccl = found.nccl;
    detail.nccl = found.nccl;
    say(
      `libnccl ${found.nccl.versionText} (${found.nccl.version}) at ${found.nccl.path}; ncclCommInitRankConfig: ${found.nccl.hasInitRankConfig ? "yes" : "no"}`,
    );
    return `${found.devices.length} CUDA device(s), libnccl ${found.nccl.versionText}`;
  });
  if (discovery.status !== "ok" || !summary.nccl) {
    for (const name of planned.slice(1)) skip(name, "not-run", "discovery failed");
    finish();
  }

  summary.mode =
    memoryFlag === "auto"
      ? summary.cuda.devices.length > 0
        ? "cuda"
        : "host"
      : (memoryFlag as "cuda" | "host");
  say(
    summary.mode === "cuda"
      ? "mode=cuda: device buffers on CUDA device 0 (and 1 where present)"
      : "mode=host: host-memory buffers (no CUDA device, or --memory host): only meaningful with the stand-in libnccl",
  );
  aborter = createWorkerAborter();
  const ctx: Context = {
    libraryPath: summary.nccl!.path,
    memory: summary.mode,
    devices: summary.cuda.devices,
    timeoutMs,
    abortTimeoutMs: Math.min(20_000, timeoutMs / 2),
    holdMs,
    aborter,
  };
  await within(aborter.warm([ctx.libraryPath]), timeoutMs, "aborter warm-up (dlopen libnccl)").catch(
    (error) => {
      summary.scenarios.push({
        name: "aborter-warm",
        status: "hung",
        ms: timeoutMs,
        detail: {},
        error: error.message,
      });
      finish();
    },
  );

  await run("single-rank", (detail) => singleRank(ctx, detail));
  await run("stuck-init", (detail) => stuckInit(ctx, detail));
  await run("stuck-formation", (detail) => stuckFormation(ctx, detail));
  if (ctx.memory === "cuda" && ctx.devices.length < 2) {
    skip(
      "collective-abort",
      "skipped",
      "needs 2 CUDA devices: NCCL refuses two ranks on one GPU, so on this machine only the stuck init (stuck-init, stuck-formation) is checked",
    );
  } else {
    await run("collective-abort", (detail) => collectiveAbort(ctx, detail));
  }
  finish();
}

if (Bun.isMainThread) await main();
else probeWorkerMain();
