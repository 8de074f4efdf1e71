/**
 * scripts/gpu-nccl-abort.ts, the device check a GPU session runs once, run
 * here against the stand-in libnccl (tests/fixtures/fake-nccl.c) in host
 * memory, so it cannot rot between GPU sessions: every scenario passes, the
 * summary says so, the log carries the markers operators grep for, and an
 * ncclCommAbort that never returns ends the run with exit 70, not a hang.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

const SCRIPT = new URL("../../scripts/gpu-nccl-abort.ts", import.meta.url).pathname;
const FAKE_SOURCE = new URL("../fixtures/fake-nccl.c", import.meta.url).pathname;
const gcc = Bun.which("gcc");
if (!gcc) console.warn("gpu-nccl-abort-script: gcc not found; skipping the stand-in libnccl run");

interface Summary {
  mode: string;
  nccl: { version: number; versionText: string };
  exitCode: number;
  scenarios: { name: string; status: string; error?: string; detail: Record<string, unknown> }[];
}

let dir = "";
let libraryPath = "";

beforeAll(() => {
  if (!gcc) return;
  dir = mkdtempSync(join(tmpdir(), "cortex-gpu-check-"));
  libraryPath = join(dir, "libnccl.so.2");
  const build = Bun.spawnSync([gcc, "-shared", "-fPIC", "-O1", "-o", libraryPath, FAKE_SOURCE, "-lpthread"]);
  if (build.exitCode !== 0) throw new Error(`gcc failed: ${build.stderr.toString()}`);
});

afterAll(() => {
  if (dir) rmSync(dir, { recursive: true, force: true });
});

async function runScript(out: string, args: string[], env: Record<string, string> = {}) {
  const child = Bun.spawn([process.execPath, SCRIPT, "--out", out, "--memory", "host", ...args], {
    stdout: "pipe",
    stderr: "pipe",
    env: { ...process.env, CORTEX_NCCL_LIB: libraryPath, ...env },
  });
  const [stdout, stderr, code] = await Promise.all([
    new Response(child.stdout).text(),
    new Response(child.stderr).text(),
    child.exited,
  ]);
  const summary = JSON.parse(readFileSync(join(out, "gpu-nccl-abort.json"), "utf8")) as Summary;
  return { stdout, stderr, code, summary };
}

describe.skipIf(!gcc)("gpu-nccl-abort script on the stand-in libnccl", () => {
  test("every scenario passes in host-memory mode; the summary and the log say so", async () => {
    const { stdout, stderr, code, summary } = await runScript(join(dir, "ok"), ["--hold-s", "0.5"]);
    expect({ code, stderr: code === 0 ? "" : stderr }).toEqual({ code: 0, stderr: "" });
    expect(summary.exitCode).toBe(0);
    expect(summary.mode).toBe("host");
    expect(summary.nccl.versionText).toBe("2.21.5");
    expect(summary.scenarios.map((s) => [s.name, s.status])).toEqual([
      ["discovery", "ok"],
      ["single-rank", "ok"],
      ["stuck-init", "ok"],
      ["stuck-formation", "ok"],
      ["collective-abort", "ok"],
    ]);
    const stuck = summary.scenarios.find((s) => s.name === "stuck-init")?.detail;
    expect(stuck?.init).toMatchObject({ result: 7 });
    expect(stuck?.abort).toMatchObject({ result: 0 });
    expect(stdout).toContain("mode=host");
    expect(stdout).toMatch(/tp watchdog: ncclCommAbort .*scenario=stuck-init rank=0 result=0/);
    expect(stdout).toMatch(/tp watchdog: ncclCommAbort .*scenario=stuck-formation rank=0 outcome=pre-init/);
    expect(stdout).toMatch(/tp watchdog: ncclCommAbort .*scenario=collective-abort rank=0 outcome=aborted/);
  }, 20_000);

  test("an ncclCommAbort that never returns is reported as hung and the run exits 70 with the summary written", async () => {
    const started = performance.now();
    const { stdout, code, summary } = await runScript(
      join(dir, "hang"),
      ["--timeout-s", "2", "--hold-s", "0.2"],
      { FAKE_NCCL_ABORT_HANG: "1" },
    );
    expect(code).toBe(70);
    expect(summary.exitCode).toBe(70);
    expect(summary.scenarios.map((s) => [s.name, s.status])).toEqual([
      ["discovery", "ok"],
      ["single-rank", "ok"],
      ["stuck-init", "hung"],
      ["stuck-formation", "not-run"],
      ["collective-abort", "not-run"],
    ]);
    expect(summary.scenarios[2]?.error).toContain("ncclCommAbort");
    expect(stdout).toMatch(/tp watchdog: gpu-nccl-abort scenario=stuck-init hung: .*exiting 70/);
    // abort timeout (half the 2 s scenario limit) plus start-up, not the scenario limits added up.
    expect(performance.now() - started).toBeLessThan(6_000);
  }, 20_000);
});
