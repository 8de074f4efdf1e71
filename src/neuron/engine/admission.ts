/**
 * Admission to a model's slots, as pure policy: a request runs when a slot
 * is free, waits in a bounded FIFO queue when none is, and is refused (429)
 * when the queue is full too. The pool applies the decisions; nothing here
 * touches a Worker.
 */

export interface SlotCounts {
  /** Sequences running (each holds a slot). */
  inFlight: number;
  /** Requests waiting for a slot. */
  queued: number;
  slots: number;
  maxQueue: number;
}

export type Admission = "run" | "queue" | "refuse";

export function admit(counts: SlotCounts): Admission {
  if (counts.inFlight < counts.slots) return "run";
  if (counts.queued < counts.maxQueue) return "queue";
  return "refuse";
}

/** Seconds a refused client should wait: one slot's turn per `slots` queued requests. */
export function refusalRetryAfterS(counts: SlotCounts): number {
  return Math.max(1, Math.ceil(counts.queued / counts.slots));
}

/**
 * Takes the queued requests that may run now that slots are free, in FIFO
 * order, skipping those whose client has already gone (`gone`).
 */
export function takeRunnable<T>(
  queue: T[],
  counts: Pick<SlotCounts, "inFlight" | "slots">,
  gone: (request: T) => boolean,
): T[] {
  const runnable: T[] = [];
  let running = counts.inFlight;
  while (running < counts.slots && queue.length > 0) {
    const next = queue.shift()!;
    if (gone(next)) continue;
    runnable.push(next);
    running++;
  }
  return runnable;
}
