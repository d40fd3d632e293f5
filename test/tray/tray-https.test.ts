import fs from 'node:fs';
import https from 'node:https';
import {
  RpcClient, RpcError, RpcErrorCode, TaskStatus, createUser, transition,
  type Db,
} from '@firn/core';
import { startTray, type Tray } from '@firn/tray';
import { createTestDb, DB_KINDS, type TestDb } from '../helpers/db';
import { captureLogger, exampleConfig, makeCert, tmpDir, trayConfig } from './helpers';

/** Move one task along the state machine as the other daemons would. */
async function drive(db: Db, id: number, path: Array<[TaskStatus, 'queue' | 'mon' | 'dh' | 'core']>): Promise<void> {
  let from = ((await db('task').where({ id }).first()) as { status: TaskStatus }).status;
  for (const [to, by] of path) {
    await transition(db, { taskIds: [id], from, to, by, actor: by });
    from = to;
  }
}
const TO_OK: Array<[TaskStatus, 'queue' | 'mon' | 'dh' | 'core']> = [
  ['QUEUEING', 'queue'], ['QUEUED', 'queue'], ['PROCESSING', 'mon'], ['READYTOCOPY', 'mon'], ['COPYING', 'dh'], ['COPIED', 'dh'], ['OK', 'dh'],
];
const TO_FAILED: Array<[TaskStatus, 'queue' | 'mon' | 'dh' | 'core']> = [
  ['QUEUEING', 'queue'], ['QUEUED', 'queue'], ['PROCESSING', 'mon'], ['ERROR', 'mon'], ['FAILED', 'core'],
];

async function rpcError(p: Promise<unknown>): Promise<RpcError> {
  try {
    await p;
  } catch (e) {
    if (e instanceof RpcError) return e;
    throw e;
  }
  throw new Error('expected an RPC error');
}

function get(url: string, ca: Buffer): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    https.get(url, { ca }, (res) => {
      let body = '';
      res.on('data', (d: Buffer) => (body += d.toString()));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
    }).on('error', reject);
  });
}

describe.each(DB_KINDS)('firn-tray over HTTPS on %s', (kind) => {
  let t: TestDb;
  let tray: Tray;
  let dir: string;
  let ca: Buffer;
  let logs: ReturnType<typeof captureLogger>;
  let mgr: RpcClient;
  let admin: RpcClient;
  let moduleServer: https.Server;
  const tokens: string[] = [];
  const ids: Record<string, number> = {};

  const client = async (username: string, password: string) => {
    const c = new RpcClient(tray.url, { ca });
    const r = await c.call<{ token: string; expires: string; role: string }>('auth.login', { username, password });
    tokens.push(r.token);
    c.token = r.token;
    return c;
  };

  beforeAll(async () => {
    t = await createTestDb(kind);
    dir = tmpDir();
    const tls = makeCert(dir);
    ca = fs.readFileSync(tls.cert);
    await createUser(t.db, { username: 'admin', role: 'admin', password: 'admin-password' });
    await createUser(t.db, { username: 'mgr', role: 'manager', password: 'manager-password' });
    logs = captureLogger();
        // the module server below uses the same test certificate: [tray] fetch_ca trusts it
    moduleServer = https.createServer({ cert: ca, key: fs.readFileSync(tls.key) }, (req, res) => {
      if (req.url === '/filter.py') res.end('print("filter")\n');
      else res.writeHead(404).end();
    });
    await new Promise<void>((r) => moduleServer.listen(0, '127.0.0.1', r));
    // the module server is on loopback: [tray] fetch_allow_private lets the tray fetch from it
    tray = await startTray({ config: trayConfig(t.url, { fetch_ca: tls.cert, fetch_allow_private: true }, tls), db: t.db, logger: logs.logger });
    mgr = await client('mgr', 'manager-password');
    admin = await client('admin', 'admin-password');
  });
  afterAll(async () => {
    mgr?.close();
    admin?.close();
    await tray?.close();
    await new Promise((r) => moduleServer?.close(r));
    await t?.drop();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it('serves HTTPS with the configured certificate; health and metrics', async () => {
    expect(tray.url).toMatch(/^https:\/\/127\.0\.0\.1:\d+$/);
    const h = await get(`${tray.url}/healthz`, ca);
    expect(h.status).toBe(200);
    expect(JSON.parse(h.body)).toMatchObject({ status: 'ok', daemon: 'tray', db: 'ok' });
    expect(await mgr.call('system.health')).toMatchObject({ status: 'ok', db: 'ok' });
    expect(await mgr.call('system.version')).toMatchObject({ name: 'firn-tray', migrations: expect.arrayContaining(['0001_initial']), db: kind === 'sqlite' ? 'sqlite' : 'mysql' });
    const m = await get(`${tray.url}/metrics`, ca);
    expect(m.body).toMatch(/firn_tray_rpc_calls_total\{method="auth.login",outcome="ok"\} 2/);
    // an untrusted client refuses the self-signed certificate
    const untrusted = new RpcClient(tray.url);
    await expect(untrusted.call('system.health')).rejects.toThrow(/self-signed|certificate/);
    untrusted.close();
  });

  it('login gives an expiring token; whoami knows the user', async () => {
    const c = new RpcClient(tray.url, { ca });
    const r = await c.call<{ token: string; expires: string; username: string; role: string }>('auth.login', { username: 'mgr', password: 'manager-password' });
    expect(r.token).toMatch(/^[A-Za-z0-9_-]{43}$/);
    expect(Date.parse(r.expires) - Date.now()).toBeGreaterThan(86_000_000);
    expect(r).toMatchObject({ username: 'mgr', role: 'manager' });
    c.token = r.token;
    tokens.push(r.token);
    expect(await c.call('auth.whoami')).toEqual({ username: 'mgr', role: 'manager', source: 'local' });
    // only the hash is stored
    const row = await t.db('token').orderBy('id', 'desc').first();
    expect(row.token_hash).toMatch(/^[0-9a-f]{64}$/);
    expect(row.token_hash).not.toBe(r.token);
    expect(await c.call('auth.logout')).toEqual({ ok: true });
    expect((await rpcError(c.call('auth.whoami'))).code).toBe(RpcErrorCode.UNAUTHENTICATED);
    c.close();
  });

  it('submits every example; status counts equal jobs × tasks; config comes back as submitted', async () => {
    for (const [name, jobs, perJob] of [['simulation', 4, 1], ['dag-gpu', 3, 3], ['offline', 0, 1]] as const) {
      const config = exampleConfig(name);
      const r = await mgr.call<{ dataset_id: number; jobs: number; tasks: number }>('dataset.submit', { config, ...(jobs ? { jobs } : {}), description: `example ${name}` });
      expect(r).toMatchObject({ dataset_id: expect.any(Number), jobs, tasks: jobs * perJob, grids: [], warnings: expect.any(Array) });
      ids[name] = r.dataset_id;
      const s = await mgr.call<{ status: string; tasks: Record<string, number>; jobs: Record<string, number> }>('dataset.status', { dataset_id: r.dataset_id });
      expect(Object.values(s.tasks).reduce((a, b) => a + b, 0)).toBe(jobs * perJob);
      expect(Object.keys(s.tasks).sort()).toEqual(Object.values(TaskStatus).sort());
      expect(s.jobs).toEqual({ PROCESSING: jobs, OK: 0, FAILED: 0, SUSPENDED: 0 });
      expect(s.status).toBe('PROCESSING');
      const back = await mgr.call<{ config: unknown; config_hash: string }>('dataset.config', { dataset_id: r.dataset_id });
      expect(back.config).toEqual(config);
      expect(back.config_hash).toMatch(/^[0-9a-f]{64}$/);
    }
    const dag = await mgr.call<{ tasks: Record<string, number> }>('dataset.status', { dataset_id: ids['dag-gpu'] });
    expect(dag.tasks).toMatchObject({ WAITING: 3, IDLE: 6 });
    const list = await mgr.call<{ datasets: Array<{ id: number; owner: string; description: string }> }>('dataset.list', {});
    expect(list.datasets.map((d) => d.id)).toEqual([ids.offline, ids['dag-gpu'], ids.simulation]);
    expect(list.datasets[0]).toMatchObject({ owner: 'mgr', description: 'example offline' });
    const got = await mgr.call<{ dataset: { tasks_per_job: number; grids: string[]; retry: { max_failures: number } } }>('dataset.get', { dataset_id: ids['dag-gpu'] });
    expect(got.dataset).toMatchObject({ tasks_per_job: 3, grids: [], retry: { max_failures: 5 } });
  });

  it('suspend → every unfinished task SUSPENDED; resume → WAITING/IDLE by dependencies', async () => {
    const id = ids['dag-gpu']!;
    const tasks = (await t.db('task as t').join('job as j', 'j.id', 't.job_id').where('t.dataset_id', id).select('t.id', 't.name', 'j.job_index')) as Array<{ id: number; name: string; job_index: number }>;
    const task = (job: number, name: string) => tasks.find((x) => x.job_index === job && x.name === name)!.id;
    // job 0: generate OK, photon released to WAITING then running; job 1: generate running
    await drive(t.db, task(0, 'generate'), TO_OK);
    await transition(t.db, { taskIds: [task(0, 'photon')], from: 'IDLE', to: 'WAITING', by: 'core', actor: 'core' });
    await drive(t.db, task(0, 'photon'), [['QUEUEING', 'queue'], ['QUEUED', 'queue'], ['PROCESSING', 'mon']]);
    await drive(t.db, task(1, 'generate'), [['QUEUEING', 'queue'], ['QUEUED', 'queue']]);

    const s = await mgr.call<{ dataset_id: number; status: string; changed: number }>('dataset.suspend', { dataset_id: id, reason: 'calibration bug' });
    expect(s).toMatchObject({ dataset_id: id, status: 'SUSPENDED', changed: 8 });
    const after = await mgr.call<{ status: string; tasks: Record<string, number>; jobs: Record<string, number> }>('dataset.status', { dataset_id: id });
    expect(after.status).toBe('SUSPENDED');
    expect(after.tasks).toMatchObject({ SUSPENDED: 8, OK: 1, WAITING: 0, IDLE: 0, QUEUED: 0, PROCESSING: 0 });
    expect(after.jobs).toEqual({ PROCESSING: 0, OK: 0, FAILED: 0, SUSPENDED: 3 });
    const hist = await t.db('history').where({ dataset_id: id, to_status: 'SUSPENDED', entity: 'task' });
    expect(hist).toHaveLength(8);
    expect(hist.every((h) => h.actor === 'user:mgr' && h.reason === 'calibration bug')).toBe(true);
    expect(await t.db('history').where({ dataset_id: id, entity: 'dataset', action: 'suspend' }).first()).toMatchObject({ from_status: 'PROCESSING', to_status: 'SUSPENDED', actor: 'user:mgr' });

    const r = await mgr.call<{ status: string; changed: number; waiting: number; idle: number }>('dataset.resume', { dataset_id: id });
    expect(r).toMatchObject({ status: 'PROCESSING', changed: 8, waiting: 3, idle: 5 });
    const rows = (await t.db('task as t').join('job as j', 'j.id', 't.job_id').where('t.dataset_id', id).select('t.name', 'j.job_index', 't.status', 't.passkey_hash', 't.batch_id')) as Array<{ name: string; job_index: number; status: string; passkey_hash: string | null }>;
    const st = (job: number, name: string) => rows.find((x) => x.job_index === job && x.name === name)!.status;
    // job 0: generate OK → photon WAITING, detector IDLE; jobs 1, 2: generate WAITING, the rest IDLE
    expect([st(0, 'generate'), st(0, 'photon'), st(0, 'detector')]).toEqual(['OK', 'WAITING', 'IDLE']);
    for (const j of [1, 2]) expect([st(j, 'generate'), st(j, 'photon'), st(j, 'detector')]).toEqual(['WAITING', 'IDLE', 'IDLE']);
    expect(rows.every((x) => x.passkey_hash === null)).toBe(true);
    expect((await t.db('dataset').where({ id }).first()).status).toBe('PROCESSING');
  });

  it('resets one job, with new requirements; leaves the others alone', async () => {
    const id = ids['dag-gpu']!;
    const job1 = await mgr.call<{ job: { id: number; status: string }; tasks: Array<{ id: number; name: string; status: string }> }>('job.get', { dataset_id: id, job_index: 1 });
    expect(job1.tasks.map((x) => x.name)).toEqual(['generate', 'photon', 'detector']);
    const gen = job1.tasks[0]!.id;
    await drive(t.db, gen, TO_FAILED);
    await t.db('task').where({ id: gen }).update({ failures: 5 });
    // photon and detector are IDLE behind it and can never run: the job is FAILED
    expect((await mgr.call<{ job: { status: string } }>('job.get', { dataset_id: id, job_index: 1 })).job.status).toBe('FAILED');

    const r = await mgr.call('job.reset', { dataset_id: id, job_index: 1, requirements: { memory: 4000, time: 30 }, reason: 'more memory' });
    expect(r).toMatchObject({ dataset_id: id, job_index: 1, status: 'PROCESSING', changed: 1, waiting: 1, idle: 0 });
    const row = await t.db('task').where({ id: gen }).first();
    expect(row).toMatchObject({ status: 'WAITING', req_memory: 4000, req_time: 30, failures: 5 }); // counters kept
    const others = await t.db('task').where({ dataset_id: id }).whereNot({ id: gen }).where({ req_memory: 4000 });
    expect(others).toHaveLength(0);
    const h = await t.db('history').where({ entity: 'job', entity_id: job1.job.id, action: 'reset' }).first();
    expect(h).toMatchObject({ from_status: 'FAILED', to_status: 'PROCESSING', actor: 'user:mgr' });
    expect(h.reason).toMatch(/more memory/);

    // suspend and resume a single job
    expect(await mgr.call('job.suspend', { dataset_id: id, job_index: 2 })).toMatchObject({ status: 'SUSPENDED', changed: 3 });
    expect(await mgr.call('job.resume', { dataset_id: id, job_index: 2 })).toMatchObject({ status: 'PROCESSING', changed: 3, waiting: 1, idle: 2 });
    // OK tasks: only an admin resets them
    expect((await rpcError(mgr.call('dataset.reset', { dataset_id: id, include_ok: true }))).code).toBe(RpcErrorCode.FORBIDDEN);
    // job 0: generate OK, photon WAITING, detector IDLE → the whole job runs again from the start
    const adminReset = await admin.call<{ changed: number; waiting: number; idle: number }>('job.reset', { dataset_id: id, job_index: 0, include_ok: true });
    expect(adminReset).toMatchObject({ changed: 3, waiting: 1, idle: 2 });
    const job0 = await t.db('task as t').join('job as j', 'j.id', 't.job_id').where({ 't.dataset_id': id, 'j.job_index': 0 }).orderBy('t.task_index').select('t.name', 't.status');
    expect(job0.map((x) => [x.name, x.status])).toEqual([['generate', 'WAITING'], ['photon', 'IDLE'], ['detector', 'IDLE']]);
    // an illegal request: a job index that does not exist
    expect((await rpcError(mgr.call('job.reset', { dataset_id: id, job_index: 99 }))).code).toBe(RpcErrorCode.NOT_FOUND);

    // single-task jobs: a FAILED task makes a FAILED job; dataset.reset brings it back
    const sim = ids.simulation!;
    const last = (await t.db('task as t').join('job as j', 'j.id', 't.job_id').where({ 't.dataset_id': sim, 'j.job_index': 3 }).select('t.id').first()) as { id: number };
    await drive(t.db, last.id, TO_FAILED);
    const failedJobs = await mgr.call<{ jobs: Array<{ job_index: number; status: string }> }>('job.list', { dataset_id: sim, status: 'FAILED' });
    expect(failedJobs.jobs.map((j) => [j.job_index, j.status])).toEqual([[3, 'FAILED']]);
    expect((await mgr.call<{ jobs: Record<string, number> }>('dataset.status', { dataset_id: sim })).jobs).toEqual({ PROCESSING: 3, OK: 0, FAILED: 1, SUSPENDED: 0 });
    expect(await mgr.call('dataset.reset', { dataset_id: sim })).toMatchObject({ status: 'PROCESSING', changed: 1, waiting: 1, idle: 0 });
    expect((await t.db('task').where({ id: last.id }).first()).status).toBe('WAITING');
  });

  it('statistics, logs, tasks', async () => {
    const id = ids.simulation!;
    await t.db('dataset_stat').insert([
      { dataset_id: id, name: 'events', n: 4, sum: 400, sum_sq: 40_000, min: 100, max: 100 },
      { dataset_id: id, name: 'energy', n: 2, sum: 6, sum_sq: 20, min: 2, max: 4 },
    ]);
    const { stats } = await mgr.call<{ stats: Record<string, { n: number; mean: number; stddev: number; min: number; max: number; sum: number }> }>('dataset.stats', { dataset_id: id });
    expect(stats.events).toEqual({ n: 4, sum: 400, mean: 100, stddev: 0, min: 100, max: 100 });
    expect(stats.energy).toEqual({ n: 2, sum: 6, mean: 3, stddev: 1, min: 2, max: 4 });
    const task = await t.db('task').where({ dataset_id: id }).first();
    await t.db('task_log').insert({ task_id: task.id, name: 'stdout', data: 'hello\nworld\n', updated_at: Date.now() });
    const { logs: l } = await mgr.call<{ logs: Array<{ name: string; data: string }> }>('task.logs', { task_id: task.id });
    expect(l).toEqual([{ name: 'stdout', data: 'hello\nworld\n', updated_at: expect.any(Number) }]);
    const { task: info } = await mgr.call<{ task: Record<string, unknown> }>('task.get', { task_id: task.id });
    expect(info).toMatchObject({ id: task.id, dataset_id: id, name: 'simulate', status: 'WAITING', requirements: { cpu: 1 } });
    expect(info).not.toHaveProperty('passkey_hash');
    expect((await rpcError(mgr.call('task.logs', { task_id: 999999 }))).code).toBe(RpcErrorCode.NOT_FOUND);
  });

  it('grids: add, list, assign, disable, remove (refused while tasks run there)', async () => {
    expect(await admin.call('grid.add', { name: 'site-a', plugin: 'slurm', capabilities: { cpu: 8, gpu: 1, memory: 16000, site: 'a' } })).toMatchObject({ grid: { name: 'site-a', plugin: 'slurm', status: 'enabled', capabilities: { cpu: 8, gpu: 1 } } });
    expect((await rpcError(admin.call('grid.add', { name: 'site-a', plugin: 'local' }))).code).toBe(RpcErrorCode.CONFLICT);
    expect((await rpcError(admin.call('grid.add', { name: 'x', plugin: 'lsf' }))).code).toBe(RpcErrorCode.INVALID_PARAMS);
    expect(await mgr.call('dataset.add_grid', { dataset_id: ids.simulation, grid: 'site-a' })).toEqual({ dataset_id: ids.simulation, grids: ['site-a'] });
    expect((await rpcError(mgr.call('dataset.add_grid', { dataset_id: ids.simulation, grid: 'nope' }))).code).toBe(RpcErrorCode.NOT_FOUND);
    expect(await admin.call('grid.set_status', { name: 'site-a', status: 'disabled' })).toMatchObject({ grid: { status: 'disabled' } });
    const { grids } = await mgr.call<{ grids: Array<{ name: string; status: string }> }>('grid.list');
    expect(grids).toEqual([expect.objectContaining({ name: 'site-a', status: 'disabled' })]);
    const task = await t.db('task').where({ dataset_id: ids.simulation, status: 'WAITING' }).first();
    const gid = (await t.db('grid').where({ name: 'site-a' }).first()).id;
    await transition(t.db, { taskIds: [task.id], from: 'WAITING', to: 'QUEUEING', by: 'queue', actor: 'queue:site-a', set: { grid_id: gid } });
    expect((await rpcError(admin.call('grid.remove', { name: 'site-a' }))).code).toBe(RpcErrorCode.CONFLICT);
    await transition(t.db, { taskIds: [task.id], from: 'QUEUEING', to: 'WAITING', by: 'queue', actor: 'queue:site-a' });
    expect(await admin.call('grid.remove', { name: 'site-a' })).toEqual({ removed: 'site-a' });
    expect((await t.db('dataset_grid').where({ dataset_id: ids.simulation })).length).toBe(0);
    expect(await mgr.call('grid.list')).toEqual({ grids: [] });
  });

  it('priority, add_jobs, obsolete', async () => {
    expect(await mgr.call('dataset.set_priority', { dataset_id: ids.simulation, priority: 50 })).toEqual({ dataset_id: ids.simulation, priority: 50 });
    expect((await t.db('history').where({ dataset_id: ids.simulation, action: 'priority' }).first())).toMatchObject({ from_status: '0', to_status: '50', actor: 'user:mgr' });
    const md5 = '0123456789abcdef0123456789abcdef';
    const added = await mgr.call('dataset.add_jobs', {
      dataset_id: ids.offline,
      jobs: [1, 2, 3].map((n) => ({ args: { input: `file:///data/run_${n}.txt` }, files: [{ url: `file:///data/run_${n}.txt`, md5 }], run: { number: n, date: '2024-01-0' + n } })),
    });
    expect(added).toEqual({ dataset_id: ids.offline, first_job_index: 0, jobs: 3, tasks: 3, files: 3 });
    const s = await mgr.call<{ tasks: Record<string, number> }>('dataset.status', { dataset_id: ids.offline });
    expect(s.tasks.WAITING).toBe(3);
    const job = await mgr.call<{ job: { args: unknown; run: unknown; input_files: unknown[] } }>('job.get', { dataset_id: ids.offline, job_index: 2 });
    expect(job.job).toMatchObject({ args: { input: 'file:///data/run_3.txt' }, run: { run_number: 3, date: '2024-01-03' }, input_files: [{ url: 'file:///data/run_3.txt', md5, local_name: 'run_3.txt' }] });
    const bad = await rpcError(mgr.call('dataset.add_jobs', { dataset_id: ids.offline, jobs: [{ files: [{ url: 'x', md5: 'nothex' }] }] }));
    expect(bad.code).toBe(RpcErrorCode.INVALID_PARAMS);
    expect(JSON.stringify(bad.data)).toContain('/params/jobs/0/files/0/md5');

    const o = await mgr.call<{ status: string; changed: number }>('dataset.obsolete', { dataset_id: ids.offline });
    expect(o).toMatchObject({ status: 'OBSOLETE', changed: 3 });
    expect((await mgr.call<{ status: string }>('dataset.status', { dataset_id: ids.offline })).status).toBe('OBSOLETE');
    expect((await rpcError(mgr.call('dataset.resume', { dataset_id: ids.offline }))).code).toBe(RpcErrorCode.CONFLICT);
    const obsoleteList = await mgr.call<{ datasets: Array<{ id: number }> }>('dataset.list', { status: 'OBSOLETE' });
    expect(obsoleteList.datasets.map((d) => d.id)).toEqual([ids.offline]);
  });

  it('users: an admin adds users and changes roles', async () => {
    const u = await admin.call<{ user: { username: string; role: string; source: string } }>('user.add', { username: 'viewer1', role: 'viewer', password: 'viewer-password' });
    expect(u.user).toMatchObject({ username: 'viewer1', role: 'viewer', source: 'local' });
    expect((await rpcError(admin.call('user.add', { username: 'viewer1', role: 'viewer', password: 'viewer-password' }))).code).toBe(RpcErrorCode.CONFLICT);
    expect((await rpcError(admin.call('user.add', { username: 'short', role: 'viewer', password: 'short' }))).code).toBe(RpcErrorCode.INVALID_PARAMS);
    expect(await admin.call('user.set_role', { username: 'viewer1', role: 'manager' })).toMatchObject({ user: { role: 'manager' } });
    const { users } = await admin.call<{ users: Array<{ username: string; role: string }> }>('user.list');
    expect(users.map((x) => [x.username, x.role])).toEqual([['admin', 'admin'], ['mgr', 'manager'], ['viewer1', 'manager']]);
    expect(JSON.stringify(users)).not.toMatch(/scrypt|password_hash/);
  });

  it('fetches external modules at submission with [tray] fetch_ca; refuses http:// naming the path', async () => {
    const port = (moduleServer.address() as { port: number }).port;
    const config = (src: string) => ({ version: 1, tasks: [{ name: 'a', trays: [{ name: 't', modules: [{ name: 'f', class: 'filter', src }] }] }] });
    const r = await mgr.call<{ dataset_id: number }>('dataset.submit', { config: config(`https://127.0.0.1:${port}/filter.py`), jobs: 1 });
    const m = await t.db('module').where({ dataset_id: r.dataset_id }).first();
    expect(m).toMatchObject({ class: 'filter', src_content: 'print("filter")\n', src_sha256: expect.stringMatching(/^[0-9a-f]{64}$/) });
    const e = await rpcError(mgr.call('dataset.submit', { config: config(`http://127.0.0.1:${port}/filter.py`), jobs: 1 }));
    expect(e.code).toBe(RpcErrorCode.INVALID_PARAMS);
    expect((e.data as { issues: Array<{ path: string }> }).issues.map((i) => i.path)).toContain('/params/config/tasks/0/trays/0/modules/0/src');
  });

  it('never logs a token or a password', () => {
    const text = logs.text();
    expect(text).toMatch(/"message":"login"/);
    for (const tok of tokens) expect(text).not.toContain(tok);
    for (const pw of ['admin-password', 'manager-password', 'viewer-password']) expect(text).not.toContain(pw);
  });
});
