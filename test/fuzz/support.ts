/**
 * The fuzz suite's shared parts: run counts and seeds, hostile values, a raw HTTP poster, the
 * checks every answer must pass, and the report `npm run fuzz` prints.
 *
 * Counts: FIRN_FUZZ_RUNS inputs per surface (default FIRN_FUZZ_CI_RUNS below, so the suite's
 * share of `npm test` stays well under 3 minutes); `npm run fuzz` sets 10,000. Seed:
 * FIRN_FUZZ_SEED (default fixed, so a CI failure reproduces); every report line names it.
 */
import fs from 'node:fs';
import http from 'node:http';
import https from 'node:https';
import fc from 'fast-check';

/** Inputs per surface when no count is given (CI). */
export const FIRN_FUZZ_CI_RUNS = 300;
/** Answers above this size are a finding. */
export const MAX_ANSWER_BYTES = 1 << 20;

export function fuzzRuns(scale = 1): number {
  const n = Number(process.env.FIRN_FUZZ_RUNS ?? FIRN_FUZZ_CI_RUNS);
  return Math.max(1, Math.round((Number.isFinite(n) && n > 0 ? n : FIRN_FUZZ_CI_RUNS) * scale));
}

export function fuzzSeed(): number {
  const s = Number(process.env.FIRN_FUZZ_SEED ?? 20261204);
  return Number.isInteger(s) ? s : 20261204;
}

/** What one surface saw: counts, and the first findings with the input that caused each. */
export class FuzzReport {
  inputs = 0;
  crashes = 0;
  http5xx = 0;
  internal = 0;
  oversized = 0;
  maxAnswerBytes = 0;
  maxMs = 0;
  readonly findings: string[] = [];

  constructor(readonly surface: string) {}

  finding(kind: 'crashes' | 'http5xx' | 'internal' | 'oversized', what: string, input: unknown): void {
    this[kind]++;
    if (this.findings.length < 10) this.findings.push(`${kind}: ${what} — input ${preview(input)}`);
  }

  timed(ms: number): void {
    if (ms > this.maxMs) this.maxMs = ms;
  }

  get failures(): number {
    return this.crashes + this.http5xx + this.internal + this.oversized;
  }

  /** Appends one JSON line to FIRN_FUZZ_REPORT (the file `npm run fuzz` prints) and returns the summary. */
  write(): string {
    const line = {
      surface: this.surface, seed: fuzzSeed(), inputs: this.inputs, crashes: this.crashes, http_5xx: this.http5xx,
      internal_errors: this.internal, answers_over_1mb: this.oversized, max_answer_bytes: this.maxAnswerBytes,
      max_ms: Math.round(this.maxMs), findings: this.findings,
    };
    if (process.env.FIRN_FUZZ_REPORT) fs.appendFileSync(process.env.FIRN_FUZZ_REPORT, `${JSON.stringify(line)}\n`);
    return JSON.stringify(line);
  }
}

export function preview(v: unknown, max = 300): string {
  let s: string;
  try {
    s = typeof v === 'string' ? JSON.stringify(v) : JSON.stringify(v) ?? String(v);
  } catch {
    s = String(v);
  }
  return s.length > max ? `${s.slice(0, max)}… (${s.length} chars)` : s;
}

// ---------------------------------------------------------------------------------------
// Hostile values

/** Strings that have broken (or could break) something: paths, URLs, escapes, regexes, expressions. */
export const NASTY_STRINGS = [
  '', ' ', '\u0000', 'a\u0000b', '\u001b[31mred\u001b[0m', '\r\n', '\ud800', '😀', '../../etc/passwd', '/etc/passwd',
  'file:///etc/shadow', 'file:///etc/cron.d/x', 'http://127.0.0.1:1/x', 'https://169.254.169.254/latest/meta-data/',
  'sftp://root@127.0.0.1:22/etc/passwd', 'javascript:alert(1)', '<script>alert(1)</script>', "'; DROP TABLE task; --",
  '__proto__', 'constructor', 'prototype', 'toString', '$eval(', '$eval(1/0)', '$eval(2**1000)', '$sprintf("%.99g", 1)',
  '$sprintf("%999999999d", 1)', '$(job)$(job)$(job)', '$steering(x)', '$args(', '$choice()', '(a+)+', 'a*a*a*a*a*a*b',
  '(?=x)', '\\1', '[', '%s%s%s%n', '{{7*7}}', 'NaN', 'Infinity', '-0', '1e400', 'null', 'true',
];

/** Numbers at and past every column's edge. */
export const NASTY_NUMBERS = [
  0, -0, -1, 1, 0.5, -0.5, 2 ** 31 - 1, 2 ** 31, 2 ** 32, -(2 ** 31) - 1, 2 ** 53 - 1, 2 ** 53 + 2, -(2 ** 63), 2 ** 64, 1e308, -1e308, 5e-324,
  Number.MAX_SAFE_INTEGER, Number.MIN_SAFE_INTEGER,
];

const nastyString = fc.oneof(
  { weight: 3, arbitrary: fc.constantFrom(...NASTY_STRINGS) },
  { weight: 2, arbitrary: fc.string({ maxLength: 40 }) },
  { weight: 1, arbitrary: fc.string({ unit: 'binary', maxLength: 20 }) },
  { weight: 1, arbitrary: fc.tuple(fc.constantFrom('a', '$eval(', '(', 'x', '../', '%', '\u0000'), fc.integer({ min: 100, max: 20_000 })).map(([s, n]) => s.repeat(n)) },
);
const nastyNumber = fc.oneof(fc.constantFrom(...NASTY_NUMBERS), fc.integer(), fc.double({ noNaN: true, noDefaultInfinity: true }));

/** Any JSON value, biased to the hostile ones, nesting bounded. */
export const hostileValue: fc.Arbitrary<unknown> = fc.letrec<{ v: unknown }>((tie) => ({
  v: fc.oneof(
    { depthSize: 'small', withCrossShrink: true },
    nastyString,
    nastyNumber,
    fc.boolean(),
    fc.constant(null),
    fc.array(tie('v'), { maxLength: 4 }),
    fc.dictionary(fc.oneof(fc.constantFrom('__proto__', 'constructor', 'task_id', 'passkey', 'name', 'url'), fc.string({ maxLength: 8 })), tie('v'), { maxKeys: 5 }),
  ),
})).v;

/** Replace, delete or add one field somewhere in `template` (a valid value), keeping the rest valid. */
export function mutate(template: unknown): fc.Arbitrary<unknown> {
  const paths: Array<Array<string | number>> = [];
  const walk = (v: unknown, p: Array<string | number>) => {
    paths.push(p);
    if (Array.isArray(v)) v.forEach((x, i) => walk(x, [...p, i]));
    else if (v && typeof v === 'object') for (const [k, x] of Object.entries(v)) walk(x, [...p, k]);
  };
  walk(template, []);
  return fc.tuple(fc.integer({ min: 0, max: paths.length - 1 }), fc.constantFrom('replace', 'replace', 'replace', 'delete', 'add'), hostileValue, fc.string({ maxLength: 10 }))
    .map(([i, op, value, key]) => {
      const copy = structuredClone(template) as unknown;
      const p = paths[i] ?? [];
      if (p.length === 0) return op === 'replace' ? value : copy;
      let parent: unknown = copy;
      for (const step of p.slice(0, -1)) parent = (parent as Record<string | number, unknown>)[step];
      const last = p[p.length - 1] as string | number;
      const obj = parent as Record<string | number, unknown>;
      if (op === 'replace') obj[last] = value;
      else if (op === 'delete') {
        if (Array.isArray(obj)) obj.splice(last as number, 1);
        else delete obj[last];
      } else if (!Array.isArray(obj)) obj[key || 'extra'] = value;
      else obj.push(value);
      return copy;
    });
}

/** Request bodies no JSON serializer would write: bad JSON, odd numbers, deep nesting, wrong shapes. */
export const rawBodies: fc.Arbitrary<string> = fc.oneof(
  fc.constantFrom(
    '', 'null', '[]', '[null]', '{}', '"x"', '1', 'true', '[1,2,3]', '{"jsonrpc":"2.0"}', '{"jsonrpc":"2.0","method":null,"id":1}',
    '{"jsonrpc":"2.0","method":"system.health","id":1}', '[{"jsonrpc":"2.0","method":"system.health","id":1},null,5]',
    '{"jsonrpc":"2.0","method":"system.health"}', '{"jsonrpc":"2.0","method":"pilot.heartbeat","params":{"task_id":1e400,"passkey":"x"},"id":1}',
    '{"jsonrpc":"2.0","method":"system.health","id":1e400}', '{"jsonrpc":"2.0","method":"system.health","id":{"a":1}}',
    '{"__proto__":{"admin":true},"jsonrpc":"2.0","method":"auth.whoami","id":1}', '{"jsonrpc":"2.0","method":"system.health","id":1',
  ),
  fc.integer({ min: 1, max: 5000 }).map((n) => `${'['.repeat(n)}${']'.repeat(n)}`),
  fc.integer({ min: 1, max: 3000 }).map((n) => `{"jsonrpc":"2.0","method":"system.health","id":1,"params":${'{"a":'.repeat(n)}1${'}'.repeat(n)}}`),
  fc.integer({ min: 1, max: 400 }).map((n) => JSON.stringify(Array.from({ length: n }, (_, i) => ({ jsonrpc: '2.0', method: 'system.health', id: i })))),
  fc.string({ maxLength: 200 }),
);

// ---------------------------------------------------------------------------------------
// Talking to a real server and judging its answers

export interface RawAnswer {
  status: number;
  body: string;
  bytes: number;
}

const agents = { http: new http.Agent({ keepAlive: true, maxSockets: 4 }), https: new https.Agent({ keepAlive: true, maxSockets: 4 }) };

/** POST `body` to `<url>/rpc`; reads at most MAX_ANSWER_BYTES + 1 bytes of the answer. */
export function post(url: string, body: string, headers: Record<string, string> = {}, ca?: Buffer): Promise<RawAnswer> {
  const u = new URL(`${url.replace(/\/$/, '')}/rpc`);
  const mod = u.protocol === 'https:' ? https : http;
  return new Promise((resolve, reject) => {
    const req = mod.request(u, {
      method: 'POST', agent: u.protocol === 'https:' ? agents.https : agents.http, ...(ca ? { ca } : {}),
      headers: { 'content-type': 'application/json', ...headers }, timeout: 30_000,
    }, (res) => {
      const chunks: Buffer[] = [];
      let bytes = 0;
      res.on('data', (d: Buffer) => {
        bytes += d.length;
        if (bytes <= MAX_ANSWER_BYTES + 1) chunks.push(d);
      });
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString('utf8'), bytes }));
      res.on('error', reject);
    });
    req.on('timeout', () => req.destroy(new Error('no answer in 30 s')));
    req.on('error', reject);
    req.end(body);
  });
}

/** The JSON-RPC error codes in an answer (single or batch). */
function errorCodes(parsed: unknown): number[] {
  const list = Array.isArray(parsed) ? parsed : [parsed];
  return list.flatMap((a) => (a && typeof a === 'object' && 'error' in a ? [Number((a as { error: { code?: unknown } }).error?.code)] : []));
}

/** Judge one answer: 5xx, -32603, over 1 MB, not JSON-RPC. A transport failure is a crash. */
export async function judge(report: FuzzReport, input: unknown, send: () => Promise<RawAnswer>): Promise<void> {
  report.inputs++;
  const t0 = performance.now();
  let a: RawAnswer;
  try {
    a = await send();
  } catch (e) {
    report.finding('crashes', `no answer: ${(e as Error).message}`, input);
    return;
  } finally {
    report.timed(performance.now() - t0);
  }
  if (a.bytes > report.maxAnswerBytes) report.maxAnswerBytes = a.bytes;
  if (a.bytes > MAX_ANSWER_BYTES) report.finding('oversized', `${a.bytes} bytes`, input);
  if (a.status >= 500) report.finding('http5xx', `HTTP ${a.status} ${a.body.slice(0, 200)}`, input);
  if (!a.body || a.bytes > MAX_ANSWER_BYTES) return;
  let parsed: unknown;
  try {
    parsed = JSON.parse(a.body);
  } catch {
    if (a.status === 200) report.finding('crashes', `HTTP 200 with a body that is not JSON: ${a.body.slice(0, 200)}`, input);
    return;
  }
  if (errorCodes(parsed).includes(-32603)) report.finding('internal', `-32603 ${a.body.slice(0, 300)}`, input);
}

/** One JSON-RPC request text. */
export function request(method: string, params: unknown, id: number | null = 1): string {
  return JSON.stringify({ jsonrpc: '2.0', method, ...(params === undefined ? {} : { params }), ...(id === null ? {} : { id }) });
}

/** Run `n` generated inputs through `each`, sequentially (the servers are shared with nothing else). */
export async function runInputs<T>(arb: fc.Arbitrary<T>, n: number, each: (input: T) => Promise<void>): Promise<void> {
  // fast-check drives the generation (seeded); the property records findings and always holds,
  // so every input runs and the report counts them all rather than stopping at the first.
  await fc.assert(fc.asyncProperty(arb, async (input) => {
    await each(input);
    return true;
  }), { numRuns: n, seed: fuzzSeed(), endOnFailure: true });
}
