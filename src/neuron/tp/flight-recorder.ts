/**
 * Per-group ring buffer of recent steps, dumped with the watchdog's ERROR
 * lines so a real hang leaves the last steps (sizes, timings, what each rank
 * was doing) in the journal. Fixed capacity: memory stays bounded however
 * long the group runs.
 */
import type { RankSnapshot } from "./control-block.ts";

export type StepOutcome = "running" | "ok" | "error" | "timeout";

export interface StepRecord {
  step: number;
  batchSize: number;
  tokens: number;
  /** Epoch milliseconds. */
  startedAt: number;
  /** Milliseconds; absent while running. */
  durationMs?: number;
  outcome: StepOutcome;
  /** Each rank's collective state when the step ended (or when the watchdog fired). */
  ranks: RankSnapshot[];
  error?: string;
}

export class FlightRecorder {
  private readonly ring: (StepRecord | undefined)[];
  private next = 0;
  private count = 0;

  constructor(readonly capacity = 32) {
    if (!Number.isInteger(capacity) || capacity < 1)
      throw new RangeError("flight recorder capacity must be >= 1");
    this.ring = new Array(capacity);
  }

  /** Starts a record; the returned object is updated in place by `finish`. */
  begin(entry: { step: number; batchSize: number; tokens: number; startedAt: number }): StepRecord {
    const record: StepRecord = { ...entry, outcome: "running", ranks: [] };
    this.ring[this.next] = record;
    this.next = (this.next + 1) % this.capacity;
    this.count = Math.min(this.count + 1, this.capacity);
    return record;
  }

  finish(
    record: StepRecord,
    outcome: Exclude<StepOutcome, "running">,
    durationMs: number,
    ranks: RankSnapshot[],
    error?: string,
  ): void {
    record.outcome = outcome;
    record.durationMs = durationMs;
    record.ranks = ranks;
    if (error !== undefined) record.error = error;
  }

  /** Oldest first. */
  snapshot(): StepRecord[] {
    const out: StepRecord[] = [];
    for (let i = 0; i < this.count; i++) {
      const record = this.ring[(this.next - this.count + i + this.capacity) % this.capacity];
      if (record) out.push({ ...record, ranks: [...record.ranks] });
    }
    return out;
  }

  get size(): number {
    return this.count;
  }
}

export function formatRanks(ranks: readonly RankSnapshot[]): string {
  if (ranks.length === 0) return "-";
  return ranks.map((r) => `r${r.rank}:${r.state}/${r.phase}#${r.seq}`).join(" ");
}

/** One line per step, oldest first, for the ERROR dump. */
export function formatFlightRecord(records: readonly StepRecord[]): string[] {
  return records.map((r) => {
    const duration = r.durationMs === undefined ? "running" : `${Math.round(r.durationMs)}ms`;
    const error = r.error === undefined ? "" : ` error=${JSON.stringify(r.error)}`;
    return (
      `step=${r.step} batch=${r.batchSize} tokens=${r.tokens} started=${new Date(r.startedAt).toISOString()} ` +
      `duration=${duration} outcome=${r.outcome} ranks=[${formatRanks(r.ranks)}]${error}`
    );
  });
}
