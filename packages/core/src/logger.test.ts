import { PassThrough } from 'node:stream';
import { createLogger, redact, redactText } from './logger';

function capture() {
  const stream = new PassThrough();
  const lines: string[] = [];
  stream.on('data', (c: Buffer) => lines.push(...c.toString().split('\n').filter(Boolean)));
  return { stream, lines };
}

describe('logger', () => {
  test('JSON lines carry scope fields', async () => {
    const { stream, lines } = capture();
    const log = createLogger({ format: 'json', stream }).scope({ daemon: 'queue', grid: 'g1' });
    log.scope({ task: 7 }).info('claimed', { n: 3 });
    await new Promise((r) => setImmediate(r));
    const rec = JSON.parse(lines[0]!);
    expect(rec).toMatchObject({ level: 'info', message: 'claimed', daemon: 'queue', grid: 'g1', task: 7, n: 3 });
  });

  test('secrets never reach the log', async () => {
    const { stream, lines } = capture();
    const log = createLogger({ format: 'json', stream });
    log.info('login', { password: 'hunter2', token: 'tok-abc', passkey: 'pk-123', nested: { authorization: 'Bearer xyz' } });
    log.warn('failed request Authorization: Bearer sekrit123 to mysql://firn:dbpass@db:3306/firn with passkey=pk-999');
    await new Promise((r) => setImmediate(r));
    const all = lines.join('\n');
    for (const s of ['hunter2', 'tok-abc', 'pk-123', 'xyz', 'sekrit123', 'dbpass', 'pk-999']) expect(all).not.toContain(s);
    expect(all).toContain('[REDACTED]');
  });

  test('redact helpers', () => {
    expect(redact({ user: 'a', password: 'p', list: [{ token: 't' }] })).toEqual({ user: 'a', password: '[REDACTED]', list: [{ token: '[REDACTED]' }] });
    expect(redactText('mysql://u:pw@h/db')).toBe('mysql://u:[REDACTED]@h/db');
  });
});

describe('logger: disabled levels cost nothing', () => {
  /** Meta whose one field counts how often it is read (spread, formatted, redacted). */
  function countingMeta() {
    const counter = { reads: 0 };
    const meta = {};
    Object.defineProperty(meta, 'detail', { enumerable: true, get: () => { counter.reads++; return 'x'; } });
    return { meta, counter };
  }

  test('a debug line at level info reads no meta and writes nothing', async () => {
    const { stream, lines } = capture();
    const log = createLogger({ format: 'text', level: 'info', stream }).scope({ daemon: 'queue' });
    const { meta, counter } = countingMeta();
    for (let i = 0; i < 100; i++) log.debug('claimed', meta);
    await new Promise((r) => setImmediate(r));
    expect(counter.reads).toBe(0);
    expect(lines).toEqual([]);
  });

  test('info at level warn, and everything on a silent logger, read no meta', async () => {
    const { stream, lines } = capture();
    const { meta, counter } = countingMeta();
    createLogger({ format: 'json', level: 'warn', stream }).info('x', meta);
    createLogger({ format: 'json', level: 'debug', silent: true, stream }).error('x', meta);
    await new Promise((r) => setImmediate(r));
    expect(counter.reads).toBe(0);
    expect(lines).toEqual([]);
  });

  test('an enabled level still formats its meta', async () => {
    const { stream, lines } = capture();
    const { meta, counter } = countingMeta();
    createLogger({ format: 'json', level: 'debug', stream }).debug('claimed', meta);
    await new Promise((r) => setImmediate(r));
    expect(counter.reads).toBeGreaterThan(0);
    expect(JSON.parse(lines[0]!)).toMatchObject({ level: 'debug', message: 'claimed', detail: 'x' });
  });
});
