/**
 * Reads Prometheus' text exposition format (what GET /metrics returns) into
 * samples, for tests, benchmarks and tools that check the metrics the way a
 * scraper would see them. Comments and HELP/TYPE lines are skipped.
 */

export interface Sample {
  name: string;
  labels: Readonly<Record<string, string>>;
  value: number;
}

const SAMPLE = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+(\S+)(?:\s+\d+)?$/;
const LABEL = /([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"\s*,?\s*/y;

function unescapeLabel(value: string): string {
  return value.replace(/\\(.)/g, (_, c: string) => (c === "n" ? "\n" : c));
}

function parseValue(text: string): number {
  if (text === "+Inf") return Number.POSITIVE_INFINITY;
  if (text === "-Inf") return Number.NEGATIVE_INFINITY;
  return Number(text);
}

function parseLabels(text: string, line: string): Record<string, string> {
  const labels: Record<string, string> = {};
  LABEL.lastIndex = 0;
  while (LABEL.lastIndex < text.length) {
    const start = LABEL.lastIndex;
    const match = LABEL.exec(text);
    if (match === null || LABEL.lastIndex === start) throw new Error(`bad labels in metrics line: ${line}`);
    labels[match[1] as string] = unescapeLabel(match[2] as string);
  }
  return labels;
}

export function parseExposition(text: string): Sample[] {
  const samples: Sample[] = [];
  for (const raw of text.split("\n")) {
    const line = raw.trim();
    if (line === "" || line.startsWith("#")) continue;
    const match = SAMPLE.exec(line);
    if (match === null) throw new Error(`not a metrics line: ${line}`);
    samples.push({
      name: match[1] as string,
      labels: match[2] === undefined ? {} : parseLabels(match[2], line),
      value: parseValue(match[3] as string),
    });
  }
  return samples;
}

/** Sum of the samples named `name` whose labels include every pair in `match`. */
export function sumSamples(
  samples: readonly Sample[],
  name: string,
  match: Readonly<Record<string, string>> = {},
): number {
  let total = 0;
  for (const sample of samples)
    if (sample.name === name && Object.entries(match).every(([key, value]) => sample.labels[key] === value))
      total += sample.value;
  return total;
}
