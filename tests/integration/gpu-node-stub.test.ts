/**
 * A GPU node on a machine without a GPU: a stand-in libcuda.so.1
 * (tests/fixtures/stub-libcuda.c, built with the system gcc) claims two
 * H200s, while the only native set here is the CPU one. `cortex neuron` must
 * refuse to start as a GPU node (ERROR, exit 2) rather than name CPU
 * devices `cuda-dev-N`, and with `neuron.allow_cpu_fallback` run as a CPU
 * node that says so at WARN and in /health. Also: the driver's own memory
 * figures, read through the device's context.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { HealthResponse } from "../../src/core/neuron-api.ts";

const root = join(import.meta.dir, "../..");
const STUB_SOURCE = join(import.meta.dir, "../fixtures/stub-libcuda.c");
const gcc = Bun.which("gcc");
if (!gcc) console.warn("gpu-node-stub: gcc not found; skipping the stand-in libcuda tests");

let dir = "";

beforeAll(() => {
  if (!gcc) return;
  dir = mkdtempSync(join(tmpdir(), "cortex-stub-cuda-"));
  mkdirSync(join(dir, "lib"));
  mkdirSync(join(dir, "models"));
  const build = Bun.spawnSync([
    gcc,
    "-shared",
    "-fPIC",
    "-O1",
    "-o",
    join(dir, "lib/libcuda.so.1"),
    STUB_SOURCE,
  ]);
  if (build.exitCode !== 0) throw new Error(`gcc failed: ${build.stderr.toString()}`);
});

afterAll(() => {
  if (dir) rmSync(dir, { recursive: true, force: true });
});

/** The CPU set from npm, named explicitly: a CUDA set a developer set up in this checkout must not change the outcome. */
const CPU_SET = join(root, "node_modules/@node-llama-cpp/linux-x64/bins/linux-x64");

/** The environment of a process that sees the stand-in driver and only the CPU native set. */
function stubEnv(extra: Record<string, string> = {}): Record<string, string | undefined> {
  const { CORTEX_CUDA_LIB_DIR: _cudaLibs, ...env } = process.env;
  return {
    ...env,
    CORTEX_NATIVE_DIR: CPU_SET,
    LD_LIBRARY_PATH: join(dir, "lib"),
    CORTEX_LOG_LEVEL: "info",
    CORTEX_LOG_FORMAT: "json",
    ...extra,
  };
}

function neuron(config: string): Bun.Subprocess<"ignore", "pipe", "pipe"> {
  const path = join(dir, `cortex-${Bun.hash(config)}.toml`);
  writeFileSync(path, config);
  return Bun.spawn([process.execPath, "src/cli/main.ts", "neuron", "--config", path], {
    cwd: root,
    env: stubEnv(),
    stdin: "ignore",
    stdout: "pipe",
    stderr: "pipe",
  });
}

const BASE = () => `[neuron]\nlisten = "127.0.0.1:0"\nmodels_dir = "${join(dir, "models")}"\n`;

describe.skipIf(!gcc)("a GPU node whose CUDA backend did not come up", () => {
  test("refuses to start: an ERROR naming the GPUs and the CPU-only set, exit 2", async () => {
    const proc = neuron(BASE());
    const [code, stdout, stderr] = await Promise.all([
      proc.exited,
      new Response(proc.stdout).text(),
      new Response(proc.stderr).text(),
    ]);
    const output = stdout + stderr;
    expect(code).toBe(2);
    expect(logged(output, "error")).toContain(
      "GPU node refused to start: 2 CUDA device(s) (NVIDIA H200 ×2; compute capability 9.0; driver supports CUDA 13.0)",
    );
    expect(output).toContain(`the native set in ${CPU_SET} is CPU-only (no libggml-cuda.so)`);
    expect(output).toContain("npm run setup:cuda");
    expect(output).toContain("neuron.allow_cpu_fallback = true");
    expect(output).not.toContain("listening on");
  }, 60_000);

  test("with allow_cpu_fallback it serves as a CPU node and says so at WARN and in /health", async () => {
    const proc = neuron(`${BASE()}allow_cpu_fallback = true\n`);
    try {
      const { url, seen } = await waitForListening(proc);
      expect(logged(seen, "warn")).toContain(
        "CUDA backend unusable, running as a CPU node (neuron.allow_cpu_fallback): 2 CUDA device(s)",
      );
      const health = HealthResponse.parse(await (await fetch(`${url}/health`)).json());
      expect(health.devices.map((d) => d.id)).toEqual(["cpu-0"]);
      expect(health.cpuFallback).toContain("is CPU-only (no libggml-cuda.so)");
    } finally {
      proc.kill("SIGTERM");
    }
    expect(await proc.exited).toBe(0);
  }, 60_000);
});

describe.skipIf(!gcc)("GPU memory from the driver", () => {
  test("free and total come from cuMemGetInfo on each device's own context, afresh on each ask", () => {
    const script = `
      import { cudaMemoryInfo } from "./ffi/cuda.ts";
      const first = [cudaMemoryInfo(0), cudaMemoryInfo(1)];
      await Bun.write(process.env.STUB_CUDA_USED_FILE, "4096");
      console.log(JSON.stringify({ first, later: cudaMemoryInfo(1) }));`;
    const run = Bun.spawnSync([process.execPath, "-e", script], {
      cwd: root,
      env: stubEnv({ STUB_CUDA_USED_FILE: join(dir, "used-mib") }),
    });
    expect(run.exitCode).toBe(0);
    const out = JSON.parse(run.stdout.toString()) as {
      first: Array<{ free: number; total: number }>;
      later: { free: number; total: number };
    };
    const total = 143771 * 2 ** 20;
    // The stub reports 1 GiB in use on device 0 and 2 GiB on device 1: each answer is its own device's.
    expect(out.first).toEqual([
      { free: total - 2 ** 30, total },
      { free: total - 2 * 2 ** 30, total },
    ]);
    expect(out.later).toEqual({ free: total - 4 * 2 ** 30, total });
  });
});

/** The messages logged at `level` (JSON log lines), one per line. */
function logged(output: string, level: string): string {
  const lines = output.split("\n").filter((line) => line.startsWith("{"));
  return lines
    .map((line) => JSON.parse(line) as { level: string; msg: string })
    .filter((line) => line.level === level)
    .map((line) => line.msg)
    .join("\n");
}

/** Drains both streams and resolves when the neuron says where it listens. */
function waitForListening(
  proc: Bun.Subprocess<"ignore", "pipe", "pipe">,
): Promise<{ url: string; seen: string }> {
  let seen = "";
  const { promise, resolve, reject } = Promise.withResolvers<{ url: string; seen: string }>();
  const drain = async (stream: ReadableStream<Uint8Array>) => {
    const decoder = new TextDecoder();
    for await (const chunk of stream) {
      seen += decoder.decode(chunk, { stream: true });
      const match = /neuron \S+ listening on ([\d.]+:\d+)/.exec(seen);
      if (match) resolve({ url: `http://${match[1]}`, seen });
    }
  };
  void Promise.all([drain(proc.stdout), drain(proc.stderr)]).then(() =>
    reject(new Error(`the neuron never said it was listening:\n${seen}`)),
  );
  return promise;
}
