import { fork } from 'node:child_process';
import type { Knex } from 'knex';
import path from 'node:path';
import { CLAIM_INDEX, TaskStatus, claimSelect, claimTasks, lockSkipLocked, releaseReadyTasks, sha256Hex, type Db } from '@firn/core';
import { createTestDb, DB_KINDS, type TestDb } from '../helpers/db';
import { addGrid, finishTasks, seedDataset, statusOf } from './support/seed';

const LEASE = 60_000;
const claim = (db: Db, gridId: number, gridName: string, capabilities: Record<string, unknown>, limit = 100, now?: number) =>
  claimTasks(db, { gridId, gridName, limit, capabilities, leaseMs: LEASE, owner: `queue:${gridName}`, now });

describe.each(DB_KINDS)('claimTasks on %s', (kind) => {
  let t: TestDb;
  beforeEach(async () => {
    t = await createTestDb(kind);
  });
  afterEach(async () => {
    await t.drop();
  });

  test('a DAG with a GPU task: the GPU task only goes to the GPU grid, CPU tasks to either', async () => {
    const db = t.db;
    const cpuGrid = await addGrid(db, 'cpu-site', { cpu: 16, memory: 64000 });
    const gpuGrid = await addGrid(db, 'gpu-site', { cpu: 8, gpu: 2, memory: 32000 });
    const ds = await seedDataset(db, {
      jobs: 4,
      grids: [cpuGrid, gpuGrid],
      tasks: [
        { name: 'generate', req: { cpu: 1 } },
        { name: 'photons', depends: ['generate'], req: { gpu: 1, memory: 4000 } },
        { name: 'reconstruct', depends: ['photons'], req: { cpu: 2 } },
      ],
    });
    const byIndex = (i: number) => ds.taskIds.map((job) => job[i]!);

    // stage 1: generate (CPU) — each grid takes some, none twice
    const a = await claim(db, cpuGrid, 'cpu-site', { cpu: 16, memory: 64000 }, 2);
    const b = await claim(db, gpuGrid, 'gpu-site', { cpu: 8, gpu: 2, memory: 32000 }, 10);
    expect(a.map((x) => x.id)).toEqual(byIndex(0).slice(0, 2));
    expect(b.map((x) => x.id)).toEqual(byIndex(0).slice(2));
    await finishTasks(db, byIndex(0));
    expect(await releaseReadyTasks(db, ds.jobIds)).toHaveLength(4);

    // stage 2: photons (GPU) — the CPU grid finds nothing, the GPU grid takes all
    expect(await claim(db, cpuGrid, 'cpu-site', { cpu: 16, memory: 64000 })).toEqual([]);
    const gpu = await claim(db, gpuGrid, 'gpu-site', { cpu: 8, gpu: 2, memory: 32000 });
    expect(gpu.map((x) => x.id)).toEqual(byIndex(1));
    expect(gpu.every((x) => x.requirements.gpu === 1)).toBe(true);
    const rows: Array<{ grid_id: number }> = await db('task').select('grid_id').whereIn('id', byIndex(1));
    expect(rows.every((r) => Number(r.grid_id) === gpuGrid)).toBe(true);
    await finishTasks(db, byIndex(1));
    await releaseReadyTasks(db, ds.jobIds);

    // stage 3: reconstruct (CPU) — the CPU grid may take them
    const c = await claim(db, cpuGrid, 'cpu-site', { cpu: 16, memory: 64000 });
    expect(c.map((x) => x.id)).toEqual(byIndex(2));
    expect(c[0]!.jobIndex).toBe(0);
    expect(c[3]!.jobIndex).toBe(3);
  });

  test('claims in dataset priority order, then task id, up to the limit', async () => {
    const db = t.db;
    const g = await addGrid(db, 'site');
    const low = await seedDataset(db, { jobs: 3, grids: [g], priority: 1 });
    const high = await seedDataset(db, { jobs: 3, grids: [g], priority: 5 });
    const first = await claim(db, g, 'site', {}, 4);
    expect(first.map((x) => x.id)).toEqual([...high.all, low.all[0]]);
    const second = await claim(db, g, 'site', {}, 10);
    expect(second.map((x) => x.id)).toEqual(low.all.slice(1));
    expect(await claim(db, g, 'site', {}, 10)).toEqual([]);
  });

  test('only datasets assigned to the grid and PROCESSING; requirements, site and backoff respected', async () => {
    const db = t.db;
    const g = await addGrid(db, 'site-a', { cpu: 4, memory: 8000, disk: 50000, time: 120, site: 'wisc' });
    const other = await addGrid(db, 'site-b');
    const now = Date.now();
    const notAssigned = await seedDataset(db, { grids: [other] });
    const suspended = await seedDataset(db, { grids: [g], status: 'SUSPENDED' });
    const ds = await seedDataset(db, {
      grids: [g],
      tasks: [
        { name: 'fits' },
        { name: 'too-many-cpus', req: { cpu: 8 } },
        { name: 'too-much-memory', req: { memory: 9000 } },
        { name: 'too-much-disk', req: { disk: 60000 } },
        { name: 'too-long', req: { time: 121 } },
        { name: 'needs-gpu', req: { gpu: 1 } },
        { name: 'other-site', req: { site: 'desy' } },
        { name: 'my-site', req: { site: 'wisc' } },
        { name: 'my-grid-name', req: { site: 'site-a' } },
        { name: 'backing-off' },
        { name: 'backoff-over' },
      ],
    });
    const [ids] = ds.taskIds as [number[]];
    await db('task').where('id', ids[9]).update({ next_retry_at: now + 60_000 });
    await db('task').where('id', ids[10]).update({ next_retry_at: now - 1 });
    const got = await claim(db, g, 'site-a', { cpu: 4, memory: 8000, disk: 50000, time: 120, site: 'wisc' }, 100, now);
    expect(got.map((x) => x.name)).toEqual(['fits', 'my-site', 'my-grid-name', 'backoff-over']);
    const st = await statusOf(db, [...notAssigned.all, ...suspended.all]);
    expect(Object.values(st)).toEqual([TaskStatus.WAITING, TaskStatus.WAITING]);
  });

  test('each claim gets a fresh passkey (only its sha256 stored), a lease, and one history row', async () => {
    const db = t.db;
    const g = await addGrid(db, 'site');
    const ds = await seedDataset(db, { jobs: 5, grids: [g] });
    const now = Date.now();
    const got = await claim(db, g, 'site', {}, 100, now);
    expect(got).toHaveLength(5);
    expect(new Set(got.map((x) => x.passkey)).size).toBe(5);
    const rows: Array<{ id: number; status: string; passkey_hash: string; lease_until: number; grid_id: number }> = await db('task')
      .select('id', 'status', 'passkey_hash', 'lease_until', 'grid_id').whereIn('id', ds.all).orderBy('id');
    for (const [i, row] of rows.entries()) {
      const c = got[i]!;
      expect(Number(row.id)).toBe(c.id);
      expect(row.status).toBe(TaskStatus.QUEUEING);
      expect(row.passkey_hash).toBe(sha256Hex(c.passkey));
      expect(row.passkey_hash).not.toContain(c.passkey);
      expect(Number(row.lease_until)).toBe(now + LEASE);
      expect(Number(row.grid_id)).toBe(g);
    }
    const hist: Array<{ entity_id: number; from_status: string; to_status: string; actor: string }> = await db('history')
      .select('entity_id', 'from_status', 'to_status', 'actor').where({ entity: 'task', to_status: 'QUEUEING' });
    expect(hist.map((h) => Number(h.entity_id)).sort((x, y) => x - y)).toEqual(ds.all);
    expect(hist.every((h) => h.from_status === 'WAITING' && h.actor === 'queue:site')).toBe(true);
  });

  test('concurrent claims never hand out a task twice', async () => {
    const db = t.db;
    const g = await addGrid(db, 'site');
    const ds = await seedDataset(db, { jobs: 300, grids: [g] });
    const results = await Promise.all(Array.from({ length: 6 }, () => claim(db, g, 'site', {}, 60)));
    const ids = results.flat().map((x) => x.id);
    expect(new Set(ids).size).toBe(ids.length);
    // SKIP LOCKED: a claimer may pass over rows another holds and come back short; those rows
    // are still WAITING and a later claim takes them — never twice.
    for (let round = 0; round < 10 && ids.length < ds.all.length; round++) ids.push(...(await claim(db, g, 'site', {}, 60)).map((x) => x.id));
    expect(new Set(ids).size).toBe(ids.length);
    expect(ids.sort((x, y) => x - y)).toEqual(ds.all);
    const [{ n }] = (await db('history').count({ n: '*' }).where({ entity: 'task', to_status: 'QUEUEING' })) as [{ n: number }];
    expect(Number(n)).toBe(300);
  });

  test('large datasets: concurrent claimers start apart, lock about what they take, and together take every task once', async () => {
    const db = t.db;
    const g = await addGrid(db, 'site');
    const ds = await seedDataset(db, { jobs: 6000, grids: [g] });
    // 12 claimers of 50 at once, until nothing is left (the wrap below each start point included)
    const ids: number[] = [];
    const firstIds: number[] = [];
    let maxLocked = 0;
    const watch = kind === 'mariadb' ? setInterval(() => {
      void db.raw('SELECT COALESCE(MAX(trx_rows_locked), 0) AS n FROM information_schema.INNODB_TRX').then(([r]: [Array<{ n: number }>]) => {
        maxLocked = Math.max(maxLocked, Number(r[0]?.n ?? 0));
      }, () => undefined);
    }, 5) : null;
    try {
      for (let round = 0; round < 40 && ids.length < ds.all.length; round++) {
        const got = await Promise.all(Array.from({ length: 12 }, () => claim(db, g, 'site', {}, 50)));
        for (const r of got) {
          if (round === 0 && r.length) firstIds.push(r[0]!.id);
          ids.push(...r.map((x) => x.id));
        }
      }
    } finally {
      if (watch) clearInterval(watch);
    }
    expect(new Set(ids).size).toBe(ids.length);
    expect(ids.sort((x, y) => x - y)).toEqual(ds.all);
    const [{ n }] = (await db('history').count({ n: '*' }).where({ entity: 'task', to_status: 'QUEUEING' })) as [{ n: number }];
    expect(Number(n)).toBe(6000);
    if (kind === 'mariadb') {
      // the first round's claimers began far apart: walking from the oldest task, 12 claimers of
      // 50 started within 600 ids of each other (each stepping over the others' locked rows)
      expect(Math.max(...firstIds) - Math.min(...firstIds)).toBeGreaterThan(1200);
      // InnoDB locks two index records per claimed task (the (status, dataset_id) entry and the
      // row): a claimer of 50 held about that, not the batches it would have stepped over
      expect(maxLocked).toBeLessThanOrEqual(4 * 50);
    }
  }, 120_000);

  test('a claim holds its tasks only: another claimer gets the other tasks of the same job at once', async () => {
    if (kind === 'sqlite') return; // SQLite has one writer at a time: there is no row lock to look at
    const db = t.db;
    const g = await addGrid(db, 'site');
    const ds = await seedDataset(db, { jobs: 1, grids: [g], tasks: [{ name: 'a' }, { name: 'b' }, { name: 'c' }] });
    const trx = await db.transaction({ isolationLevel: 'read committed' });
    try {
      const held = await lockSkipLocked(trx, claimSelect(trx, { datasetId: ds.datasetId, capabilities: {}, sites: [], now: Date.now(), limit: 1 }));
      expect(held.map((r: { id: number }) => Number(r.id))).toEqual([ds.all[0]]);
      const other = await claim(db, g, 'site', {}, 10);
      expect(other.map((x) => x.id)).toEqual(ds.all.slice(1));
    } finally {
      await trx.rollback();
    }
  });

  test('the ordered claim query walks an index (no table scan, no sort)', async () => {
    const db = t.db;
    const g = await addGrid(db, 'site');
    await seedDataset(db, { jobs: 50, grids: [g], tasks: [{ name: 'a' }, { name: 'b', depends: ['a'] }] });
    const ds = await seedDataset(db, { jobs: 50, grids: [g] });
    if (kind === 'mariadb') await db.raw('ANALYZE TABLE task');
    const q = claimSelect(db, { datasetId: ds.datasetId, capabilities: { cpu: 4 }, sites: ['site'], now: Date.now(), limit: 10 }).toSQL();
    if (kind === 'sqlite') {
      const plan: Array<{ detail: string }> = await db.raw(`EXPLAIN QUERY PLAN ${q.sql}`, q.bindings as Knex.RawBinding[]);
      const text = plan.map((p) => p.detail).join('\n');
      expect(text).toMatch(/USING INDEX task_(status_dataset|dataset_status)_idx/);
      expect(text).not.toMatch(/TEMP B-TREE/);
    } else {
      const [plan] = (await db.raw(`EXPLAIN ${q.sql}`, q.bindings as Knex.RawBinding[])) as [Array<{ table: string; key: string | null; Extra: string | null; type: string }>];
      const task = plan.find((p) => p.table === 'task')!;
      expect(task.key).toBe(CLAIM_INDEX); // every claimer locks through the same index
      expect(task.type).not.toBe('ALL');
      expect(task.Extra ?? '').not.toMatch(/filesort|temporary/);
      // the job_index subquery is a primary-key look-up
      expect(plan.find((p) => p.table === 'job')).toMatchObject({ key: 'PRIMARY', type: 'eq_ref' });
    }
  });
});

describe('claimTasks from several processes on one SQLite file', () => {
  let t: TestDb;
  beforeAll(async () => {
    t = await createTestDb('sqlite');
  });
  afterAll(async () => {
    await t.drop();
  });

  test('4 processes claiming at once: every task exactly once, none fails', async () => {
    const g = await addGrid(t.db, 'site');
    const ds = await seedDataset(t.db, { jobs: 400, grids: [g] });
    const worker = path.join(__dirname, 'support', 'claim-worker.ts');
    const register = path.join(__dirname, 'support', 'register.js');
    const runs = Array.from({ length: 4 }, () =>
      new Promise<number[]>((resolve, reject) => {
        const child = fork(worker, [], { execArgv: ['-r', register], stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
        let ids: number[] = [];
        child.on('message', (m: { ids?: number[]; error?: string }) => {
          if (m.error) reject(new Error(m.error));
          if (m.ids) ids = m.ids;
        });
        child.on('exit', (code) => (code === 0 ? resolve(ids) : reject(new Error(`worker exited ${code}`))));
        child.send({ url: t.url, gridId: g, gridName: 'site', batch: 7 });
      }),
    );
    const all = (await Promise.all(runs)).flat();
    expect(new Set(all).size).toBe(all.length);
    expect(all.sort((x, y) => x - y)).toEqual(ds.all);
  }, 60_000);
});
