/**
 * Finds stop strings in streamed text without ever emitting them: text that
 * could be the start of a stop string is held back until the next piece
 * decides it.
 */
export interface StopPush {
  /** Text safe to emit now. */
  text: string;
  /** The stop string that matched; generation ends and held text is dropped. */
  stopped?: string;
}

export class StopMatcher {
  readonly #stops: string[];
  #held = "";

  constructor(stops: readonly string[] = []) {
    this.#stops = stops.filter((s) => s.length > 0);
  }

  push(piece: string): StopPush {
    const buffer = this.#held + piece;
    if (this.#stops.length === 0) return { text: buffer };
    let at = -1;
    let which: string | undefined;
    for (const stop of this.#stops) {
      const i = buffer.indexOf(stop);
      if (i >= 0 && (at < 0 || i < at)) {
        at = i;
        which = stop;
      }
    }
    if (which !== undefined) {
      this.#held = "";
      return { text: buffer.slice(0, at), stopped: which };
    }
    const keep = longestStopPrefixSuffix(buffer, this.#stops);
    this.#held = buffer.slice(buffer.length - keep);
    return { text: buffer.slice(0, buffer.length - keep) };
  }

  /** Held-back text, released when generation ends for another reason. */
  flush(): string {
    const rest = this.#held;
    this.#held = "";
    return rest;
  }
}

/** Length of the longest suffix of `text` that is a proper prefix of some stop string. */
export function longestStopPrefixSuffix(text: string, stops: readonly string[]): number {
  let best = 0;
  for (const stop of stops) {
    const max = Math.min(stop.length - 1, text.length);
    for (let n = max; n > best; n--) {
      if (text.endsWith(stop.slice(0, n))) {
        best = n;
        break;
      }
    }
  }
  return best;
}
