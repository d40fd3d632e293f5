import { backoffDelay } from './backoff';
import { ValidationError } from './errors';
import { RETRY_POLICY_DEFAULTS, compileRetryPolicy, compileStoredRetryPolicy, decideRetry, retryPatternProblem, validateRetryPolicy } from './retry-policy';

describe('backoffDelay', () => {
  const o = { baseMs: 1000, maxMs: 10_000, jitter: 0 };
  test('doubles per attempt up to the cap', () => {
    expect([1, 2, 3, 4, 5, 6].map((a) => backoffDelay(a, o))).toEqual([1000, 2000, 4000, 8000, 10_000, 10_000]);
  });
  test('nothing failed yet: no delay; huge attempts stay capped', () => {
    expect(backoffDelay(0, o)).toBe(0);
    expect(backoffDelay(5000, o)).toBe(10_000);
  });
  test('fixed', () => {
    expect(backoffDelay(7, { ...o, type: 'fixed' })).toBe(1000);
  });
  test('jitter only shortens, within its fraction, and is reproducible', () => {
    const j = { baseMs: 1000, maxMs: 60_000, jitter: 0.5 };
    expect(backoffDelay(3, { ...j, random: 0 })).toBe(4000);
    expect(backoffDelay(3, { ...j, random: 0.999 })).toBe(2002);
    expect(backoffDelay(3, { ...j, random: 0.3 })).toBe(backoffDelay(3, { ...j, random: 0.3 }));
  });
  test('bad options are refused', () => {
    expect(() => backoffDelay(1, { baseMs: -1, maxMs: 1 })).toThrow(/baseMs/);
    expect(() => backoffDelay(1, { baseMs: 1, maxMs: 1, jitter: 2 })).toThrow(/jitter/);
    expect(() => backoffDelay(1, { baseMs: 1, maxMs: 1, random: 1 })).toThrow(/random/);
  });
});

describe('retry patterns', () => {
  test.each([
    ['memory limit exceeded'],
    ['^exit code (137|139)$'],
    ['(?:out of memory|oom-kill)'],
    ['time limit.*exceeded'],
    ['[a-z]+ error \\d{1,3}'],
    ['(ab)+'],
    // RE2 matches these in linear time, so they are as safe as any other
    ['(a+)+$'],
    ['(a*)*b'],
    ['(x|xy)*z'],
    ['a*a*a*a*a*a*b'],
    ['(?<x>a)'],
  ])('accepts %s', (p) => {
    expect(retryPatternProblem(p)).toBeNull();
  });
  test.each([
    ['(a)\\1', /not a valid RE2 regular expression.*invalid escape/],
    ['(?<x>a)\\k<x>', /not a valid RE2/],
    ['(?=a)b', /not a valid RE2.*Perl syntax/],
    ['(?<!a)b', /not a valid RE2/],
    ['(unclosed', /not a valid RE2 regular expression/],
    ['', /non-empty/],
    ['a'.repeat(257), /limit is 256/],
  ])('refuses %s', (p, why) => {
    expect(retryPatternProblem(p)).toMatch(why);
  });
  test('patterns that backtrack in JavaScript decide 4,096 characters in linear time', () => {
    const policy = compileRetryPolicy({ rules: [{ match: 'a*a*a*a*a*a*b', action: 'fail' }, { match: '(a+)+$', action: 'fail' }] });
    const summary = 'a'.repeat(4095) + '!';
    decideRetry(policy, { status: 'ERROR', failures: 1, evictions: 0, errorSummary: 'aaa', since: 0 }, 0); // warm the JIT, not measured
    const t0 = performance.now();
    const d = decideRetry(policy, { status: 'ERROR', failures: 1, evictions: 0, errorSummary: summary, since: 0 }, 0);
    expect(performance.now() - t0).toBeLessThan(50);
    expect(d.rule).toBeUndefined();
  });
  test('a stored rule that does not compile is kept, never matches, and is named in the reason', () => {
    const { policy, problems } = compileStoredRetryPolicy({ max_failures: 2, rules: [{ match: '(x)\\1', action: 'fail' }, { match: 'x', action: 'reset' }] });
    expect(problems.map((p) => p.path)).toEqual(['/retry/rules/0/match']);
    expect(policy.max_failures).toBe(2);
    expect(policy.rules[0]).toMatchObject({ matcher: null, problem: expect.stringMatching(/RE2/) });
    const d = decideRetry(policy, { status: 'ERROR', failures: 1, evictions: 0, errorSummary: 'xx', since: 0 }, 10_000_000);
    expect(d).toMatchObject({ action: 'reset', rule: { match: 'x' } });
    expect(d.reason).toMatch(/rule rules\/0 not tested \(pattern is not valid RE2\)$/);
    expect(() => compileStoredRetryPolicy({ max_failures: -1 })).toThrow(ValidationError);
  });
});

describe('validateRetryPolicy', () => {
  test('names every bad field by its path', () => {
    const issues = validateRetryPolicy({
      max_failures: -1, backoff_seconds: 'x', extra: 1,
      rules: [{ match: '(a)\\1', action: 'reset' }, { match: 'oom', action: 'bump' }, { match: 'x', action: 'bump', bump: { memory: 0, cpu: 2 } }, { match: 'y', action: 'explode' }],
    });
    expect(issues.map((i) => i.path).sort()).toEqual([
      '/retry/backoff_seconds', '/retry/extra', '/retry/max_failures', '/retry/rules/0/match', '/retry/rules/1/bump',
      '/retry/rules/2/bump/cpu', '/retry/rules/2/bump/memory', '/retry/rules/3/action',
    ]);
  });
  test('compile throws a ValidationError, defaults otherwise', () => {
    expect(() => compileRetryPolicy({ rules: [{ match: '(', action: 'fail' }] })).toThrow(ValidationError);
    expect(compileRetryPolicy(undefined)).toEqual({ ...RETRY_POLICY_DEFAULTS, rules: [] });
  });
});

describe('decideRetry', () => {
  const policy = compileRetryPolicy({
    max_failures: 3, max_evictions: 2, backoff_seconds: 10, backoff_max_seconds: 25,
    rules: [
      { match: 'memory limit exceeded', action: 'bump', bump: { memory: 1.5 } },
      { match: 'segmentation fault', action: 'fail' },
    ],
  });
  const since = 1_000_000;
  const err = (failures: number, errorSummary: string | null = 'exit code 1') => ({ status: 'ERROR' as const, failures, evictions: 0, errorSummary, since });

  test('waits out the backoff, then resets', () => {
    const w = decideRetry(policy, err(1), since + 5000, 0);
    expect(w).toMatchObject({ action: 'wait', notBefore: since + 10_000 });
    const r = decideRetry(policy, err(1), since + 10_000, 0);
    expect(r).toMatchObject({ action: 'reset', notBefore: since + 10_000 });
    expect(r.bump).toBeUndefined();
    expect(r.reason).toMatch(/failure 1 \(max_failures 3\)/);
  });
  test('the backoff doubles and is capped', () => {
    expect(decideRetry(policy, err(2), since, 0).notBefore).toBe(since + 20_000);
    expect(decideRetry(policy, err(2, 'x'), since, 0).action).toBe('wait');
    // failures 3 would fail; the cap shows with evictions
    expect(decideRetry({ ...policy, max_failures: 10 }, err(3), since, 0).notBefore).toBe(since + 25_000);
  });
  test('fails once max_failures is reached', () => {
    const d = decideRetry(policy, err(3), since + 1e9);
    expect(d.action).toBe('fail');
    expect(d.reason).toMatch(/exhausted: failure 3 \(max_failures 3\)/);
  });
  test('a bump rule resets with the multipliers (case-insensitive match)', () => {
    const d = decideRetry(policy, err(1, 'pilot: Memory limit exceeded (rss 2100 MB > 2000 MB)'), since + 1e9);
    expect(d).toMatchObject({ action: 'reset', bump: { memory: 1.5 }, rule: { match: 'memory limit exceeded', action: 'bump' } });
  });
  test('a fail rule fails at once', () => {
    expect(decideRetry(policy, err(1, 'Segmentation fault (core dumped)'), since).action).toBe('fail');
  });
  test('evictions count against max_evictions', () => {
    const ev = (evictions: number) => ({ status: 'EVICTED' as const, failures: 2, evictions, errorSummary: 'heartbeat lost', since });
    expect(decideRetry(policy, ev(1), since + 1e9).action).toBe('reset');
    const d = decideRetry(policy, ev(2), since + 1e9);
    expect(d.action).toBe('fail');
    expect(d.reason).toMatch(/eviction 2 \(max_evictions 2\)/);
  });
  test('only the first 4096 characters of the summary are matched', () => {
    const p = compileRetryPolicy({ rules: [{ match: 'needle', action: 'fail' }] });
    expect(decideRetry(p, err(1, 'x'.repeat(5000) + 'needle'), since + 1e9).action).toBe('reset');
    expect(decideRetry(p, err(1, 'needle' + 'x'.repeat(5000)), since + 1e9).action).toBe('fail');
  });
});
