/**
 * The project's own threads, for leak checks: a Worker that never closes
 * keeps its thread, named `cx-<role>` (src/core/worker-thread.ts). The
 * runtime's threads (JIT workers, GC heap helpers, the I/O pool, the signal
 * sender) are started lazily and in numbers that depend on load, so a check
 * that counted the whole process failed on a busy machine without any leak;
 * they are listed in the failure message only, to explain it.
 *
 * A Worker's thread is gone once its `close` event has fired, so a check
 * awaits each retired Worker's close and then reads once: no polling, no
 * deadline.
 */
import { readdirSync, readFileSync } from "node:fs";
import { WORKER_THREAD_PREFIX } from "../../../src/core/worker-thread.ts";

/** The name of every thread of this process (a thread that exits while being read is skipped). */
export function threadNames(): string[] {
  const names: string[] = [];
  for (const task of readdirSync("/proc/self/task")) {
    try {
      names.push(readFileSync(`/proc/self/task/${task}/comm`, "utf8").trim());
    } catch {
      // The thread exited between the listing and the read.
    }
  }
  return names;
}

/** The project's Worker threads by name, sorted, and a line that lists every thread for a failure message. */
export function projectThreads(): { names: string[]; all: string } {
  const all = threadNames();
  const names = all.filter((name) => name.startsWith(WORKER_THREAD_PREFIX)).sort();
  const counts = new Map<string, number>();
  for (const name of all) counts.set(name, (counts.get(name) ?? 0) + 1);
  const listing = [...counts].map(([name, n]) => (n > 1 ? `${name}×${n}` : name)).join(", ");
  return { names, all: `threads of the process: ${listing}` };
}
