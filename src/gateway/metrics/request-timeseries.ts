/**
 * The last 15 minutes of chat requests, per model, for the dashboard's
 * charts: a ring of fixed-width time buckets per model, each holding
 * counts and a log-spaced TTFT histogram (so p50/p95 cost a few hundred
 * numbers per bucket, whatever the request rate). Pure: the caller passes
 * the time, nothing here reads a clock. Not Prometheus: no scrape, no
 * storage beyond the window.
 */

/** What one finished request adds to the series. */
export interface SeriesSample {
  model: string;
  /** Epoch ms the request ended at: the bucket it lands in. */
  atMs: number;
  /** False for any non-2xx outcome (refused, failed, cancelled). */
  ok: boolean;
  generatedTokens: number;
  promptTokens: number;
  ttftMs?: number;
}

/** One bucket as the API shows it. */
export interface SeriesPoint {
  /** Epoch ms the bucket starts at. */
  t: number;
  requests: number;
  errors: number;
  generatedTokens: number;
  promptTokens: number;
  ttftP50Ms: number | null;
  ttftP95Ms: number | null;
}

export interface SeriesSnapshot {
  bucketMs: number;
  windowMs: number;
  /** Oldest first; one point per bucket of the window, empty buckets included. */
  total: SeriesPoint[];
  models: Array<{ model: string; points: SeriesPoint[] }>;
}

/** Upper edges of the TTFT bins in ms: 2^(i/2), 1 ms … ~185 s; a last bin takes anything above. */
const TTFT_EDGES = Array.from({ length: 36 }, (_, i) => 2 ** (i / 2));
const BINS = TTFT_EDGES.length + 1;

function binOf(ms: number): number {
  if (!(ms > 1)) return 0;
  // 2 log2(ms) is the bin's index above 1 ms; ceil puts an exact edge in the bin it closes.
  return Math.min(BINS - 1, Math.ceil(2 * Math.log2(ms)));
}

interface Bucket {
  start: number;
  requests: number;
  errors: number;
  generatedTokens: number;
  promptTokens: number;
  ttftCount: number;
  ttft: Uint32Array;
}

function emptyBucket(start: number): Bucket {
  return {
    start,
    requests: 0,
    errors: 0,
    generatedTokens: 0,
    promptTokens: 0,
    ttftCount: 0,
    ttft: new Uint32Array(BINS),
  };
}

/**
 * The q-quantile of a binned distribution, interpolated linearly inside
 * the bin it falls in (so within a factor √2 of the true value).
 */
export function binnedQuantile(bins: ArrayLike<number>, count: number, q: number): number | null {
  if (count === 0) return null;
  const rank = q * count;
  let seen = 0;
  for (let i = 0; i < bins.length; i++) {
    const inBin = bins[i] ?? 0;
    if (inBin === 0 || seen + inBin < rank) {
      seen += inBin;
      continue;
    }
    const lower = i === 0 ? 0 : (TTFT_EDGES[i - 1] ?? 0);
    // The overflow bin has no upper edge: report its lower one.
    const upper = TTFT_EDGES[i] ?? lower;
    return lower + (upper - lower) * Math.max(0, Math.min(1, (rank - seen) / inBin));
  }
  return TTFT_EDGES.at(-1) ?? null;
}

/** One model's ring of buckets. */
class Ring {
  readonly #buckets: Array<Bucket | undefined>;
  readonly #bucketMs: number;

  constructor(size: number, bucketMs: number) {
    this.#buckets = new Array(size);
    this.#bucketMs = bucketMs;
  }

  add(sample: SeriesSample): void {
    const start = Math.floor(sample.atMs / this.#bucketMs) * this.#bucketMs;
    const index = Math.floor(sample.atMs / this.#bucketMs) % this.#buckets.length;
    let bucket = this.#buckets[index];
    // A slot still holding an older lap's bucket starts over; a sample older than the slot's lap is dropped.
    if (bucket === undefined || bucket.start < start) {
      bucket = emptyBucket(start);
      this.#buckets[index] = bucket;
    } else if (bucket.start > start) return;
    bucket.requests += 1;
    if (!sample.ok) bucket.errors += 1;
    bucket.generatedTokens += sample.generatedTokens;
    bucket.promptTokens += sample.promptTokens;
    if (sample.ttftMs !== undefined && Number.isFinite(sample.ttftMs)) {
      bucket.ttftCount += 1;
      const bin = binOf(sample.ttftMs);
      bucket.ttft[bin] = (bucket.ttft[bin] ?? 0) + 1;
    }
  }

  /** The bucket starting at `start`, if this ring holds it. */
  at(start: number): Bucket | undefined {
    const bucket = this.#buckets[Math.floor(start / this.#bucketMs) % this.#buckets.length];
    return bucket?.start === start ? bucket : undefined;
  }
}

function toPoint(start: number, buckets: Bucket[]): SeriesPoint {
  const point: SeriesPoint = {
    t: start,
    requests: 0,
    errors: 0,
    generatedTokens: 0,
    promptTokens: 0,
    ttftP50Ms: null,
    ttftP95Ms: null,
  };
  if (buckets.length === 0) return point;
  const bins = new Uint32Array(BINS);
  let ttftCount = 0;
  for (const bucket of buckets) {
    point.requests += bucket.requests;
    point.errors += bucket.errors;
    point.generatedTokens += bucket.generatedTokens;
    point.promptTokens += bucket.promptTokens;
    ttftCount += bucket.ttftCount;
    for (let i = 0; i < BINS; i++) bins[i] = (bins[i] ?? 0) + (bucket.ttft[i] ?? 0);
  }
  point.ttftP50Ms = binnedQuantile(bins, ttftCount, 0.5);
  point.ttftP95Ms = binnedQuantile(bins, ttftCount, 0.95);
  return point;
}

export interface RequestTimeSeriesOptions {
  /** Width of one bucket; default 5 s. */
  bucketMs?: number;
  /** How far back the series reaches; default 15 min. */
  windowMs?: number;
  /** Models with a series of their own; later ones are counted under "other". Default 32. */
  maxModels?: number;
}

export const OTHER_MODELS = "other";

export class RequestTimeSeries {
  readonly bucketMs: number;
  readonly windowMs: number;
  readonly #size: number;
  readonly #maxModels: number;
  readonly #rings = new Map<string, Ring>();

  constructor(options: RequestTimeSeriesOptions = {}) {
    this.bucketMs = options.bucketMs ?? 5_000;
    this.windowMs = options.windowMs ?? 15 * 60_000;
    this.#size = Math.ceil(this.windowMs / this.bucketMs);
    this.#maxModels = options.maxModels ?? 32;
  }

  add(sample: SeriesSample): void {
    let ring = this.#rings.get(sample.model);
    if (ring === undefined) {
      const name = this.#rings.size < this.#maxModels ? sample.model : OTHER_MODELS;
      ring = this.#rings.get(name) ?? new Ring(this.#size, this.bucketMs);
      this.#rings.set(name, ring);
    }
    ring.add(sample);
  }

  /** The window ending with the bucket that holds `nowMs`. */
  snapshot(nowMs: number): SeriesSnapshot {
    const last = Math.floor(nowMs / this.bucketMs) * this.bucketMs;
    const starts = Array.from({ length: this.#size }, (_, i) => last - (this.#size - 1 - i) * this.bucketMs);
    const models = [...this.#rings.entries()]
      .sort(([a], [b]) => a.localeCompare(b))
      .map(([model, ring]) => ({
        model,
        buckets: starts.map((start) => ring.at(start)),
      }));
    return {
      bucketMs: this.bucketMs,
      windowMs: this.windowMs,
      total: starts.map((start, i) =>
        toPoint(
          start,
          models.flatMap((m) => (m.buckets[i] === undefined ? [] : [m.buckets[i]])),
        ),
      ),
      models: models
        .filter((m) => m.buckets.some((bucket) => bucket !== undefined))
        .map((m) => ({
          model: m.model,
          points: starts.map((start, i) => toPoint(start, m.buckets[i] === undefined ? [] : [m.buckets[i]])),
        })),
    };
  }
}
