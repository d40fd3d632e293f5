import { sha256Hex, type Db } from '@firn/core';
import { WriteBatcher, type FlushInfo } from '@firn/mon';
import { DB_KINDS, createTestDb, type TestDb } from '../helpers/db';
import { seedDataset } from './fixtures';

/**
 * The write batcher on both engines: flushes that overlap (MariaDB runs two side by side) never
 * share a task, so one task's updates are written in the order they arrived.
 */
describe.each(DB_KINDS)('WriteBatcher on %s', (kind) => {
  let tdb: TestDb;
  let db: Db;
  beforeAll(async () => {
    tdb = await createTestDb(kind);
    db = tdb.db;
  });
  afterAll(async () => tdb?.drop());

  test('a task\'s updates land in arrival order while other tasks\' flushes overlap', async () => {
    const seeded = await seedDataset(db, 3);
    await db('task').whereIn('id', seeded.tasks.map((t) => t.id)).update({ status: 'PROCESSING' });
    const [x, y, z] = seeded.tasks as [typeof seeded.tasks[0], typeof seeded.tasks[0], typeof seeded.tasks[0]];
    const flushes: FlushInfo[] = [];
    const b = new WriteBatcher({ db, flushMs: 1, maxPending: 10_000, logCap: 1 << 20, triggerSize: 1, onFlush: (f) => flushes.push(f) });
    const calls: Array<Promise<void>> = [];
    const expectX: string[] = [];
    for (let i = 0; i < 60; i++) {
      expectX.push(`x${i};`);
      calls.push(b.enqueue({ kind: 'log', taskId: x.id, digest: sha256Hex(x.passkey), name: 'stdout', data: `x${i};`, append: true }));
      calls.push(b.enqueue({ kind: 'stats', taskId: x.id, digest: sha256Hex(x.passkey), stats: { last: i } }));
      calls.push(b.enqueue({ kind: 'heartbeat', taskId: y.id, digest: sha256Hex(y.passkey), values: { cpu_seconds: i } }));
      calls.push(b.enqueue({ kind: 'log', taskId: z.id, digest: sha256Hex(z.passkey), name: 'stderr', data: `z${i};`, append: true }));
      if (i % 7 === 0) await new Promise((r) => setImmediate(r)); // let flushes start in between
    }
    await Promise.all(calls);
    await b.close();
    expect((await db('task_log').where({ task_id: x.id, name: 'stdout' }).first()).data).toBe(expectX.join(''));
    expect((await db('task_log').where({ task_id: z.id, name: 'stderr' }).first()).data).toBe(expectX.join('').replace(/x/g, 'z'));
    expect(Number((await db('task_stat').where({ task_id: x.id, name: 'last' }).first()).value)).toBe(59);
    expect(Number((await db('task').where({ id: y.id }).first()).cpu_seconds)).toBe(59);
    expect(flushes.every((f) => f.ok && f.rejected === 0)).toBe(true);
    expect(flushes.reduce((n, f) => n + f.updates, 0)).toBe(240);
    expect(flushes.length).toBeGreaterThan(1);
  });
});
