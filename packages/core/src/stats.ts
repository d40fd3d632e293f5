/**
 * Aggregated user statistics (ARCHITECTURE.md "Storage": `dataset_stat` keeps n, sum, sum of
 * squares, min and max so that mean and standard deviation are exact). Pure functions, shared by
 * firn-mon (which folds task statistics into `dataset_stat`), firn-tray and the web monitor.
 *
 * Standard deviation convention: the SAMPLE standard deviation (divisor n − 1, Bessel's
 * correction) when n > 1, and 0 when n ≤ 1. Productions are samples of a physical process, and
 * this is what `numpy.std(x, ddof=1)` / a spreadsheet's STDEV report. `statPopulationStddev`
 * gives the divisor-n value for callers that need it.
 */

/** One statistic's aggregate: what a `dataset_stat` row holds. */
export interface StatAggregate {
  n: number;
  sum: number;
  sum_sq: number;
  min: number;
  max: number;
}

/** An aggregate with its mean and (sample) standard deviation, as `dataset.stats` reports it. */
export interface StatAggregateSummary extends StatAggregate {
  mean: number;
  /** Sample standard deviation (n − 1); 0 when n ≤ 1. */
  stddev: number;
}

/** The aggregate of nothing: merging it changes nothing. */
export function emptyStat(): StatAggregate {
  return { n: 0, sum: 0, sum_sq: 0, min: Number.POSITIVE_INFINITY, max: Number.NEGATIVE_INFINITY };
}

/** The aggregate of one value. */
export function statOf(value: number): StatAggregate {
  return { n: 1, sum: value, sum_sq: value * value, min: value, max: value };
}

/** The aggregate of several values. */
export function statOfValues(values: Iterable<number>): StatAggregate {
  let acc = emptyStat();
  for (const v of values) acc = mergeStats(acc, statOf(v));
  return acc;
}

/** Merge two aggregates (associative and commutative; `emptyStat()` is its identity). */
export function mergeStats(a: StatAggregate, b: StatAggregate): StatAggregate {
  if (a.n === 0) return { ...b };
  if (b.n === 0) return { ...a };
  return {
    n: a.n + b.n,
    sum: a.sum + b.sum,
    sum_sq: a.sum_sq + b.sum_sq,
    min: Math.min(a.min, b.min),
    max: Math.max(a.max, b.max),
  };
}

/** Mean; 0 for an empty aggregate. */
export function statMean(s: Pick<StatAggregate, 'n' | 'sum'>): number {
  const n = Number(s.n);
  return n > 0 ? Number(s.sum) / n : 0;
}

/** Sum of squared deviations from the mean, clamped at 0 (rounding can make it slightly negative). */
function squaredDeviations(s: Pick<StatAggregate, 'n' | 'sum' | 'sum_sq'>): number {
  const n = Number(s.n);
  const sum = Number(s.sum);
  return n > 0 ? Math.max(0, Number(s.sum_sq) - (sum * sum) / n) : 0;
}

/** Sample standard deviation (divisor n − 1); 0 when n ≤ 1. */
export function statStddev(s: Pick<StatAggregate, 'n' | 'sum' | 'sum_sq'>): number {
  const n = Number(s.n);
  return n > 1 ? Math.sqrt(squaredDeviations(s) / (n - 1)) : 0;
}

/** Population standard deviation (divisor n); 0 when n = 0. */
export function statPopulationStddev(s: Pick<StatAggregate, 'n' | 'sum' | 'sum_sq'>): number {
  const n = Number(s.n);
  return n > 0 ? Math.sqrt(squaredDeviations(s) / n) : 0;
}

/**
 * A row (numbers possibly as strings, as drivers return BIGINT/DOUBLE) with mean and the
 * population stddev — a dataset's tasks are the whole population; `dataset.stats` reports the same.
 * An empty aggregate reports min = max = 0 rather than ±Infinity (JSON cannot carry those).
 */
export function summarizeStat(row: { n: number | string; sum: number | string; sum_sq: number | string; min: number | string; max: number | string }): StatAggregateSummary {
  const s: StatAggregate = { n: Number(row.n), sum: Number(row.sum), sum_sq: Number(row.sum_sq), min: Number(row.min), max: Number(row.max) };
  const empty = s.n === 0;
  return {
    n: s.n,
    sum: s.sum,
    sum_sq: s.sum_sq,
    min: empty ? 0 : s.min,
    max: empty ? 0 : s.max,
    mean: statMean(s),
    stddev: statPopulationStddev(s),
  };
}
