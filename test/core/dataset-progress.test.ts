import { completedLastHour, datasetListProgress, datasetProgress, datasetStatus, percentComplete, progressFrom } from '@firn/core';
import { rollUpTaskFlow } from '@firn/dh';
import { DB_KINDS, createTestDb, type TestDb } from '../helpers/db';
import { seedWeb, type WebSeed } from '../web/seed';

const MIN = 60_000;
const HOUR = 60 * MIN;

describe('progress arithmetic', () => {
  test('percent rounds down to 0.1 and is 100 only when all are OK', () => {
    expect(percentComplete(0, 0)).toBe(0);
    expect(percentComplete(1, 3)).toBe(33.3);
    expect(percentComplete(9999, 10000)).toBe(99.9);
    expect(percentComplete(10, 10)).toBe(100);
  });
  test('ETA is remaining ÷ rate after now; null when the rate is 0 or nothing remains', () => {
    const now = Date.UTC(2026, 0, 1, 12, 0, 0);
    expect(progressFrom(10, 40, 20, now)).toEqual({ percent: 25, ok: 10, total: 40, tasks_per_hour: 20, eta: '2026-01-01T13:30:00.000Z' });
    expect(progressFrom(10, 40, 0, now).eta).toBeNull();
    expect(progressFrom(40, 40, 5, now).eta).toBeNull();
  });
});

describe.each(DB_KINDS)('dataset progress on %s', (kind) => {
  let t: TestDb;
  let seed: WebSeed;
  let extra: number[];

  beforeAll(async () => {
    t = await createTestDb(kind);
    seed = await seedWeb(t.db);
    // more completions of the sim dataset at known times (ms before seed.now), some at the window's edges
    extra = [1, 5 * MIN, 5 * MIN + 1, 30 * MIN, 59 * MIN + 59_000, HOUR, HOUR + 1, 2 * HOUR];
    const task = seed.sim.taskIds[0]![0]!;
    await t.db('history').insert(extra.map((ago) => ({
      entity: 'task', entity_id: task, dataset_id: seed.sim.id, action: 'transition', from_status: 'COPIED', to_status: 'OK', actor: 'core', created_at: seed.now - ago,
    })));
    // not a transition: not counted
    await t.db('history').insert({ entity: 'task', entity_id: task, dataset_id: seed.sim.id, action: 'retry_wait', from_status: 'COPIED', to_status: 'OK', actor: 'core', created_at: seed.now - MIN });
  });
  afterAll(async () => {
    await t?.drop();
  });

  /** Completions in (at − 1 h, at], counted from the seed's spec, not from SQL. */
  function expected(at: number): number {
    const times = [
      ...seed.sim.jobs.flatMap((j) => j.tasks.filter((x) => x.status === 'OK').map((x) => seed.now - x.minutesAgo * MIN)),
      ...extra.map((ago) => seed.now - ago),
    ];
    return times.filter((ts) => ts > at - HOUR && ts <= at).length;
  }

  const ats = () => [seed.now, seed.now - 7 * MIN, seed.now + 25 * MIN, seed.now + 2 * HOUR + 1];

  test('tasks/h over the last hour is exact, from history alone and at every roll-up watermark', async () => {
    for (const at of ats()) expect([at - seed.now, await completedLastHour(t.db, seed.sim.id, at)]).toEqual([at - seed.now, expected(at)]);
    expect(expected(seed.now)).toBe(6); // the seed's job 3 sim (40 min ago) + 5 extra rows (one exactly an hour old is out)
    let passes = 0;
    for (let behind = true; behind; passes++) {
      if (passes > 400) throw new Error('task_flow did not catch up');
      const r = await rollUpTaskFlow(t.db, { maxIds: 4 });
      behind = r.behind;
      if (r.to === r.from) await new Promise((res) => setTimeout(res, 100));
      for (const at of ats()) expect([at - seed.now, await completedLastHour(t.db, seed.sim.id, at)]).toEqual([at - seed.now, expected(at)]);
    }
    expect(Number((await t.db('task_flow_state').where({ id: 1 }).first()).history_id)).toBeGreaterThan(0);
  });

  test('dataset.status carries percent, rate and an exact ETA', async () => {
    const s = await datasetStatus(t.db, seed.sim.id, seed.now);
    // 12 of the 20 seeded tasks are OK; 6 completions in the last hour: 8 remaining take 8/6 h = 80 min
    expect(s.progress).toEqual({ percent: 60, ok: 12, total: 20, tasks_per_hour: 6, eta: new Date(seed.now + 80 * MIN).toISOString() });
    expect(await datasetProgress(t.db, seed.sim.id, seed.now)).toEqual(s.progress);
    // three hours on, nothing finished in the last hour: ETA unknown
    expect((await datasetProgress(t.db, seed.sim.id, seed.now + 3 * HOUR)).eta).toBeNull();
    await expect(datasetProgress(t.db, 999_999)).rejects.toThrow(/no dataset/);
  });

  test('list progress: OK, FAILED and total for every listed dataset in one grouped query', async () => {
    const m = await datasetListProgress(t.db, [seed.sim.id, seed.offline.id, 999_999]);
    expect(m.get(seed.sim.id)).toEqual({ ok: 12, failed: 1, total: 20, percent: 60 });
    const off = m.get(seed.offline.id)!;
    expect(off.total).toBe(Number((await t.db('task').where({ dataset_id: seed.offline.id }).count({ n: '*' }).first())?.n));
    expect(m.get(999_999)).toEqual({ ok: 0, failed: 0, total: 0, percent: 0 });
  });
});
