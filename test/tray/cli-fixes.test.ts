/**
 * The CLI's silent failures (issue 18): each test here failed before its fix.
 * In-process against firn-tray on SQLite and MariaDB; `status --watch` and `firn up` as real
 * processes (the built packages/client/bin/firn: `npx tsc --build` first), since what failed
 * there was the process itself exiting, or starting.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { createUser } from '@firn/core';
import { startTray, type Tray } from '@firn/tray';
import { createTestDb, DB_KINDS, waitUntil, type TestDb } from '../helpers/db';
import { ROOT, makeCert, tmpDir, trayConfig } from './helpers';
import { runFirn } from '../helpers/cli';

const FIRN_BIN = path.join(ROOT, 'packages', 'client', 'bin', 'firn');

interface Run { code: number; out: string; err: string }

const example = (n: string) => path.join(ROOT, 'examples', 'datasets', `${n}.json`);

async function firnIn(env: Record<string, string>, argv: string[], input = ''): Promise<Run> {
  return runFirn(argv, env, input);
}

describe.each(DB_KINDS)('CLI fixes against firn-tray on %s', (kind) => {
  let t: TestDb;
  let tray: Tray;
  let dir: string;
  let env: Record<string, string>;
  const firn = (argv: string[], input = '') => firnIn(env, argv, input);

  beforeAll(async () => {
    t = await createTestDb(kind);
    dir = tmpDir('firn-cli-fixes-');
    const cert = makeCert(dir);
    await createUser(t.db, { username: 'admin', role: 'admin', password: 'admin-password' });
    tray = await startTray({ config: trayConfig(t.url, {}, cert), db: t.db });
    env = { FIRN_CONFIG_DIR: path.join(dir, 'cfg'), FIRN_CA: cert.cert, HOME: dir };
    expect((await firn(['login', tray.url, '-u', 'admin'], 'admin-password\n')).code).toBe(0);
    await t.db('grid').insert([
      { name: 'site-a', plugin: 'slurm', capabilities: '{}', status: 'enabled', created_at: Date.now() },
      { name: 'site-b', plugin: 'local', capabilities: '{}', status: 'enabled', created_at: Date.now() },
    ]);
  });
  afterAll(async () => {
    await tray?.close();
    await t?.drop();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  const submit = async (jobs: number): Promise<number> => {
    const r = await firn(['--json', 'submit', example('simulation'), '-n', String(jobs), '--grid', 'site-a']);
    expect(r.code).toBe(0);
    return (JSON.parse(r.out) as { dataset_id: number }).dataset_id;
  };

  it('a wrong password says so, without the "run firn login" hint', async () => {
    const r = await firnIn({ ...env, FIRN_CONFIG_DIR: path.join(dir, 'other') }, ['login', tray.url, '-u', 'admin'], 'not-the-password\n');
    expect(r.code).toBe(3);
    expect(r.err).toBe('firn: wrong user name or password\n');
  });

  it('--grid nosuch names the flag, the grid and the grids there are', async () => {
    const r = await firn(['submit', example('simulation'), '-n', '1', '--grid', 'site-a', '--grid', 'nosuch']);
    expect(r.code).toBe(4);
    expect(r.err).toBe('firn: --grid nosuch: no grid named "nosuch"; grids: site-a, site-b\n');
    expect(r.err).not.toMatch(/config is invalid|\/params/);
  });

  it('--json errors: {"error": {code, message, data}} on stdout with the non-zero exit code', async () => {
    const missing = await firn(['--json', 'show', '999']);
    expect(missing.code).toBe(4);
    expect(JSON.parse(missing.out)).toEqual({ error: { code: -32004, message: expect.stringMatching(/999/) } });
    const usage = await firn(['--json', 'reset', '1.0', '--memory', 'x2']);
    expect(usage.code).toBe(2);
    expect(JSON.parse(usage.out)).toEqual({ error: { code: 'usage', message: expect.stringMatching(/multipliers/) } });
    const bad = path.join(dir, 'bad.json');
    fs.writeFileSync(bad, JSON.stringify({ version: 1, tasks: [{ name: 'a', trays: [] }] }));
    const invalid = await firn(['--json', 'submit', bad]);
    expect(invalid.code).toBe(1);
    const body = JSON.parse(invalid.out) as { error: { code: number; data: { issues: Array<{ path: string }> } } };
    expect(body.error.code).toBe(-32602);
    expect(body.error.data.issues.map((i) => i.path)).toContain('/params/config/tasks/0/trays');
    // one JSON document, also for validate (its issues are the error's data)
    const v = await firn(['--json', 'validate', bad]);
    expect(v.code).toBe(1);
    expect(JSON.parse(v.out)).toMatchObject({ error: { code: 'error', data: { valid: false, issues: [{ path: '/tasks/0/trays' }] } } });
  });

  it('firn validate refuses a misspelt shell parameter, naming its path and the right name', async () => {
    const file = path.join(dir, 'comand.json');
    fs.writeFileSync(file, JSON.stringify({ version: 1, tasks: [{ name: 'a', trays: [{ name: 't', modules: [{ name: 'm', class: 'shell', parameters: { comand: 'echo hi' } }] }] }] }));
    const r = await firn(['validate', file]);
    expect(r.code).toBe(1);
    expect(r.err).toMatch(/^ {2}\/tasks\/0\/trays\/0\/modules\/0\/parameters\/comand: is not a parameter of the shell module \(did you mean "command"\?\)/m);
    // the server refuses it at submit too
    const s = await firn(['submit', file, '-n', '1']);
    expect(s.code).toBe(1);
    expect(s.err).toMatch(/\/tasks\/0\/trays\/0\/modules\/0\/parameters\/comand: .*did you mean "command"/);
  });

  it('logs --name matches the stream by suffix, lists the names when none does, exits 4', async () => {
    const ds = await submit(1);
    const task = (await t.db('task').where({ dataset_id: ds }).first()) as { id: number };
    await t.db('task_log').insert([
      { task_id: task.id, name: 'main.generate.stderr', data: 'warning: low statistics\n', updated_at: Date.now() },
      { task_id: task.id, name: 'main.generate.stdout', data: 'generated 100 events\n', updated_at: Date.now() },
    ]);
    const r = await firn(['logs', String(task.id), '--name', 'stderr']);
    expect(r.code).toBe(0);
    expect(r.out).toMatch(/^==> main\.generate\.stderr \(.+\) <==\nwarning: low statistics\n$/);
    const none = await firn(['logs', String(task.id), '--name', 'pilot']);
    expect(none.code).toBe(4);
    expect(none.err).toBe(`firn: task ${task.id} has no log named "pilot"; its logs: main.generate.stderr, main.generate.stdout\n`);
    // a substring that is not a whole name part does not match
    expect((await firn(['logs', String(task.id), '--name', 'err'])).code).toBe(4);
  });

  it('resume on a COMPLETE dataset says it is already COMPLETE and changes nothing', async () => {
    const ds = await submit(1);
    await t.db('task').where({ dataset_id: ds }).update({ status: 'OK' });
    await t.db('dataset').where({ id: ds }).update({ status: 'COMPLETE' });
    const r = await firn(['resume', String(ds)]);
    expect([r.code, r.out]).toEqual([0, `dataset ${ds} is already COMPLETE: nothing resumed (no change)\n`]);
    expect(((await t.db('dataset').where({ id: ds }).first()) as { status: string }).status).toBe('COMPLETE');
    expect(await t.db('history').where({ entity: 'dataset', entity_id: ds, action: 'resume' })).toHaveLength(0);
  });

  it('reset DS --failed --match PATTERN --memory x1.5: only the matching FAILED tasks, each 1.5 × its own; counters kept', async () => {
    const ds = await submit(6);
    const ids = ((await t.db('task').where({ dataset_id: ds }).orderBy('id').select('id')) as Array<{ id: number }>).map((r) => Number(r.id));
    const set = async (i: number, cols: Record<string, unknown>) => t.db('task').where({ id: ids[i] }).update(cols);
    await set(0, { status: 'FAILED', failures: 5, error_summary: 'exit 137: Memory limit exceeded (rss 2100 MB)', req_memory: 2000 });
    await set(1, { status: 'FAILED', failures: 5, error_summary: 'slurm: MEMORY LIMIT', req_memory: 3001 });
    await set(2, { status: 'FAILED', failures: 5, error_summary: 'segmentation fault', req_memory: 2000 });
    await set(3, { status: 'ERROR', failures: 1, error_summary: 'memory limit exceeded', req_memory: 2000 });
    await set(4, { status: 'SUSPENDED', req_memory: 2000 });
    const r = await firn(['reset', String(ds), '--failed', '--match', 'memory limit', '--memory', 'x1.5', '--reason', 'more memory']);
    expect(r.code).toBe(0);
    expect(r.out).toBe(`dataset ${ds} reset: 2 tasks (2 waiting, 0 idle); now PROCESSING\n`);
    const rows = (await t.db('task').whereIn('id', ids).orderBy('id').select('status', 'req_memory', 'failures')) as Array<{ status: string; req_memory: number; failures: number }>;
    expect(rows.slice(0, 5).map((x) => [x.status, Number(x.req_memory), Number(x.failures)])).toEqual([
      ['WAITING', 3000, 5], // 2000 × 1.5
      ['WAITING', 4502, 5], // 3001 × 1.5 = 4501.5, rounded up
      ['FAILED', 2000, 5], // did not match
      ['ERROR', 2000, 1], // not FAILED
      ['SUSPENDED', 2000, 0],
    ]);
    const hist = (await t.db('history').where({ entity: 'dataset', entity_id: ds, action: 'reset' }).first()) as { reason: string };
    expect(hist.reason).toMatch(/^2 tasks reset: status FAILED, error matching \/memory limit\/, requirements \{"memory":"x1.5"\}: more memory$/);
    // an invalid pattern names the parameter
    const bad = await firn(['reset', String(ds), '--failed', '--match', '(a']);
    expect(bad.code).toBe(1);
    expect(bad.err).toMatch(/match/);
    // a plain reset of a job keeps the counters too (docs/production-manager.md: counters kept)
    await set(5, { status: 'FAILED', failures: 5, evictions: 2 });
    const job = (await t.db('job').where({ id: (await t.db('task').where({ id: ids[5] }).first()).job_id }).first()) as { job_index: number };
    expect((await firn(['reset', `${ds}.${job.job_index}`])).code).toBe(0);
    expect(await t.db('task').where({ id: ids[5] }).first()).toMatchObject({ status: 'WAITING', failures: 5, evictions: 2 });
  });

  it('status --watch of a dataset that ended: exit 0 when COMPLETE, 1 when ERRORS', async () => {
    // the status shown is derived from the jobs' (core deriveDatasetStatus)
    const done = await submit(1);
    await t.db('task').where({ dataset_id: done }).update({ status: 'OK' });
    await t.db('job').where({ dataset_id: done }).update({ status: 'OK' });
    await t.db('dataset').where({ id: done }).update({ status: 'COMPLETE' });
    expect((await firn(['status', String(done), '--watch', '--interval', '1'])).code).toBe(0);
    await t.db('task').where({ dataset_id: done }).update({ status: 'FAILED' });
    await t.db('job').where({ dataset_id: done }).update({ status: 'FAILED' });
    await t.db('dataset').where({ id: done }).update({ status: 'ERRORS' });
    const r = await firn(['status', String(done), '--watch', '--interval', '1']);
    expect(r.code).toBe(1);
    expect(r.out).toMatch(new RegExp(`^dataset ${done}: ERRORS`));
  });
});

describe('as processes: status --watch and a second firn up', () => {
  let t: TestDb;
  let tray: Tray;
  let dir: string;
  let env: Record<string, string>;
  const procs: ChildProcess[] = [];
  const spawnFirn = (args: string[], extraEnv: Record<string, string> = {}) => {
    const p = spawn(process.execPath, [FIRN_BIN, ...args], { env: { PATH: process.env.PATH ?? '', ...env, ...extraEnv }, stdio: ['ignore', 'pipe', 'pipe'] });
    const r = { proc: p, out: '', err: '', code: null as number | null };
    p.stdout!.on('data', (d: Buffer) => (r.out += d.toString()));
    p.stderr!.on('data', (d: Buffer) => (r.err += d.toString()));
    p.on('exit', (code) => (r.code = code));
    procs.push(p);
    return r;
  };

  beforeAll(async () => {
    if (!fs.existsSync(path.join(ROOT, 'packages', 'client', 'dist', 'cli.js'))) throw new Error('packages/client/dist is missing: run npx tsc --build');
    t = await createTestDb('sqlite');
    dir = tmpDir('firn-cli-proc-');
    const cert = makeCert(dir);
    await createUser(t.db, { username: 'admin', role: 'admin', password: 'admin-password' });
    tray = await startTray({ config: trayConfig(t.url, {}, cert), db: t.db });
    env = { FIRN_CONFIG_DIR: path.join(dir, 'cfg'), FIRN_CA: cert.cert, HOME: dir };
    expect((await firnIn(env, ['login', tray.url, '-u', 'admin'], 'admin-password\n')).code).toBe(0);
  }, 60_000);
  afterAll(async () => {
    for (const p of procs) if (p.exitCode === null) p.kill('SIGKILL');
    await tray?.close();
    await t?.drop();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it('status --watch keeps redrawing until the dataset completes, then exits 0', async () => {
    const s = await firnIn(env, ['--json', 'submit', example('simulation'), '-n', '1']);
    const ds = (JSON.parse(s.out) as { dataset_id: number }).dataset_id;
    const w = spawnFirn(['status', String(ds), '--watch', '--interval', '1']);
    await waitUntil(() => w.out.includes(`dataset ${ds}: PROCESSING`), 20_000, 'first frame');
    // before the fix the process was gone (rc 0) right after the first frame
    await new Promise((r) => setTimeout(r, 2500));
    expect(w.code).toBeNull();
    // a change while still processing is redrawn (the status is derived from the tasks: all OK is COMPLETE)
    await t.db('task').where({ dataset_id: ds }).update({ status: 'QUEUED' });
    await waitUntil(() => w.out.includes('  QUEUED '), 20_000, 'a redrawn frame');
    expect(w.code).toBeNull();
    await t.db('task').where({ dataset_id: ds }).update({ status: 'OK' });
    await waitUntil(() => w.code !== null, 20_000, 'status --watch to exit');
    expect(w.code).toBe(0);
    expect(w.out).toMatch(new RegExp(`dataset ${ds}: PROCESSING[\\s\\S]*dataset ${ds}: COMPLETE`));
  }, 60_000);

  it('a second firn up on the same data directory exits 5 naming the first one\'s pid', async () => {
    const data = path.join(dir, 'up-data');
    const first = spawnFirn(['up', '--data', data, '--tray-port', '0', '--mon-port', '0', '--concurrency', '1']);
    await waitUntil(() => first.out.includes('Ctrl-C to stop') || first.code !== null, 60_000, 'first firn up to start');
    expect([first.code, first.err]).toEqual([null, expect.any(String)]);
    const grids = async () => JSON.stringify(await (await import('@firn/core')).connect(`sqlite://${path.join(data, 'firn.sqlite')}`).then(async (db) => {
      try {
        return await db('grid').select('name', 'capabilities').orderBy('name');
      } finally {
        await db.destroy();
      }
    }));
    // firn up serves the queue's, dh's and the task series on its mon port
    const monUrl = /web monitor: +(http:\/\/\S+?)\/?\n/.exec(first.out)![1]!;
    await waitUntil(async () => /^firn_queue_cycles_total\{grid="local"\} [1-9]/m.test(await (await fetch(`${monUrl}/metrics`)).text()), 30_000, 'a queue cycle in firn up\'s /metrics');
    const metrics = await (await fetch(`${monUrl}/metrics`)).text();
    expect(metrics).toMatch(/^# TYPE firn_tasks gauge$/m);
    expect(metrics).toMatch(/^# TYPE firn_grid_tasks gauge$/m);
    expect(metrics).toMatch(/^firn_dh_cycle_duration_seconds_count\{cycle="rollup"\} [1-9]/m);
    const before = await grids();
    const second = spawnFirn(['up', '--data', data, '--tray-port', '0', '--mon-port', '0', '--concurrency', '7']);
    await waitUntil(() => second.code !== null, 30_000, 'second firn up to exit');
    expect(second.code).toBe(5);
    expect(second.err).toContain(`is in use by another firn up: pid ${first.proc.pid}`);
    expect(second.out).not.toMatch(/tray \(firn CLI\)/);
    expect(await grids()).toBe(before); // the running instance's grid row is untouched
    expect(first.code).toBeNull();
    first.proc.kill('SIGTERM');
    await waitUntil(() => first.code !== null, 30_000, 'first firn up to stop');
    expect(fs.existsSync(path.join(data, '.firn-up.lock'))).toBe(false);
    // a lock left by a process that is gone is taken over
    fs.writeFileSync(path.join(data, '.firn-up.lock'), JSON.stringify({ pid: 2 ** 22 + 12345, start: '1', boot: '-', host: (await import('node:os')).hostname(), since: 'then' }) + '\n');
    const third = spawnFirn(['up', '--data', data, '--tray-port', '0', '--mon-port', '0', '--concurrency', '1']);
    await waitUntil(() => third.out.includes('Ctrl-C to stop') || third.code !== null, 60_000, 'third firn up to start');
    expect(third.code).toBeNull();
    third.proc.kill('SIGTERM');
    await waitUntil(() => third.code !== null, 30_000, 'third firn up to stop');
  }, 180_000);
});
