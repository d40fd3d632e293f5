import { emptyStat, mergeStats, statMean, statOf, statOfValues, statPopulationStddev, statStddev, summarizeStat } from './stats';

describe('statistics aggregates', () => {
  const values = [100, 250, 50, 400];

  test('n, sum, sum of squares, min, max of known values', () => {
    expect(statOfValues(values)).toEqual({ n: 4, sum: 800, sum_sq: 235000, min: 50, max: 400 });
  });

  test('merging is associative, commutative, and the empty aggregate is its identity', () => {
    const [a, b, c, d] = values.map(statOf) as [ReturnType<typeof statOf>, ReturnType<typeof statOf>, ReturnType<typeof statOf>, ReturnType<typeof statOf>];
    const left = mergeStats(mergeStats(a, b), mergeStats(c, d));
    const right = mergeStats(d, mergeStats(c, mergeStats(b, a)));
    expect(left).toEqual(right);
    expect(left).toEqual(statOfValues(values));
    expect(mergeStats(emptyStat(), left)).toEqual(left);
    expect(mergeStats(left, emptyStat())).toEqual(left);
  });

  test('mean and SAMPLE standard deviation (n − 1); population on request', () => {
    const s = statOfValues(values);
    expect(statMean(s)).toBe(200);
    // squared deviations from 200: 10000 + 2500 + 22500 + 40000 = 75000
    expect(statStddev(s)).toBeCloseTo(Math.sqrt(75000 / 3), 12);
    expect(statPopulationStddev(s)).toBeCloseTo(Math.sqrt(75000 / 4), 12);
  });

  test('edge cases: empty, one value, identical large values (no NaN from rounding)', () => {
    expect(statMean(emptyStat())).toBe(0);
    expect(statStddev(emptyStat())).toBe(0);
    expect(statStddev(statOf(42))).toBe(0);
    expect(statPopulationStddev(statOf(42))).toBe(0);
    const same = statOfValues([1e9 + 0.1, 1e9 + 0.1, 1e9 + 0.1]);
    expect(Number.isNaN(statStddev(same))).toBe(false);
    expect(statStddev(same)).toBeLessThan(1e-3);
  });

  test('summarizeStat takes driver rows (strings) and reports an empty aggregate without infinities', () => {
    expect(summarizeStat({ n: '4', sum: '800', sum_sq: '235000', min: '50', max: '400' })).toEqual({
      n: 4, sum: 800, sum_sq: 235000, min: 50, max: 400, mean: 200, stddev: Math.sqrt(18750),
    });
    const empty = summarizeStat(emptyStat());
    expect(empty).toEqual({ n: 0, sum: 0, sum_sq: 0, min: 0, max: 0, mean: 0, stddev: 0 });
    expect(JSON.parse(JSON.stringify(empty))).toEqual(empty);
  });
});
