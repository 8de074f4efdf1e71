/**
 * deploy/grafana/cortex-dashboard.json: every PromQL expression refers only
 * to metrics the gateway or a neuron really exports, and every gateway and
 * neuron metric is shown somewhere.
 */
import { describe, expect, test } from "bun:test";
import { GatewayMetrics } from "../../src/gateway/metrics/gateway-metrics.ts";
import { createNeuronMetrics } from "../../src/neuron/neuron-metrics.ts";

const DASHBOARD = `${import.meta.dir}/../../deploy/grafana/cortex-dashboard.json`;

/** PromQL functions, aggregations and keywords: identifiers that are not metric names. */
const NOT_METRICS = new Set([
  "sum",
  "avg",
  "min",
  "max",
  "count",
  "topk",
  "bottomk",
  "quantile",
  "stddev",
  "rate",
  "irate",
  "increase",
  "delta",
  "deriv",
  "histogram_quantile",
  "clamp_min",
  "clamp_max",
  "abs",
  "absent",
  "label_values",
  "vector",
  "time",
  "and",
  "or",
  "unless",
  "bool",
  "offset",
]);

interface Panel {
  title?: string;
  type: string;
  targets?: Array<{ expr?: string }>;
  panels?: Panel[];
}

interface Dashboard {
  schemaVersion: number;
  uid: string;
  panels: Panel[];
  templating: { list: Array<{ name: string; type: string; query?: unknown }> };
}

/** Metric names in one PromQL expression (Grafana variables allowed). */
export function metricNames(expr: string): string[] {
  const stripped = expr
    .replace(/"(?:[^"\\]|\\.)*"/g, "") // label values and other strings
    .replace(/label_values\(([^,()]+),\s*\w+\s*\)/g, "$1") // Grafana: the second argument is a label
    .replace(/\{[^}]*\}/g, " ") // label matchers
    .replace(/\[[^\]]*\]/g, " ") // range selectors
    .replace(/\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)/g, " ") // label lists
    .replace(/\$\{?\w+\}?/g, " ") // Grafana variables
    .replace(/\b\d+(?:\.\d+)?(?:e[+-]?\d+)?\b/gi, " ");
  return [...stripped.matchAll(/[a-zA-Z_:][a-zA-Z0-9_:]*/g)]
    .map((match) => match[0])
    .filter((name) => !NOT_METRICS.has(name));
}

function allPanels(panels: readonly Panel[]): Panel[] {
  return panels.flatMap((panel) => [panel, ...allPanels(panel.panels ?? [])]);
}

async function loadDashboard(): Promise<Dashboard> {
  return (await Bun.file(DASHBOARD).json()) as Dashboard;
}

/** Every series name a scrape of the gateway or a neuron can show, from the TYPE lines of real renders. */
async function exportedSeries(): Promise<{ series: Set<string>; metrics: string[] }> {
  const bodies = [(await new GatewayMetrics().render()).body, (await createNeuronMetrics().render()).body];
  const series = new Set<string>();
  const own: string[] = [];
  for (const body of bodies)
    for (const [, name, type] of body.matchAll(/^# TYPE (\S+) (\S+)$/gm)) {
      if (name === undefined) continue;
      if (!/^cortex_(gateway|neuron)_(process|nodejs)_/.test(name)) own.push(name);
      series.add(name);
      if (type === "histogram")
        for (const suffix of ["_bucket", "_sum", "_count"]) series.add(`${name}${suffix}`);
    }
  return { series, metrics: own };
}

describe("metricNames", () => {
  test("finds metrics and skips functions, labels, strings and variables", () => {
    expect(
      metricNames(
        'histogram_quantile(0.95, sum by (le, model) (rate(cortex_x_bucket{model=~"$model"}[$__rate_interval])))',
      ),
    ).toEqual(["cortex_x_bucket"]);
    expect(metricNames("a_used / on (node) b_total")).toEqual(["a_used", "b_total"]);
    expect(metricNames("label_values(m_total, model)")).toEqual(["m_total"]);
    expect(metricNames('2 * sum by (node) (s{state="up"}) + sum(s{state="degraded"})')).toEqual(["s", "s"]);
  });
});

describe("cortex-dashboard.json", () => {
  test("is a Grafana dashboard with a Prometheus datasource variable", async () => {
    const dashboard = await loadDashboard();
    expect(dashboard.schemaVersion).toBeGreaterThanOrEqual(36);
    expect(dashboard.uid).toBe("cortex-overview");
    expect(dashboard.templating.list).toContainEqual(
      expect.objectContaining({ name: "datasource", type: "datasource", query: "prometheus" }),
    );
  });

  test("every expression refers only to metrics the gateway or a neuron exports", async () => {
    const dashboard = await loadDashboard();
    const { series } = await exportedSeries();
    const exprs = allPanels(dashboard.panels).flatMap((panel) =>
      (panel.targets ?? []).map((target) => ({ panel: panel.title, expr: target.expr ?? "" })),
    );
    const variables = dashboard.templating.list
      .map((variable) => variable.query)
      .filter((query): query is { query: string } => typeof query === "object" && query !== null)
      .map((query) => ({ panel: "templating", expr: query.query }));
    expect(exprs.length).toBeGreaterThan(20);
    const unknown = [...exprs, ...variables].flatMap(({ panel, expr }) =>
      metricNames(expr)
        .filter((name) => !series.has(name))
        .map((name) => `${panel}: ${name}`),
    );
    expect(unknown).toEqual([]);
    for (const { expr } of exprs) expect(metricNames(expr).length).toBeGreaterThan(0);
  });

  test("every gateway and neuron metric is on some panel", async () => {
    const dashboard = await loadDashboard();
    const { metrics } = await exportedSeries();
    const used = new Set(
      allPanels(dashboard.panels)
        .flatMap((panel) => panel.targets ?? [])
        .flatMap((target) => metricNames(target.expr ?? ""))
        .map((name) => name.replace(/_(bucket|sum|count)$/, "")),
    );
    expect(metrics.filter((name) => !used.has(name))).toEqual([]);
  });
});
