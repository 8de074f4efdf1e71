/**
 * Touches the pages of a prompt-cache spare while the device Worker is idle,
 * so that the next save writes into memory the kernel has already mapped
 * instead of faulting page by page on a request's path (prompt-cache.ts says
 * what that costs). A slice at a time, each a macrotask: a request that
 * arrives meanwhile is stepped first and waits at most one slice.
 */
import type { PromptCache } from "./prompt-cache.ts";

/** About 1 ms of page faults here (0.4 ms per MB measured). */
const SLICE_BYTES = 2 * 2 ** 20;

export class IdleSpare {
  readonly #cache: PromptCache;
  /** Whether the Worker has work queued: touching waits for the next idle moment. */
  readonly #busy: () => boolean;
  /** The largest state a save could write now (SlotKv.largestSave over the models). */
  readonly #largestSave: () => number;
  #buffer: Uint8Array | undefined;
  #touched = 0;
  #scheduled = false;

  constructor(cache: PromptCache, hooks: { busy: () => boolean; largestSave: () => number }) {
    this.#cache = cache;
    this.#busy = hooks.busy;
    this.#largestSave = hooks.largestSave;
  }

  /** The Worker has nothing to step: prepare a spare, or go on touching the one under way. */
  idle(): void {
    if (!this.#buffer) {
      this.#buffer = this.#allocate();
      this.#touched = 0;
    }
    if (this.#buffer && !this.#scheduled) {
      this.#scheduled = true;
      setImmediate(() => this.#slice());
    }
  }

  /** The spare under way is not needed (its model went): dropped untouched. */
  drop(): void {
    this.#buffer = undefined;
  }

  /**
   * A spare is only a head start for the next save: memory the process cannot
   * get now (a state of gigabytes) means no spare, never a failed Worker.
   */
  #allocate(): Uint8Array | undefined {
    try {
      return this.#cache.spareFor(this.#largestSave());
    } catch (error) {
      if (error instanceof RangeError) return undefined;
      throw error;
    }
  }

  #slice(): void {
    this.#scheduled = false;
    const buffer = this.#buffer;
    if (!buffer || this.#busy()) return;
    const end = Math.min(buffer.byteLength, this.#touched + SLICE_BYTES);
    buffer.fill(0, this.#touched, end);
    this.#touched = end;
    if (end < buffer.byteLength) {
      this.#scheduled = true;
      setImmediate(() => this.#slice());
      return;
    }
    this.#buffer = undefined;
    this.#cache.giveBack(buffer);
  }
}
