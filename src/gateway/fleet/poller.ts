/**
 * Keeps one node's entry in FleetState current by polling its `/health` and
 * `/models`: every `intervalMs` while it answers, with capped exponential
 * backoff plus jitter while it does not. Requests never wait on a poll; they
 * read the store. `refresh()` polls now (after a load or unload, or when a
 * proxied request failed), coalescing with a poll already under way.
 */
import { logger } from "../../core/logger.ts";
import { classifyNeuronError, type NeuronApi } from "../neuron-client.ts";
import type { FleetState } from "./fleet-state.ts";

export interface PollerOptions {
  intervalMs: number;
  /** Longest wait between polls of a down node. Default: max(30 s, intervalMs). */
  maxBackoffMs?: number;
  /** Timeout of each poll request. Default: max(1 s, min(5 s, intervalMs)). */
  timeoutMs?: number;
  /** Random in [0, 1), for jitter. */
  random?: () => number;
}

/**
 * Delay before the next poll after `failures` consecutive failures:
 * intervalMs · 2^(failures−1), capped at maxMs, then scaled by a jitter factor
 * in [0.5, 1) so a fleet's pollers do not retry in lockstep.
 */
export function backoffDelay(
  failures: number,
  intervalMs: number,
  maxMs: number,
  random: () => number,
): number {
  if (failures <= 0) return intervalMs;
  const exponential = Math.min(maxMs, intervalMs * 2 ** Math.min(failures - 1, 30));
  return Math.round(exponential * (0.5 + random() * 0.5));
}

export class NodePoller {
  readonly #client: NeuronApi;
  readonly #store: FleetState;
  readonly #intervalMs: number;
  readonly #maxBackoffMs: number;
  readonly #timeoutMs: number;
  readonly #random: () => number;
  readonly #log = logger("poller");
  #timer: ReturnType<typeof setTimeout> | undefined;
  #running = false;
  #failures = 0;
  #current: Promise<void> | undefined;
  #again: Promise<void> | undefined;

  constructor(client: NeuronApi, store: FleetState, options: PollerOptions) {
    this.#client = client;
    this.#store = store;
    this.#intervalMs = options.intervalMs;
    this.#maxBackoffMs = Math.max(options.maxBackoffMs ?? 30_000, options.intervalMs);
    this.#timeoutMs = options.timeoutMs ?? Math.max(1_000, Math.min(5_000, options.intervalMs));
    this.#random = options.random ?? Math.random;
  }

  /** Consecutive failed polls (0 while the node answers). */
  get failures(): number {
    return this.#failures;
  }

  /** Starts polling, with a first poll right away. */
  start(): void {
    if (this.#running) return;
    this.#running = true;
    void this.refresh();
  }

  stop(): void {
    this.#running = false;
    if (this.#timer !== undefined) clearTimeout(this.#timer);
    this.#timer = undefined;
  }

  /**
   * Polls now. A poll already under way may predate the caller's change, so
   * one more poll is chained after it (and shared by every caller meanwhile).
   * Never rejects: failures go to the store as a node state.
   */
  refresh(): Promise<void> {
    if (this.#current === undefined) {
      this.#current = this.#poll().finally(() => {
        this.#current = undefined;
      });
      return this.#current;
    }
    this.#again ??= this.#current.then(() => {
      this.#again = undefined;
      return this.refresh();
    });
    return this.#again;
  }

  async #poll(): Promise<void> {
    if (this.#timer !== undefined) clearTimeout(this.#timer);
    this.#timer = undefined;
    const name = this.#client.name;
    const epoch = this.#store.epoch(name);
    try {
      const options = { timeoutMs: this.#timeoutMs };
      const [health, models] = await Promise.all([
        this.#client.health(options),
        this.#client.models(options),
      ]);
      if (this.#failures > 0)
        this.#log.info(`neuron ${name} answers again after ${this.#failures} failed polls`);
      this.#failures = 0;
      this.#store.applyPoll(name, health, models, epoch);
    } catch (error) {
      this.#failures += 1;
      const reason = classifyNeuronError(error, name).message;
      if (this.#failures === 1) this.#log.warn(`poll failed: ${reason}`);
      this.#store.applyPollFailure(name, reason);
    }
    this.#schedule();
  }

  #schedule(): void {
    if (!this.#running) return;
    const delay = backoffDelay(this.#failures, this.#intervalMs, this.#maxBackoffMs, this.#random);
    this.#timer = setTimeout(() => void this.refresh(), delay);
  }
}
