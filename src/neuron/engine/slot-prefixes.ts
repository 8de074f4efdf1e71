/**
 * Which tokens the KV cache of each slot of a model holds, and which free
 * slot a new prompt should take: the one sharing the longest common prefix
 * with it, the least recently used one on ties (an emptied slot counts as
 * never used). On a miss, a slot next to the busy ones first (see
 * `#runsAfterTaking`), then the least recently used. Pure bookkeeping; slot-kv.ts
 * does the native side.
 */

/** Number of leading tokens `a` and `b` share. */
export function commonPrefix(a: ArrayLike<number>, b: ArrayLike<number>): number {
  const n = Math.min(a.length, b.length);
  let i = 0;
  while (i < n && a[i] === b[i]) i++;
  return i;
}

const NONE = new Int32Array(0);

/**
 * A slot matches a prompt only when they share at least this share of what
 * the slot holds (llama-server's `slot_prompt_similarity` default): every
 * chat prompt starts with the same few template tokens, and those alone must
 * not make a new conversation overwrite another one's slot instead of an
 * idle or older one.
 */
export const MIN_SHARED_FRACTION = 0.1;

export class SlotPrefixes {
  readonly #held: Int32Array[];
  readonly #lastUsed: number[];
  readonly #free = new Set<number>();
  #clock = 0;

  constructor(slots: number) {
    this.#held = Array.from({ length: slots }, () => NONE);
    this.#lastUsed = Array.from({ length: slots }, () => 0);
    for (let slot = 0; slot < slots; slot++) this.#free.add(slot);
  }

  get free(): number {
    return this.#free.size;
  }

  freeSlots(): Iterable<number> {
    return this.#free;
  }

  /** Tokens whose KV `slot` holds (from position 0 on). */
  held(slot: number): Int32Array {
    return this.#held[slot] ?? NONE;
  }

  /** The free slot to give `prompt`, and how many leading tokens its KV already matches. */
  choose(prompt: ArrayLike<number>): { slot: number; common: number } {
    let match: { slot: number; common: number } | undefined;
    let miss: { slot: number; common: number; runs: number } | undefined;
    const older = (slot: number, than: { slot: number }) =>
      (this.#lastUsed[slot] ?? 0) < (this.#lastUsed[than.slot] ?? 0);
    for (const slot of this.#free) {
      const held = this.held(slot);
      const common = commonPrefix(held, prompt);
      const runs = this.#runsAfterTaking(slot);
      if (miss === undefined || runs < miss.runs || (runs === miss.runs && older(slot, miss)))
        miss = { slot, common, runs };
      if (common === 0 || common < held.length * MIN_SHARED_FRACTION) continue;
      if (match === undefined || common > match.common || (common === match.common && older(slot, match)))
        match = { slot, common };
    }
    const chosen = match ?? (miss && { slot: miss.slot, common: miss.common });
    if (chosen === undefined) throw new Error("no free slot");
    return chosen;
  }

  /**
   * How many runs of consecutive busy slots there would be with `slot` taken
   * too. Each slot is its own KV stream, and llama.cpp decodes a step's
   * sequences in one ubatch only when their slots are consecutive (slots 0
   * and 2 run as two ubatches, each paying for every weight); so a prompt
   * that reuses nothing goes next to the running ones.
   */
  #runsAfterTaking(slot: number): number {
    const busy = (s: number) => s >= 0 && s < this.#held.length && (s === slot || !this.#free.has(s));
    let runs = 0;
    for (let s = 0; s < this.#held.length; s++) if (busy(s) && !busy(s - 1)) runs++;
    return runs;
  }

  /** Marks a free slot busy (its held tokens stay recorded until `release`). */
  take(slot: number): void {
    if (!this.#free.delete(slot)) throw new Error(`slot ${slot} is not free`);
    this.#lastUsed[slot] = ++this.#clock;
  }

  /** Frees a slot whose KV now holds exactly `held`. */
  release(slot: number, held: Int32Array): void {
    this.#held[slot] = held;
    if (held.length === 0) this.#lastUsed[slot] = 0;
    this.#free.add(slot);
  }

  /** Forgets what a slot holds (its KV was cleared). */
  forget(slot: number): void {
    this.#held[slot] = NONE;
  }

  forgetAll(): void {
    this.#held.fill(NONE);
    this.#lastUsed.fill(0);
  }
}
