/**
 * Main-thread end of one rank Worker's channel: id-correlated requests, a
 * ready promise, and a termination that resolves when the thread has closed.
 * The device pool can wrap its own Worker the same way; only `request` and
 * `terminate` matter to the group code.
 */
import { CortexError } from "../../core/errors.ts";
import { within } from "../../core/within.ts";
import { startWorker } from "../../core/worker-thread.ts";
import type { TpRankReady, TpRankReply, TpRankRequest } from "./rank-protocol.ts";

type Pending = { resolve: (value: unknown) => void; reject: (error: unknown) => void };

/** A request without its id; the client numbers them. */
export type TpRankCall = TpRankRequest extends infer R
  ? R extends TpRankRequest
    ? Omit<R, "id">
    : never
  : never;

export interface RankPort {
  request(call: TpRankCall): Promise<unknown>;
  terminate(timeoutMs?: number): Promise<void>;
}

export class RankClient implements RankPort {
  readonly ready: Promise<void>;
  readonly closed: Promise<void>;
  /** The Worker's OS thread id, once ready (-1 before). */
  threadId = -1;
  private nextId = 1;
  private readonly pending = new Map<number, Pending>();

  constructor(readonly worker: Worker) {
    let markReady: () => void = () => {};
    this.ready = new Promise((resolve) => {
      markReady = resolve;
    });
    this.closed = new Promise((resolve) => {
      worker.addEventListener("close", () => {
        for (const p of this.pending.values()) p.reject(new CortexError("unavailable", "rank Worker closed"));
        this.pending.clear();
        resolve();
      });
    });
    worker.onmessage = (message: MessageEvent<TpRankReply | TpRankReady>) => {
      const data = message.data;
      if ("type" in data) {
        this.threadId = data.threadId;
        markReady();
        return;
      }
      const waiter = this.pending.get(data.id);
      if (!waiter) return;
      this.pending.delete(data.id);
      if (data.ok) waiter.resolve(data.value);
      else waiter.reject(CortexError.fromWire(data.error));
    };
  }

  static spawn(url: URL | string): RankClient {
    return new RankClient(startWorker(url, "rank"));
  }

  request(call: TpRankCall): Promise<unknown> {
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      this.pending.set(id, { resolve, reject });
      this.worker.postMessage({ ...call, id });
    });
  }

  /** Terminates the Worker; rejects if it has not closed within `timeoutMs` (a thread stuck in native code). */
  async terminate(timeoutMs = 5_000): Promise<void> {
    this.worker.terminate();
    await within(this.closed, timeoutMs, () => new CortexError("timeout", "rank Worker did not close"));
  }
}
