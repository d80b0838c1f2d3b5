/* Small statistics shared by the benchmarks: percentiles over samples and number formatting. */

/** The p-th percentile (nearest rank) of the samples. */
export function percentile(samples: number[], p: number): number {
  const sorted = [...samples].sort((a, b) => a - b);
  return sorted[Math.max(0, Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1))]!;
}

export function median(samples: number[]): number {
  return percentile(samples, 50);
}

export function mean(samples: number[]): number {
  return samples.reduce((a, b) => a + b, 0) / samples.length;
}

/** Large numbers with thousands separators, small ones with two decimals. */
export function formatNumber(x: number, digits = 2): string {
  return Math.abs(x) >= 1000 ? Math.round(x).toLocaleString('en') : x.toFixed(digits);
}

/**
 * One row of a comparison measured in the same run: `value` against `baseline`, paired by round.
 * The ratio is value/baseline, or baseline/value for costs (lower is better), so above 1 is
 * always better for the candidate.
 */
export interface RatioRow {
  measure: string;
  unit: string;
  baseline: number[];
  value: number[];
  higherIsBetter: boolean;
  goal?: { ratio: number; text: string };
}

/** The goal of a row that only gives context (a baseline against another): nothing to meet. */
export const REFERENCE = { ratio: 0, text: '(reference)' };

export function ratiosOf(r: RatioRow): number[] {
  return r.value.map((v, i) => (r.higherIsBetter ? v / r.baseline[i]! : r.baseline[i]! / v));
}

export const TABLE_HEADER = ['| measure | reference | Membrane / candidate | ratio, median (min–max) | goal | met |', '|---|---|---|---|---|---|'];

/** The row as a markdown table line: medians, the ratio's median and range, the goal and whether it is met. */
export function ratioLine(r: RatioRow): string {
  const rs = ratiosOf(r);
  const m = median(rs);
  // A goal of ratio 0 marks a reference row (e.g. nftables against no program): nothing to meet.
  const met = r.goal && r.goal.ratio > 0 ? (m >= r.goal.ratio ? 'yes' : 'NO') : '';
  const f = (x: number) => formatNumber(x);
  return `| ${r.measure} | ${f(median(r.baseline))} ${r.unit} | ${f(median(r.value))} ${r.unit} | ${m.toFixed(2)}× (${Math.min(...rs).toFixed(2)}–${Math.max(...rs).toFixed(2)}) | ${r.goal?.text ?? ''} | ${met} |`;
}

/** A measured value against an absolute goal, as a markdown table line. */
export function valueLine(measure: string, value: string, spread: string, goal: string, met: boolean | undefined): string {
  return `| ${measure} | | ${value} | ${spread} | ${goal} | ${met === undefined ? '' : met ? 'yes' : 'NO'} |`;
}
