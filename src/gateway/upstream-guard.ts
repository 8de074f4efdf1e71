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
import { CortexError } from "../core/errors.ts";
import type { FleetState } from "./fleet/fleet-state.ts";

/** The request's own deadline, on top of the client's signal. */
export interface RequestDeadline {
  signal: AbortSignal;
  /** Stops the timer (the answer ended); idempotent. */
  clear(): void;
}

export function requestDeadline(client: AbortSignal, timeoutMs: number | undefined): RequestDeadline {
  if (timeoutMs === undefined) return { signal: client, clear: () => {} };
  const controller = new AbortController();
  const timer = setTimeout(() => {
    controller.abort(
      new CortexError(
        "timeout",
        `the request took longer than gateway.request_timeout_s (${timeoutMs / 1000} s)`,
      ),
    );
  }, timeoutMs);
  const onClientAbort = () => controller.abort(client.reason);
  if (client.aborted) onClientAbort();
  else client.addEventListener("abort", onClientAbort, { once: true });
  return {
    signal: controller.signal,
    clear: () => {
      clearTimeout(timer);
      client.removeEventListener("abort", onClientAbort);
    },
  };
}

/** One attempt on one node: its signal, and the reads that keep it alive. */
export interface AttemptWatch {
  signal: AbortSignal;
  /** A read from the node starts (`true`) or has returned (`false`). */
  reading(pending: boolean): void;
  /** The attempt is over (failed, or the answer ended); idempotent. */
  clear(): void;
}

/**
 * Watches the attempts in flight: one fleet listener for all of them, one
 * timer per attempt (re-armed only when it fires, so a read costs a store).
 */
export class UpstreamWatchdog {
  readonly #readTimeoutMs: number | undefined;
  readonly #byNode = new Map<string, Set<AbortController>>();

  constructor(state: Pick<FleetState, "onStateChange">, readTimeoutMs: number | undefined) {
    this.#readTimeoutMs = readTimeoutMs;
    state.onStateChange((change) => {
      if (change.to !== "down") return;
      const attempts = this.#byNode.get(change.node);
      if (attempts === undefined) return;
      const error = new CortexError(
        "upstream_error",
        `node ${change.node} was marked down (${change.reason}) while answering`,
        { details: { node: change.node } },
      );
      for (const controller of [...attempts]) controller.abort(error);
    });
  }

  watch(node: string, parent: AbortSignal): AttemptWatch {
    const controller = new AbortController();
    let attempts = this.#byNode.get(node);
    if (attempts === undefined) {
      attempts = new Set();
      this.#byNode.set(node, attempts);
    }
    attempts.add(controller);
    const onParentAbort = () => controller.abort(parent.reason);
    if (parent.aborted) onParentAbort();
    else parent.addEventListener("abort", onParentAbort, { once: true });
    const limit = this.#readTimeoutMs;
    let pendingSince: number | undefined;
    let timer: ReturnType<typeof setTimeout> | undefined;
    const check = () => {
      timer = undefined;
      if (limit === undefined || controller.signal.aborted) return;
      const now = performance.now();
      if (pendingSince !== undefined && now - pendingSince >= limit) {
        controller.abort(
          new CortexError(
            "upstream_error",
            `node ${node} sent nothing for gateway.upstream_read_timeout_s (${limit / 1000} s)`,
            { details: { node } },
          ),
        );
        return;
      }
      timer = setTimeout(check, pendingSince === undefined ? limit : limit - (now - pendingSince));
    };
    if (limit !== undefined) timer = setTimeout(check, limit);
    let cleared = false;
    return {
      signal: controller.signal,
      reading: (pending) => {
        pendingSince = pending ? performance.now() : undefined;
      },
      clear: () => {
        if (cleared) return;
        cleared = true;
        clearTimeout(timer);
        timer = undefined;
        parent.removeEventListener("abort", onParentAbort);
        attempts.delete(controller);
        if (attempts.size === 0) this.#byNode.delete(node);
      },
    };
  }
}

/** The CortexError a signal was aborted with (a bound of ours), if that is why it was. */
export function boundReason(signal: AbortSignal): CortexError | undefined {
  return signal.aborted && signal.reason instanceof CortexError ? signal.reason : undefined;
}
