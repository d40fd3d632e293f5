import { TASK_STATUSES, datasetStats } from '@firn/core';
import {
  calendarMonth, datasetCounts, datasetSeries, datasetView, dayRuns, errorGroups, filterChoices, gridView, jobView, jobsPage,
  latestRunMonth, listDatasetsPage, listGridsOverview, runView, statsTable, taskLog,
} from '@firn/web';
import { rollUpTaskFlow } from '@firn/dh';
import { DB_KINDS, createTestDb, type TestDb } from '../helpers/db';
import { HOSTILE, HOSTILE_FILE, expectedJobCounts, expectedSites, expectedStat, expectedTaskCounts, seedWeb, type WebSeed } from './seed';

describe.each(DB_KINDS)('web monitor queries on %s', (kind) => {
  let t: TestDb;
  let seed: WebSeed;

  beforeAll(async () => {
    t = await createTestDb(kind);
    seed = await seedWeb(t.db);
  });
  afterAll(async () => {
    await t?.drop();
  });

  test('task counts by status and by site agree with the seeded tasks', async () => {
    const c = await datasetCounts(t.db, seed.sim.id);
    const want = expectedTaskCounts(seed);
    for (const s of TASK_STATUSES) expect([s, c.tasks[s]]).toEqual([s, want[s] ?? 0]);
    expect(c.total_tasks).toBe(20);
    expect(c.jobs).toEqual({ PROCESSING: 4, OK: 4, FAILED: 1, SUSPENDED: 1 });
    expect(c.jobs).toEqual({ ...{ PROCESSING: 0, OK: 0, FAILED: 0, SUSPENDED: 0 }, ...expectedJobCounts(seed) });
    expect(c.total_jobs).toBe(10);
    const sites = expectedSites(seed);
    expect(c.sites.map((s) => s.grid)).toEqual(['grid-a', 'grid-b', null]);
    for (const s of c.sites) {
      const w = sites.get(s.grid as 'grid-a' | 'grid-b' | null)!;
      for (const st of TASK_STATUSES) expect([s.grid, st, s.tasks[st]]).toEqual([s.grid, st, w[st] ?? 0]);
      expect(s.total).toBe(Object.values(w).reduce((a, b) => a + b, 0));
    }
  });

  test('errors group by normalised reason, most frequent first', async () => {
    const e = await errorGroups(t.db, seed.sim.id);
    expect(e.total).toBe(3); // sim FAILED + sim ERROR + gen ERROR
    expect(e.groups.map((g) => [g.reason, g.count])).toEqual([
      ['module sim exited with code N: memory limit exceeded (rss N MB)', 2],
      ['transfer failed: checksum mismatch for out_N.iN', 1],
    ]);
    expect(e.groups[0]!.example).toMatch(/^module sim exited with code 137: memory limit exceeded \(rss \d+ MB\)$/);
  });

  test('the statistics table is n, sum, mean, stddev, min, max as dataset.stats reports them', async () => {
    const rows = await statsTable(t.db, seed.sim.id);
    const rpc = await datasetStats(t.db, seed.sim.id);
    expect(rows.map((r) => r.name)).toEqual(['cpu_seconds', 'energy']);
    for (const r of rows) {
      const w = expectedStat(seed.sim.stats[r.name]!);
      expect([r.n, r.sum, r.min, r.max]).toEqual([w.n, w.sum, w.min, w.max]);
      expect(r.mean).toBeCloseTo(w.mean, 12);
      // the same convention as the tray's dataset.stats, whichever core settles on
      expect(r.stddev).toBeCloseTo(rpc[r.name]!.stddev, 12);
      expect([w.pstddev, w.sstddev].some((s) => Math.abs(s - r.stddev) < 1e-12)).toBe(true);
    }
  });

  test('jobs pages by index and by status', async () => {
    const all = await jobsPage(t.db, seed.sim.id, { perPage: 4 });
    expect([all.total, all.pages, all.rows.map((r) => r.job_index)]).toEqual([10, 3, [0, 1, 2, 3]]);
    const third = await jobsPage(t.db, seed.sim.id, { perPage: 4, page: 3 });
    expect(third.rows.map((r) => r.job_index)).toEqual([8, 9]);
    const processing = await jobsPage(t.db, seed.sim.id, { status: 'PROCESSING' });
    expect([processing.total, processing.rows.map((r) => r.job_index)]).toEqual([4, [4, 5, 7, 8]]);
    const bogus = await jobsPage(t.db, seed.sim.id, { status: "OK' OR 1=1 --" });
    expect(bogus.total).toBe(10); // an unknown status is ignored, never put into SQL
  });

  test('series: completions, errors and tasks by state reconstructed from history', async () => {
    const s = await datasetSeries(t.db, seed.sim.id, 'all', seed.now);
    expect(s.bucket_ms).toBe(5 * 60_000);
    expect(s.times.length).toBeGreaterThan(50);
    expect(s.completed.reduce((a, b) => a + b, 0)).toBe(expectedTaskCounts(seed).OK);
    expect(s.errors.reduce((a, b) => a + b, 0)).toBe(3);
    const last = s.times.length - 1;
    const want = expectedTaskCounts(seed);
    for (const st of TASK_STATUSES) expect([st, s.states[st][last]]).toEqual([st, want[st] ?? 0]);
    // before anything ran: every gen task WAITING, every sim task IDLE
    expect(TASK_STATUSES.filter((st) => s.states[st][0]! > 0).map((st) => [st, s.states[st][0]])).toEqual([['IDLE', 10], ['WAITING', 10]]);
    // OK tasks never decrease here (nothing was reset), and end at the OK count
    for (let i = 1; i <= last; i++) expect(s.states.OK[i]!).toBeGreaterThanOrEqual(s.states.OK[i - 1]!);
    // a window only reads the history inside it: the 24 hours up to one hour after the seed
    // hold only the last completion (job 3's sim, 40 minutes before the seed)
    const later = await datasetSeries(t.db, seed.sim.id, '1d', seed.now + 23 * 3600_000);
    expect(later.completed.reduce((a, b) => a + b, 0)).toBe(1);
    expect(later.states.OK[later.times.length - 1]).toBe(12);
  });

  test('series: task events that change no status (a retry wait) are not counted as transitions', async () => {
    const before = await datasetSeries(t.db, seed.sim.id, 'all', seed.now);
    const [id] = await t.db('history').insert({
      entity: 'task', entity_id: 1, dataset_id: seed.sim.id, action: 'retry_wait', from_status: 'ERROR', to_status: 'ERROR', actor: 'dh', reason: 'backoff', created_at: seed.now - 60_000,
    });
    try {
      const after = await datasetSeries(t.db, seed.sim.id, 'all', seed.now);
      expect(after.errors).toEqual(before.errors);
      expect(after.states).toEqual(before.states);
    } finally {
      await t.db('history').where({ id }).delete();
    }
  });

  test('general view: filters by status, type, grid, owner and search, paginated', async () => {
    const ids = async (f: Parameters<typeof listDatasetsPage>[1]) => (await listDatasetsPage(t.db, f)).rows.map((r) => r.id);
    expect(await ids({})).toEqual([seed.rootOwned.id, seed.offline.id, seed.sim.id]);
    expect(await ids({ status: 'COMPLETE' })).toEqual([seed.rootOwned.id]);
    expect(await ids({ type: 'offline' })).toEqual([seed.offline.id]);
    expect(await ids({ grid: 'grid-b' })).toEqual([seed.offline.id, seed.sim.id]);
    expect(await ids({ owner: 'root' })).toEqual([seed.rootOwned.id]);
    expect(await ids({ search: 'ic86' })).toEqual([seed.offline.id]);
    expect(await ids({ search: '<script>' })).toEqual([seed.sim.id]);
    expect(await ids({ search: String(seed.rootOwned.id) })).toEqual([seed.rootOwned.id]);
    expect(await ids({ search: '%' })).toEqual([]); // LIKE wildcards are literal
    expect(await ids({ status: "PROCESSING' OR 1=1 --" })).toHaveLength(3); // unknown status: ignored
    const p = await listDatasetsPage(t.db, { perPage: 2, page: 2 });
    expect([p.total, p.pages, p.rows.map((r) => r.id)]).toEqual([3, 2, [seed.sim.id]]);
    const sim = (await listDatasetsPage(t.db, { search: '<script>' })).rows[0]!;
    expect(sim.description).toBe(HOSTILE);
    expect(sim.owner).toBe('alice');
    expect(sim.grids).toEqual(['grid-a', 'grid-b']);
    expect(sim.jobs).toEqual({ PROCESSING: 4, OK: 4, FAILED: 1, SUSPENDED: 1 });
    expect(await filterChoices(t.db)).toEqual({ owners: ['alice', 'root'], grids: ['grid-a', 'grid-b'] });
  });

  test('grid view: plugin, heartbeat, queued/running counts, datasets, black-holed nodes', async () => {
    const a = await gridView(t.db, 'grid-a', seed.now);
    expect([a.plugin, a.last_seen_at, a.counts]).toEqual(['slurm', seed.now - 30_000, { QUEUEING: 0, QUEUED: 0, PROCESSING: 1 }]);
    expect(a.blackholed.map((n) => n.hostname)).toEqual(['node13.a']);
    expect(a.worst.map((n) => [n.hostname, n.fail_count])).toEqual([['node13.a', 9], ['node14.a', 3]]);
    expect(a.datasets.map((d) => [d.id, d.assigned, d.processing])).toEqual([[seed.sim.id, true, 1]]);
    expect(a.last_cycle).toEqual({ claimed: 3, submitted: 3, reconciled: 1 });
    const b = await gridView(t.db, 'grid-b', seed.now);
    expect(b.counts).toEqual({ QUEUEING: 0, QUEUED: 1, PROCESSING: 1 });
    expect(b.datasets.map((d) => [d.id, d.queued, d.processing]).sort()).toEqual([[seed.offline.id, 0, 1], [seed.sim.id, 1, 0]].sort());
    await expect(gridView(t.db, 'nope')).rejects.toThrow(/no grid/);
    const all = await listGridsOverview(t.db, seed.now);
    expect(all.map((g) => [g.name, g.queued, g.processing, g.blackholed])).toEqual([['grid-a', 0, 1, 1], ['grid-b', 1, 1, 0]]);
  });

  test('job view: tasks, statistics, logs, files with checksums, history', async () => {
    const v = await jobView(t.db, seed.sim.id, 0);
    expect(v.job.status).toBe('OK');
    expect(v.tasks.map((x) => [x.name, x.status, x.host])).toEqual([['gen', 'OK', 'node01.a'], ['sim', 'OK', 'node01.a']]);
    expect(v.tasks[0]!.stats).toEqual([{ name: 'energy', value: 1 }, { name: 'events', value: 1000 }]);
    expect(v.tasks[0]!.logs.map((l) => l.name)).toEqual(['stderr', 'stdout']);
    expect(v.tasks[0]!.logs[1]!.tail).toContain(HOSTILE);
    const long = v.tasks[1]!.logs[0]!;
    expect([long.truncated, long.tail.length, long.tail.endsWith('END-OF-LONG-LOG\n')]).toEqual([true, 32 * 1024, true]);
    expect(v.files.map((f) => f.local_name)).toEqual(['gen_0.i3', HOSTILE_FILE, 'sim_0.log']);
    expect(v.files[0]!.md5).toMatch(/^[0-9a-f]{32}$/);
    expect(v.files[0]!.sha256).toMatch(/^[0-9a-f]{64}$/);
    // 7 transitions for gen (WAITING → … → OK), 8 for sim (IDLE → WAITING → … → OK)
    expect(v.history).toHaveLength(15);
    expect(v.history[0]!.to_status).toBe('OK');
    const whole = await taskLog(t.db, seed.sim.id, 0, seed.sim.taskIds[0]![1]!, 'stdout');
    expect(whole).toHaveLength(40_000 + 'END-OF-LONG-LOG\n'.length + 1);
    expect(await taskLog(t.db, seed.sim.id, 1, seed.sim.taskIds[0]![1]!, 'stdout')).toBeNull(); // not that job's task
    await expect(jobView(t.db, seed.sim.id, 99)).rejects.toThrow(/no job 99/);
  });

  test('calendar, day and run views count jobs by date of data taking', async () => {
    expect(await latestRunMonth(t.db)).toBe('2024-06');
    const days = await calendarMonth(t.db, '2024-06');
    expect([...days.keys()].sort()).toEqual(['2024-06-03', '2024-06-05']);
    expect(days.get('2024-06-03')).toEqual({ date: '2024-06-03', runs: 2, jobs: { PROCESSING: 0, OK: 3, FAILED: 1, SUSPENDED: 0 } });
    expect(days.get('2024-06-05')!.jobs.PROCESSING).toBe(1);
    expect((await calendarMonth(t.db, '2024-07')).size).toBe(0);
    expect((await calendarMonth(t.db, '2024-06', seed.sim.id)).size).toBe(0);
    const runs = await dayRuns(t.db, '2024-06-03');
    expect(runs.map((r) => [r.run_number, r.total, r.jobs.OK, r.jobs.FAILED])).toEqual([[130001, 2, 2, 0], [130002, 2, 1, 1]]);
    await expect(dayRuns(t.db, '2024-02-30')).rejects.toThrow(/not a date/);
    const run = seed.offline.runs[1]!;
    const v = await runView(t.db, run.id);
    expect([v.run.run_number, v.run.date, v.jobs.total]).toEqual([130002, '2024-06-03', 2]);
    expect(v.jobs.rows.map((j) => [j.job_index, j.status, j.inputs])).toEqual([[2, 'OK', 1], [3, 'FAILED', 1]]);
  });

  test('datasetView gathers the whole dataset page', async () => {
    const v = await datasetView(t.db, seed.sim.id);
    expect([v.dataset.description, v.dataset.owner, v.dataset.priority, v.counts.total_tasks, v.errors.total, v.stats.length]).toEqual([HOSTILE, 'alice', 5, 20, 3, 2]);
    expect(v.actions.map((a) => a.action)).toEqual(['priority', 'submit']);
    await expect(datasetView(t.db, 999_999)).rejects.toThrow(/no dataset/);
  });

  test('series: the same from task_flow (firn-dh\'s roll-up, at every watermark it passes) as from history alone', async () => {
    expect(Number((await t.db('task_flow_state').where({ id: 1 }).first()).history_id)).toBe(0); // nothing rolled up yet
    const views = (['6h', '1d', '7d', '30d', 'all'] as const).flatMap((range) => [seed.now, seed.now + 23 * 3600_000].map((at) => [range, at] as const));
    const all = () => Promise.all(views.map(([range, at]) => datasetSeries(t.db, seed.sim.id, range, at)));
    const fromHistory = await all();
    let passes = 0;
    for (let behind = true; behind; passes++) {
      if (passes > 400) throw new Error('task_flow did not catch up');
      const r = await rollUpTaskFlow(t.db, { maxIds: 3 });
      behind = r.behind;
      if (r.to === r.from) await new Promise((res) => setTimeout(res, 100)); // MariaDB: waiting for the seen ids to settle
      else expect(await all()).toEqual(fromHistory);
    }
    expect(await all()).toEqual(fromHistory);
    expect(Number((await t.db('task_flow').where({ dataset_id: seed.sim.id }).sum({ n: 'n' }).first())?.n)).toBeGreaterThan(0);
  });
});
