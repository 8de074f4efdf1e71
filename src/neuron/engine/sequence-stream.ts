/**
 * A pull-based ReadableStream of one sequence's events, fed by Worker
 * messages. Events wait in a small buffer until the consumer pulls (text
 * that waited is handed over in one event, unless the consumer counts
 * tokens by events); when the
 * consumer falls behind, the sequence is paused in its Worker (keeping its
 * slot) and resumed once the buffer drains. The stream closes after the
 * final (`done`/`error`) event.
 */
import type { GenerationEvent } from "./types.ts";

/** Buffered events at which the Worker is asked to pause the sequence. */
export const PAUSE_AT = 64;
/** Buffered events at which a paused sequence resumes. */
export const RESUME_AT = 16;

export class SequenceStream {
  readonly stream: ReadableStream<GenerationEvent>;
  readonly #buffer: GenerationEvent[] = [];
  #wake: (() => void) | undefined;
  #ended = false;
  #failure: unknown;
  #failed = false;
  #paused = false;
  readonly #onPressure: (pause: boolean) => void;
  readonly #joinText: boolean;

  /**
   * `onCancel` runs when the consumer cancels the stream before its end;
   * `onPressure(true|false)` asks for the sequence to pause or resume;
   * `joinText: false` keeps one text event per token (a consumer that
   * counts tokens by events, the output parser).
   */
  constructor(
    onCancel: () => void,
    onPressure: (pause: boolean) => void = () => {},
    options: { joinText?: boolean } = {},
  ) {
    this.#onPressure = onPressure;
    this.#joinText = options.joinText ?? true;
    this.stream = new ReadableStream<GenerationEvent>(
      {
        pull: async (controller) => {
          while (this.#buffer.length === 0 && !this.#ended && !this.#failed) {
            await new Promise<void>((resolve) => {
              this.#wake = resolve;
            });
          }
          if (this.#failed) {
            controller.error(this.#failure);
            return;
          }
          const next = this.#takeNext();
          if (next) controller.enqueue(next);
          if (this.#paused && this.#buffer.length <= RESUME_AT && !this.#ended) {
            this.#paused = false;
            this.#onPressure(false);
          }
          if (this.#buffer.length === 0 && this.#ended) controller.close();
        },
        cancel: () => {
          if (!this.#ended) onCancel();
          this.#ended = true;
        },
      },
      { highWaterMark: 0 },
    );
  }

  /**
   * The next event; text that waited behind it comes along in the same
   * event. A reader that fell behind (a loaded machine, a slow client) then
   * catches up in one pass down the answer's pipeline instead of one per
   * token; the text is the same, only cut into fewer pieces.
   */
  #takeNext(): GenerationEvent | undefined {
    const next = this.#buffer.shift();
    if (!this.#joinText || next?.type !== "text" || this.#buffer[0]?.type !== "text") return next;
    let text = next.text;
    while (this.#buffer[0]?.type === "text") text += (this.#buffer.shift() as typeof next).text;
    return { type: "text", text };
  }

  /** Whether the final event was pushed (or the stream failed). */
  get ended(): boolean {
    return this.#ended || this.#failed;
  }

  push(event: GenerationEvent): void {
    if (this.#ended || this.#failed) return;
    this.#buffer.push(event);
    if (event.type === "done" || event.type === "error") this.#ended = true;
    else if (!this.#paused && this.#buffer.length >= PAUSE_AT) {
      this.#paused = true;
      this.#onPressure(true);
    }
    this.#notify();
  }

  /** Errors the stream (the request's AbortSignal fired). */
  fail(reason: unknown): void {
    if (this.#ended || this.#failed) return;
    this.#failed = true;
    this.#failure = reason;
    this.#notify();
  }

  #notify(): void {
    const wake = this.#wake;
    this.#wake = undefined;
    wake?.();
  }
}
