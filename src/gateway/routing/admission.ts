/**
 * Gateway-side admission per model: at most `maxConcurrency` requests in
 * flight, then a bounded FIFO queue of `queueSize` waiters. Over the queue →
 * 429 rate_limited with Retry-After; waiting longer than `queueTimeoutS` →
 * 503 unavailable with Retry-After; an abort while queued just leaves the
 * queue. Key it by the resolved model id, so aliases share one limit.
 */
import { CortexError } from "../../core/errors.ts";

export interface AdmissionOptions {
  maxConcurrency: number;
  queueSize: number;
  queueTimeoutS: number;
}

export interface AdmissionDepth {
  inFlight: number;
  queued: number;
}

interface Waiter {
  grant: () => void;
}

interface Lane {
  inFlight: number;
  queue: Waiter[];
}

export class Admission {
  readonly #options: AdmissionOptions;
  readonly #lanes = new Map<string, Lane>();

  constructor(options: AdmissionOptions) {
    this.#options = options;
  }

  /**
   * Waits for a slot for `model`; resolves with the function that frees it
   * (idempotent; call it when the response has ended, in a `finally`).
   */
  acquire(model: string, signal?: AbortSignal): Promise<() => void> {
    signal?.throwIfAborted();
    const release = this.tryAcquire(model);
    if (release !== undefined) return Promise.resolve(release);
    const lane = this.#lane(model);
    if (lane.queue.length >= this.#options.queueSize)
      return Promise.reject(
        new CortexError(
          "rate_limited",
          `too many requests for ${model}: ${lane.inFlight} in flight and ${lane.queue.length} queued`,
          { retryAfterS: 1, details: { model, inFlight: lane.inFlight, queued: lane.queue.length } },
        ),
      );
    return new Promise((resolve, reject) => {
      const cleanup = () => {
        clearTimeout(timer);
        signal?.removeEventListener("abort", onAbort);
        const index = lane.queue.indexOf(waiter);
        if (index >= 0) lane.queue.splice(index, 1);
        this.#dropIfIdle(model, lane);
      };
      const waiter: Waiter = {
        grant: () => {
          // Count the slot before cleanup, which drops a lane that looks idle.
          lane.inFlight += 1;
          cleanup();
          resolve(this.#releaser(model, lane));
        },
      };
      const onAbort = () => {
        cleanup();
        reject(signal?.reason);
      };
      const timer = setTimeout(() => {
        cleanup();
        reject(
          new CortexError(
            "unavailable",
            `${model} is busy: waited ${this.#options.queueTimeoutS} s in the queue without a free slot`,
            { retryAfterS: Math.max(1, Math.ceil(this.#options.queueTimeoutS / 4)), details: { model } },
          ),
        );
      }, this.#options.queueTimeoutS * 1000);
      signal?.addEventListener("abort", onAbort, { once: true });
      lane.queue.push(waiter);
    });
  }

  /**
   * A slot for `model` when one is free now (then nobody is queued either),
   * else undefined: the request path takes it without a promise and calls
   * `acquire` only to wait.
   */
  tryAcquire(model: string): (() => void) | undefined {
    const lane = this.#lane(model);
    if (lane.inFlight >= this.#options.maxConcurrency) return undefined;
    lane.inFlight += 1;
    return this.#releaser(model, lane);
  }

  /** In flight and queued for one model. */
  depth(model: string): AdmissionDepth {
    const lane = this.#lanes.get(model);
    return { inFlight: lane?.inFlight ?? 0, queued: lane?.queue.length ?? 0 };
  }

  /** In flight and queued for every model with either (for metrics). */
  depths(): Map<string, AdmissionDepth> {
    return new Map(
      [...this.#lanes].map(([model, lane]) => [
        model,
        { inFlight: lane.inFlight, queued: lane.queue.length },
      ]),
    );
  }

  #releaser(model: string, lane: Lane): () => void {
    let released = false;
    return () => {
      if (released) return;
      released = true;
      lane.inFlight -= 1;
      const next = lane.queue[0];
      if (next !== undefined) next.grant();
      else this.#dropIfIdle(model, lane);
    };
  }

  #lane(model: string): Lane {
    let lane = this.#lanes.get(model);
    if (lane === undefined) {
      lane = { inFlight: 0, queue: [] };
      this.#lanes.set(model, lane);
    }
    return lane;
  }

  #dropIfIdle(model: string, lane: Lane): void {
    if (lane.inFlight === 0 && lane.queue.length === 0 && this.#lanes.get(model) === lane)
      this.#lanes.delete(model);
  }
}
