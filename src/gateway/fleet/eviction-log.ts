/**
 * Every eviction the gateway causes, logged with its reason and counted, so
 * metrics and operators can tell room-making from idle expiry from an admin.
 */
import { logger } from "../../core/logger.ts";

export type EvictionReason = "make_room" | "idle_ttl" | "admin";

export interface EvictionRecord {
  node: string;
  model: string;
  reason: EvictionReason;
  /** What the eviction was for (the model being loaded, the idle time, …). */
  detail?: string;
}

export class EvictionLog {
  readonly #counts: Record<EvictionReason, number> = { make_room: 0, idle_ttl: 0, admin: 0 };
  readonly #log = logger("evictor");

  record(record: EvictionRecord): void {
    this.#counts[record.reason] += 1;
    this.#log.info(
      `evicted ${record.model} from ${record.node} (${record.reason}${record.detail ? `: ${record.detail}` : ""})`,
      { node: record.node, model: record.model, reason: record.reason },
    );
  }

  /** Evictions so far, by reason. */
  counts(): Readonly<Record<EvictionReason, number>> {
    return { ...this.#counts };
  }
}
