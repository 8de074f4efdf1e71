/**
 * ConversationHomes in the Redis the replicas share: one string per
 * conversation, `<key_prefix>home:<conversation key>` = node name, expiring
 * after `ttlMs` without a turn (a KV cache that old is likely gone anyway).
 *
 * Routing must not wait on Redis: a lookup gets `timeoutMs` (far less than
 * `[state] timeout_s`), and after a failure the store is left alone for
 * `retryAfterMs` (lookups answer "unknown", records are dropped), so an
 * outage costs each request nothing and routing falls back to this replica's
 * memory and rendezvous hashing. One ERROR when that starts, one line when
 * it ends.
 */
import { errorMessage } from "../../core/errors.ts";
import { logger } from "../../core/logger.ts";
import type { ConversationHomes } from "../routing/conversation-homes.ts";
import type { RedisConnection } from "./redis-connection.ts";

const log = logger("state");

export interface RedisConversationHomesOptions {
  /** Prepended to every key (`[state] key_prefix`). */
  prefix: string;
  ttlMs: number;
  /** One lookup or record at most. */
  timeoutMs: number;
  /** After a failure, how long to do without the store. */
  retryAfterMs: number;
  now?: () => number;
}

export class RedisConversationHomes implements ConversationHomes {
  readonly #redis: RedisConnection;
  readonly #options: RedisConversationHomesOptions;
  readonly #now: () => number;
  /** Set while the store is failing: until then it is not asked. */
  #failingUntil: number | undefined;

  constructor(redis: RedisConnection, options: RedisConversationHomesOptions) {
    this.#redis = redis;
    this.#options = options;
    this.#now = options.now ?? Date.now;
  }

  async lookup(conversation: bigint): Promise<string | undefined> {
    if (!this.#available()) return undefined;
    try {
      const node = await this.#redis.run(
        "look up a conversation's node",
        (client) => client.get(this.#key(conversation)),
        { timeoutMs: this.#options.timeoutMs, quiet: true },
      );
      this.#succeeded();
      return node ?? undefined;
    } catch (error) {
      this.#failed(error);
      return undefined;
    }
  }

  record(conversation: bigint, node: string): void {
    if (!this.#available()) return;
    this.#redis
      .run(
        "record a conversation's node",
        (client) => client.set(this.#key(conversation), node, "PX", this.#options.ttlMs),
        { timeoutMs: this.#options.timeoutMs, quiet: true },
      )
      .then(
        () => this.#succeeded(),
        (error: unknown) => this.#failed(error),
      );
  }

  #key(conversation: bigint): string {
    return `${this.#options.prefix}home:${conversation.toString(36)}`;
  }

  #available(): boolean {
    return this.#failingUntil === undefined || this.#now() >= this.#failingUntil;
  }

  #succeeded(): void {
    if (this.#failingUntil === undefined) return;
    this.#failingUntil = undefined;
    log.info(`state store ${this.#redis.where} answers again: conversations are routed by their shared node`);
  }

  #failed(error: unknown): void {
    // A record still on its way when the gateway shuts down is no outage.
    if (this.#redis.state === "closed") return;
    // RedisConnection's error names the store and the command; its cause says what went wrong.
    const cause = error instanceof Error && error.cause instanceof Error ? error.cause : error;
    if (this.#failingUntil === undefined)
      log.error(
        `state store ${this.#redis.where} did not answer for conversation routing (${errorMessage(cause)}): each replica routes by its own memory and rendezvous hashing until it does`,
      );
    this.#failingUntil = this.#now() + this.#options.retryAfterMs;
  }
}
