/**
 * Device Workers bind libllama one at a time, process-wide (every pool in
 * the process): bun:ffi compiles its call trampolines with TinyCC, whose
 * state is shared, and Bun has crashed when fresh Workers bound libraries at
 * the same moment (oven-sh/bun#40972, fixed there for `dlopen` in 1.4.0; a
 * `free(): invalid pointer` abort was still seen here once, with two neurons
 * starting in one test process). Binding takes milliseconds, so taking turns
 * costs nothing that shows; a turn that takes longer than `turnMs` stops
 * holding up the next one, so one stuck Worker cannot stall the others.
 */
import { within } from "../../core/within.ts";

let bindings: Promise<unknown> = Promise.resolve();

/** Runs `bind` once every earlier turn has ended (or run out of time); resolves or rejects as `bind` does. */
export function oneBindingAtATime<T>(bind: () => Promise<T>, turnMs = 30_000): Promise<T> {
  const turn = bindings.then(bind);
  // The next turn waits for this one to end, however it ends, or for `turnMs`.
  bindings = within(turn, turnMs, () => new Error("binding turn ran out of time")).catch(() => {});
  return turn;
}
