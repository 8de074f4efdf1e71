/**
 * The gateway's one connection to the Redis its replicas share (`[state]
 * redis_url`): stored Responses API answers and Anthropic message threads
 * today, and whatever else replicas must agree on later. One owner, one
 * client per gateway; every user goes through `run`, which turns "Redis is
 * not there" into one error (`unavailable`, 503, naming the state store)
 * instead of a hang or a crash.
 *
 * States: connecting → up ⇄ down → closed. Commands are never queued while
 * down (Bun's offline queue is off): a request fails at once rather than
 * waiting for an outage to end. Bun reconnects by itself for a while after a
 * drop; once it gives up, the next command starts one new connection attempt
 * (shared by every command that arrives meanwhile), so the gateway recovers
 * as soon as Redis is back, without a timer of its own.
 */
import { RedisClient } from "bun";
import { CortexError } from "../../core/errors.ts";
import { logger } from "../../core/logger.ts";

const log = logger("state");

export type RedisConnectionState = "connecting" | "up" | "down" | "closed";

export interface RedisConnectionOptions {
  url: string;
  /** One connection attempt, and one command, at most (`[state] timeout_s`). */
  timeoutMs: number;
}

/** `url` without its password, for logs and error messages. */
export function redactRedisUrl(url: string): string {
  try {
    const parsed = new URL(url);
    if (parsed.password !== "") parsed.password = "***";
    return parsed.toString().replace(/\/$/, "");
  } catch {
    return "(unparsable redis_url)";
  }
}

function reason(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

export class RedisConnection {
  readonly #client: RedisClient;
  /** For logs and errors: the URL without its password. */
  readonly where: string;
  readonly #timeoutMs: number;
  #state: RedisConnectionState = "connecting";
  #connecting: Promise<void> | undefined;
  readonly #listeners = new Set<(state: RedisConnectionState) => void>();

  constructor(options: RedisConnectionOptions) {
    this.where = redactRedisUrl(options.url);
    this.#timeoutMs = options.timeoutMs;
    this.#client = new RedisClient(options.url, {
      connectionTimeout: options.timeoutMs,
      enableOfflineQueue: false,
      autoReconnect: true,
      // Bun's own retries ride out a blip; past them, the next command reconnects (see run).
      maxRetries: 3,
    });
    this.#client.onconnect = () => this.#set("up");
    this.#client.onclose = (error) => {
      if (this.#state === "closed") return;
      if (this.#state === "up") log.error(`state store ${this.where} connection lost: ${reason(error)}`);
      this.#set("down");
    };
  }

  get state(): RedisConnectionState {
    return this.#state;
  }

  /** Called on every state change (tests wait on it; a future /health may show it). */
  onStateChange(listener: (state: RedisConnectionState) => void): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  /**
   * The first connection attempt. Resolves either way: the gateway starts
   * without Redis (see docs/GATEWAY.md, "Shared state"), so this only says
   * whether it is there, and logs an ERROR when it is not.
   */
  async start(): Promise<boolean> {
    try {
      await this.#connect();
      log.info(`state store ${this.where} connected`);
      return true;
    } catch (error) {
      log.error(
        `state store ${this.where} unreachable at startup (${reason(error)}): stored responses and message threads answer 503 until it is reachable`,
      );
      return false;
    }
  }

  /**
   * Runs `command` on the client; any failure to reach Redis, or a command
   * that takes longer than `timeoutMs` (a Redis that accepts and never
   * answers), is a 503 `unavailable` naming the state store, logged as an
   * ERROR unless `options.quiet` (a caller that does without the answer and
   * reports the outage itself). `options.timeoutMs` bounds this command
   * tighter than `[state] timeout_s`.
   */
  async run<T>(
    what: string,
    command: (client: RedisClient) => Promise<T>,
    options: { timeoutMs?: number; quiet?: boolean } = {},
  ): Promise<T> {
    if (this.#state === "closed") throw this.#unavailable(what, "the gateway is shutting down");
    const timeoutMs = Math.min(options.timeoutMs ?? this.#timeoutMs, this.#timeoutMs);
    let timer: ReturnType<typeof setTimeout> | undefined;
    const timedOut = new Promise<never>((_, reject) => {
      timer = setTimeout(
        () =>
          reject(
            new Error(
              `no answer within ${timeoutMs / 1000} s${timeoutMs === this.#timeoutMs ? " ([state] timeout_s)" : ""}`,
            ),
          ),
        timeoutMs,
      );
    });
    try {
      return await Promise.race([
        (async () => {
          if (!this.#client.connected) await this.#connect();
          return await command(this.#client);
        })(),
        timedOut,
      ]);
    } catch (error) {
      if (error instanceof CortexError) throw error;
      if (options.quiet !== true) log.error(`state store ${this.where}: ${what} failed: ${reason(error)}`);
      throw this.#unavailable(what, reason(error), error);
    } finally {
      clearTimeout(timer);
    }
  }

  close(): void {
    if (this.#state === "closed") return;
    this.#set("closed");
    this.#client.close();
  }

  /** One connection attempt at a time, shared by everyone who asks meanwhile. */
  #connect(): Promise<void> {
    this.#connecting ??= this.#client.connect().then(
      () => {
        this.#connecting = undefined;
        this.#set("up");
      },
      (error: unknown) => {
        this.#connecting = undefined;
        if (this.#state !== "closed") this.#set("down");
        throw error;
      },
    );
    return this.#connecting;
  }

  #set(state: RedisConnectionState): void {
    if (this.#state === state || this.#state === "closed") return;
    if (this.#state === "down" && state === "up") log.info(`state store ${this.where} reachable again`);
    this.#state = state;
    for (const listener of this.#listeners) listener(state);
  }

  #unavailable(what: string, why: string, cause?: unknown): CortexError {
    return new CortexError(
      "unavailable",
      `state store (Redis at ${this.where}) unavailable: ${what}: ${why}`,
      {
        retryAfterS: 1,
        ...(cause === undefined ? {} : { cause }),
      },
    );
  }
}
