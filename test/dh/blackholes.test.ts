import { NODE_RECENT_LENGTH, blackholedHosts, isBlackholed, recentFailures, recordNodeOutcome, recordNodeOutcomes } from '@firn/core';
import { DhDaemon } from '@firn/dh';
import { createTestDb, DB_KINDS, type TestDb } from '../helpers/db';
import { dhConfig, insertDataset } from './fixtures';

const outcomes = (host: string, pattern: string) => [...pattern].map((c) => ({ host, gridId: null, ok: c === 'O' }));

/**
 * Task rows as the evidence firn-dh reads: one dataset whose tasks' last runs were on the
 * given hosts, `F` failed (ERROR), `O` succeeded (OK), `W` failed and waiting for a retry.
 */
async function evidence(db: TestDb['db'], runs: Record<string, string>, now = Date.now()): Promise<number> {
  const plan = Object.entries(runs).flatMap(([host, pattern]) => [...pattern].map((c) => ({ host, c })));
  const f = await insertDataset(db, { jobs: plan.length, status: (j) => ({ F: 'ERROR', O: 'OK', W: 'WAITING' } as const)[plan[j]!.c as 'F'] });
  for (const [j, ids] of f.taskIds.entries()) {
    const p = plan[j]!;
    await db('task').whereIn('id', ids).update({ host: p.host, status_changed_at: now, failures: p.c === 'O' ? 0 : 1 });
  }
  return f.datasetId;
}

test('recentFailures counts F in the last window outcomes', () => {
  expect(recentFailures('FFFFOOOOOO', 10)).toBe(4);
  expect(recentFailures('FFFFOOOOOO', 6)).toBe(0);
  expect(recentFailures('OF', 10)).toBe(1);
  expect(recentFailures('F', 0)).toBe(0);
});

describe.each(DB_KINDS)('black holes on %s', (kind) => {
  let t: TestDb;
  beforeAll(async () => {
    t = await createTestDb(kind);
  });
  afterAll(async () => {
    await t?.drop();
  });

  test('recordNodeOutcome(s): one row per host, counts, the last 64 outcomes newest last', async () => {
    const [gridId] = (await t.db('grid').insert({ name: 'g1', plugin: 'local', capabilities: '{}', created_at: Date.now() })) as number[];
    await recordNodeOutcome(t.db, 'wn-a', gridId, true, 1000);
    await recordNodeOutcomes(t.db, [...outcomes('wn-a', 'F'.repeat(70)), { host: 'wn-b', gridId: null, ok: true }], 2000);
    await t.db.transaction((trx) => recordNodeOutcome(trx, 'wn-a', null, true, 3000));
    const a = await t.db('node').where({ hostname: 'wn-a' }).first();
    expect(a).toMatchObject({ ok_count: 2, fail_count: 70, grid_id: gridId, recent: 'F'.repeat(NODE_RECENT_LENGTH - 1) + 'O' });
    expect(Number(a.updated_at)).toBe(3000);
    expect(await t.db('node').count({ n: '*' }).first()).toMatchObject({ n: 2 });
    // per grid (a batch system's exclude list)
    await t.db('node').update({ blackholed_until: 10_000 });
    expect(await blackholedHosts(t.db, 5000)).toEqual(['wn-a', 'wn-b']);
    expect(await blackholedHosts(t.db, 5000, gridId)).toEqual(['wn-a']);
    expect(await blackholedHosts(t.db, 10_000)).toEqual([]);
  });

  test('≥ threshold failures in the last window → excluded for the cool-down, recorded; judged afresh afterwards', async () => {
    let now = Date.now();
    const dh = new DhDaemon({ db: t.db, config: dhConfig({ blackhole_window: 10, blackhole_threshold: 8, blackhole_cooldown: 3600 }), now: () => now });
    try {
      await t.db('node').del(); // the nodes of the test above
      // the same dataset did fine elsewhere; wn-flaky fails two datasets
      await evidence(t.db, { 'wn-bad': 'FFFFFFFF', 'wn-good': 'OOOOOOOOOF', 'wn-other': 'OOOO' }, now);
      await evidence(t.db, { 'wn-flaky': 'FF' }, now);
      await evidence(t.db, { 'wn-flaky': 'WO', 'wn-good': 'OO' }, now);
      await recordNodeOutcomes(t.db, [...outcomes('wn-bad', 'OOOOFFFFFFFOF'), ...outcomes('wn-flaky', 'OOOFFFFFFF'), ...outcomes('wn-good', 'FFFFFFFFFFOOOOOOOOOO')], now);
      // wn-bad: last 10 = OFFFFFFFOF → 8 failures; wn-flaky: 7; wn-good: 0 in its last 10
      const hits = await dh.runCycle('blackholes');
      expect(hits.map((h) => [h.hostname, h.failures])).toEqual([['wn-bad', 8]]);
      expect(await blackholedHosts(t.db, now)).toEqual(['wn-bad']);
      expect(await isBlackholed(t.db, 'wn-bad', now)).toBe(true);
      expect(await isBlackholed(t.db, 'wn-flaky', now)).toBe(false);
      const node = await t.db('node').where({ hostname: 'wn-bad' }).first();
      expect(Number(node.blackholed_until)).toBe(now + 3600_000);
      const h = await t.db('history').where({ entity: 'node', entity_id: node.id }).first();
      expect(h).toMatchObject({ action: 'blackhole', actor: 'dh' });
      expect(h.reason).toMatch(/^wn-bad: 8 of its last 10 tasks failed \(threshold 8\); dataset \d+: 8 of 8 tasks failed here, 1 of 14 on other hosts; excluded until /);

      // not reported twice
      now += 1000;
      expect(await dh.runCycle('blackholes')).toEqual([]);
      // after the cool-down it is back, and one more failure does not exclude it again
      now += 3600_000;
      expect(await blackholedHosts(t.db, now)).toEqual([]);
      await recordNodeOutcome(t.db, 'wn-bad', null, false, now);
      expect(await dh.runCycle('blackholes')).toEqual([]);
      // the flaky one tips over
      await recordNodeOutcome(t.db, 'wn-flaky', null, false, now);
      expect((await dh.runCycle('blackholes')).map((x) => x.hostname)).toEqual(['wn-flaky']);
      expect(await blackholedHosts(t.db, now)).toEqual(['wn-flaky']);
    } finally {
      await dh.stop();
    }
  });

  test('judged fairly: the only host that ran a failing dataset, or a dataset failing everywhere, is not a black hole', async () => {
    const now = Date.now() + 5000;
    const dh = new DhDaemon({ db: t.db, config: dhConfig({ blackhole_window: 10, blackhole_threshold: 8, blackhole_cooldown: 3600 }), now: () => now });
    try {
      await t.db('node').del();
      // a one-host grid (firn up): a user bug fails the odd jobs, retried over and over
      await evidence(t.db, { 'solo-1': 'FWFWFOOOOO' }, now);
      // a dataset that fails half the time on every host of a bigger grid
      await evidence(t.db, { 'wn-1': 'FFFFFO', 'wn-2': 'FFFOOO', 'wn-3': 'FFOO' }, now);
      await recordNodeOutcomes(t.db, [...outcomes('solo-1', 'FFFFFFFFFF'), ...outcomes('wn-1', 'FFFFFFFFFO')], now);
      expect(await dh.runCycle('blackholes')).toEqual([]);
      expect(await blackholedHosts(t.db, now)).toEqual([]);
      // a second dataset failing on it too: now its failures are its own
      await evidence(t.db, { 'solo-1': 'F' }, now);
      await recordNodeOutcomes(t.db, outcomes('solo-1', 'F'), now + 1);
      expect((await dh.runCycle('blackholes')).map((h) => [h.hostname, h.evidence])).toEqual([['solo-1', expect.stringMatching(/^it failed tasks of 2 datasets/)]]);
    } finally {
      await dh.stop();
    }
  });
});
