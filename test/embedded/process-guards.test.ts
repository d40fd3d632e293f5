/**
 * `firn up` runs tray, mon, dh and a queue in one process: like the four daemon CLIs it installs
 * core's process guards, so a stray unhandled rejection or uncaught exception is logged and the
 * suite keeps serving (without them Node ends the process, and every user and pilot with it).
 * The real `firn up` bin, with a preloaded module that makes both faults on SIGUSR2.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { RpcClient } from '@firn/core';
import { waitUntil } from '../helpers/db';

const ROOT = path.join(__dirname, '..', '..');
const FIRN = path.join(ROOT, 'packages', 'client', 'bin', 'firn');

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.listen(0, '127.0.0.1', () => {
      const port = (srv.address() as net.AddressInfo).port;
      srv.close(() => resolve(port));
    });
    srv.on('error', reject);
  });
}

let dir: string;
let child: ChildProcess | null = null;
beforeAll(() => {
  if (!fs.existsSync(path.join(ROOT, 'packages', 'client', 'dist', 'commands', 'up.js'))) throw new Error('run `npm run build` first (npm test does)');
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'firn-up-guards-'));
});
afterAll(() => {
  if (child && child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  fs.rmSync(dir, { recursive: true, force: true });
});

test('an unhandled rejection and an uncaught exception in firn up are logged; the suite keeps serving and stops cleanly', async () => {
  const preload = path.join(dir, 'faults.js');
  fs.writeFileSync(preload, `process.on('SIGUSR2', () => {
    Promise.reject(new Error('stray rejection in the embedded suite'));
    setTimeout(() => { throw new Error('stray throw in the embedded suite'); }, 20);
  });\n`);
  const trayPort = await freePort();
  const out: string[] = [];
  const c = spawn(process.execPath, ['-r', preload, FIRN, 'up', '--data', path.join(dir, 'data'), '--tray-port', String(trayPort), '--mon-port', String(await freePort())], {
    env: { ...process.env, FIRN_DH_SCHEDULE: '*/5 * * * * *', FIRN_QUEUE_SCHEDULE: '*/5 * * * * *' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  child = c;
  c.stdout!.on('data', (b: Buffer) => out.push(b.toString()));
  c.stderr!.on('data', (b: Buffer) => out.push(b.toString()));
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => c.on('exit', (code, signal) => resolve({ code, signal })));
  await waitUntil(() => out.join('').includes('Ctrl-C to stop'), 60_000, 'firn up to start');

  c.kill('SIGUSR2');
  await waitUntil(() => /uncaughtException: logged, still serving/.test(out.join('')) || c.exitCode !== null, 20_000, 'the faults to be logged');
  expect(c.exitCode).toBeNull();
  const faults = out.join('').split('\n').filter((l) => l.startsWith('{')).map((l) => JSON.parse(l) as Record<string, string>)
    .filter((l) => /logged, still serving/.test(l.message ?? '')).map((l) => [l.level, l.message, l.error]);
  expect(faults).toEqual([
    ['error', 'unhandledRejection: logged, still serving', 'Error: stray rejection in the embedded suite'],
    ['error', 'uncaughtException: logged, still serving', 'Error: stray throw in the embedded suite'],
  ]);

  // still serving
  const rpc = new RpcClient(`http://127.0.0.1:${trayPort}`);
  await expect(rpc.call('system.health', {})).resolves.toBeTruthy();
  rpc.close();
  c.kill('SIGTERM');
  expect(await exited).toEqual({ code: 0, signal: null });
}, 120_000);
