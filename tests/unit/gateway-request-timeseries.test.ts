/**
 * The dashboard's in-gateway time series (request-timeseries.ts) and the
 * request history over it: buckets, the sliding window, TTFT percentiles
 * from binned counts, per-model series with a bounded number of models,
 * and the tail ring. Time is passed in; nothing here reads a clock.
 */
import { describe, expect, test } from "bun:test";
import { RequestHistory } from "../../src/gateway/metrics/request-history.ts";
import {
  binnedQuantile,
  OTHER_MODELS,
  RequestTimeSeries,
  type SeriesSample,
} from "../../src/gateway/metrics/request-timeseries.ts";

const T0 = 1_800_000_000_000; // a bucket boundary for 5 s and 10 s buckets
const sample = (atMs: number, extra: Partial<SeriesSample> = {}): SeriesSample => ({
  model: "m",
  atMs,
  ok: true,
  generatedTokens: 10,
  promptTokens: 5,
  ...extra,
});

describe("RequestTimeSeries", () => {
  test("each request lands in the bucket of its time; the window has one point per bucket", () => {
    const series = new RequestTimeSeries({ bucketMs: 5_000, windowMs: 60_000 });
    series.add(sample(T0 + 1_000));
    series.add(sample(T0 + 4_999, { ok: false, generatedTokens: 3 }));
    series.add(sample(T0 + 5_000));
    const snap = series.snapshot(T0 + 7_000);
    expect(snap.total).toHaveLength(12);
    expect(snap.total.at(-1)?.t).toBe(T0 + 5_000);
    expect(snap.total.at(-2)).toMatchObject({
      t: T0,
      requests: 2,
      errors: 1,
      generatedTokens: 13,
      promptTokens: 10,
    });
    expect(snap.total.at(-1)).toMatchObject({ requests: 1, errors: 0, generatedTokens: 10 });
    expect(snap.total.slice(0, -2).every((p) => p.requests === 0 && p.ttftP50Ms === null)).toBe(true);
  });

  test("requests older than the window leave it, and a reused slot starts empty", () => {
    const series = new RequestTimeSeries({ bucketMs: 1_000, windowMs: 10_000 });
    series.add(sample(T0));
    expect(series.snapshot(T0 + 9_999).total.reduce((n, p) => n + p.requests, 0)).toBe(1);
    expect(series.snapshot(T0 + 10_000).total.reduce((n, p) => n + p.requests, 0)).toBe(0);
    // T0 + 10 s falls in T0's slot: the old lap's count must not carry over.
    series.add(sample(T0 + 10_000));
    const snap = series.snapshot(T0 + 10_000);
    expect(snap.total.reduce((n, p) => n + p.requests, 0)).toBe(1);
    // A straggler for the lap that slot no longer holds is dropped, not added to the new one.
    series.add(sample(T0 + 500));
    expect(series.snapshot(T0 + 10_000).total.at(-1)?.requests).toBe(1);
  });

  test("TTFT p50 and p95 are within a bin (a factor of √2) of the true percentiles", () => {
    const series = new RequestTimeSeries({ bucketMs: 10_000 });
    const ttfts = Array.from({ length: 200 }, (_, i) => 20 + i * 3); // 20 … 617 ms
    for (const ttftMs of ttfts) series.add(sample(T0 + 1, { ttftMs }));
    series.add(sample(T0 + 2)); // no first token: counts as a request, not in the percentiles
    const point = series.snapshot(T0 + 5_000).total.at(-1);
    const truth = (q: number) => ttfts[Math.ceil(q * ttfts.length) - 1] ?? 0;
    for (const [q, got] of [
      [0.5, point?.ttftP50Ms],
      [0.95, point?.ttftP95Ms],
    ] as const) {
      expect(got).not.toBeNull();
      expect(got!).toBeGreaterThan(truth(q) / Math.SQRT2);
      expect(got!).toBeLessThan(truth(q) * Math.SQRT2);
    }
    expect(point?.requests).toBe(201);
  });

  test("per-model series; the total merges them; past maxModels the rest is 'other'", () => {
    const series = new RequestTimeSeries({ bucketMs: 5_000, maxModels: 2 });
    series.add(sample(T0, { model: "a", ttftMs: 10 }));
    series.add(sample(T0, { model: "b", ttftMs: 1000 }));
    series.add(sample(T0, { model: "c", ttftMs: 1000 }));
    series.add(sample(T0, { model: "d" }));
    const snap = series.snapshot(T0);
    expect(snap.models.map((m) => [m.model, m.points.at(-1)?.requests])).toEqual([
      ["a", 1],
      ["b", 1],
      [OTHER_MODELS, 2],
    ]);
    const total = snap.total.at(-1);
    expect(total?.requests).toBe(4);
    // Two of three first tokens took ~1 s: the merged median is there, not at model a's 10 ms.
    expect(total?.ttftP50Ms).toBeGreaterThan(700);
  });

  test("a model with nothing in the window is left out", () => {
    const series = new RequestTimeSeries({ bucketMs: 1_000, windowMs: 5_000 });
    series.add(sample(T0, { model: "old" }));
    series.add(sample(T0 + 6_000, { model: "new" }));
    expect(series.snapshot(T0 + 6_000).models.map((m) => m.model)).toEqual(["new"]);
  });
});

describe("binnedQuantile", () => {
  test("empty is null; sub-millisecond values stay under 1 ms; huge ones report the top edge", () => {
    expect(binnedQuantile([0, 0, 0], 0, 0.5)).toBeNull();
    const series = new RequestTimeSeries();
    series.add(sample(T0, { ttftMs: 0.2 }));
    series.add(sample(T0 + 1, { ttftMs: 10_000_000 }));
    const point = series.snapshot(T0).total.at(-1);
    expect(point?.ttftP50Ms).toBeLessThanOrEqual(1);
    expect(point?.ttftP95Ms).toBeGreaterThan(100_000);
  });
});

describe("RequestHistory", () => {
  const entry = (requestId: string, status = 200) => ({
    requestId,
    model: "m",
    node: "n1",
    dialect: "openai" as const,
    stream: true,
    status,
    generatedTokens: 4,
    durationMs: 12,
  });

  test("the tail is newest first, bounded, and cuts client-given strings", () => {
    let now = T0;
    const history = new RequestHistory({ tailSize: 3, now: () => now });
    for (const id of ["r1", "r2", "r3", "r4"]) {
      now += 1_000;
      history.record(entry(id), "m");
    }
    expect(history.recent(10).map((r) => r.requestId)).toEqual(["r4", "r3", "r2"]);
    expect(history.recent(1)[0]).toMatchObject({ requestId: "r4", at: T0 + 4_000 });
    history.record(entry("x".repeat(5_000)), "m");
    expect(history.recent(1)[0]?.requestId).toHaveLength(200);
  });

  test("what it records feeds the series: 4xx and 5xx count as errors", () => {
    const history = new RequestHistory({ bucketMs: 60_000, now: () => T0 });
    history.record(entry("ok"), "m");
    history.record(entry("refused", 429), "m");
    history.record(entry("failed", 502), "m");
    expect(history.series().total.at(-1)).toMatchObject({ requests: 3, errors: 2, generatedTokens: 12 });
  });
});
