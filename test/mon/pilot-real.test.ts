/**
 * Issue 5's acceptance with nothing stood in for: a real firn-mon (startMon, on MariaDB) and
 * real firn-pilot processes (the bundled dist/firn-pilot.js run with `node`, passkey in a 0600
 * file), datasets submitted through firn-tray's `dataset.submit`, tasks handed out by core's
 * claimTasks as firn-queue does, and results read back through tray (`dataset.stats`,
 * `task.logs`, `job.suspend`/`job.reset`) and the tables.
 *
 *   1. two trays of shell modules over 3 jobs: exact dataset statistics, outputs with md5/sha256, logs
 *   2. a reset revokes the passkey: the running pilot stops and kills its module; unknown task
 *      and wrong passkey get the same answer
 *   3. a module over its memory request is killed: ERROR, "memory limit exceeded"
 *   4. mon down for 30 s: the pilot completes, every update arrives after mon returns
 *   5. a corrupt cached metaproject is downloaded again
 */
import crypto from 'node:crypto';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { RpcClient, StorageRoots, TaskStatus, createUser, loadConfig, type ClaimedTask, type FirnConfig } from '@firn/core';
import { DhDaemon } from '@firn/dh';
import { startMon, type RunningMon } from '@firn/mon';
import { startTray, type Tray } from '@firn/tray';
import { createTestDb, waitUntil, type TestDb } from '../helpers/db';
import { HttpFileServer } from '../pilot/http-file-server';
import { rpcErrorOf } from './fixtures';
import { assertPilotBundle, pilotExit, processAlive, queueTasks, spawnPilot, type PilotRun } from './support/pilot-process';

interface Stat { n: number; sum: number; mean: number; stddev: number; min: number; max: number }
interface FileRow { task_id: number; local_name: string; url: string; temp_url: string | null; type: string; size: number; md5: string; sha256: string; state: string }

let t: TestDb;
let dir: string;
let config: FirnConfig;
let mon: RunningMon;
let monPort: number;
let tray: Tray;
let api: RpcClient;
let web: HttpFileServer;
const pilots: PilotRun[] = [];
/** Module processes the tests started (pid files), killed at the end whatever happened. */
const modulePidFiles: string[] = [];

function md5(b: Buffer | string): string {
  return crypto.createHash('md5').update(b).digest('hex');
}
function sha256(b: Buffer | string): string {
  return crypto.createHash('sha256').update(b).digest('hex');
}

/** Population statistics of `values`, as dataset.stats reports them. */
function expectedStat(values: number[]): Stat {
  const n = values.length;
  const sum = values.reduce((a, b) => a + b, 0);
  const mean = sum / n;
  return { n, sum, mean, stddev: Math.sqrt(values.reduce((a, v) => a + (v - mean) ** 2, 0) / n), min: Math.min(...values), max: Math.max(...values) };
}

function expectStat(got: Stat | undefined, want: Stat) {
  expect(got).toBeDefined();
  expect(got!.n).toBe(want.n);
  for (const k of ['sum', 'mean', 'stddev', 'min', 'max'] as const) expect(got![k]).toBeCloseTo(want[k], 9);
}

async function startMonOn(port: number): Promise<RunningMon> {
  const cfg = loadConfig({ env: {}, overrides: { ...configOverrides(), mon: { ...configOverrides().mon, port } } });
  return startMon({ config: cfg, db: t.db, heartbeatSeconds: 1 });
}

function configOverrides() {
  return {
    db: { url: t.url },
    tray: { host: '127.0.0.1', port: 0 },
    mon: { host: '127.0.0.1', port: 0, flush_ms: 20, web: false },
    system: { site_temp: `file://${path.join(dir, 'site-temp')}` },
    log: { level: 'error' },
  };
}

let gridCount = 0;
/** A grid of its own for each dataset (so a claim takes exactly that dataset's tasks), and the dataset submitted through tray. */
async function submit(cfg: Record<string, unknown>, jobs: number): Promise<{ datasetId: number; grid: { id: number; name: string }; tasks: Map<number, ClaimedTask> }> {
  const name = `real-${++gridCount}`;
  await api.call('grid.add', { name, plugin: 'local' });
  const grid = (await t.db('grid').select('id').where({ name }).first()) as { id: number };
  const r = await api.call<{ dataset_id: number; jobs: number; tasks: number }>('dataset.submit', { config: cfg, jobs, grids: [name] });
  expect(r).toMatchObject({ jobs, tasks: jobs });
  const tasks = await queueTasks(t.db, { id: Number(grid.id), name }, jobs);
  expect(tasks.size).toBe(jobs);
  return { datasetId: r.dataset_id, grid: { id: Number(grid.id), name }, tasks };
}

function pilot(task: ClaimedTask, extra: { cache?: string; passkey?: string } = {}): PilotRun {
  const run = spawnPilot({ mon: mon.url, taskId: task.id, passkey: extra.passkey ?? task.passkey, dir: path.join(dir, 'pilots'), ...(extra.cache ? { cache: extra.cache } : {}) });
  pilots.push(run);
  return run;
}

async function taskRow(id: number): Promise<Record<string, any>> {
  return (await t.db('task').where({ id }).first()) as Record<string, any>;
}

async function logsOf(taskId: number): Promise<Map<string, string>> {
  const { logs } = await api.call<{ logs: Array<{ name: string; data: string }> }>('task.logs', { task_id: taskId });
  return new Map(logs.map((l) => [l.name, l.data]));
}

/** `{code, output}` so that a failing expectation shows what the pilot said. */
async function finished(run: PilotRun, timeoutMs = 30_000) {
  return pilotExit(run, timeoutMs);
}

beforeAll(async () => {
  assertPilotBundle();
  t = await createTestDb('mariadb');
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'firn-pilot-real-'));
  config = loadConfig({ env: {}, overrides: configOverrides() });
  tray = await startTray({ config, db: t.db });
  mon = await startMon({ config, db: t.db, heartbeatSeconds: 1 });
  monPort = Number(new URL(mon.url).port);
  await createUser(t.db, { username: 'prod', role: 'admin', password: 'prod-password-1' });
  const login = new RpcClient(tray.url);
  const { token } = await login.call<{ token: string }>('auth.login', { username: 'prod', password: 'prod-password-1' });
  login.close();
  api = new RpcClient(tray.url, { token });
  web = await new HttpFileServer(path.join(dir, 'www')).listen();
}, 120_000);

afterEach(() => {
  // nothing a test started may outlive it: every pilot has exited
  const leaked = pilots.filter((p) => p.running());
  for (const p of leaked) p.child.kill('SIGKILL');
  pilots.length = 0;
  expect(leaked.map((p) => `task ${p.taskId}: ${p.output()}`)).toEqual([]);
});

afterAll(async () => {
  for (const p of pilots) if (p.running()) p.child.kill('SIGKILL');
  for (const f of modulePidFiles) {
    const pid = Number(fs.existsSync(f) ? fs.readFileSync(f, 'utf8').trim() : NaN);
    if (pid > 1 && processAlive(pid)) process.kill(pid, 'SIGKILL');
  }
  api?.close();
  await mon?.close();
  await tray?.close();
  await web?.close();
  await t?.drop();
  if (dir) fs.rmSync(dir, { recursive: true, force: true });
}, 60_000);

describe('firn-mon on MariaDB with real firn-pilot processes', () => {
  test('a task with two trays of shell modules runs on 3 jobs: exact statistics, checksummed outputs, logs through tray', async () => {
    const cfg = {
      version: 1,
      description: 'two trays, three jobs',
      steering: { parameters: { scale: 10 } },
      tasks: [{
        name: 'main',
        requirements: { memory: 500, time: 10 },
        data: [{ local: 'result.txt', remote: 'results/$(dataset)/$(job)/result.txt', movement: 'output', type: 'permanent' }],
        trays: [
          {
            name: 'gen',
            modules: [{
              name: 'make',
              class: 'shell',
              parameters: {
                command:
                  'echo "events $eval(($(job)+1)*$steering(scale))" >> "$FIRN_STATS"; echo "weight $eval(1+$(job)*0.25)" >> "$FIRN_STATS"; ' +
                  'printf "job %s of %s\\n" "$FIRN_JOB" "$(jobs_total)" > gen.txt; echo "generated job $(job)"',
              },
            }],
          },
          {
            name: 'post',
            iterations: 2,
            modules: [{
              name: 'append',
              class: 'shell',
              parameters: { command: 'cat gen.txt >> result.txt; echo "pass $(iter)" >> result.txt; echo "passes 1" >> "$FIRN_STATS"; echo "post $(iter) done" >&2' },
            }],
          },
        ],
      }],
    };
    const { datasetId, tasks } = await submit(cfg, 3);
    const runs = [...tasks.values()].map((task) => ({ task, run: pilot(task) }));
    for (const { run } of runs) expect(await finished(run)).toMatchObject({ code: 0 });

    for (const [job, task] of tasks) {
      const row = await taskRow(task.id);
      expect(row).toMatchObject({ status: TaskStatus.READYTOCOPY, host: os.hostname(), passkey_hash: sha256(task.passkey) });
      expect(Number(row.wall_seconds)).toBeGreaterThan(0);
      // per-task statistics: the FIRN_STATS lines of every module (both iterations of post summed), CPU time always
      const stats = Object.fromEntries(((await t.db('task_stat').select('name', 'value').where({ task_id: task.id })) as Array<{ name: string; value: number }>).map((r) => [r.name, Number(r.value)]));
      expect(Object.keys(stats).sort()).toEqual(['cpu_seconds', 'events', 'passes', 'weight']);
      expect(stats).toMatchObject({ events: (job + 1) * 10, weight: 1 + job * 0.25, passes: 2 });

      // the output, staged to site_temp with the checksums mon recorded
      const files = (await t.db('file').where({ task_id: task.id, kind: 'output' })) as FileRow[];
      expect(files).toHaveLength(1);
      const f = files[0]!;
      const content = `job ${job} of 3\npass 0\njob ${job} of 3\npass 1\n`;
      const staged = fileURLToPath(f.temp_url!);
      expect(staged).toBe(path.join(dir, 'site-temp', String(datasetId), String(job), 'main', 'result.txt'));
      const bytes = fs.readFileSync(staged);
      expect(bytes.toString()).toBe(content);
      expect(f).toMatchObject({
        local_name: 'result.txt', url: `file://${path.join(dir, 'site-temp', 'results', String(datasetId), String(job), 'result.txt')}`,
        type: 'permanent', state: 'STAGED', md5: md5(bytes), sha256: sha256(bytes),
      });
      expect(Number(f.size)).toBe(bytes.length);

      // logs, read through tray
      const logs = await logsOf(task.id);
      expect(logs.get('gen.make.stdout')).toBe(`generated job ${job}\n`);
      expect(logs.get('post.append.0.stderr')).toBe('post 0 done\n');
      expect(logs.get('post.append.1.stderr')).toBe('post 1 done\n');
      expect(logs.get('pilot')).toMatch(/task done; finishing/);
      for (const data of logs.values()) expect(data).not.toContain(task.passkey);
    }

    // firn-dh copies the outputs and moves the tasks to OK, which is when their statistics enter
    // the dataset's totals (once: a task whose copy fails and is retried is not counted twice)
    const dh = new DhDaemon({
      db: t.db, config: config.dh, transferRetryDelayMs: 0,
      roots: new StorageRoots({ siteTemp: pathToFileURL(path.join(dir, 'site-temp')).href, destinations: [pathToFileURL(path.join(dir, 'site-temp')).href] }),
    });
    await dh.runCycle('data');
    for (const task of tasks.values()) expect((await t.db('task').where({ id: task.id }).first()).status).toBe(TaskStatus.OK);
    // dataset statistics aggregate exactly over the three jobs
    const { stats } = await api.call<{ stats: Record<string, Stat> }>('dataset.stats', { dataset_id: datasetId });
    expect(Object.keys(stats).sort()).toEqual(['cpu_seconds', 'events', 'passes', 'weight']);
    expectStat(stats.events, expectedStat([10, 20, 30]));
    expectStat(stats.weight, expectedStat([1, 1.25, 1.5]));
    expectStat(stats.passes, expectedStat([2, 2, 2]));
    const cpu = ((await t.db('task_stat').select('value').where({ name: 'cpu_seconds' }).whereIn('task_id', [...tasks.values()].map((x) => x.id))) as Array<{ value: number }>).map((r) => Number(r.value));
    expectStat(stats.cpu_seconds, expectedStat(cpu));
    // every scratch area is gone
    for (const task of tasks.values()) expect(fs.readdirSync(path.join(dir, 'pilots', `scratch-${task.id}`))).toEqual([]);
  }, 60_000);

  test('a reset revokes the passkey: the running pilot stops and kills its module; wrong passkey and unknown task look the same', async () => {
    const pidFile = path.join(dir, 'sleeper.pid');
    modulePidFiles.push(pidFile);
    const { datasetId, grid, tasks } = await submit({
      version: 1,
      tasks: [{ name: 'long', trays: [{ name: 'only', modules: [{ name: 'sleeper', class: 'shell', parameters: { command: `echo $$ > ${pidFile}; exec sleep 30` } }] }] }],
    }, 1);
    const task = tasks.get(0)!;
    const run = pilot(task);
    const modulePid = await waitUntil(() => {
      const s = fs.existsSync(pidFile) ? fs.readFileSync(pidFile, 'utf8').trim() : '';
      return s ? Number(s) : 0;
    }, 20_000, 'the sleeping module to start');
    expect(processAlive(modulePid)).toBe(true);
    expect((await taskRow(task.id)).status).toBe(TaskStatus.PROCESSING);

    // a person suspends and resets the job: PROCESSING → SUSPENDED → RESET → WAITING, passkey revoked
    const resetAt = Date.now();
    await api.call('job.suspend', { dataset_id: datasetId, job_index: 0, reason: 'test' });
    const reset = await api.call<{ changed: number; waiting: number }>('job.reset', { dataset_id: datasetId, job_index: 0, reason: 'test' });
    expect(reset).toMatchObject({ changed: 1, waiting: 1 });
    expect(await taskRow(task.id)).toMatchObject({ status: TaskStatus.WAITING, passkey_hash: null });

    // within a few heartbeats (1 s) the pilot hears -32009, kills the module and exits non-zero
    const exit = await finished(run, 10_000);
    expect(exit).toMatchObject({ code: 3 });
    expect(exit.output).toMatch(/passkey refused by mon/);
    expect(Date.now() - resetAt).toBeLessThan(10_000);
    await waitUntil(() => !processAlive(modulePid), 5_000, 'the killed module to be gone'); // SIGKILL is asynchronous
    expect(fs.readdirSync(path.join(dir, 'pilots', `scratch-${task.id}`))).toEqual([]);
    // the stale pilot wrote nothing after the reset: no mon transition, no statistics
    const after = (await t.db('history').where({ entity: 'task', entity_id: task.id }).andWhere('created_at', '>=', resetAt).orderBy('id')) as Array<{ actor: string; to_status?: string }>;
    expect(after.map((h) => h.actor)).not.toContain('mon');
    expect(await t.db('task_stat').where({ task_id: task.id })).toEqual([]);
    expect((await taskRow(task.id)).status).toBe(TaskStatus.WAITING);

    // requeued with a new passkey: the old one is still refused, the new one accepted
    const client = new RpcClient(mon.url);
    try {
      const again = (await queueTasks(t.db, grid, 1)).get(0)!;
      expect(again.id).toBe(task.id);
      const stale = await rpcErrorOf(client, 'pilot.start', { task_id: task.id, passkey: task.passkey });
      const wrong = await rpcErrorOf(client, 'pilot.start', { task_id: task.id, passkey: crypto.randomBytes(32).toString('hex') });
      const unknown = await rpcErrorOf(client, 'pilot.start', { task_id: 2_000_000_000, passkey: crypto.randomBytes(32).toString('hex') });
      const shape = (e: { name: string; code: number; message: string; data?: unknown }) => ({ name: e.name, code: e.code, message: e.message, data: e.data });
      expect(shape(wrong)).toEqual(shape(unknown));
      expect(shape(stale)).toEqual(shape(unknown));
      expect(unknown.code).toBe(-32009);
      const ok = await client.call<{ task: { id: number } }>('pilot.start', { task_id: task.id, passkey: again.passkey });
      expect(ok.task.id).toBe(task.id);
    } finally {
      client.close();
    }
  }, 60_000);

  test('a pilot on a black-holed host is refused at pilot.start and exits without running anything; the task stays QUEUED', async () => {
    const marker = path.join(dir, 'blackhole-ran');
    const { tasks } = await submit({
      version: 1,
      tasks: [{ name: 'never', trays: [{ name: 'only', modules: [{ name: 'touch', class: 'shell', parameters: { command: `touch ${marker}` } }] }] }],
    }, 1);
    const task = tasks.get(0)!;
    const until = Date.now() + 10 * 60_000;
    // what firn-dh leaves for this host (the name the pilot reports: os.hostname(); earlier tests' pilots may have made its row)
    if ((await t.db('node').where({ hostname: os.hostname() }).update({ blackholed_until: until, recent: '' })) === 0) {
      await t.db('node').insert({ hostname: os.hostname(), grid_id: null, ok_count: 0, fail_count: 5, recent: '', blackholed_until: until, updated_at: Date.now() });
    }
    try {
      const exit = await finished(pilot(task), 20_000);
      expect(exit.code).toBe(3);
      expect(exit.output).toContain(`host ${os.hostname()} is black-holed until ${new Date(until).toISOString()}`);
      expect(fs.existsSync(marker)).toBe(false);
      expect(await taskRow(task.id)).toMatchObject({ status: TaskStatus.QUEUED, host: null, started_at: null });
      const hist = (await t.db('history').where({ entity: 'task', entity_id: task.id, action: 'refuse' })) as Array<{ actor: string; reason: string }>;
      expect(hist.map((h) => h.actor)).toEqual(['mon']);
      expect(await t.db('task_log').where({ task_id: task.id })).toEqual([]);
    } finally {
      await t.db('node').where({ hostname: os.hostname() }).update({ blackholed_until: null });
    }
    // the cool-down over (here: cleared), the same passkey starts the task
    expect(await finished(pilot(task), 30_000)).toMatchObject({ code: 0 });
    expect(fs.existsSync(marker)).toBe(true);
    expect((await taskRow(task.id)).status).toBe(TaskStatus.READYTOCOPY);
  }, 60_000);

  test('a module exceeding its memory request is killed and the task goes to ERROR with "memory limit exceeded"', async () => {
    const pidFile = path.join(dir, 'hog.pid');
    modulePidFiles.push(pidFile);
    const hog = [
      'import os, time',
      `open(${JSON.stringify(pidFile)}, "w").write(str(os.getpid()))`,
      'b = bytearray(400 * 1024 * 1024)',
      'for i in range(0, len(b), 4096): b[i] = 1',
      'time.sleep(30)',
    ].join('\n');
    const { tasks } = await submit({
      version: 1,
      tasks: [{
        name: 'hungry',
        requirements: { memory: 100 },
        trays: [{ name: 'only', modules: [{ name: 'hog', class: 'shell', parameters: { args: ['python3', '-c', hog] } }] }],
      }],
    }, 1);
    const task = tasks.get(0)!;
    const started = Date.now();
    const exit = await finished(pilot(task), 30_000);
    expect(exit).toMatchObject({ code: 1 });
    expect(Date.now() - started).toBeLessThan(25_000); // killed, not slept out
    const row = await taskRow(task.id);
    expect(row.status).toBe(TaskStatus.ERROR);
    expect(row.error_summary).toMatch(/memory limit exceeded/);
    expect(row.error_summary).toMatch(/> 100 MB/);
    const pid = Number(fs.readFileSync(pidFile, 'utf8'));
    // SIGKILL is asynchronous: a process freeing 400 MB may take a moment to be gone
    await waitUntil(() => !processAlive(pid), 5_000, 'the killed module to be gone');
    // a failed attempt contributes no statistics
    expect(await t.db('dataset_stat').where({ dataset_id: task.datasetId })).toEqual([]);
  }, 60_000);

  test('firn-mon stopped for 30 s while a pilot runs: the pilot completes and every update arrives after mon returns', async () => {
    const marker = path.join(dir, 'outage.started');
    const { datasetId, tasks } = await submit({
      version: 1,
      tasks: [{
        name: 'steady',
        data: [{ local: 'out.dat', remote: 'steady/$(job)/out.dat', movement: 'output' }],
        trays: [
          { name: 'first', modules: [{ name: 'slow', class: 'shell', parameters: { command: `touch ${marker}; sleep 4; echo "slept 4" >> "$FIRN_STATS"; echo first done` } }] },
          { name: 'second', modules: [{ name: 'write', class: 'shell', parameters: { command: 'seq 1 5000 > out.dat; echo "events 7" >> "$FIRN_STATS"; echo "energy 2.5" >> "$FIRN_STATS"' } }] },
        ],
      }],
    }, 1);
    const task = tasks.get(0)!;
    const run = pilot(task);
    await waitUntil(() => fs.existsSync(marker), 20_000, 'the slow module to start');
    expect((await taskRow(task.id)).status).toBe(TaskStatus.PROCESSING);

    await mon.close();
    const downAt = Date.now();
    // the pilot finishes its modules meanwhile and buffers stats, files, logs and finish
    await waitUntil(() => /mon unreachable; buffering updates/.test(run.output()), 15_000, 'the pilot to notice mon is gone');
    await new Promise((r) => setTimeout(r, Math.max(0, 30_000 - (Date.now() - downAt))));
    expect(run.running()).toBe(true);
    const during = await taskRow(task.id);
    expect(during.status).toBe(TaskStatus.PROCESSING);
    expect(await t.db('task_stat').where({ task_id: task.id })).toEqual([]);
    expect(await t.db('file').where({ task_id: task.id })).toEqual([]);

    mon = await startMonOn(monPort);
    const upAt = Date.now();
    expect(Number(new URL(mon.url).port)).toBe(monPort);
    const exit = await finished(run, 20_000);
    expect(exit).toMatchObject({ code: 0 });

    const row = await taskRow(task.id);
    expect(row.status).toBe(TaskStatus.READYTOCOPY);
    expect(Number(row.finished_at)).toBeGreaterThanOrEqual(upAt);
    const done = (await t.db('history').where({ entity: 'task', entity_id: task.id, to_status: TaskStatus.READYTOCOPY })) as Array<{ created_at: number }>;
    expect(done).toHaveLength(1);
    expect(Number(done[0]!.created_at)).toBeGreaterThanOrEqual(upAt);

    const taskStats = Object.fromEntries(((await t.db('task_stat').where({ task_id: task.id })) as Array<{ name: string; value: number }>).map((r) => [r.name, Number(r.value)]));
    expect(taskStats).toMatchObject({ slept: 4, events: 7, energy: 2.5 });
    // the dataset's totals take a task's statistics when firn-dh moves it to OK, not before
    const { stats } = await api.call<{ stats: Record<string, Stat> }>('dataset.stats', { dataset_id: datasetId });
    expect(stats).toEqual({});

    const files = (await t.db('file').where({ task_id: task.id, kind: 'output' })) as Array<FileRow & { created_at: number }>;
    expect(files).toHaveLength(1);
    const bytes = fs.readFileSync(fileURLToPath(files[0]!.temp_url!));
    expect(bytes.toString()).toBe(Array.from({ length: 5000 }, (_, i) => `${i + 1}\n`).join(''));
    expect(files[0]).toMatchObject({ md5: md5(bytes), sha256: sha256(bytes), local_name: 'out.dat' });
    expect(Number(files[0]!.created_at)).toBeGreaterThanOrEqual(upAt);

    const logs = await logsOf(task.id);
    expect(logs.get('first.slow.stdout')).toBe('first done\n');
    // the pilot's own log was taken before the backlog went out; it says what it buffered
    expect(logs.get('pilot')).toMatch(/mon unreachable; buffering updates[\s\S]*task done; finishing/);
    expect(exit.output).toMatch(/mon reachable again/);
    const logRows = (await t.db('task_log').where({ task_id: task.id })) as Array<{ updated_at: number }>;
    for (const l of logRows) expect(Number(l.updated_at)).toBeGreaterThanOrEqual(upAt);
  }, 90_000);

  test('a corrupted cached metaproject is detected and downloaded again', async () => {
    const src = path.join(dir, 'tools-src');
    fs.mkdirSync(path.join(src, 'bin'), { recursive: true });
    fs.writeFileSync(path.join(src, 'bin', 'hello'), '#!/bin/sh\necho "hello from tools"\n', { mode: 0o755 });
    fs.mkdirSync(web.root, { recursive: true });
    const tarball = path.join(web.root, 'tools.tar.gz');
    execFileSync('tar', ['-czf', tarball, '-C', src, 'bin']);
    const good = fs.readFileSync(tarball);
    const { tasks } = await submit({
      version: 1,
      steering: { metaprojects: [{ name: 'tools', url: `${web.url}/tools.tar.gz`, checksum: { md5: md5(good), sha256: sha256(good) } }] },
      tasks: [{
        name: 'withtools',
        trays: [{ name: 'run', metaproject: 'tools', modules: [{ name: 'hello', class: 'shell', parameters: { command: 'hello; echo "hellos 1" >> "$FIRN_STATS"' } }] }],
      }],
    }, 3);
    const cache = path.join(dir, 'mp-cache');
    const hits = () => web.hits.get('/tools.tar.gz') ?? 0;

    // job 0: downloaded into the cache
    const first = tasks.get(0)!;
    expect(await finished(pilot(first, { cache }))).toMatchObject({ code: 0 });
    expect(hits()).toBe(1);
    const cached = fs.readdirSync(cache).filter((f) => !f.startsWith('.'));
    expect(cached).toHaveLength(1);
    const cachedFile = path.join(cache, cached[0]!);
    expect(sha256(fs.readFileSync(cachedFile))).toBe(sha256(good));
    expect((await logsOf(first.id)).get('run.hello.stdout')).toBe('hello from tools\n');

    // corrupt the cached copy (same size, bytes flipped in the middle)
    const bad = Buffer.from(good);
    for (let i = Math.floor(bad.length / 2); i < Math.min(bad.length, Math.floor(bad.length / 2) + 16); i++) bad[i] = bad[i]! ^ 0xff;
    fs.writeFileSync(cachedFile, bad);

    // job 1: the corrupt copy is detected, downloaded again, and the task succeeds
    const second = tasks.get(1)!;
    expect(await finished(pilot(second, { cache }))).toMatchObject({ code: 0 });
    expect(hits()).toBe(2);
    expect(sha256(fs.readFileSync(cachedFile))).toBe(sha256(good));
    const logs2 = await logsOf(second.id);
    expect(logs2.get('run.hello.stdout')).toBe('hello from tools\n');
    expect(logs2.get('pilot')).toMatch(/cached metaproject is corrupt; downloading it again/);
    expect((await taskRow(second.id)).status).toBe(TaskStatus.READYTOCOPY);

    // job 2: the intact copy is used as is
    const third = tasks.get(2)!;
    expect(await finished(pilot(third, { cache }))).toMatchObject({ code: 0 });
    expect(hits()).toBe(2);
    expect((await logsOf(third.id)).get('pilot')).toMatch(/metaproject from cache/);
  }, 60_000);
});
