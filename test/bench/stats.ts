/** Distribution of a set of samples (latencies, or one figure per round). */
export interface Summary {
  /** Number of samples. */
  n: number;
  p50: number;
  p99: number;
  /** First quartile. */
  p25: number;
  /** Third quartile. */
  p75: number;
  min: number;
  max: number;
  mean: number;
}

/** The `q` quantile (0..1) of sorted samples, interpolated linearly between neighbours. */
export function quantile(sorted: readonly number[], q: number): number {
  if (sorted.length === 0) return Number.NaN;
  const pos = (sorted.length - 1) * q;
  const lo = Math.floor(pos);
  const hi = Math.ceil(pos);
  const a = sorted[lo]!;
  const b = sorted[hi]!;
  return a + (b - a) * (pos - lo);
}

/** Summarises samples; throws when there are none (a scenario that measured nothing is broken). */
export function summarize(samples: readonly number[]): Summary {
  if (samples.length === 0) throw new Error("no samples: the scenario measured nothing");
  const sorted = [...samples].sort((a, b) => a - b);
  return {
    n: sorted.length,
    p50: quantile(sorted, 0.5),
    p99: quantile(sorted, 0.99),
    p25: quantile(sorted, 0.25),
    p75: quantile(sorted, 0.75),
    min: sorted[0]!,
    max: sorted[sorted.length - 1]!,
    mean: sorted.reduce((sum, x) => sum + x, 0) / sorted.length,
  };
}

/** Milliseconds since an arbitrary origin, with sub-millisecond resolution. */
export function now(): number {
  return performance.now();
}
