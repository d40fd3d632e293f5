/**
 * The local plugin's long-lived pilots (`firn-pilot --worker`, [queue] pilot_reuse) with
 * nothing stood in for: a real firn-mon on MariaDB, datasets submitted through firn-tray,
 * tasks claimed as firn-queue claims them, and the LocalPlugin starting the bundled
 * dist/firn-pilot.js as workers.
 *
 *   1. 8 tasks on 2 workers: every task done through mon, exact statistics, the submit
 *      script's files in every task directory, and only 2 pilot processes
 *   2. removing a running job stops its task inside the worker; the worker goes on to the next
 *   3. a pilot that does not know --worker: the plugin says why and runs a process per task
 *   4. a pilot that starts before its site recorded the submission (QUEUEING) is told to
 *      retry, not that its passkey is stale
 */
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { RpcClient, TaskStatus, claimTasks, createUser, loadConfig, type ClaimedTask, type FirnConfig } from '@firn/core';
import { startMon, type RunningMon } from '@firn/mon';
import { BatchState, LocalPlugin, type SubmitBatch } from '@firn/queue';
import { startTray, type Tray } from '@firn/tray';
import { createTestDb, waitUntil, type TestDb } from '../helpers/db';
import { rpcErrorOf } from './fixtures';
import { PILOT_BUNDLE, assertPilotBundle, processAlive, queueTasks } from './support/pilot-process';

let t: TestDb;
let dir: string;
let mon: RunningMon;
let tray: Tray;
let api: RpcClient;
const plugins: LocalPlugin[] = [];
const pidsToKill: number[] = [];

beforeAll(async () => {
  assertPilotBundle();
  t = await createTestDb('mariadb');
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'firn-pilot-workers-'));
  const config: FirnConfig = loadConfig({
    env: {},
    overrides: {
      db: { url: t.url },
      tray: { host: '127.0.0.1', port: 0 },
      mon: { host: '127.0.0.1', port: 0, flush_ms: 20, web: false },
      system: { site_temp: `file://${path.join(dir, 'site-temp')}` },
      log: { level: 'error' },
    },
  });
  tray = await startTray({ config, db: t.db });
  mon = await startMon({ config, db: t.db, heartbeatSeconds: 1 });
  await createUser(t.db, { username: 'prod', role: 'admin', password: 'prod-password-1' });
  const login = new RpcClient(tray.url);
  const { token } = await login.call<{ token: string }>('auth.login', { username: 'prod', password: 'prod-password-1' });
  login.close();
  api = new RpcClient(tray.url, { token });
}, 120_000);

afterAll(async () => {
  for (const p of plugins) await p.close();
  for (const pid of pidsToKill) if (processAlive(pid)) process.kill(-pid, 'SIGKILL');
  api?.close();
  await mon?.close();
  await tray?.close();
  await t?.drop();
  if (dir) fs.rmSync(dir, { recursive: true, force: true });
}, 60_000);

let gridCount = 0;
async function submit(cfg: Record<string, unknown>, jobs: number): Promise<{ datasetId: number; grid: { id: number; name: string } }> {
  const name = `workers-${++gridCount}`;
  await api.call('grid.add', { name, plugin: 'local' });
  const grid = (await t.db('grid').select('id').where({ name }).first()) as { id: number };
  const r = await api.call<{ dataset_id: number }>('dataset.submit', { config: cfg, jobs, grids: [name] });
  return { datasetId: r.dataset_id, grid: { id: Number(grid.id), name } };
}

function plugin(name: string, o: { pilotCommand?: string; concurrency?: number; warnings?: string[] } = {}): LocalPlugin {
  const submitDir = path.join(dir, name);
  fs.mkdirSync(submitDir, { recursive: true });
  const p = new LocalPlugin(null, {
    grid: name,
    monUrl: mon.url,
    pilotCommand: o.pilotCommand ?? `${process.execPath} ${PILOT_BUNDLE}`,
    scratch: path.join(dir, 'scratch'),
    environment: { FIRN_PILOT_HEARTBEAT_SECONDS: '1' },
    concurrency: o.concurrency ?? 2,
    pilotReuse: 100,
    pilotIdleSeconds: 2,
    submitDir,
    onWarning: (m) => o.warnings?.push(m),
  });
  plugins.push(p);
  return p;
}

/** Passkey files and the submission of claimed tasks to a plugin, as firn-queue does. */
async function submitTo(p: LocalPlugin, name: string, tasks: ClaimedTask[]): Promise<Map<number, string>> {
  const batchDir = path.join(dir, name, `batch-${Date.now()}`);
  const batch: SubmitBatch = {
    dir: batchDir,
    tasks: tasks.map((c) => ({
      taskId: c.id, datasetId: c.datasetId, jobIndex: c.jobIndex, taskName: c.name, requirements: c.requirements,
      taskDir: path.join(batchDir, `task-${c.id}`), passkeyFile: path.join(batchDir, `task-${c.id}`, 'passkey'),
    })),
  };
  const script = await p.writeConfig(batch);
  for (const c of tasks) fs.writeFileSync(path.join(batchDir, `task-${c.id}`, 'passkey'), c.passkey, { mode: 0o600 });
  return (await p.submit(batch, script)).batchIds;
}

function pidFileOf(name: string, batchId: string): string {
  const found = execFileSync('find', [path.join(dir, name), '-name', `${batchId}.pid`], { encoding: 'utf8' }).trim();
  return found.split('\n')[0]!;
}

const pidOf = (file: string) => fs.readFileSync(file, 'utf8').trim().split(/\s+/);

describe('the local plugin with long-lived firn-pilot workers, against a real firn-mon', () => {
  test('8 tasks on 2 workers: all done through mon with exact statistics, the task files the script writes, 2 pilot processes', async () => {
    const { datasetId, grid } = await submit({
      version: 1,
      tasks: [{ name: 'count', trays: [{ name: 't', modules: [{ name: 'm', class: 'shell', parameters: { command: 'echo "out $FIRN_JOB"; echo "events $((FIRN_JOB * 10 + 1))" > "$FIRN_STATS"' } }] }] }],
    }, 8);
    const claimed = [...(await queueTasks(t.db, grid, 8)).values()];
    const p = plugin(grid.name);
    const ids = await submitTo(p, grid.name, claimed);
    const batchIds = [...ids.values()];
    const states = await waitUntil(async () => {
      const s = await p.checkJobStatus(batchIds);
      return [...s.values()].every((x) => x.state === BatchState.COMPLETED) ? s : null;
    }, 60_000, 'every job to complete');
    expect([...states.values()].map((s) => s.exitCode)).toEqual(Array(8).fill(0));

    const rows = (await t.db('task').select('id', 'status').where({ dataset_id: datasetId })) as Array<{ id: number; status: string }>;
    expect(rows.map((r) => r.status)).toEqual(Array(8).fill(TaskStatus.READYTOCOPY)); // firn-dh (not running here) takes it on
    // every task's statistics reached mon (the dataset's totals take them when firn-dh moves the tasks to OK)
    const events = ((await t.db('task_stat').select('value').where({ name: 'events' }).whereIn('task_id', rows.map((r) => r.id))) as Array<{ value: number }>).map((r) => Number(r.value));
    expect(events.sort((x, y) => x - y)).toEqual([0, 1, 2, 3, 4, 5, 6, 7].map((j) => j * 10 + 1));

    const workers = new Set<string>();
    for (const c of claimed) {
      const taskDir = path.join(path.dirname(pidFileOf(grid.name, ids.get(c.id)!)), `task-${c.id}`);
      expect(fs.readFileSync(path.join(taskDir, 'exit_code'), 'utf8')).toBe('0\n');
      expect(fs.readFileSync(path.join(taskDir, 'stderr'), 'utf8')).toMatch(new RegExp(`finished task_id=${c.id} .*status=READYTOCOPY`));
      const pid = pidOf(pidFileOf(grid.name, ids.get(c.id)!));
      expect(pid[2]).toBe('worker');
      workers.add(`${pid[0]} ${pid[1]}`);
    }
    expect(workers.size).toBeLessThanOrEqual(2);
    expect(p.workerProblem).toBeNull();
    // idle workers go after pilotIdleSeconds
    await waitUntil(() => p.workerCount === 0, 15_000, 'idle workers to exit');
  }, 120_000);

  test('one worker, 5 tasks: each starts in an empty work directory with fresh logs and stats (the reused task area leaks nothing), and the area goes with the worker', async () => {
    const { datasetId, grid } = await submit({
      version: 1,
      tasks: [{ name: 'leak', trays: [{ name: 't', modules: [{ name: 'm', class: 'shell', parameters: {
        // fails (exit 9) if anything of an earlier task is still in its scratch; leaves files behind
        command: 'test -z "$(ls -A .)" || { ls -A >&2; exit 9; }; echo "out $FIRN_JOB"; mkdir -p sub/deep; echo x > sub/deep/f; touch .hidden; echo "job $FIRN_JOB" > "$FIRN_STATS"',
      } }] }] }],
    }, 5);
    const claimed = [...(await queueTasks(t.db, grid, 5)).values()];
    const p = plugin(grid.name, { concurrency: 1 });
    const ids = await submitTo(p, grid.name, claimed);
    const states = await waitUntil(async () => {
      const s = await p.checkJobStatus([...ids.values()]);
      return [...s.values()].every((x) => x.state === BatchState.COMPLETED) ? s : null;
    }, 60_000, 'every job to complete');
    expect([...states.values()].map((s) => s.exitCode)).toEqual(Array(5).fill(0));
    const rows = (await t.db('task').select('id', 'status', 'job_id').where({ dataset_id: datasetId }).orderBy('id')) as Array<{ id: number; status: string }>;
    expect(rows.map((r) => r.status)).toEqual(Array(5).fill(TaskStatus.READYTOCOPY));
    const workers = new Set(claimed.map((c) => pidOf(pidFileOf(grid.name, ids.get(c.id)!)).slice(0, 2).join(' ')));
    expect(workers.size).toBe(1);
    // each task's module log holds its own line only, each task's statistics its own value
    for (const c of claimed) {
      const log = (await t.db('task_log').select('data').where({ task_id: c.id, name: 't.m.stdout' }).first()) as { data: string };
      expect(log.data).toBe(`out ${c.jobIndex}\n`);
      const stat = (await t.db('task_stat').select('value').where({ task_id: c.id, name: 'job' }).first()) as { value: number };
      expect(Number(stat.value)).toBe(c.jobIndex);
    }
    const scratch = path.join(dir, 'scratch');
    expect(fs.readdirSync(scratch).filter((n) => n.startsWith('firn-worker-'))).toHaveLength(1);
    await waitUntil(() => p.workerCount === 0, 15_000, 'the idle worker to exit');
    await waitUntil(() => fs.readdirSync(scratch).filter((n) => n.startsWith('firn-worker-')).length === 0, 5_000, 'the worker to remove its task area');
  }, 120_000);

  test('removing a running job stops its task inside the worker; the same worker then runs the next task', async () => {
    const { datasetId, grid } = await submit({
      version: 1,
      tasks: [{ name: 'long', trays: [{ name: 't', modules: [{ name: 'm', class: 'shell', parameters: { command: 'if [ "$FIRN_JOB" = 0 ]; then exec sleep 60; fi; echo short' } }] }] }],
    }, 2);
    const claimed = [...(await queueTasks(t.db, grid, 2)).values()].sort((a, b) => a.jobIndex - b.jobIndex);
    const p = plugin(grid.name, { concurrency: 1 });
    const ids = await submitTo(p, grid.name, [claimed[0]!]);
    const longId = ids.get(claimed[0]!.id)!;
    await waitUntil(async () => (await t.db('task').where({ id: claimed[0]!.id }).first())?.status === TaskStatus.PROCESSING, 30_000, 'the long task to run');
    const [workerPid] = pidOf(pidFileOf(grid.name, longId));
    pidsToKill.push(Number(workerPid));

    const removedAt = Date.now();
    await p.remove([longId]);
    await waitUntil(async () => (await p.checkJobStatus([longId])).get(longId)?.rawState === 'cancelled', 8_000, 'the long job to be cancelled');
    expect(Date.now() - removedAt).toBeLessThan(8_000); // stopped by the worker, not by the 10-s SIGKILL fallback
    expect(processAlive(Number(workerPid))).toBe(true);

    const next = await submitTo(p, grid.name, [claimed[1]!]);
    const shortId = next.get(claimed[1]!.id)!;
    await waitUntil(async () => (await p.checkJobStatus([shortId])).get(shortId)?.state === BatchState.COMPLETED, 30_000, 'the short job');
    expect(pidOf(pidFileOf(grid.name, shortId))[0]).toBe(workerPid);
    expect((await t.db('task').where({ id: claimed[1]!.id }).first())?.status).toBe(TaskStatus.READYTOCOPY);
    // the stopped task told mon it failed (a later reset by dh/queue decides what happens next)
    const long = (await t.db('task').where({ id: claimed[0]!.id }).first()) as { status: string };
    expect([TaskStatus.ERROR, TaskStatus.PROCESSING]).toContain(long.status);
    void datasetId;
  }, 120_000);

  test('a pilot that does not know --worker: the plugin says why and runs a pilot process per task', async () => {
    const { grid } = await submit({ version: 1, tasks: [{ name: 'x', trays: [{ name: 't', modules: [{ name: 'm', class: 'shell', parameters: { command: 'true' } }] }] }] }, 2);
    const claimed = [...(await queueTasks(t.db, grid, 2)).values()];
    // an older firn-pilot: same name, refuses the flag
    const old = path.join(dir, 'old', 'firn-pilot');
    fs.mkdirSync(path.dirname(old), { recursive: true });
    fs.writeFileSync(old, `#!/bin/sh\nfor a in "$@"; do [ "$a" = --worker ] && { echo "firn-pilot: Unknown option '--worker'" >&2; exit 2; }; done\nexec ${process.execPath} ${PILOT_BUNDLE} "$@"\n`, { mode: 0o755 });
    const warnings: string[] = [];
    const p = plugin(grid.name, { pilotCommand: old, warnings });
    const ids = await submitTo(p, grid.name, claimed);
    await waitUntil(async () => [...(await p.checkJobStatus([...ids.values()])).values()].every((s) => s.state === BatchState.COMPLETED), 60_000, 'both jobs');
    expect(p.workerProblem).toMatch(/exited \(code 2\) before reporting ready/);
    expect(warnings.join('\n')).toMatch(/pilot workers are off, every task gets its own pilot process/);
    for (const id of ids.values()) expect(pidOf(pidFileOf(grid.name, id))).toHaveLength(2); // a process of its own, not a worker
  }, 120_000);

  test('pilot.start for a task its site has not recorded as QUEUED yet: "retry" (-32029), then accepted once QUEUED', async () => {
    const { grid } = await submit({ version: 1, tasks: [{ name: 'x', trays: [{ name: 't', modules: [{ name: 'm', class: 'shell', parameters: { command: 'true' } }] }] }] }, 1);
    const [c] = await claimTasks(t.db, { gridId: grid.id, gridName: grid.name, limit: 1, capabilities: {}, leaseMs: 60_000, owner: `queue:${grid.name}` });
    const client = new RpcClient(mon.url);
    try {
      const early = await rpcErrorOf(client, 'pilot.start', { task_id: c!.id, passkey: c!.passkey });
      expect(early.code).toBe(-32029);
      expect(early.message).toMatch(/still being queued/);
      const wrong = await rpcErrorOf(client, 'pilot.start', { task_id: c!.id, passkey: 'x'.repeat(64) });
      expect(wrong.code).toBe(-32009); // a wrong passkey still looks like an unknown task
      await t.db('task').where({ id: c!.id }).update({ status: TaskStatus.QUEUED, batch_id: 'test' });
      const ok = await client.call<{ task: { id: number } }>('pilot.start', { task_id: c!.id, passkey: c!.passkey });
      expect(ok.task.id).toBe(c!.id);
    } finally {
      client.close();
    }
  }, 60_000);
});
