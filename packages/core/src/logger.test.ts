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
