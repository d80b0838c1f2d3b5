/* Small statistics shared by the benchmarks: percentiles over samples and number formatting. */

/** The p-th percentile (nearest rank) of the samples. */
export function percentile(samples: number[], p: number): number {
  const sorted = [...samples].sort((a, b) => a - b);
  return sorted[Math.max(0, Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1))]!;
}

export function median(samples: number[]): number {
  return percentile(samples, 50);
}

/** Large numbers with thousands separators, small ones with two decimals. */
export function formatNumber(x: number, digits = 2): string {
  return Math.abs(x) >= 1000 ? Math.round(x).toLocaleString('en') : x.toFixed(digits);
}
