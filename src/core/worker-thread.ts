/**
 * Names for the project's own Worker threads. Bun gives a Worker's OS thread
 * the `name` it was created with, so `top -H`, `/proc/PID/task/*\/comm` and
 * a core dump tell cortex's threads (one per device, TP ranks, the aborter)
 * from the runtime's own (JIT, GC helpers, the I/O pool), which start and
 * stop on their own as load changes. Leak checks count these names only.
 */
import { readlinkSync } from "node:fs";

/** Every project thread name starts with this (short: Linux keeps 15 bytes, and `cx-cuda-dev-10` must fit). */
export const WORKER_THREAD_PREFIX = "cx-";

/** Linux keeps the first 15 bytes of a thread's name. */
const THREAD_NAME_BYTES = 15;

/** The thread name for a Worker with this role (`cuda-dev-0`, `rank`, `aborter`). */
export function workerThreadName(role: string): string {
  return `${WORKER_THREAD_PREFIX}${role}`.slice(0, THREAD_NAME_BYTES);
}

/**
 * The OS thread id (Linux TID) of the calling thread, or -1 where there is no
 * /proc. A Worker reports its own when it is ready: threads it starts inherit
 * its name, so a name alone does not tell a Worker's thread from a helper it
 * started, while the TID does (leak checks, `top -H`, `gdb -p`).
 */
export function currentThreadId(): number {
  try {
    return Number(readlinkSync("/proc/thread-self").split("/").at(-1));
  } catch {
    return -1;
  }
}

/** A Worker whose thread carries the project's name for `role`. */
export function startWorker(url: URL | string, role: string): Worker {
  return new Worker(url, { name: workerThreadName(role) });
}
