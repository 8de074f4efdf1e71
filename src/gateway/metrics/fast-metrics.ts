/**
 * Counters and histograms for the per-request hot path, rendered in the
 * Prometheus text format next to the prom-client registry.
 *
 * prom-client validates and hashes the label object on every call and keys
 * histogram buckets by their bound as a string, which costs a number→string
 * conversion per observation; at thousands of requests per second through
 * a gateway whose own work per request is a few hundred µs, that was most
 * of the metrics' cost (bench/gateway-metrics-overhead.ts). Here a series is
 * found by its label values joined into one key, and buckets are an array
 * indexed by position. Label names are fixed at construction; values are
 * the caller's to bound (see GatewayMetrics.modelLabel).
 *
 * Series are found through one Map per label, level by level: the label
 * values are mostly the same string objects every time (profile ids, node
 * names, constants), whose hashes the engine keeps, where a joined key would
 * be a new string to build and hash on every call.
 */

interface Series<L extends string> {
  labels: Readonly<Record<L, string>>;
  /** Histograms: count per bucket (not cumulative), the last one is +Inf. Counters: one cell. */
  counts: Float64Array;
  sum: number;
}

/** One level of the series index: label value → the next level, or the series at the last label. */
type Level<L extends string> = Map<string, Level<L> | Series<L>>;

abstract class FastMetric<L extends string> {
  readonly name: string;
  readonly help: string;
  abstract readonly type: "counter" | "histogram";
  protected readonly labelNames: readonly L[];
  protected readonly series: Series<L>[] = [];
  #index: Level<L> = new Map();

  constructor(options: { name: string; help: string; labelNames: readonly L[] }) {
    this.name = options.name;
    this.help = options.help;
    this.labelNames = options.labelNames;
  }

  protected seriesFor(labels: Readonly<Record<L, string>>, cells: number): Series<L> {
    const names = this.labelNames;
    let level = this.#index;
    for (let i = 0; i < names.length - 1; i++) {
      const value = labels[names[i] as L];
      let next = level.get(value) as Level<L> | undefined;
      if (next === undefined) {
        next = new Map();
        level.set(value, next);
      }
      level = next;
    }
    const last = names.length === 0 ? "" : labels[names[names.length - 1] as L];
    let series = level.get(last) as Series<L> | undefined;
    if (series === undefined) {
      const own = {} as Record<L, string>;
      for (const name of names) own[name] = String(labels[name] ?? "");
      series = { labels: own, counts: new Float64Array(cells), sum: 0 };
      level.set(last, series);
      this.series.push(series);
    }
    return series;
  }

  reset(): void {
    this.series.length = 0;
    this.#index = new Map();
  }

  /** This metric in the Prometheus text exposition format, HELP and TYPE lines included. */
  render(): string {
    const lines = [`# HELP ${this.name} ${escapeHelp(this.help)}`, `# TYPE ${this.name} ${this.type}`];
    for (const series of this.series) this.renderSeries(series, lines);
    return lines.join("\n");
  }

  protected abstract renderSeries(series: Series<L>, lines: string[]): void;

  protected labelText(labels: Readonly<Record<L, string>>, extra?: string): string {
    const parts = this.labelNames.map((name) => `${name}="${escapeLabel(labels[name])}"`);
    if (extra !== undefined) parts.push(extra);
    return parts.length === 0 ? "" : `{${parts.join(",")}}`;
  }
}

export class FastCounter<L extends string> extends FastMetric<L> {
  readonly type = "counter";

  inc(labels: Readonly<Record<L, string>>, value = 1): void {
    if (!(value >= 0) || !Number.isFinite(value)) return;
    const series = this.seriesFor(labels, 1);
    series.sum += value;
  }

  protected renderSeries(series: Series<L>, lines: string[]): void {
    lines.push(`${this.name}${this.labelText(series.labels)} ${formatValue(series.sum)}`);
  }
}

export class FastHistogram<L extends string> extends FastMetric<L> {
  readonly type = "histogram";
  readonly #bounds: readonly number[];

  constructor(options: { name: string; help: string; labelNames: readonly L[]; buckets: readonly number[] }) {
    super(options);
    this.#bounds = [...options.buckets].sort((a, b) => a - b);
  }

  observe(labels: Readonly<Record<L, string>>, value: number): void {
    if (!Number.isFinite(value)) return;
    const series = this.seriesFor(labels, this.#bounds.length + 1);
    const bounds = this.#bounds;
    let bucket = 0;
    while (bucket < bounds.length && value > (bounds[bucket] as number)) bucket += 1;
    series.counts[bucket] = (series.counts[bucket] as number) + 1;
    series.sum += value;
  }

  protected renderSeries(series: Series<L>, lines: string[]): void {
    let cumulative = 0;
    for (let i = 0; i <= this.#bounds.length; i++) {
      cumulative += series.counts[i] as number;
      const le = i < this.#bounds.length ? formatValue(this.#bounds[i] as number) : "+Inf";
      lines.push(`${this.name}_bucket${this.labelText(series.labels, `le="${le}"`)} ${cumulative}`);
    }
    lines.push(`${this.name}_sum${this.labelText(series.labels)} ${formatValue(series.sum)}`);
    lines.push(`${this.name}_count${this.labelText(series.labels)} ${cumulative}`);
  }
}

function formatValue(value: number): string {
  if (value === Number.POSITIVE_INFINITY) return "+Inf";
  if (value === Number.NEGATIVE_INFINITY) return "-Inf";
  return String(value);
}

function escapeLabel(value: string): string {
  return value.replace(/\\/g, "\\\\").replace(/"/g, '\\"').replace(/\n/g, "\\n");
}

function escapeHelp(value: string): string {
  return value.replace(/\\/g, "\\\\").replace(/\n/g, "\\n");
}
