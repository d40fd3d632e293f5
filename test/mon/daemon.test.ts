import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { RpcClient, RpcError } from '@firn/core';
import { createMonServer } from '@firn/mon';
import { createTestDb, waitUntil, type TestDb } from '../helpers/db';
import { monConfig, seedDataset } from './fixtures';

/**
 * The real `firn-mon` binary (packages/mon/bin/firn-mon → dist) on MariaDB: --check-config,
 * startup, a pilot's calls, the web mount, and SIGTERM draining queued updates. Plus HTTPS.
 */
const ROOT = path.resolve(__dirname, '../..');
const BIN = path.join(ROOT, 'packages/mon/bin/firn-mon');

/** Build packages/mon (and what it references) when dist is missing or older than a source file. */
function ensureBuilt(): void {
  const dist = path.join(ROOT, 'packages/mon/dist/cli.js');
  const newest = (dir: string): number =>
    fs.readdirSync(dir, { withFileTypes: true }).reduce((m, e) => {
      const p = path.join(dir, e.name);
      return Math.max(m, e.isDirectory() ? newest(p) : fs.statSync(p).mtimeMs);
    }, 0);
  const srcTime = Math.max(...['packages/mon/src', 'packages/core/src', 'packages/web/src'].map((d) => newest(path.join(ROOT, d))));
  if (fs.existsSync(dist) && fs.statSync(dist).mtimeMs >= srcTime) return;
  execFileSync(process.execPath, [path.join(ROOT, 'node_modules/typescript/bin/tsc'), '--build', 'packages/mon'], { cwd: ROOT, stdio: 'inherit' });
}

function cleanEnv(): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) if (!k.startsWith('FIRN_')) env[k] = v;
  return env;
}

function writeIni(dir: string, sections: Record<string, Record<string, string | number | boolean>>): string {
  const file = path.join(dir, 'mon.ini');
  fs.writeFileSync(file, Object.entries(sections).map(([s, kv]) => `[${s}]\n${Object.entries(kv).map(([k, v]) => `${k} = ${v}`).join('\n')}\n`).join('\n'));
  return file;
}

function run(args: string[]): { code: number; stdout: string; stderr: string } {
  try {
    const stdout = execFileSync(process.execPath, [BIN, ...args], { cwd: ROOT, env: cleanEnv(), encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
    return { code: 0, stdout, stderr: '' };
  } catch (e) {
    const x = e as { status: number; stdout: string; stderr: string };
    return { code: x.status, stdout: x.stdout, stderr: x.stderr };
  }
}

describe('the firn-mon daemon', () => {
  let tdb: TestDb;
  let dir: string;
  let child: ChildProcess | null = null;

  beforeAll(async () => {
    ensureBuilt();
    tdb = await createTestDb('mariadb');
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'firn-mon-'));
  }, 180_000);
  afterAll(async () => {
    if (child && child.exitCode === null) child.kill('SIGKILL');
    await tdb?.drop();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  test('--check-config accepts a good file and names the key of a bad one', () => {
    const good = writeIni(dir, { db: { url: tdb.url }, mon: { port: 0, flush_ms: 50 } });
    const ok = run(['--config', good, '--check-config']);
    expect(ok.code).toBe(0);
    expect(ok.stdout).toContain('firn-mon: configuration OK');
    expect(ok.stdout).not.toContain('password');
    const bad = writeIni(dir, { db: { url: tdb.url }, mon: { flush_ms: 500 } });
    const refused = run(['--config', bad, '--check-config']);
    expect(refused.code).toBe(2);
    expect(refused.stderr).toContain('[mon] flush_ms');
  });

  test('serves pilots, mounts the web monitor, and drains queued updates on SIGTERM', async () => {
    const seeded = await seedDataset(tdb.db, 1);
    const task = seeded.tasks[0]!;
    const file = writeIni(dir, {
      db: { url: tdb.url }, mon: { host: '127.0.0.1', port: 0, flush_ms: 100, web: true, anonymous_read: true },
      log: { format: 'json', level: 'info' }, system: { site_temp: 'file:///scratch/site-temp' },
    });
    const proc = spawn(process.execPath, [BIN, '--config', file], { cwd: ROOT, env: cleanEnv(), stdio: ['ignore', 'pipe', 'pipe'] });
    child = proc;
    let stderr = '';
    proc.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
    const exited = new Promise<number | null>((resolve) => proc.on('exit', (code) => resolve(code)));
    const url = await waitUntil(() => {
      for (const line of stderr.split('\n')) {
        if (!line.startsWith('{')) continue;
        const j = JSON.parse(line) as { message?: string; url?: string };
        if (j.message === 'firn-mon listening') return j.url;
      }
      return undefined;
    }, 30_000, 'firn-mon to listen');
    expect(url).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);

    const home = await fetch(`${url}/`);
    expect(home.status).toBe(200);
    expect(((await (await fetch(`${url}/healthz`)).json()) as { database: string }).database).toBe('ok');

    const pilot = new RpcClient(url!);
    const auth = { task_id: task.id, passkey: task.passkey };
    const started = await pilot.call<{ system: { site_temp: string; heartbeat_seconds: number } }>('pilot.start', { ...auth, host: 'wn1' });
    expect(started.system).toEqual({ site_temp: 'file:///scratch/site-temp', heartbeat_seconds: 300 });

    // hold the task row so the next flush cannot commit, queue updates, then SIGTERM
    const trx = await tdb.db.transaction();
    await trx('task').select('id').where({ id: task.id }).forUpdate();
    const inFlight = pilot.batch([
      { method: 'pilot.heartbeat', params: { ...auth, cpu_seconds: 77, rss_mb: 512 } },
      { method: 'pilot.stats', params: { ...auth, stats: { photons: 12345 } } },
      { method: 'pilot.log', params: { ...auth, name: 'stdout', data: 'last words\n' } },
    ]);
    await waitUntil(async () => /firn_mon_pending_updates [1-9]/.test(await (await fetch(`${url}/metrics`)).text()), 10_000, 'updates queued');
    proc.kill('SIGTERM');
    await waitUntil(() => stderr.includes('draining pilot updates'), 10_000, 'shutdown to begin');
    expect(proc.exitCode).toBeNull(); // still draining: the flush waits for our lock
    await trx.commit();
    expect(await inFlight).toEqual([{ ok: true }, { ok: true }, { ok: true }]);
    pilot.close();
    expect(await exited).toBe(0);

    const row = await tdb.db('task').where({ id: task.id }).first();
    expect([row.status, row.host, Number(row.cpu_seconds), Number(row.rss_mb)]).toEqual(['PROCESSING', 'wn1', 77, 512]);
    expect(Number((await tdb.db('task_stat').where({ task_id: task.id, name: 'photons' }).first()).value)).toBe(12345);
    expect((await tdb.db('task_log').where({ task_id: task.id, name: 'stdout' }).first()).data).toBe('last words\n');
    // the passkey never reached the log
    expect(stderr).not.toContain(task.passkey);
    expect(stderr).toContain('firn-mon stopped');
  });
});

describe('firn-mon over HTTPS', () => {
  test('[mon] tls_cert / tls_key serve HTTPS; a pilot trusting the CA reports', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'firn-mon-tls-'));
    const tdb = await createTestDb('sqlite');
    try {
      const key = path.join(dir, 'key.pem');
      const cert = path.join(dir, 'cert.pem');
      execFileSync('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', key, '-out', cert, '-days', '1', '-subj', '/CN=127.0.0.1', '-addext', 'subjectAltName=IP:127.0.0.1'], { stdio: 'ignore' });
      const mon = await createMonServer({ db: tdb.db, config: monConfig(tdb.url, { tls_cert: cert, tls_key: key, web: true }) });
      const url = await mon.listen();
      expect(url).toMatch(/^https:\/\/127\.0\.0\.1:\d+$/);
      const seeded = await seedDataset(tdb.db, 1);
      const t = seeded.tasks[0]!;
      const pilot = new RpcClient(url, { ca: fs.readFileSync(cert) });
      await pilot.call('pilot.start', { task_id: t.id, passkey: t.passkey });
      await expect(pilot.call('pilot.heartbeat', { task_id: t.id, passkey: t.passkey, wall_seconds: 3 })).resolves.toEqual({ ok: true });
      expect(Number((await tdb.db('task').where({ id: t.id }).first()).wall_seconds)).toBe(3);
      // a client that does not trust the certificate cannot talk to it
      const untrusting = new RpcClient(url);
      await expect(untrusting.call('pilot.heartbeat', { task_id: t.id, passkey: t.passkey })).rejects.not.toBeInstanceOf(RpcError);
      untrusting.close();
      pilot.close();
      await mon.close();
    } finally {
      await tdb.drop();
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});
