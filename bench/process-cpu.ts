/**
 * CPU time used by a process and its descendants (nginx's workers, LiteLLM's
 * uvicorn workers), per thread, and their resident memory, from Linux's /proc. The gateway benchmark divides it by the
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

/** `pid` and every process below it (children, their children, …). */
export function processTree(pid: number): number[] {
  const parentOf = new Map<number, number>();
  for (const entry of readdirSync("/proc")) {
    if (!/^\d+$/.test(entry)) continue;
    const stat = readOr(`/proc/${entry}/stat`);
    if (stat !== undefined) parentOf.set(Number(entry), parseStatParent(stat));
  }
  const tree = [pid];
  for (let i = 0; i < tree.length; i++)
    for (const [child, parent] of parentOf) if (parent === tree[i]) tree.push(child);
  return tree;
}

/** VmRSS of one /proc/…/status text, in bytes (0 for a kernel thread or a zombie, which have none). */
export function parseStatusRssBytes(status: string): number {
  const match = /^VmRSS:\s+(\d+) kB$/m.exec(status);
  return match ? Number(match[1]) * 1024 : 0;
}

/**
 * Resident memory of `pid` and its descendants, in bytes; undefined without
 * /proc. Pages that processes share (a forked worker's) count once per
 * process, as adding up `ps`'s RSS column would: an upper bound.
 */
export function residentBytes(pid: number): number | undefined {
  if (readOr(`/proc/${pid}/status`) === undefined) return undefined;
  let total = 0;
  for (const proc of processTree(pid)) {
    const status = readOr(`/proc/${proc}/status`);
    if (status !== undefined) total += parseStatusRssBytes(status);
  }
  return total;
}

/** Every thread of `pid` and of its descendants; undefined without /proc (not Linux). */
export function snapshotCpu(pid: number): CpuSnapshot | undefined {
  if (readOr(`/proc/${pid}/stat`) === undefined) return undefined;
  const threads = new Map<number, number>();
  for (const proc of processTree(pid)) {
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
