import { ImmutableCache } from './immutable-cache';

describe('ImmutableCache', () => {
  let now = 0;
  const clock = () => now;
  const loader = (calls: string[], value: string, keep = true) => async () => {
    calls.push(value);
    return { value, keep };
  };

  beforeEach(() => {
    now = 1_000;
  });

  test('loads once per key while fresh, again after maxAge', async () => {
    const c = new ImmutableCache<string>(10, 5_000, clock);
    const calls: string[] = [];
    expect(await c.get('a', loader(calls, 'A1'))).toBe('A1');
    expect(await c.get('a', loader(calls, 'A2'))).toBe('A1');
    now += 5_000;
    expect(await c.get('a', loader(calls, 'A3'))).toBe('A3');
    expect(calls).toEqual(['A1', 'A3']);
  });

  test('concurrent misses share one load', async () => {
    const c = new ImmutableCache<string>(10, 5_000, clock);
    let n = 0;
    const slow = () => new Promise<{ value: string; keep: boolean }>((r) => setTimeout(() => r({ value: `v${++n}`, keep: true }), 10));
    expect(await Promise.all([c.get('k', slow), c.get('k', slow), c.get('k', slow)])).toEqual(['v1', 'v1', 'v1']);
    expect(n).toBe(1);
  });

  test('bounded: the least recently used entry goes first', async () => {
    const c = new ImmutableCache<string>(2, 60_000, clock);
    const calls: string[] = [];
    await c.get('a', loader(calls, 'a'));
    await c.get('b', loader(calls, 'b'));
    await c.get('a', loader(calls, 'a?')); // a is now the most recent
    await c.get('c', loader(calls, 'c')); // b goes
    expect(c.size).toBe(2);
    expect(await c.get('a', loader(calls, 'a!'))).toBe('a');
    expect(await c.get('b', loader(calls, 'b2'))).toBe('b2');
    expect(calls).toEqual(['a', 'b', 'c', 'b2']);
  });

  test('a failed load and a load that says keep: false are not kept', async () => {
    const c = new ImmutableCache<string>(10, 60_000, clock);
    await expect(c.get('x', () => Promise.reject(new Error('db down')))).rejects.toThrow('db down');
    await new Promise((r) => setImmediate(r));
    const calls: string[] = [];
    expect(await c.get('x', loader(calls, 'X'))).toBe('X');
    expect(await c.get('y', loader(calls, 'unknown', false))).toBe('unknown');
    expect(await c.get('y', loader(calls, 'Y'))).toBe('Y');
    expect(calls).toEqual(['X', 'unknown', 'Y']);
  });
});
