/** Small, pure statistics for benchmark rounds. */

export function median(values: readonly number[]): number {
  if (values.length === 0) return Number.NaN;
  const sorted = [...values].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 === 1 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
}

/** Smallest and largest value, for showing the spread next to a median. */
export function range(values: readonly number[]): [number, number] {
  return [Math.min(...values), Math.max(...values)];
}

/** Tokens per second over a decode window: tokens after the first, divided by the time they took. */
export function decodeRate(tokens: number, windowMs: number): number {
  return tokens > 1 && windowMs > 0 ? ((tokens - 1) * 1000) / windowMs : Number.NaN;
}

/**
 * Median of per-round ratios a/b. Pairing each round's two measurements
 * cancels drift that affects both sides of a round alike (thermal, neighbours).
 */
export function pairedRatio(a: readonly number[], b: readonly number[]): number {
  return median(a.map((value, i) => value / b[i]!));
}

export function fixed(value: number, digits = 1): string {
  return Number.isFinite(value) ? value.toFixed(digits) : "n/a";
}
