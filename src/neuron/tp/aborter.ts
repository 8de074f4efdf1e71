/**
 * Main-thread side of the aborter: sends cached handles to a dedicated Worker
 * and times it. The main thread never calls an abort itself, so a hung
 * ncclCommAbort costs it nothing but a timer; a Worker that hung is abandoned
 * (terminate is best effort against a thread stuck in native code) and the
 * next abort gets a fresh one.
 */

import { startWorker } from "../../core/worker-thread.ts";
import { workerUrl } from "../../core/worker-url.ts";
import type { AborterEvent, AborterRequest } from "./aborter-protocol.ts";
import type { AbortOutcome, CommunicatorHandle } from "./communicator.ts";

export interface AbortRankReport {
  rank: number;
  /** "hung": started and did not return in time; "not-started": queued behind a hung rank. */
  outcome: AbortOutcome | "hung" | "not-started";
  ms?: number;
  error?: string;
}

export interface AbortReport {
  /** Every rank's abort returned within the timeout. */
  completed: boolean;
  elapsedMs: number;
  ranks: AbortRankReport[];
}

/** Aborts every cached handle of a group, off the main thread, within `timeoutMs`. Never rejects. */
export interface Aborter {
  abortAll(handles: readonly CommunicatorHandle[], timeoutMs: number): Promise<AbortReport>;
  /** Preloads native libraries in the aborter thread (call at group formation). */
  warm(libraryPaths: readonly string[]): Promise<void>;
  close(): void;
}

const DEFAULT_WORKER_URL = workerUrl(
  "neuron/tp/aborter-worker.ts",
  new URL("./aborter-worker.ts", import.meta.url),
);

export function createWorkerAborter(options: { workerUrl?: URL | string } = {}): Aborter {
  const url = options.workerUrl ?? DEFAULT_WORKER_URL;
  let worker: Worker | undefined;
  let nextId = 1;
  const listeners = new Set<(event: AborterEvent) => void>();

  function current(): Worker {
    if (worker) return worker;
    const fresh = startWorker(url, "aborter");
    // A wedged aborter must not keep the process alive once everything else is done.
    fresh.unref();
    fresh.onmessage = (message: MessageEvent<AborterEvent>) => {
      for (const listener of listeners) listener(message.data);
    };
    worker = fresh;
    return fresh;
  }

  function abandon(): void {
    const stuck = worker;
    worker = undefined;
    stuck?.terminate();
  }

  function post(request: AborterRequest): void {
    current().postMessage(request);
  }

  return {
    warm(libraryPaths) {
      if (libraryPaths.length === 0) return Promise.resolve();
      return new Promise<void>((resolve) => {
        const listener = (event: AborterEvent) => {
          if (event.type !== "warmed") return;
          listeners.delete(listener);
          resolve();
        };
        listeners.add(listener);
        post({ type: "warm", libraryPaths: [...libraryPaths] });
      });
    },

    abortAll(handles, timeoutMs) {
      const id = nextId++;
      const started = performance.now();
      const ranks = new Map<number, AbortRankReport>(
        handles.map((h) => [h.rank, { rank: h.rank, outcome: "not-started" as const }]),
      );
      return new Promise<AbortReport>((resolve) => {
        const finish = (completed: boolean) => {
          clearTimeout(timer);
          listeners.delete(listener);
          if (!completed) abandon();
          resolve({ completed, elapsedMs: performance.now() - started, ranks: [...ranks.values()] });
        };
        const listener = (event: AborterEvent) => {
          if (event.type === "warmed" || event.id !== id) return;
          if (event.type === "rank-start") ranks.set(event.rank, { rank: event.rank, outcome: "hung" });
          else if (event.type === "rank-done") {
            ranks.set(event.rank, {
              rank: event.rank,
              outcome: event.outcome,
              ms: event.ms,
              ...(event.error === undefined ? {} : { error: event.error }),
            });
          } else finish(true);
        };
        const timer = setTimeout(() => finish(false), timeoutMs);
        listeners.add(listener);
        try {
          post({ type: "abort", id, handles: [...handles] });
        } catch (error) {
          for (const report of ranks.values()) report.error = (error as Error).message;
          finish(false);
        }
      });
    },

    close() {
      listeners.clear();
      abandon();
    },
  };
}
