/**
 * The queue cycle's decisions, on SQLite and MariaDB, against an in-memory batch system
 * (real batch systems: slurm/sge/pbs/ssh/local test files).
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { BatchState, QueueDaemon, queueSettings, type QueueSettings } from '@firn/queue';
import { LocalExecutor, TaskStatus, loadConfig, sha256Hex, transition, type Db } from '@firn/core';
import { createTestDb, DB_KINDS, type TestDb } from '../helpers/db';
import { FakeBatchSystem } from './support/fake-plugin';
import { addGrid, blackholeNode, seedDataset, statusOf } from './support/seed';

interface TaskRow {
  id: number;
  status: string;
  batch_id: string | null;
  grid_id: number | null;
  passkey_hash: string | null;
  submit_errors: number;
  evictions: number;
  failures: number;
  error_summary: string | null;
  lease_until: number | null;
}
const rowsOf = async (db: Db, ids: number[]): Promise<TaskRow[]> =>
  db('task').select('id', 'status', 'batch_id', 'grid_id', 'passkey_hash', 'submit_errors', 'evictions', 'failures', 'error_summary', 'lease_until')
    .whereIn('id', ids).orderBy('id');

describe.each(DB_KINDS)('queue cycle on %s', (kind) => {
  let t: TestDb;
  let dir: string;
  let fake: FakeBatchSystem;
  const daemons: QueueDaemon[] = [];

  const settings = (queue: Record<string, unknown> = {}): QueueSettings =>
    queueSettings(loadConfig({
      overrides: {
        db: { url: t.url },
        queue: { grid: 'site', plugin: 'slurm', submit_dir: dir, capabilities: '{"cpu": 8, "memory": 16000}', lease_seconds: 60, ...queue },
        system: { pilot: '/opt/firn/firn-pilot' },
        mon: { url: 'http://mon.example:8581' },
      },
    }));
  const daemon = async (queue: Record<string, unknown> = {}, extra: { lostGraceMs?: number } = {}) => {
    const d = new QueueDaemon({ db: t.db, settings: settings(queue), plugin: fake, executor: new LocalExecutor(), ...extra });
    await d.init();
    daemons.push(d);
    return d;
  };

  beforeEach(async () => {
    t = await createTestDb(kind);
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'firn-queue-cycle-'));
    fake = new FakeBatchSystem();
  });
  afterEach(async () => {
    for (const d of daemons.splice(0)) await d.close();
    await t.drop();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  test('first start creates the grid row; a cycle claims, writes 0600 passkeys, submits one array per requirement set, records QUEUED', async () => {
    const d = await daemon();
    const grid = (await t.db('grid').where('name', 'site').first()) as { id: number; plugin: string; capabilities: string; status: string };
    expect(grid).toMatchObject({ plugin: 'slurm', status: 'enabled' });
    expect(JSON.parse(grid.capabilities)).toEqual({ cpu: 8, memory: 16000 });
    const ds = await seedDataset(t.db, {
      jobs: 3, grids: [Number(grid.id)],
      tasks: [{ name: 'a', req: { cpu: 1 } }, { name: 'b', req: { cpu: 4, memory: 8000 } }, { name: 'huge', req: { memory: 64000 } }],
    });
    const r = await d.runCycle();
    expect(r.errors).toEqual([]);
    expect(r).toMatchObject({ claimed: 6, submitted: 6, submit_failed: 0, queued_before: 0, queued_after: 6 });
    expect(fake.submissions).toHaveLength(2);
    expect(fake.submissions.map((b) => b.tasks.map((x) => x.taskName))).toEqual([['a', 'a', 'a'], ['b', 'b', 'b']]);

    const fits = ds.taskIds.flatMap((j) => [j[0]!, j[1]!]);
    const rows = await rowsOf(t.db, fits);
    for (const row of rows) {
      expect(row.status).toBe(TaskStatus.QUEUED);
      expect(fake.jobs.get(row.batch_id!)?.name).toBe(`firn-${row.id}`);
      expect(row.lease_until).toBeNull();
    }
    for (const st of fake.submissions.flatMap((b) => b.tasks)) {
      expect(st.passkeyFile.startsWith(dir + '/')).toBe(true);
      expect(fs.statSync(st.passkeyFile).mode & 0o777).toBe(0o600);
      const stored = rows.find((x) => Number(x.id) === st.taskId)!.passkey_hash;
      expect(sha256Hex(fs.readFileSync(st.passkeyFile, 'utf8'))).toBe(stored);
    }
    expect(Object.values(await statusOf(t.db, ds.taskIds.map((j) => j[2]!)))).toEqual(['WAITING', 'WAITING', 'WAITING']);

    const g2 = (await t.db('grid').where('name', 'site').first()) as { last_seen_at: number; last_cycle: string };
    expect(Number(g2.last_seen_at)).toBeGreaterThan(Date.now() - 60_000);
    const last = JSON.parse(g2.last_cycle) as { submitted: number; durations: Record<string, number> };
    expect(last.submitted).toBe(6);
    expect(Object.keys(last.durations)).toEqual(expect.arrayContaining(['heartbeat', 'reconcile', 'cleanq', 'recover', 'claim', 'submit', 'total']));
  });

  test('max_queued limits what is claimed, in rounds of max_submit_per_cycle; a disabled grid claims nothing', async () => {
    const d = await daemon({ max_queued: 5, max_submit_per_cycle: 3 });
    const ds = await seedDataset(t.db, { jobs: 10, grids: [d.grid] });
    // one cycle fills all 5 free slots: a round of 3, then one of 2, each submitted
    expect(await d.runCycle()).toMatchObject({ claimed: 5, claim_rounds: 2, submitted: 5, queued_before: 0, queued_after: 5 });
    expect(fake.submissions.map((b) => b.tasks.length)).toEqual([3, 2]);
    const r = await d.runCycle();
    expect(r).toMatchObject({ claimed: 0, claim_rounds: 0, queued_before: 5 });
    await t.db('task').whereIn('id', ds.all.slice(0, 2)).update({ status: TaskStatus.PROCESSING });
    await t.db('grid').where('id', d.grid).update({ status: 'disabled' });
    expect((await d.runCycle()).claimed).toBe(0);
    await t.db('grid').where('id', d.grid).update({ status: 'enabled' });
    expect((await d.runCycle()).claimed).toBe(2);
  });

  test('one cycle fills every free slot, stops when no more work fits, and obeys max_claim_per_cycle', async () => {
    const d = await daemon({ max_queued: 50, max_submit_per_cycle: 8 });
    const ds = await seedDataset(t.db, { jobs: 70, grids: [d.grid] });
    await t.db('task').whereIn('id', ds.all.slice(0, 7)).update({ status: TaskStatus.QUEUED, grid_id: d.grid });
    // 43 free slots: rounds of 8 × 5 + 3
    expect(await d.runCycle()).toMatchObject({ claimed: 43, claim_rounds: 6, submitted: 43, queued_before: 7, queued_after: 50, errors: [] });
    expect(fake.submissions.map((b) => b.tasks.length)).toEqual([8, 8, 8, 8, 8, 3]);
    const [{ n }] = (await t.db('task').where({ status: TaskStatus.QUEUED, grid_id: d.grid }).count({ n: '*' })) as [{ n: number | string }];
    expect(Number(n)).toBe(50);

    // fewer waiting tasks (20) than free slots (50): a short round ends the cycle
    await t.db('task').where({ status: TaskStatus.QUEUED, grid_id: d.grid }).update({ status: TaskStatus.OK });
    expect(await d.runCycle()).toMatchObject({ claimed: 20, claim_rounds: 3, queued_before: 0 });

    const capped = await seedDataset(t.db, { jobs: 10, grids: [d.grid] });
    await t.db('task').whereIn('id', ds.all).update({ status: TaskStatus.OK });
    await d.close();
    const c = await daemon({ max_queued: 50, max_submit_per_cycle: 4, max_claim_per_cycle: 6 });
    expect(await c.runCycle()).toMatchObject({ claimed: 6, claim_rounds: 2 });
    // 4 left: a full round of 4, then an empty one (the cap's 2 more) finds nothing
    expect(await c.runCycle()).toMatchObject({ claimed: 4, claim_rounds: 2 });
    expect(Object.values(await statusOf(t.db, capped.all)).every((s) => s === 'QUEUED')).toBe(true);
  });

  test('a failed submit ends the cycle\'s rounds (the same tasks are not handed to a broken batch system again)', async () => {
    const d = await daemon({ max_queued: 20, max_submit_per_cycle: 4 });
    await seedDataset(t.db, { jobs: 12, grids: [d.grid] });
    fake.failNextSubmit = { message: 'sbatch: error: Slurm controller not responding' };
    expect(await d.runCycle()).toMatchObject({ claimed: 4, claim_rounds: 1, submit_failed: 4, submitted: 0 });
    expect(fake.submissions).toHaveLength(1);
    // rounds of 4, 4, 4, then an empty one: nothing left
    expect(await d.runCycle()).toMatchObject({ claimed: 12, claim_rounds: 4, submitted: 12 });
  });

  test('reconcile: cancelled → EVICTED, failure → ERROR (PROCESSING) / EVICTED (QUEUED), vanished → EVICTED after the grace period', async () => {
    const d = await daemon({}, { lostGraceMs: 60_000 });
    const ds = await seedDataset(t.db, { jobs: 5, grids: [d.grid] });
    await d.runCycle();
    const rows = await rowsOf(t.db, ds.all);
    const [cancelled, failedRunning, failedQueued, vanished, fine] = rows as [TaskRow, TaskRow, TaskRow, TaskRow, TaskRow];
    await transition(t.db, { taskIds: [failedRunning.id], from: TaskStatus.QUEUED, to: TaskStatus.PROCESSING, by: 'mon', actor: 'mon' });
    fake.set(cancelled.batch_id!, { state: BatchState.CANCELLED, rawState: 'CANCELLED', reason: 'by 0' });
    fake.set(failedRunning.batch_id!, { state: BatchState.FAILED, rawState: 'OUT_OF_MEMORY', reason: 'OutOfMemory', exitCode: 137 });
    fake.set(failedQueued.batch_id!, { state: BatchState.FAILED, rawState: 'NODE_FAIL' });
    fake.jobs.delete(vanished.batch_id!);
    fake.set(fine.batch_id!, { state: BatchState.RUNNING, rawState: 'R' });

    const r = await d.runCycle();
    expect(r).toMatchObject({ evicted: 2, failed: 1, claimed: 0 });
    const after = await rowsOf(t.db, ds.all);
    expect(after.map((x) => x.status)).toEqual(['EVICTED', 'ERROR', 'EVICTED', 'QUEUED', 'QUEUED']);
    expect(after[0]).toMatchObject({ evictions: 1, failures: 0 });
    expect(after[0]!.error_summary).toMatch(/cancelled \(CANCELLED, by 0\)/);
    expect(after[1]).toMatchObject({ failures: 1, evictions: 0 });
    expect(after[1]!.error_summary).toBe('batch system reports failure: OUT_OF_MEMORY, OutOfMemory, exit 137');
    expect(after[2]!.error_summary).toMatch(/NODE_FAIL/);
    const hist: Array<{ entity_id: number; reason: string }> = await t.db('history').select('entity_id', 'reason').where({ entity: 'task', to_status: 'ERROR' });
    expect(hist).toEqual([{ entity_id: failedRunning.id, reason: after[1]!.error_summary }]);

    // past the grace period the vanished job's task is declared lost
    await t.db('task').where('id', vanished.id).update({ status_changed_at: Date.now() - 120_000 });
    expect((await d.runCycle()).evicted).toBe(1);
    expect((await rowsOf(t.db, [vanished.id]))[0]).toMatchObject({ status: 'EVICTED', evictions: 1, error_summary: 'batch job vanished from the batch system' });
  });

  test('cleanQ removes jobs of inactive tasks and superseded jobs, and leaves jobs of unknown tasks alone', async () => {
    const d = await daemon();
    const ds = await seedDataset(t.db, { jobs: 3, grids: [d.grid] });
    await d.runCycle();
    const [a, b, c] = await rowsOf(t.db, ds.all) as [TaskRow, TaskRow, TaskRow];
    await transition(t.db, { taskIds: [a.id], from: TaskStatus.QUEUED, to: TaskStatus.SUSPENDED, by: 'tray', actor: 'user:alice' });
    const stale = fake.add('999_0', b.id, BatchState.RUNNING); // an older job of task b
    const foreign = fake.add('998_0', 987654321); // not a task of this database
    const r = await d.runCycle();
    expect(r.removed).toBe(2);
    expect(fake.removed.sort()).toEqual([a.batch_id, stale].sort());
    expect(fake.jobs.get(foreign)!.state).toBe(BatchState.QUEUED);
    expect(fake.jobs.get(b.batch_id!)!.state).toBe(BatchState.QUEUED);
    expect(fake.jobs.get(c.batch_id!)!.state).toBe(BatchState.QUEUED);
  });

  test('a failed submit gives the tasks back: WAITING, submit_errors + 1, the tool message; nothing lost', async () => {
    const d = await daemon();
    const ds = await seedDataset(t.db, { jobs: 4, grids: [d.grid] });
    fake.failNextSubmit = { message: 'sbatch: error: Batch job submission failed: Invalid account or account/partition combination specified' };
    const r = await d.runCycle();
    expect(r).toMatchObject({ claimed: 4, submitted: 0, submit_failed: 4, released: 4 });
    for (const row of await rowsOf(t.db, ds.all)) {
      expect(row).toMatchObject({ status: 'WAITING', submit_errors: 1, grid_id: null, passkey_hash: null, batch_id: null, lease_until: null });
      expect(row.error_summary).toMatch(/^submit failed: .*Invalid account or account\/partition combination specified/);
    }
    expect(fs.readdirSync(dir).filter((f) => f.startsWith('batch-'))).toEqual([]); // passkeys of the failed claim removed
    const hist = await t.db('history').count({ n: '*' }).where({ entity: 'task', from_status: 'QUEUEING', to_status: 'WAITING' });
    expect(Number(hist[0]!.n)).toBe(4);
    // next cycle: submitted normally
    expect((await d.runCycle()).submitted).toBe(4);
    expect(Object.values(await statusOf(t.db, ds.all))).toEqual(['QUEUED', 'QUEUED', 'QUEUED', 'QUEUED']);
  });

  test('a submit that failed after the batch system took the jobs adopts them instead of submitting again', async () => {
    const d = await daemon();
    const ds = await seedDataset(t.db, { jobs: 3, grids: [d.grid] });
    fake.failNextSubmit = { message: 'timed out', accepted: true };
    const r = await d.runCycle();
    expect(r).toMatchObject({ submit_failed: 3, adopted: 3, released: 0 });
    await d.runCycle();
    const live = fake.liveByTask();
    for (const row of await rowsOf(t.db, ds.all)) {
      expect(row.status).toBe('QUEUED');
      expect(live.get(row.id)).toEqual([row.batch_id]);
    }
  });

  test('expired claims: the batch job carrying the task id is adopted, the others go back to WAITING', async () => {
    const d = await daemon({ max_queued: 1 });
    const ds = await seedDataset(t.db, { jobs: 3, grids: [d.grid] });
    // a dead daemon's claims: QUEUEING past the lease; it had submitted task 0 only
    await t.db('task').whereIn('id', ds.all).update({ status: TaskStatus.QUEUEING, grid_id: d.grid, lease_until: Date.now() - 1000, passkey_hash: 'x'.repeat(64) });
    const orphan = fake.add('500_0', ds.all[0]!, BatchState.RUNNING);
    // a live claim (lease not over) is left alone
    await t.db('task').where('id', ds.all[2]).update({ lease_until: Date.now() + 60_000 });
    const r = await d.runCycle();
    expect(r).toMatchObject({ adopted: 1, released: 1 });
    const rows = await rowsOf(t.db, ds.all);
    expect(rows[0]).toMatchObject({ status: 'QUEUED', batch_id: orphan });
    expect(rows[2]).toMatchObject({ status: 'QUEUEING' });
    // task 1 went back to WAITING (no submit error: it was never tried), and max_queued = 1 is taken by task 0 + 2
    expect(rows[1]).toMatchObject({ status: 'WAITING', submit_errors: 0, grid_id: null });
    expect(fake.submissions).toHaveLength(0);
  });

  test('black holes: each submission excludes the grid\'s black-holed nodes of this cycle (not other grids\', not expired ones)', async () => {
    let clock = Date.now();
    const d = new QueueDaemon({ db: t.db, settings: settings(), plugin: fake, executor: new LocalExecutor(), now: () => clock });
    await d.init();
    daemons.push(d);
    const other = await addGrid(t.db, 'elsewhere');
    await blackholeNode(t.db, 'wn07.site.org', d.grid, clock + 60_000);
    await blackholeNode(t.db, 'wn01', d.grid, clock + 30_000);
    await blackholeNode(t.db, 'wn02', d.grid, clock - 1); // cool-down over
    await blackholeNode(t.db, 'far01', other, clock + 60_000); // another grid's node
    const ds = await seedDataset(t.db, { jobs: 4, grids: [d.grid], tasks: [{ name: 'a' }, { name: 'b', req: { cpu: 2 } }] });
    const r = await d.runCycle();
    expect(r).toMatchObject({ claimed: 8, submitted: 8, blackholed_hosts: 2, errors: [] });
    expect(fake.submissions.map((b) => b.excludeHosts)).toEqual([['wn01', 'wn07.site.org'], ['wn01', 'wn07.site.org']]);
    // 31 s later wn01's cool-down is over
    clock += 31_000;
    const again = ds.taskIds.slice(0, 2).map((j) => j[0]!); // two tasks of one requirement set: one submission
    await t.db('task').whereIn('id', again).update({ status: TaskStatus.WAITING, grid_id: null, batch_id: null });
    expect(await d.runCycle()).toMatchObject({ submitted: 2, blackholed_hosts: 1 });
    expect(fake.submissions[2]!.excludeHosts).toEqual(['wn07.site.org']);
    // none left: no excludeHosts at all
    clock += 60_000;
    await t.db('task').whereIn('id', again).update({ status: TaskStatus.WAITING, grid_id: null, batch_id: null });
    expect(await d.runCycle()).toMatchObject({ submitted: 2, blackholed_hosts: 0 });
    expect(fake.submissions).toHaveLength(4);
    expect(fake.submissions[3]!.excludeHosts).toBeUndefined();
  });

  test('black holes: a plugin whose jobs all run on one host claims nothing while that host is black-holed', async () => {
    let clock = Date.now();
    fake.workerHost = 'laptop.example.org';
    const d = new QueueDaemon({ db: t.db, settings: settings(), plugin: fake, executor: new LocalExecutor(), now: () => clock });
    await d.init();
    daemons.push(d);
    // black-holed on any grid (the node row's grid is whichever last ran a task there)
    await blackholeNode(t.db, 'laptop.example.org', null, clock + 60_000);
    const ds = await seedDataset(t.db, { jobs: 2, grids: [d.grid] });
    const r = await d.runCycle();
    expect(r).toMatchObject({ claimed: 0, submitted: 0, claim_skipped: 'this host (laptop.example.org) is black-holed', errors: [] });
    expect(Object.values(await statusOf(t.db, ds.all))).toEqual(['WAITING', 'WAITING']);
    expect(fake.submissions).toHaveLength(0);
    clock += 60_001;
    const after = await d.runCycle();
    expect(after).toMatchObject({ claimed: 2, submitted: 2 });
    expect(after.claim_skipped).toBeUndefined();
  });

  test('close() during a submit: the cycle finishes that group, gives back the claims it has not submitted, and stops', async () => {
    const d = await daemon();
    const ds = await seedDataset(t.db, { jobs: 2, grids: [d.grid], tasks: [{ name: 'small' }, { name: 'big', req: { cpu: 4 } }] });
    let entered!: () => void;
    const inSubmit = new Promise<void>((res) => (entered = res));
    let unblock!: () => void;
    fake.onSubmit = () => {
      entered();
      return new Promise<void>((res) => (unblock = res));
    };
    const cycle = d.runCycle();
    await inSubmit;
    const closing = d.close();
    unblock();
    const r = await cycle;
    await closing;
    expect(r).toMatchObject({ claimed: 4, submitted: 2, released: 2 });
    const st = await statusOf(t.db, ds.all);
    expect(ds.taskIds.map((j) => st[j[0]!])).toEqual(['QUEUED', 'QUEUED']);
    expect(ds.taskIds.map((j) => st[j[1]!])).toEqual(['WAITING', 'WAITING']);
    expect(fake.submissions).toHaveLength(1);
  });
});
