/**
 * The process's thread count, for leak checks: a Worker that never closes
 * keeps its thread. Threads of Workers that just closed, and the runtime's
 * own helpers (GC, JIT), come and go for a moment, so a check waits for the
 * count to settle instead of reading it once: a leak stays, noise goes.
 */
import { readFileSync } from "node:fs";

export function liveThreads(): number {
  return Number(readFileSync("/proc/self/status", "utf8").match(/Threads:\s+(\d+)/)?.[1] ?? 0);
}

/** The thread count once it is at most `limit`, or the last count read after `timeoutMs`. */
export async function threadsSettled(limit: number, timeoutMs = 3_000): Promise<number> {
  const deadline = performance.now() + timeoutMs;
  for (;;) {
    Bun.gc(true);
    const count = liveThreads();
    if (count <= limit || performance.now() > deadline) return count;
    await Bun.sleep(50);
  }
}
