/** The supervised local neuron's restart policy and exit reasons (src/cli/restart-policy.ts). */
import { describe, expect, test } from "bun:test";
import { childLogLine } from "../../src/cli/local-neuron-supervisor.ts";
import { DEFAULT_BACKOFF, exitReason, nextRestart } from "../../src/cli/restart-policy.ts";

const policy = { initialMs: 100, factor: 2, maxMs: 1_000, healthyResetMs: 60_000 };

describe("nextRestart", () => {
  test("failed starts in a row double the delay up to the cap", () => {
    let failures = 0;
    const delays: number[] = [];
    for (let i = 0; i < 7; i += 1) {
      const decision = nextRestart(policy, failures, undefined);
      failures = decision.failures;
      delays.push(decision.delayMs);
    }
    expect(delays).toEqual([100, 200, 400, 800, 1_000, 1_000, 1_000]);
    expect(failures).toBe(7);
  });

  test("an exit after a run healthy for the reset time starts a new incident", () => {
    expect(nextRestart(policy, 6, 60_000)).toEqual({ failures: 1, delayMs: 100 });
  });

  test("an exit soon after becoming healthy counts as the same incident", () => {
    expect(nextRestart(policy, 3, 59_999)).toEqual({ failures: 4, delayMs: 800 });
  });

  test("the default policy starts at 1 s and stays under a minute", () => {
    expect(nextRestart(DEFAULT_BACKOFF, 0, undefined).delayMs).toBe(1_000);
    expect(nextRestart(DEFAULT_BACKOFF, 50, undefined).delayMs).toBe(DEFAULT_BACKOFF.maxMs);
    expect(DEFAULT_BACKOFF.maxMs).toBeLessThanOrEqual(60_000);
  });
});

describe("exitReason", () => {
  test.each([
    [{ code: 70, signal: null }, "exit_70", "Stage 2"],
    [{ code: 1, signal: null }, "exit_1", "exited with code 1"],
    [{ code: null, signal: "SIGKILL" }, "signal_SIGKILL", "killed by SIGKILL"],
    ["health_timeout" as const, "health_timeout", "did not answer /health"],
  ])("%p is labelled %s", (exit, label, text) => {
    const reason = exitReason(exit);
    expect(reason.label).toBe(label);
    expect(reason.text).toContain(text);
  });
});

describe("childLogLine", () => {
  test("text lines get the child's prefix", () => {
    expect(childLogLine("[info] [neuron] listening", "text", 42)).toBe(
      "[local-neuron 42] [info] [neuron] listening",
    );
  });

  test("JSON lines stay JSON, with the process and pid added", () => {
    const line = JSON.parse(childLogLine('{"level":"error","msg":"boom"}', "json", 42));
    expect(line).toEqual({ level: "error", msg: "boom", process: "local-neuron", pid: 42 });
  });

  test("a line that is not JSON is wrapped, so the stream stays JSON", () => {
    const line = JSON.parse(childLogLine("llama.cpp: native abort", "json", 7));
    expect(line).toMatchObject({ msg: "llama.cpp: native abort", process: "local-neuron", pid: 7 });
  });
});
