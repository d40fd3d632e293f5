import { execFile } from 'node:child_process';
import path from 'node:path';
import { PassThrough } from 'node:stream';
import { EventEmitter } from 'node:events';
import { createLogger } from './logger';
import { installProcessGuards } from './process-guards';

const dist = path.resolve(__dirname, '..', 'dist');

describe('installProcessGuards', () => {
  test('a real process that throws in a timer and leaves a rejection unhandled logs both and keeps serving', async () => {
    // a child node process with the built core: an HTTP server, then two faults, then a request to itself
    const script = `
      const http = require('node:http');
      const { createLogger } = require(${JSON.stringify(path.join(dist, 'logger.js'))});
      const { installProcessGuards } = require(${JSON.stringify(path.join(dist, 'process-guards.js'))});
      installProcessGuards(createLogger({ format: 'json', level: 'info', stream: process.stderr }));
      const server = http.createServer((_q, r) => r.end('alive')).listen(0, '127.0.0.1', () => {
        setTimeout(() => { throw new Error('boom in a timer, db mysql://firn:hunter2@db/firn'); }, 5);
        setTimeout(() => { Promise.reject(new TypeError('nobody awaited me')); }, 10);
        setTimeout(() => http.get('http://127.0.0.1:' + server.address().port, (res) => {
          let b = ''; res.on('data', (d) => (b += d)); res.on('end', () => { process.stdout.write(b); server.close(); });
        }), 50);
      });`;
    const { stdout, stderr, code } = await new Promise<{ stdout: string; stderr: string; code: number | null }>((resolve) => {
      const child = execFile(process.execPath, ['-e', script], { timeout: 20_000 }, (err, out, errOut) =>
        resolve({ stdout: out, stderr: errOut, code: err ? ((err as { code?: number }).code ?? 1) : 0 }));
      void child;
    });
    expect(code).toBe(0);
    expect(stdout).toBe('alive');
    const lines = stderr.trim().split('\n').map((l) => JSON.parse(l) as Record<string, string>);
    expect(lines.map((l) => [l['level'], l['message']])).toEqual([
      ['error', 'uncaughtException: logged, still serving'],
      ['error', 'unhandledRejection: logged, still serving'],
    ]);
    expect(lines[0]?.['error']).toMatch(/^Error: boom in a timer, db mysql:\/\/\*\*\*:\S*@db\/firn$/);
    expect(lines[1]?.['error']).toBe('TypeError: nobody awaited me');
    expect(stderr).not.toContain('hunter2');
  });

  test('logging is rate-limited: 20 lines a minute, the rest counted', () => {
    const stream = new PassThrough();
    const chunks: string[] = [];
    stream.on('data', (d: Buffer) => chunks.push(d.toString()));
    const proc = new EventEmitter();
    const guards = installProcessGuards(createLogger({ stream, format: 'json', level: 'info' }), proc);
    for (let i = 0; i < 500; i++) proc.emit('uncaughtException', new Error(`fault ${i}`));
    expect(guards.count).toBe(500);
    expect(chunks.join('').trim().split('\n')).toHaveLength(20);
    guards.uninstall();
    expect(proc.listenerCount('uncaughtException')).toBe(0);
    expect(proc.listenerCount('unhandledRejection')).toBe(0);
  });
});
