/**
 * llama.cpp's abort flag for a leader context, readable from the leader's
 * Worker while the main thread raises it. The engine installs
 * `llama_set_abort_callback(ctx, cb, null)` with a callback that returns
 * `isAbortRaised(flag)`; ggml polls it between graph nodes, so a forward that
 * is computing (not stuck inside one kernel) stops at the next node.
 */

export type AbortFlag = Int32Array;

/** Make one per leader context; send `flag.buffer` to the leader's Worker with the load job. */
export function createAbortFlag(): AbortFlag {
  return new Int32Array(new SharedArrayBuffer(4));
}

export function abortFlagFrom(buffer: SharedArrayBuffer): AbortFlag {
  return new Int32Array(buffer, 0, 1);
}

export function raiseAbortFlag(flag: AbortFlag): void {
  Atomics.store(flag, 0, 1);
  Atomics.notify(flag, 0);
}

/** Called from the abort callback on every graph node: one atomic load, never throws. */
export function isAbortRaised(flag: AbortFlag): boolean {
  return Atomics.load(flag, 0) !== 0;
}

/** The recovered group's fresh context starts with the flag lowered. */
export function clearAbortFlag(flag: AbortFlag): void {
  Atomics.store(flag, 0, 0);
}
