/**
 * The last 15 minutes as small SVG line charts, from `/admin/timeseries`:
 * requests/s, generated tokens/s, TTFT p50 and p95, errors/s, for all
 * models or one. Each chart carries a text summary for screen readers.
 */
import type { SeriesPoint, TimeSeriesResponse } from "../../../core/admin-api.ts";
import { h, svg } from "./dom.ts";
import { rate } from "./format.ts";

const WIDTH = 300;
const HEIGHT = 80;

interface Line {
  name: string;
  className: string;
  values: Array<number | null>;
}

function polyline(values: Array<number | null>, max: number, className: string): SVGElement {
  const step = values.length > 1 ? WIDTH / (values.length - 1) : WIDTH;
  const points: string[] = [];
  values.forEach((value, i) => {
    if (value === null) return;
    points.push(`${(i * step).toFixed(1)},${(HEIGHT - (value / max) * (HEIGHT - 4) - 2).toFixed(1)}`);
  });
  return svg("polyline", { points: points.join(" "), class: `line ${className}`, fill: "none" });
}

function chart(title: string, unit: string, lines: Line[]): HTMLElement {
  const all = lines.flatMap((line) => line.values.filter((v): v is number => v !== null));
  const max = Math.max(1e-9, ...all);
  const latest = lines
    .map((line) => {
      const last = [...line.values].reverse().find((v) => v !== null);
      return `${line.name} ${last === undefined || last === null ? "–" : rate(last)}`;
    })
    .join(", ");
  const peak = all.length === 0 ? 0 : Math.max(...all);
  return h(
    "figure",
    { class: "chart" },
    h(
      "figcaption",
      {},
      h("strong", {}, title),
      h("span", { class: "muted" }, ` ${unit}; now: ${latest}; peak ${rate(peak)}`),
    ),
    svg(
      "svg",
      {
        viewBox: `0 0 ${WIDTH} ${HEIGHT}`,
        preserveAspectRatio: "none",
        role: "img",
        "aria-label": `${title}: ${latest}`,
      },
      svg("line", { x1: 0, y1: HEIGHT - 1, x2: WIDTH, y2: HEIGHT - 1, class: "axis" }),
      ...lines.map((line) => polyline(line.values, max, line.className)),
    ),
  );
}

export function renderCharts(series: TimeSeriesResponse, model: string): HTMLElement[] {
  const points: SeriesPoint[] =
    model === "" ? series.total : (series.models.find((m) => m.model === model)?.points ?? []);
  const perSecond = series.bucketMs / 1000;
  const window = `over the last ${Math.round(series.windowMs / 60_000)} min, ${perSecond} s buckets`;
  return [
    h("p", { class: "muted" }, window),
    h(
      "div",
      { class: "charts" },
      chart("Requests", "per second", [
        { name: "req/s", className: "line-a", values: points.map((p) => p.requests / perSecond) },
      ]),
      chart("Generated tokens", "per second", [
        { name: "tok/s", className: "line-a", values: points.map((p) => p.generatedTokens / perSecond) },
      ]),
      chart("Time to first token", "ms", [
        { name: "p50", className: "line-a", values: points.map((p) => p.ttftP50Ms) },
        { name: "p95", className: "line-b", values: points.map((p) => p.ttftP95Ms) },
      ]),
      chart("Errors", "per second", [
        { name: "err/s", className: "line-err", values: points.map((p) => p.errors / perSecond) },
      ]),
    ),
  ];
}
