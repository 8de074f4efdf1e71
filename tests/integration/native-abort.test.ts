/**
 * A CUDA error inside llama.cpp ends in ggml_abort. Without a GPU the same
 * path is reached by calling ggml_abort (and ggml's logger, as ggml-cuda does
 * before it) in a process whose native set-up is the neuron's: the
 * explanation must reach the log at ERROR, in the configured format, and the
 * process must exit with the Stage 2 code instead of dying of SIGABRT.
 */
import { describe, expect, test } from "bun:test";
import { join } from "node:path";

const root = join(import.meta.dir, "../..");

function abortInChild(json: boolean): { code: number | null; stderr: string } {
  const script = `
    import { dlopen } from "bun:ffi";
    import { join } from "node:path";
    import { cString } from "./ffi/llama-symbols.ts";
    import { prepareNativeProcess } from "./ffi/native-process.ts";
    const native = prepareNativeProcess({ logLevel: 3, fatal: { exitCode: 70, json: ${json} } });
    const base = dlopen(join(native.set.dir, "libggml-base.so"), {
      ggml_log_internal: { args: ["i32", "ptr"], returns: "void" },
      ggml_abort: { args: ["ptr", "i32", "ptr"], returns: "void" },
    });
    // What ggml-cuda logs (GGML_LOG_LEVEL_ERROR = 4) before GGML_ABORT("CUDA error").
    base.symbols.ggml_log_internal(4, cString("CUDA error: an illegal memory access was encountered\\n"));
    base.symbols.ggml_log_internal(4, cString("  current device: 0, in function ggml_backend_cuda_synchronize\\n"));
    base.symbols.ggml_abort(cString("ggml-cuda.cu"), 88, cString("CUDA error"));
    console.log("still alive");`;
  const run = Bun.spawnSync([process.execPath, "-e", script], { cwd: root, stdout: "pipe", stderr: "pipe" });
  return { code: run.exitCode, stderr: run.stderr.toString() + run.stdout.toString() };
}

describe("a fatal native error", () => {
  test("logs ggml's lines and the abort at ERROR, then exits 70 for the supervisor", () => {
    const { code, stderr } = abortInChild(false);
    expect(code).toBe(70);
    expect(stderr).toContain("[error] llama.cpp: CUDA error: an illegal memory access was encountered\n");
    expect(stderr).toContain(
      "[error] llama.cpp:   current device: 0, in function ggml_backend_cuda_synchronize\n",
    );
    expect(stderr).toContain("[error] llama.cpp: ggml-cuda.cu:88: CUDA error\n");
    expect(stderr).toContain("exiting with code 70 for the supervisor to restart the neuron (Stage 2)");
    expect(stderr).not.toContain("still alive");
  });

  test("with JSON logs, each line is a JSON object at level error", () => {
    const { code, stderr } = abortInChild(true);
    expect(code).toBe(70);
    const lines = stderr
      .split("\n")
      .filter((line) => line.startsWith("{"))
      .map((line) => JSON.parse(line) as { level: string; msg: string });
    expect(lines.map((l) => l.level)).toEqual(["error", "error", "error", "error"]);
    expect(lines[0]?.msg).toBe("llama.cpp: CUDA error: an illegal memory access was encountered");
    expect(lines[2]?.msg).toBe("llama.cpp: ggml-cuda.cu:88: CUDA error");
  });
});
