/**
 * The hot-path counters and histograms render what Prometheus expects:
 * cumulative `le` buckets (a value equal to a bound counts in it), +Inf,
 * _sum and _count, escaped label values, one series per label set.
 */
import { describe, expect, test } from "bun:test";
import { FastCounter, FastHistogram } from "../../src/gateway/metrics/fast-metrics.ts";
import { parseExposition, sumSamples } from "../../src/gateway/metrics/parse-exposition.ts";

describe("FastHistogram", () => {
  test("cumulative buckets, +Inf, sum and count per label set", () => {
    const histogram = new FastHistogram({
      name: "t_seconds",
      help: "test",
      labelNames: ["model"],
      buckets: [1, 0.1, 10],
    });
    for (const value of [0.05, 0.1, 0.5, 1, 5, 50]) histogram.observe({ model: "a" }, value);
    histogram.observe({ model: "b" }, 2);
    histogram.observe({ model: "b" }, Number.NaN);
    const text = histogram.render();
    expect(text.split("\n").slice(0, 2)).toEqual(["# HELP t_seconds test", "# TYPE t_seconds histogram"]);
    const samples = parseExposition(text);
    const bucket = (model: string, le: string) => sumSamples(samples, "t_seconds_bucket", { model, le });
    expect([bucket("a", "0.1"), bucket("a", "1"), bucket("a", "10"), bucket("a", "+Inf")]).toEqual([
      2, 4, 5, 6,
    ]);
    expect(sumSamples(samples, "t_seconds_count", { model: "a" })).toBe(6);
    expect(sumSamples(samples, "t_seconds_sum", { model: "a" })).toBeCloseTo(56.65, 10);
    expect([bucket("b", "1"), bucket("b", "10"), bucket("b", "+Inf")]).toEqual([0, 1, 1]);
    expect(sumSamples(samples, "t_seconds_count", { model: "b" })).toBe(1);
    histogram.reset();
    expect(parseExposition(histogram.render())).toEqual([]);
  });
});

describe("FastCounter", () => {
  test("adds per label set, ignores negative and non-finite amounts, escapes values", () => {
    const counter = new FastCounter({ name: "t_total", help: "a\nb", labelNames: ["model", "node"] });
    counter.inc({ model: "a", node: "x" });
    counter.inc({ model: "a", node: "x" }, 4);
    counter.inc({ model: "a", node: "y" }, 2);
    counter.inc({ model: "a", node: "y" }, -1);
    counter.inc({ model: 'q"\\\n', node: "x" }, Number.POSITIVE_INFINITY);
    counter.inc({ model: 'q"\\\n', node: "x" }, 1);
    const text = counter.render();
    expect(text).toContain("# HELP t_total a\\nb");
    expect(text).toContain('t_total{model="q\\"\\\\\\n",node="x"} 1');
    const samples = parseExposition(text);
    expect(sumSamples(samples, "t_total", { model: "a", node: "x" })).toBe(5);
    expect(sumSamples(samples, "t_total", { model: "a", node: "y" })).toBe(2);
    expect(sumSamples(samples, "t_total", { model: 'q"\\\n' })).toBe(1);
  });
});
