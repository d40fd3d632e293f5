/**
 * Issue 7 acceptance: `npm run demo` completes; `firn up` killed with SIGKILL mid-production
 * and started again finishes the same dataset with nothing lost or run twice.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { RpcClient, openDb, type Db } from '@firn/core';
import { waitUntil } from '../helpers/db';

const ROOT = path.join(__dirname, '..', '..');
const FIRN = path.join(ROOT, 'packages', 'client', 'bin', 'firn');
const DEMO = path.join(ROOT, 'packages', 'client', 'dist', 'demo.js');

beforeAll(() => {
  for (const f of [DEMO, path.join(ROOT, 'packages', 'pilot', 'dist', 'firn-pilot.js')]) {
    if (!fs.existsSync(f)) throw new Error(`${f} is missing: run \`npm run build\` first (npm test does)`);
  }
});

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as net.AddressInfo).port;
      s.close(() => resolve(port));
    });
    s.on('error', reject);
  });
}

describe('npm run demo', () => {
  test('runs the DAG example to COMPLETE and prints exact statistics', () => {
    const data = fs.mkdtempSync(path.join(os.tmpdir(), 'firn-demo-'));
    const r = spawnSync(process.execPath, [DEMO], { env: { ...process.env, FIRN_DEMO_DATA: data }, encoding: 'utf8', timeout: 150_000 });
    const out = `${r.stdout}\n${r.stderr}`;
    if (r.status !== 0) throw new Error(`demo exited ${r.status}:\n${out.slice(-3000)}`);
    expect(out).toMatch(/dataset 1: COMPLETE after [\d.]+ s/);
    // 10 jobs: examples/datasets/README.md worked values
    expect(out).toMatch(/^\s+events\s+10\s+1000\s/m);
    expect(out).toMatch(/^\s+energy_sum\s+10\s+61000\s/m);
    expect(out).toMatch(/^\s+photons\s+10\s+183000\s/m);
    expect(out).toMatch(/^\s+hits\s+10\s+62000\s/m);
    expect(out).toMatch(/^\s+calib_passes\s+10\s+20\s/m);
    expect(out).toContain('10 permanent outputs');
    const outputs = fs.readdirSync(path.join(data, 'site-temp', 'results', '1')).filter((f) => f.startsWith('det_'));
    expect(outputs).toHaveLength(10);
    fs.rmSync(data, { recursive: true, force: true });
  }, 180_000);
});

describe('firn up', () => {
  let data: string;
  let child: ChildProcess | null = null;
  let db: Db | null = null;
  let trayPort: number;
  let monPort: number;
  const logs: string[] = [];

  function up(): Promise<{ stdout: string[] }> {
    const stdout: string[] = [];
    const c = spawn(process.execPath, [FIRN, 'up', '--data', data, '--tray-port', String(trayPort), '--mon-port', String(monPort), '--concurrency', '4'], {
      env: { ...process.env, FIRN_DH_SCHEDULE: '* * * * * *', FIRN_QUEUE_SCHEDULE: '* * * * * *' },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    child = c;
    c.stdout!.on('data', (b: Buffer) => stdout.push(b.toString()));
    c.stderr!.on('data', (b: Buffer) => logs.push(b.toString()));
    return waitUntil(() => stdout.join('').includes('Ctrl-C to stop'), 60_000, 'firn up to start').then(() => ({ stdout }));
  }

  beforeAll(async () => {
    data = fs.mkdtempSync(path.join(os.tmpdir(), 'firn-up-'));
    trayPort = await freePort();
    monPort = await freePort();
  });
  afterAll(async () => {
    child?.kill('SIGKILL');
    await db?.destroy();
    // pilots started by the local plugin are detached: stop any left
    spawnSync('pkill', ['-f', `--mon http://127.0.0.1:${monPort}`]);
    fs.rmSync(data, { recursive: true, force: true });
  });

  test('killed mid-production and started again, it finishes the dataset with nothing lost or run twice', async () => {
    const first = await up();
    const text = first.stdout.join('');
    const password = /password: (\S+)/.exec(text)?.[1];
    expect(password).toBeTruthy();
    const client = new RpcClient(`http://127.0.0.1:${trayPort}`);
    const { token } = await client.call<{ token: string }>('auth.login', { username: 'admin', password });
    client.token = token;
    const config = JSON.parse(fs.readFileSync(path.join(ROOT, 'examples', 'datasets', 'simulation.json'), 'utf8')) as Record<string, unknown>;
    // make each job take a moment so the kill lands mid-production
    const jobs = 16;
    const sub = await client.call<{ dataset_id: number }>('dataset.submit', { config, jobs, grids: ['local'] });
    db = openDb(`sqlite://${path.join(data, 'firn.sqlite')}`);
    const count = async (status: string) =>
      Number(((await db!('task').where({ dataset_id: sub.dataset_id, status }).count({ n: '*' })) as Array<{ n: number }>)[0]!.n);
    await waitUntil(async () => (await count('OK')) >= 3, 90_000, 'some tasks OK');
    const okBefore = await count('OK');
    child!.kill('SIGKILL');
    await new Promise((r) => child!.once('exit', r));
    expect(okBefore).toBeLessThan(jobs);

    const second = await up();
    // the first admin is created once only
    expect(second.stdout.join('')).not.toContain('first admin created');
    await waitUntil(async () => (await count('OK')) === jobs, 120_000, 'every task OK after the restart');

    const status = await client.call<{ status: string }>('dataset.status', { dataset_id: sub.dataset_id });
    await waitUntil(async () => (await client.call<{ status: string }>('dataset.status', { dataset_id: sub.dataset_id })).status === 'COMPLETE', 30_000, 'dataset COMPLETE');
    expect(['PROCESSING', 'COMPLETE']).toContain(status.status);
    // nothing run twice: every task started (QUEUED → PROCESSING) exactly once
    const starts: Array<{ entity_id: number; n: number }> = await db('history')
      .select('entity_id').count({ n: '*' })
      .where({ entity: 'task', dataset_id: sub.dataset_id, from_status: 'QUEUED', to_status: 'PROCESSING' })
      .groupBy('entity_id');
    expect(starts).toHaveLength(jobs);
    expect(starts.every((r) => Number(r.n) === 1)).toBe(true);
    // nothing lost: exact statistics (examples/datasets/README.md)
    const { stats } = await client.call<{ stats: Record<string, { n: number; sum: number }> }>('dataset.stats', { dataset_id: sub.dataset_id });
    expect(stats.events).toMatchObject({ n: jobs, sum: 100 * jobs });
    expect(stats.energy_sum).toMatchObject({ n: jobs, sum: 50 * jobs * (jobs + 112) });
    client.close();

    child!.kill('SIGINT');
    const code = await new Promise((r) => child!.once('exit', r));
    expect(code).toBe(0);
    child = null;
  }, 300_000);
});
