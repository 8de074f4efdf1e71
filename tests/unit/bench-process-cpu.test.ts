import { describe, expect, test } from "bun:test";
import {
  cpuBetween,
  parseStatCpuMs,
  parseStatParent,
  parseStatusRssBytes,
  residentBytes,
  snapshotCpu,
} from "../../bench/process-cpu.ts";

// A real /proc/<pid>/stat line of a thread whose name holds a space and a ")".
const STAT =
  "4242 (HTTP Client)) S 4200 4242 4200 0 -1 4194368 1200 0 0 0 1234 567 0 0 20 0 7 0 123456 1000000 2000 " +
  "18446744073709551615 1 1 0 0 0 0 0 0 0 0 0 0 17 1 0 0 0 0 0";

describe("process CPU for the gateway benchmark", () => {
  test("reads utime + stime and the parent after the last ')' of the command name", () => {
    expect(parseStatCpuMs(STAT)).toBe((1234 + 567) * 10);
    expect(parseStatParent(STAT)).toBe(4200);
  });

  test("a line that is not a stat line is refused, not read as zero", () => {
    expect(() => parseStatCpuMs("4242 (bun) S")).toThrow(/not a \/proc stat line/);
  });

  test("per-thread use between snapshots: the total and the busiest thread, new threads from zero", () => {
    const before = new Map([
      [1, 100],
      [2, 50],
    ]);
    const after = new Map([
      [1, 160],
      [2, 70],
      [3, 30],
    ]);
    expect(cpuBetween(before, after)).toEqual({ totalMs: 110, busiestThreadMs: 60 });
  });

  test.if(process.platform === "linux")("this process's own work shows up in its snapshot", () => {
    const before = snapshotCpu(process.pid);
    expect(before?.has(process.pid)).toBe(true);
    const start = process.cpuUsage();
    let spin = 0;
    while ((process.cpuUsage(start).user + process.cpuUsage(start).system) / 1000 < 80) spin++;
    const used = cpuBetween(before!, snapshotCpu(process.pid)!);
    expect(spin).toBeGreaterThan(0);
    // /proc counts in 10 ms ticks.
    expect(used.busiestThreadMs).toBeGreaterThanOrEqual(60);
    expect(used.totalMs).toBeGreaterThanOrEqual(used.busiestThreadMs);
  });

  test("a process that is gone has no snapshot", () => {
    expect(snapshotCpu(2 ** 30)).toBeUndefined();
    expect(residentBytes(2 ** 30)).toBeUndefined();
  });

  test("resident memory is read from VmRSS in kB; a process without one counts zero", () => {
    expect(parseStatusRssBytes("Name:\tbun\nVmPeak:\t  900 kB\nVmRSS:\t   51234 kB\nRssAnon:\t 1 kB\n")).toBe(
      51234 * 1024,
    );
    expect(parseStatusRssBytes("Name:\tkthreadd\nState:\tS (sleeping)\n")).toBe(0);
  });

  test.if(process.platform === "linux")("a child process's memory counts in its parent's", async () => {
    const own = residentBytes(process.pid)!;
    expect(own).toBeGreaterThan(1 << 20);
    // A child that holds 64 MiB of touched memory until its stdin closes.
    const child = Bun.spawn(
      [
        process.execPath,
        "-e",
        "const b = Buffer.alloc(64 << 20, 1); console.log(b[0]); await Bun.stdin.text();",
      ],
      { stdin: "pipe", stdout: "pipe" },
    );
    const reader = child.stdout.getReader();
    await reader.read(); // the child printed: its buffer is allocated and touched
    expect(residentBytes(process.pid)! - own).toBeGreaterThan(64 << 20);
    child.stdin.end();
    await child.exited;
  });
});
