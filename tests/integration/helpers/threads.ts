/**
 * Leak checks on the project's own Worker threads. Each Worker reports its
 * OS thread id when it is ready (src/core/worker-thread.ts), so a check asks
 * about exactly those threads: a Worker that never closes keeps its thread.
 *
 * Counting the process's threads failed on a busy machine without any leak:
 * the runtime starts JIT, GC heap-helper and I/O-pool threads lazily and in
 * numbers that depend on load. Counting threads by the Workers' names fails
 * the same way, since a thread started from a Worker inherits its name. The
 * names still explain a failure, so the message lists every thread.
 *
 * A Worker's thread is gone once its `close` event has fired: a check awaits
 * each retired Worker's close and then reads once; no polling, no deadline.
 */
import { existsSync, readdirSync, readFileSync } from "node:fs";

/** Whether the thread with this id still belongs to this process. */
export function threadAlive(threadId: number): boolean {
  return existsSync(`/proc/self/task/${threadId}`);
}

/** Every thread of the process as `name(tid)`, for a failure message. */
export function threadListing(): string {
  const threads: string[] = [];
  for (const task of readdirSync("/proc/self/task")) {
    try {
      threads.push(`${readFileSync(`/proc/self/task/${task}/comm`, "utf8").trim()}(${task})`);
    } catch {
      // The thread exited between the listing and the read.
    }
  }
  return `threads of the process: ${threads.join(", ")}`;
}

/** The ids among `threadIds` whose thread is still alive (a leak when they belong to retired Workers). */
export function aliveOf(threadIds: readonly number[]): number[] {
  return threadIds.filter(threadAlive);
}
