/**
 * Coarse deadlines for many requests on one timer per tick size, instead of
 * a `setTimeout` armed and cleared per request: under load a timer per
 * request (and per body read, and per upstream attempt) cost more of the
 * gateway's CPU than routing does, and none of these bounds needs to fire to
 * the millisecond. A watch is checked once per tick; its tick is a power of
 * two near a sixteenth of its limit (8 ms to 1 s), so a bound fires at most
 * ~6 % or 1 s late, whichever is less. A sweep's timer runs only while it
 * has watches, and never keeps the process alive.
 */

/** A registered check; `cancel()` removes it (idempotent). */
export interface SweepWatch {
  cancel(): void;
}

/**
 * `check(now)` is called every tick with `performance.now()`; it returns
 * true once it is done (it fired, or has nothing left to watch), which
 * removes it.
 */
type Check = (now: number) => boolean;

class Sweep {
  readonly #tickMs: number;
  readonly #checks = new Set<Check>();
  #timer: ReturnType<typeof setInterval> | undefined;

  constructor(tickMs: number) {
    this.#tickMs = tickMs;
  }

  add(check: Check): SweepWatch {
    this.#checks.add(check);
    if (this.#timer === undefined) {
      this.#timer = setInterval(() => this.#run(), this.#tickMs);
      this.#timer.unref?.();
    }
    return { cancel: () => this.#remove(check) };
  }

  #remove(check: Check): void {
    // The timer stays armed while empty until its next tick (#run stops it):
    // stopping and re-arming it per request would cost what this saves.
    this.#checks.delete(check);
  }

  #run(): void {
    if (this.#checks.size === 0) {
      clearInterval(this.#timer);
      this.#timer = undefined;
      return;
    }
    const now = performance.now();
    for (const check of this.#checks) if (check(now)) this.#checks.delete(check);
  }
}

const sweeps = new Map<number, Sweep>();

/** The tick for a limit: a power of two near limit / 16, within [8, 1024] ms. */
export function tickFor(limitMs: number): number {
  const target = Math.min(1024, Math.max(8, limitMs / 16));
  return 2 ** Math.round(Math.log2(target));
}

/** Watches `check` on the sweep whose tick suits `limitMs` (see the top of this file). */
export function sweepEvery(limitMs: number, check: Check): SweepWatch {
  const tick = tickFor(limitMs);
  let sweep = sweeps.get(tick);
  if (sweep === undefined) {
    sweep = new Sweep(tick);
    sweeps.set(tick, sweep);
  }
  return sweep.add(check);
}

/** Calls `fire` once, `limitMs` (coarsely) from now, unless cancelled first. */
export function deadlineIn(limitMs: number, fire: () => void): SweepWatch {
  const at = performance.now() + limitMs;
  return sweepEvery(limitMs, (now) => {
    if (now < at) return false;
    fire();
    return true;
  });
}
