/**
 * The bounds on one chat, as abort signals whose reason is the CortexError
 * that says which bound ended it (issue 18 §3, §7):
 *
 * - `gateway.request_timeout_s`: the whole request, end to end (the queue,
 *   a load, the answer to its last byte). A 504 before the first byte, an
 *   error event after it; never retried (the time is spent).
 * - `gateway.upstream_read_timeout_s`: one read from a node pending this
 *   long with nothing arriving. Neurons send a heartbeat every 15 s while an
 *   answer is not ready (src/neuron/chat-answer.ts), so silence means a
 *   frozen or hung node. Only a pending read counts: a stream the client
 *   reads slowly is not the node's silence.
 * - the node marked down by the fleet (its polls failed: frozen, gone): its
 *   requests end at once instead of waiting for TCP to notice.
 *
 * The last two are retryable, so a call not yet committed (before its first
 * event) goes to another node; a committed stream ends with an error event.
 */
import { deadlineIn, type SweepWatch, sweepEvery } from "../core/deadline-sweep.ts";
import { CortexError } from "../core/errors.ts";
import type { FleetState } from "./fleet/fleet-state.ts";

/** The request's own deadline, on top of the client's signal. */
export interface RequestDeadline {
  signal: AbortSignal;
  /** Stops the timer (the answer ended); idempotent. */
  clear(): void;
}

function requestTimedOut(timeoutMs: number): CortexError {
  return new CortexError(
    "timeout",
    `the request took longer than gateway.request_timeout_s (${timeoutMs / 1000} s)`,
  );
}

/** One signal for a call that is never retried (embeddings): the client's, or the deadline's. */
export function requestDeadline(client: AbortSignal, timeoutMs: number | undefined): RequestDeadline {
  if (timeoutMs === undefined) return { signal: client, clear: () => {} };
  const controller = new AbortController();
  const late = deadlineIn(timeoutMs, () => controller.abort(requestTimedOut(timeoutMs)));
  const onClientAbort = () => controller.abort(client.reason);
  if (client.aborted) onClientAbort();
  else client.addEventListener("abort", onClientAbort, { once: true });
  return {
    signal: controller.signal,
    clear: () => {
      late.cancel();
      client.removeEventListener("abort", onClientAbort);
    },
  };
}

/**
 * The bounds of one chat, all its attempts together, in one object: a
 * single abort controller (replaced only when an attempt is ended for its
 * own reasons, so the next attempt and the waits before it get a live
 * signal), one listener on the client's signal, and one check on the shared
 * coarse sweep (src/core/deadline-sweep.ts) for the deadline and the read
 * timeout. A controller chained per attempt, two listeners and two timers
 * per request cost the hot path more than routing it.
 */
export class ChatBounds {
  #controller = new AbortController();
  /** Aborted for good: the client left or the deadline passed. */
  #ended = false;
  #cleared = false;
  readonly #client: AbortSignal;
  readonly #onClientAbort = () => this.#end(this.#client.reason);
  readonly #watchdog: UpstreamWatchdog | undefined;
  readonly #sweep: SweepWatch | undefined;
  /** The node of the attempt in progress. */
  #node: string | undefined;
  /** When the pending read from the node started (performance.now()); undefined while none is. */
  #pendingSince: number | undefined;

  constructor(client: AbortSignal, requestTimeoutMs: number | undefined, watchdog?: UpstreamWatchdog) {
    this.#client = client;
    this.#watchdog = watchdog;
    const readLimit = watchdog?.readTimeoutMs;
    const finest = Math.min(requestTimeoutMs ?? Infinity, readLimit ?? Infinity);
    if (finest !== Infinity) {
      const deadlineAt = requestTimeoutMs === undefined ? Infinity : performance.now() + requestTimeoutMs;
      this.#sweep = sweepEvery(finest, (now) => {
        if (this.#ended || this.#cleared) return true;
        if (now >= deadlineAt) {
          this.#end(requestTimedOut(requestTimeoutMs as number));
          return true;
        }
        const since = this.#pendingSince;
        const node = this.#node;
        if (readLimit !== undefined && since !== undefined && node !== undefined && now - since >= readLimit)
          this.abortAttempt(
            node,
            new CortexError(
              "upstream_error",
              `node ${node} sent nothing for gateway.upstream_read_timeout_s (${readLimit / 1000} s)`,
              { details: { node } },
            ),
          );
        return false;
      });
    }
    if (client.aborted) this.#end(client.reason);
    else client.addEventListener("abort", this.#onClientAbort, { once: true });
  }

  /** The signal every wait and call of the request takes now (a fresh one after an attempt was ended). */
  get signal(): AbortSignal {
    return this.#controller.signal;
  }

  /** An attempt on `node` starts: the signal its call takes. */
  attempt(node: string): AbortSignal {
    this.#leaveAttempt();
    this.#node = node;
    this.#watchdog?.join(node, this);
    return this.#controller.signal;
  }

  /**
   * The signal for what the router does between attempts (its checks, the
   * wait for a load or a copy): the attempt before is over, so its node, if
   * marked down now, no longer ends this request (the router reads this only
   * then, never while an attempt runs).
   */
  betweenAttempts(): AbortSignal {
    this.#leaveAttempt();
    return this.#controller.signal;
  }

  /** A read from the node starts (`true`) or has returned (`false`): the read timeout's clock. */
  readonly reading = (pending: boolean): void => {
    this.#pendingSince = pending ? performance.now() : undefined;
  };

  /**
   * Ends the attempt on `node` (silent, or marked down) if it is the one in
   * progress; the request goes on: the next attempt gets a fresh signal.
   */
  abortAttempt(node: string, error: CortexError): void {
    if (this.#ended || this.#cleared || this.#node !== node) return;
    const attempt = this.#controller;
    this.#controller = new AbortController();
    this.#leaveAttempt();
    attempt.abort(error);
  }

  /** The request is over (answered, failed, or abandoned): stops watching; idempotent. */
  clear(): void {
    if (this.#cleared) return;
    this.#cleared = true;
    this.#sweep?.cancel();
    this.#client.removeEventListener("abort", this.#onClientAbort);
    this.#leaveAttempt();
  }

  #end(reason: unknown): void {
    if (this.#ended) return;
    this.#ended = true;
    this.#leaveAttempt();
    this.#controller.abort(reason);
  }

  /** No attempt in progress: no node to watch, no read pending. */
  #leaveAttempt(): void {
    this.#pendingSince = undefined;
    if (this.#node === undefined) return;
    this.#watchdog?.leave(this.#node, this);
    this.#node = undefined;
  }
}

/**
 * The attempts in flight by node, with one fleet listener for all of them:
 * a node marked down ends its attempts at once. Also holds
 * `upstream_read_timeout_s`, which each chat's bounds check.
 */
export class UpstreamWatchdog {
  readonly readTimeoutMs: number | undefined;
  readonly #byNode = new Map<string, Set<ChatBounds>>();

  constructor(state: Pick<FleetState, "onStateChange">, readTimeoutMs: number | undefined) {
    this.readTimeoutMs = readTimeoutMs;
    state.onStateChange((change) => {
      if (change.to !== "down") return;
      const attempts = this.#byNode.get(change.node);
      if (attempts === undefined) return;
      const error = new CortexError(
        "upstream_error",
        `node ${change.node} was marked down (${change.reason}) while answering`,
        { details: { node: change.node } },
      );
      for (const bounds of [...attempts]) bounds.abortAttempt(change.node, error);
    });
  }

  join(node: string, bounds: ChatBounds): void {
    let attempts = this.#byNode.get(node);
    if (attempts === undefined) {
      attempts = new Set();
      this.#byNode.set(node, attempts);
    }
    attempts.add(bounds);
  }

  leave(node: string, bounds: ChatBounds): void {
    const attempts = this.#byNode.get(node);
    if (attempts === undefined) return;
    attempts.delete(bounds);
    if (attempts.size === 0) this.#byNode.delete(node);
  }
}

/** The CortexError a signal was aborted with (a bound of ours), if that is why it was. */
export function boundReason(signal: AbortSignal): CortexError | undefined {
  return signal.aborted && signal.reason instanceof CortexError ? signal.reason : undefined;
}
