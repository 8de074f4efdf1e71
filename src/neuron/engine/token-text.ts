/**
 * Token bytes → safe text deltas for one sequence: multi-byte UTF-8 split
 * across tokens is held until complete, and text that may begin a stop
 * string is held until the next token decides it.
 */
import { StopMatcher, type StopPush } from "./stop-matcher.ts";

export class TokenText {
  readonly #decoder = new TextDecoder("utf-8");
  readonly #stops: StopMatcher;

  constructor(stops: readonly string[] = []) {
    this.#stops = new StopMatcher(stops);
  }

  /** Adds one token's bytes; returns the text that may be emitted now. */
  push(bytes: Uint8Array): StopPush {
    return this.#stops.push(this.#decoder.decode(bytes, { stream: true }));
  }

  /**
   * Everything still held, when generation ends for a reason other than a
   * stop string. Bytes of an unfinished character become U+FFFD rather than vanish.
   */
  finish(): string {
    const tail = this.#stops.push(this.#decoder.decode());
    return tail.stopped === undefined ? tail.text + this.#stops.flush() : tail.text;
  }
}
