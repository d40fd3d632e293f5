/**
 * One firn-queue per submit directory (issue 15), real firn-queue processes on MariaDB:
 * - a second daemon on the same config refuses to start, exiting non-zero with a message naming
 *   the first one's pid; the lock is released on a clean stop (SIGTERM), after which it starts;
 * - two daemons on one grid with two submit directories (two submit hosts), 60 tasks: every task
 *   is submitted and started exactly once (the stand-in pilot's ledger: one record per task),
 *   and neither daemon declares the other's jobs lost (0 evictions) over several cycles;
 * - the same through the whole suite (firn-tray, firn-mon, firn-dh and the two firn-queues as
 *   processes, real pilots): 60 jobs, every task OK, each task's module ran exactly once (a
 *   ledger line per module run), no EVICTED transition, both daemons took part.
 */
import fs from 'node:fs';
import path from 'node:path';
import { TaskStatus } from '@firn/core';
import { E2eSuite } from '../e2e/harness';
import { createTestDb, waitUntil, type TestDb } from '../helpers/db';
import { killRecordedPilots, randomTaskIdBase, recordsByTask, runQueue, spawnQueue, tempDir, writeIni, writeStandInPilot } from '../queue/support/harness';
import { addGrid, seedDataset } from '../queue/support/seed';

let t: TestDb;
let dir: string;
let records: string;
const children: Array<ReturnType<typeof spawnQueue>> = [];

beforeEach(async () => {
  t = await createTestDb('mariadb');
  await randomTaskIdBase(t.db, 'mariadb');
  dir = tempDir('firn-queue-lock-');
  records = path.join(dir, 'records');
  fs.mkdirSync(records);
});
afterEach(async () => {
  for (const c of children.splice(0)) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
  killRecordedPilots(records);
  await t.drop();
  fs.rmSync(dir, { recursive: true, force: true });
});

function ini(name: string, grid: string, submitDir: string): string {
  return writeIni(path.join(dir, `${name}.ini`), {
    db: { url: t.url },
    queue: {
      grid, plugin: 'local', submit_dir: submitDir, schedule: '*/2 * * * * *', max_queued: 100, max_submit_per_cycle: 15,
      capabilities: '{"cpu": 2, "memory": 1000}', concurrency: 64,
    },
    system: { pilot: writeStandInPilot(dir) },
    mon: { url: 'http://127.0.0.1:9/' },
    environment: { FIRN_TEST_RECORD: records, FIRN_TEST_SLEEP: '90' },
    log: { level: 'warn', format: 'json' },
  });
}

test('a second firn-queue on the same submit directory refuses to start and names the holder\'s pid; a clean stop releases the lock', async () => {
  const submitDir = path.join(dir, 'submit');
  const file = ini('queue', `lock-${process.pid}`, submitDir);
  const first = spawnQueue(['--config', file]);
  children.push(first);
  const lockFile = path.join(submitDir, '.firn-queue.lock');
  await waitUntil(() => fs.existsSync(lockFile) && fs.readFileSync(lockFile, 'utf8').includes(`"pid":${first.pid}`), 30_000, 'the first daemon holds the lock');

  const second = await runQueue(['--config', file, '--once'], {}, 60_000);
  expect(second.code).toBe(1);
  expect(second.stderr).toContain(`locked by another firn-queue: pid ${first.pid} on `);

  first.kill('SIGTERM');
  expect((await first.done).code).toBe(0);
  expect(fs.existsSync(lockFile)).toBe(false);
  const third = await runQueue(['--config', file, '--once'], {}, 60_000);
  expect(third.code).toBe(0);
  expect(fs.existsSync(lockFile)).toBe(false);
}, 120_000);

test('two firn-queues on one grid with two submit directories: 60 tasks, each started once, none evicted', async () => {
  const grid = `two-hosts-${process.pid}`;
  const gridId = await addGrid(t.db, grid, {}, 'local');
  const ds = await seedDataset(t.db, { jobs: 60, grids: [gridId], tasks: [{ name: 'main', req: { memory: 100 } }] });
  const a = spawnQueue(['--config', ini('a', grid, path.join(dir, 'submit-a'))]);
  const b = spawnQueue(['--config', ini('b', grid, path.join(dir, 'submit-b'))]);
  children.push(a, b);
  await waitUntil(async () => recordsByTask(records).size === ds.all.length, 90_000, 'every task started');
  // several more cycles of both daemons over each other's running jobs (lost grace is 10 s)
  const until = Date.now() + 14_000;
  await waitUntil(() => Date.now() > until, 20_000, 'more cycles');

  const byTask = recordsByTask(records);
  for (const id of ds.all) expect({ id, starts: byTask.get(id)?.length }).toEqual({ id, starts: 1 });
  const rows: Array<{ status: string; evictions: number; batch_id: string }> = await t.db('task').select('status', 'evictions', 'batch_id').whereIn('id', ds.all);
  expect(rows.filter((r) => r.status !== TaskStatus.QUEUED)).toEqual([]);
  expect(rows.reduce((n, r) => n + Number(r.evictions), 0)).toBe(0);
  expect(await t.db('history').where({ entity: 'task', to_status: 'EVICTED' })).toHaveLength(0);
  // both daemons took part (each its own submit directory)
  const submitDirs = new Set(rows.map((r) => r.batch_id.slice(-16, -8)));
  expect(submitDirs.size).toBe(2);
  a.kill('SIGTERM');
  b.kill('SIGTERM');
  expect([(await a.done).code, (await b.done).code]).toEqual([0, 0]);
}, 180_000);

describe('two firn-queues on one grid with two submit directories, through the whole suite', () => {
  const JOBS = 60;
  let suite: E2eSuite;
  beforeAll(async () => {
    suite = await E2eSuite.create({ name: 'two-queues', queue: { plugin: 'local', extra: { concurrency: 4, max_queued: 40, max_submit_per_cycle: 8 } } });
    await suite.guard(async () => {
      await suite.startAll();
      await suite.startQueue('queue-b', { concurrency: 4, max_queued: 40, max_submit_per_cycle: 8 });
    });
  }, 120_000);
  afterAll(async () => {
    await suite?.close();
  }, 60_000);

  test('60 jobs with real pilots, mon and dh: every task OK, each module run exactly once (ledger), none evicted', async () => {
    await suite.guard(async () => {
      const ledger = path.join(suite.dir, 'ledger');
      const config = {
        version: 1,
        description: 'faults: two submit hosts',
        retry: { max_failures: 0, max_evictions: 0 },
        tasks: [{
          name: 'main',
          requirements: { cpu: 1, memory: 100, time: 5 },
          // long enough that each daemon's cycles see the other's jobs running
          trays: [{ name: 't', modules: [{ name: 'm', class: 'shell', parameters: { command: `echo "run $FIRN_DATASET $FIRN_TASK_ID" >> ${ledger}; sleep 2; echo "job_sum $FIRN_JOB" >> "$FIRN_STATS"` } }] }],
        }],
      };
      const { dataset_id } = await suite.submit(config, JOBS);
      // max_failures / max_evictions 0: a task run twice or declared lost fails the dataset at once
      const st = await suite.waitForDataset(dataset_id, ['COMPLETE'], 200_000);
      expect(Object.fromEntries(Object.entries(st.tasks).filter(([, n]) => n > 0))).toEqual({ OK: JOBS });
      const rows = (await suite.db.db('task').select('id', 'evictions', 'failures', 'batch_id').where({ dataset_id })) as Array<{ id: number; evictions: number; failures: number; batch_id: string }>;
      expect(rows.map((r) => [Number(r.evictions), Number(r.failures)])).toEqual(Array(JOBS).fill([0, 0]));
      expect(await suite.db.db('history').where({ entity: 'task', dataset_id, to_status: 'EVICTED' })).toEqual([]);
      const runs = fs.readFileSync(ledger, 'utf8').trim().split('\n').filter((l) => l.startsWith(`run ${dataset_id} `)).sort();
      expect(runs).toEqual(rows.map((r) => `run ${dataset_id} ${r.id}`).sort());
      const stat = (await suite.db.db('dataset_stat').where({ dataset_id, name: 'job_sum' }).first()) as { n: number; sum: number };
      expect([Number(stat.n), Number(stat.sum)]).toEqual([JOBS, (JOBS * (JOBS - 1)) / 2]);
      // both daemons took part (each tags its jobs with its submit directory)
      expect(new Set(rows.map((r) => r.batch_id.slice(-16, -8))).size).toBe(2);
      for (const d of ['tray', 'mon', 'dh', 'queue', 'queue-b']) expect([d, suite.daemons.get(d)?.proc.exitCode]).toEqual([d, null]);
    });
  }, 240_000);
});
