import { TaskStatus } from '@firn/core';
import { DhDaemon } from '@firn/dh';
import { createTestDb, DB_KINDS, type TestDb } from '../helpers/db';
import { dhConfig, insertDataset, taskHistory, taskRow } from './fixtures';

describe.each(DB_KINDS)('lost tasks on %s', (kind) => {
  let t: TestDb;
  beforeAll(async () => {
    t = await createTestDb(kind);
  });
  afterAll(async () => {
    await t?.drop();
  });

  test('PROCESSING without a heartbeat for heartbeat_timeout → EVICTED (evictions + 1), then retried', async () => {
    const now = Date.now() + 10_000;
    const f = await insertDataset(t.db, { jobs: 4, retry: { backoff_seconds: 0 }, status: () => TaskStatus.PROCESSING });
    const [silent, alive, neverBeat, fresh] = f.taskIds.map((ids) => ids[0]!) as [number, number, number, number];
    const s = 1000;
    await t.db('task').where({ id: silent }).update({ started_at: now - 5000 * s, last_heartbeat_at: now - 1801 * s, host: 'wn-7', status_changed_at: now - 5000 * s });
    await t.db('task').where({ id: alive }).update({ started_at: now - 5000 * s, last_heartbeat_at: now - 60 * s, host: 'wn-8', status_changed_at: now - 5000 * s });
    await t.db('task').where({ id: neverBeat }).update({ started_at: now - 1900 * s, last_heartbeat_at: null, status_changed_at: now - 1900 * s });
    await t.db('task').where({ id: fresh }).update({ started_at: now - 10 * s, last_heartbeat_at: null, status_changed_at: now - 10 * s });

    const dh = new DhDaemon({ db: t.db, config: dhConfig({ heartbeat_timeout: 1800 }), now: () => now });
    try {
      expect((await dh.runCycle('lost')).sort()).toEqual([silent, neverBeat].sort());
      const row = await taskRow(t.db, silent);
      expect(row).toMatchObject({ status: 'EVICTED', error_summary: 'heartbeat lost: nothing heard from the pilot for more than 1800 s' });
      expect(Number(row.evictions)).toBe(1);
      expect((await taskRow(t.db, alive)).status).toBe('PROCESSING');
      expect((await taskRow(t.db, fresh)).status).toBe('PROCESSING');
      expect((await taskHistory(t.db, silent)).at(-1)).toMatchObject({ from_status: 'PROCESSING', to_status: 'EVICTED', actor: 'dh' });
      // the host that went silent gets a failed outcome
      expect(await t.db('node').where({ hostname: 'wn-7' }).first()).toMatchObject({ recent: 'F', fail_count: 1, ok_count: 0 });
      expect(await t.db('node').where({ hostname: 'wn-8' }).first()).toBeUndefined();
      // nothing more to do; the retry cycle resets the evicted ones
      expect(await dh.runCycle('lost')).toEqual([]);
      expect(await dh.runCycle('retries')).toMatchObject({ reset: 2 });
      expect((await taskRow(t.db, silent)).status).toBe('WAITING');
    } finally {
      await dh.stop();
    }
  });
});
