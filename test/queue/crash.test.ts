/**
 * Crash safety: the real firn-queue process is SIGKILLed between claim and submit
 * (FIRN_QUEUE_TEST_CRASH=after-claim) or after a batch submission but before the database
 * knows (after-submit), then restarted: every task ends up submitted exactly once —
 * checked in the batch system's own listing (Slurm) and in the stand-in pilot's records.
 */
import fs from 'node:fs';
import path from 'node:path';
import { TaskStatus } from '@firn/core';
import { createTestDb, waitUntil, type DbKind, type TestDb } from '../helpers/db';
import { killRecordedPilots, randomTaskIdBase, recordsByTask, runQueue, startService, tempDir, writeIni, writeStandInPilot } from './support/harness';
import { addGrid, seedDataset } from './support/seed';
import { liveSlurmJobs, scancelTasks } from './support/slurm';

type System = { plugin: 'local' | 'slurm'; db: DbKind };
const SYSTEMS: System[] = [
  { plugin: 'local', db: 'sqlite' },
  { plugin: 'slurm', db: 'mariadb' },
];

describe.each(SYSTEMS)('crash safety: $plugin plugin on $db', ({ plugin, db: kind }) => {
  let t: TestDb;
  let dir: string;
  let records: string;
  let file: string;
  let taskIds: number[] = [];
  let available = true;

  beforeAll(() => {
    if (plugin === 'slurm') available = startService('slurm') === 'ok';
  });
  beforeEach(async () => {
    if (!available) return;
    t = await createTestDb(kind);
    await randomTaskIdBase(t.db, kind);
    dir = tempDir('firn-queue-crash-');
    records = path.join(dir, 'records');
    fs.mkdirSync(records);
    const grid = `crash-${plugin}-${process.pid}`;
    file = writeIni(path.join(dir, 'queue.ini'), {
      db: { url: t.url },
      queue: { grid, plugin, submit_dir: path.join(dir, 'submit'), lease_seconds: 30, capabilities: '{"cpu": 2, "memory": 1000}', concurrency: 8 },
      system: { pilot: writeStandInPilot(dir) },
      mon: { url: 'http://127.0.0.1:9/' },
      // the pilots stay alive (sleeping) so the batch system lists every job while we look
      environment: { FIRN_TEST_RECORD: records, FIRN_TEST_SLEEP: '120' },
      log: { level: 'warn', format: 'json' },
    });
    const gridId = await addGrid(t.db, grid, {}, plugin);
    // two requirement sets → two submissions: a crash after the first leaves the second unsubmitted
    const ds = await seedDataset(t.db, { jobs: 3, grids: [gridId], tasks: [{ name: 'a', req: { memory: 100 } }, { name: 'b', req: { memory: 200 } }] });
    taskIds = ds.all;
  });
  afterEach(async () => {
    if (!available) return;
    if (plugin === 'slurm') scancelTasks(taskIds);
    killRecordedPilots(records);
    await t.drop();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  const statuses = async () => {
    const rows: Array<{ id: number; status: string; batch_id: string | null; lease_until: number | null }> = await t.db('task')
      .select('id', 'status', 'batch_id', 'lease_until').whereIn('id', taskIds).orderBy('id');
    return rows;
  };
  /** Exactly one pilot record and (Slurm) exactly one live batch job per task, matching the database. */
  const expectSubmittedExactlyOnce = async () => {
    const rows = await statuses();
    expect(rows.map((r) => r.status)).toEqual(taskIds.map(() => TaskStatus.QUEUED));
    await waitUntil(() => recordsByTask(records).size === taskIds.length, 60_000, 'every pilot started');
    const byTask = recordsByTask(records);
    for (const id of taskIds) expect(byTask.get(id)).toHaveLength(1);
    if (plugin === 'slurm') {
      const live = liveSlurmJobs(taskIds);
      for (const r of rows) {
        expect(live.get(Number(r.id))?.map((j) => j.id)).toEqual([r.batch_id]);
      }
    }
  };

  test('SIGKILL between claim and submit, then restart: every task submitted exactly once', async () => {
    if (!available) return;
    const crashed = await runQueue(['--config', file, '--once'], { FIRN_QUEUE_TEST_CRASH: 'after-claim' });
    expect(crashed.signal).toBe('SIGKILL');
    expect((await statuses()).map((r) => r.status)).toEqual(taskIds.map(() => TaskStatus.QUEUEING));
    expect(recordsByTask(records).size).toBe(0);
    if (plugin === 'slurm') expect(liveSlurmJobs(taskIds).size).toBe(0);

    // restarted before the lease is over: its own claims are given back at start and
    // submitted in that same first cycle, without waiting for the lease (nor a submit error)
    expect(Math.min(...(await statuses()).map((r) => Number(r.lease_until)))).toBeGreaterThan(Date.now() + 1000);
    const restarted = await runQueue(['--config', file, '--once']);
    expect(restarted.code).toBe(0);
    const grid = (await t.db('grid').first()) as { last_cycle: string };
    expect(JSON.parse(grid.last_cycle)).toMatchObject({ released: 6, submitted: 6, submit_failed: 0 });
    const rows: Array<{ submit_errors: number }> = await t.db('task').select('submit_errors').whereIn('id', taskIds);
    expect(rows.every((r) => Number(r.submit_errors) === 0)).toBe(true);
    const reasons = await t.db('history').where({ entity: 'task', from_status: 'QUEUEING', to_status: 'WAITING' }).pluck('reason');
    expect(reasons).toEqual(taskIds.map(() => 'released at start: claimed but never submitted'));
    await expectSubmittedExactlyOnce();
  }, 120_000);

  test('SIGKILL after a batch submission the database does not know of: the restart adopts those jobs', async () => {
    if (!available) return;
    const crashed = await runQueue(['--config', file, '--once'], { FIRN_QUEUE_TEST_CRASH: 'after-submit' });
    expect(crashed.signal).toBe('SIGKILL');
    const rows = await statuses();
    expect(rows.map((r) => r.status)).toEqual(taskIds.map(() => TaskStatus.QUEUEING));
    const firstGroup = taskIds.filter((_, i) => i % 2 === 0); // the 'a' tasks went first
    if (plugin === 'slurm') expect([...liveSlurmJobs(taskIds).keys()].sort()).toEqual(firstGroup);

    // no need to wait for the lease: the restart settles its own claims at start
    const restarted = await runQueue(['--config', file, '--once']);
    expect(restarted.code).toBe(0);
    const grid = (await t.db('grid').first()) as { last_cycle: string };
    expect(JSON.parse(grid.last_cycle)).toMatchObject({ adopted: 3, released: 3, submitted: 3 });
    const hist: Array<{ entity_id: number }> = await t.db('history').select('entity_id').where({ entity: 'task', from_status: 'QUEUEING', to_status: 'QUEUED' });
    expect(hist.map((h) => Number(h.entity_id)).sort()).toEqual([...taskIds].sort());
    await expectSubmittedExactlyOnce();
  }, 120_000);
});
