import { TaskStatus, openDb } from '@firn/core';
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

    // dh has been running (and reading the database) for longer than heartbeat_timeout
    let clock = now - 1801 * s;
    const dh = new DhDaemon({ db: t.db, config: dhConfig({ heartbeat_timeout: 1800 }), now: () => clock });
    clock = now;
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

  test('no evictions for heartbeat_timeout after dh starts, nor after the database was unreachable', async () => {
    const s = 1000;
    const t0 = Date.now() + 20_000;
    const f = await insertDataset(t.db, { jobs: 2, status: () => TaskStatus.PROCESSING });
    const [a, b] = f.taskIds.map((ids) => ids[0]!) as [number, number];
    // both silent for an hour: a dh that was down that long cannot tell lost from unheard
    await t.db('task').whereIn('id', [a, b]).update({ started_at: t0 - 3600 * s, last_heartbeat_at: t0 - 3600 * s, status_changed_at: t0 - 3600 * s });
    // its own connection pool, so that the test can take the database away from dh alone
    const db = openDb(t.url);
    let clock = t0;
    const dh = new DhDaemon({ db, config: dhConfig({ heartbeat_timeout: 600 }), now: () => clock });
    /** Lost-task cycles every 100 s (as dh's schedule would) up to `to`; what they evicted. */
    const ours = (ids: number[]) => ids.filter((id) => id === a || id === b); // the other test's tasks share the database
    const lost = async () => ours(await dh.runCycle('lost'));
    const runUntil = async (to: number) => {
      const out: number[] = [];
      for (; clock < to; clock = Math.min(to, clock + 100 * s)) out.push(...(await lost()));
      out.push(...(await lost()));
      return out;
    };
    try {
      expect(await runUntil(t0 + 599 * s)).toEqual([]); // just started: not yet 600 s of evidence
      // the database goes away under dh (every connection refused), then comes back
      await db.destroy();
      clock = t0 + 610 * s;
      await expect(dh.runCycle('lost')).rejects.toThrow();
      db.initialize();
      clock = t0 + 700 * s;
      expect(await runUntil(t0 + 900 * s)).toEqual([]); // the clock started again when the database came back
      await t.db('task').where({ id: a }).update({ last_heartbeat_at: t0 + 900 * s }); // a's pilot delivered its buffered heartbeat
      expect(await runUntil(t0 + 1299 * s)).toEqual([]);
      clock = t0 + 1301 * s;
      expect(await lost()).toEqual([b]); // 600 s of healthy access and still nothing from b
      expect((await taskRow(t.db, a)).status).toBe('PROCESSING');
      // a stall of dh itself (no cycle for longer than heartbeat_timeout / 3) counts as no evidence too
      clock = t0 + 3000 * s;
      expect(await lost()).toEqual([]);
      expect(await runUntil(t0 + 3599 * s)).toEqual([]);
      clock = t0 + 3601 * s;
      expect(await lost()).toEqual([a]);
    } finally {
      await dh.stop();
      await db.destroy();
    }
  });
});
