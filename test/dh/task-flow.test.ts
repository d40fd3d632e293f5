import { rollUpTaskFlow } from '@firn/dh';
import { DB_KINDS, useTestDb, type TestDb } from '../helpers/db';

/** A task transition row as the core transition function writes it. */
const transitionRow = (datasetId: number, taskId: number, from: string, to: string, at: number) => ({
  entity: 'task', entity_id: taskId, dataset_id: datasetId, action: 'transition', from_status: from, to_status: to, actor: 'core', reason: null, created_at: at,
});

/** task_flow as { 'span|bucket|from>to': n } for one dataset. */
async function flow(t: TestDb, datasetId: number): Promise<Record<string, number>> {
  const rows: Array<Record<string, unknown>> = await t.db('task_flow').where({ dataset_id: datasetId });
  return Object.fromEntries(rows.map((r) => [`${Number(r.span_ms)}|${Number(r.bucket_start)}|${String(r.from_status)}>${String(r.to_status)}`, Number(r.n)]));
}

/** Passes until nothing is left behind (MySQL needs two: one sees the newest id, the next counts up to it). */
async function catchUp(t: TestDb, maxIds?: number): Promise<number> {
  let passes = 0;
  for (;;) {
    passes++;
    const r = await rollUpTaskFlow(t.db, maxIds ? { maxIds } : {});
    if (!r.behind) return passes;
    if (passes > 500) throw new Error('task_flow did not catch up');
    await new Promise((res) => setTimeout(res, 50));
  }
}

describe.each(DB_KINDS)('task_flow roll-up on %s', (kind) => {
  const testDb = useTestDb(kind);

  test('counts task transitions per 5 min, hour and day exactly once, in passes of any size; other events are not counted', async () => {
    const t = testDb();
    const base = Date.UTC(2026, 0, 5, 10, 0, 0);
    const rows = [
      transitionRow(7, 1, 'WAITING', 'QUEUEING', base + 1_000),
      transitionRow(7, 2, 'WAITING', 'QUEUEING', base + 2_000),
      transitionRow(7, 1, 'QUEUEING', 'QUEUED', base + 6 * 60_000),
      transitionRow(7, 1, 'QUEUED', 'PROCESSING', base + 61 * 60_000),
      transitionRow(8, 3, 'WAITING', 'QUEUEING', base + 25 * 3600_000),
      { ...transitionRow(7, 2, 'ERROR', 'ERROR', base + 3_000), action: 'retry_wait' },
      { ...transitionRow(7, 2, 'QUEUED', 'QUEUED', base + 3_000), entity: 'job' },
    ];
    for (const r of rows) await t.db('history').insert(r);
    await catchUp(t, 2);
    await catchUp(t); // nothing more: idempotent
    const h = 3600_000;
    const d = 24 * h;
    const m5 = 5 * 60_000;
    expect(await flow(t, 7)).toEqual({
      [`${m5}|${base}|WAITING>QUEUEING`]: 2,
      [`${m5}|${base + m5}|QUEUEING>QUEUED`]: 1,
      [`${m5}|${base + 60 * 60_000}|QUEUED>PROCESSING`]: 1,
      [`${h}|${base}|WAITING>QUEUEING`]: 2,
      [`${h}|${base}|QUEUEING>QUEUED`]: 1,
      [`${h}|${base + h}|QUEUED>PROCESSING`]: 1,
      [`${d}|${Math.floor(base / d) * d}|WAITING>QUEUEING`]: 2,
      [`${d}|${Math.floor(base / d) * d}|QUEUEING>QUEUED`]: 1,
      [`${d}|${Math.floor(base / d) * d}|QUEUED>PROCESSING`]: 1,
    });
    expect(Object.values(await flow(t, 8))).toEqual([1, 1, 1]);
    const maxId = Number(((await t.db('history').max({ m: 'id' }).first()) as { m: number }).m);
    expect(Number((await t.db('task_flow_state').where({ id: 1 }).first()).history_id)).toBe(maxId);
  });

  if (kind === 'mariadb') {
    test('the watermark never passes a history row of a transaction still open, even when later ids are committed', async () => {
      const t = testDb();
      const at = Date.UTC(2026, 0, 6, 12, 0, 0);
      const trx = await t.db.transaction();
      let committed = false;
      try {
        const [early] = await trx('history').insert(transitionRow(9, 1, 'WAITING', 'QUEUEING', at));
        const [late] = await t.db('history').insert(transitionRow(9, 2, 'WAITING', 'QUEUEING', at));
        expect(Number(late)).toBeGreaterThan(Number(early));
        for (let i = 0; i < 4; i++) {
          if (i > 0) await new Promise((res) => setTimeout(res, 300)); // past INNODB_TRX's cache
          const r = await rollUpTaskFlow(t.db);
          expect(r.to).toBeLessThan(Number(early));
          expect(r.behind).toBe(true);
        }
        await trx.commit();
        committed = true;
        await catchUp(t);
        expect(await flow(t, 9)).toMatchObject({ [`${5 * 60_000}|${at}|WAITING>QUEUEING`]: 2 });
        expect(Number((await t.db('task_flow_state').where({ id: 1 }).first()).history_id)).toBeGreaterThanOrEqual(Number(late));
      } finally {
        if (!committed) await trx.rollback();
      }
    });
  }
});
