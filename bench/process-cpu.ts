/**
 * CPU time used by a process and its child processes (nginx's workers), per
 * thread, from Linux's /proc. The gateway benchmark divides it by the
 * requests a run served: unlike a request rate, CPU per request does not
 * move with what else the machine is running, and the busiest thread's
 * share is what bounds a proxy whose work is on one thread (Bun's JS thread,
 * an nginx worker) once it has a core to itself.
 */
import { readdirSync, readFileSync } from "node:fs";

/** CPU ms per thread (keyed by thread id) at one moment. */
export type CpuSnapshot = ReadonlyMap<number, number>;

export interface CpuUse {
  /** All threads of all the processes. */
  totalMs: number;
  /** The one thread that used the most. */
  busiestThreadMs: number;
}

/** Clock ticks per second of /proc's times: USER_HZ, 100 on every Linux that ships. */
const TICKS_PER_S = 100;

/**
 * The fields of one /proc/…/stat line after the command name (field 2),
 * which may hold spaces and parentheses: counted after its last ")", so the
 * result starts at field 3 (state), then ppid(4) … utime(14) stime(15).
 */
function fieldsAfterName(stat: string): string[] {
  return stat.slice(stat.lastIndexOf(")") + 2).split(" ");
}

/** utime + stime of one /proc/…/stat line, in ms. */
export function parseStatCpuMs(stat: string): number {
  const rest = fieldsAfterName(stat);
  const utime = Number(rest[11]);
  const stime = Number(rest[12]);
  if (!Number.isFinite(utime) || !Number.isFinite(stime)) throw new Error(`not a /proc stat line: ${stat}`);
  return ((utime + stime) * 1000) / TICKS_PER_S;
}

/** The parent pid of one /proc/…/stat line. */
export function parseStatParent(stat: string): number {
  return Number(fieldsAfterName(stat)[1]);
}

function readOr(path: string): string | undefined {
  try {
    return readFileSync(path, "utf8");
  } catch {
    return undefined; // the process or thread is gone
  }
}

function childrenOf(pid: number): number[] {
  const children: number[] = [];
  for (const entry of readdirSync("/proc")) {
    if (!/^\d+$/.test(entry)) continue;
    const stat = readOr(`/proc/${entry}/stat`);
    if (stat !== undefined && parseStatParent(stat) === pid) children.push(Number(entry));
  }
  return children;
}

/** Every thread of `pid` and of its child processes; undefined without /proc (not Linux). */
export function snapshotCpu(pid: number): CpuSnapshot | undefined {
  if (readOr(`/proc/${pid}/stat`) === undefined) return undefined;
  const threads = new Map<number, number>();
  for (const proc of [pid, ...childrenOf(pid)]) {
    let tids: string[];
    try {
      tids = readdirSync(`/proc/${proc}/task`);
    } catch {
      continue;
    }
    for (const tid of tids) {
      const stat = readOr(`/proc/${proc}/task/${tid}/stat`);
      if (stat !== undefined) threads.set(Number(tid), parseStatCpuMs(stat));
    }
  }
  return threads;
}

/** What the threads used between two snapshots (threads started in between count from zero). */
export function cpuBetween(before: CpuSnapshot, after: CpuSnapshot): CpuUse {
  let totalMs = 0;
  let busiestThreadMs = 0;
  for (const [tid, ms] of after) {
    const used = ms - (before.get(tid) ?? 0);
    totalMs += used;
    busiestThreadMs = Math.max(busiestThreadMs, used);
  }
  return { totalMs, busiestThreadMs };
}
