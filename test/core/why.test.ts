/**
 * core why.ts on both databases: one task per reason (dependencies, dataset suspended, no grid,
 * no fit, grid disabled, queue silent, max_queued, black hole, backoff, batch queue with the
 * batch system's reason, running, copying, ready), then the same tasks counted per job and
 * per dataset with grouped SQL.
 */
import { WhyCode, requirementMisfits, whyTask, whyTasks, type Db } from '@firn/core';
import { createTestDb, DB_KINDS, type TestDb } from '../helpers/db';
import { insertDataset } from '../dh/fixtures';

const NOW = 1_800_000_000_000;

async function grid(db: Db, name: string, o: { capabilities?: object; status?: string; plugin?: string; lastSeen?: number | null; maxQueued?: number } = {}): Promise<number> {
  await db('grid').insert({
    name, plugin: o.plugin ?? 'slurm', capabilities: JSON.stringify(o.capabilities ?? { cpu: 8, gpu: 0, memory: 16000 }), status: o.status ?? 'enabled',
    last_seen_at: o.lastSeen === undefined ? NOW - 1000 : o.lastSeen, last_cycle: JSON.stringify({ max_queued: o.maxQueued ?? 100, queued_after: 0 }), created_at: NOW,
  });
  return Number((await db('grid').where({ name }).first()).id);
}

describe('requirementMisfits (pure, the claim rule)', () => {
  const req = { cpu: 1, gpu: 0, memory: 2000, disk: 10000, time: 60, site: null };
  it('gpu defaults to 0, other capabilities unlimited when undeclared, site names the grid or its site', () => {
    expect(requirementMisfits(req, { name: 'a', capabilities: {} })).toEqual([]);
    expect(requirementMisfits({ ...req, gpu: 1 }, { name: 'a', capabilities: {} })).toEqual([{ requirement: 'gpu', wanted: 1, offered: 0 }]);
    expect(requirementMisfits({ ...req, memory: 5000 }, { name: 'a', capabilities: { memory: 4000 } })).toEqual([{ requirement: 'memory', wanted: 5000, offered: 4000 }]);
    expect(requirementMisfits({ ...req, site: 'b' }, { name: 'a', capabilities: { site: 'b' } })).toEqual([]);
    expect(requirementMisfits({ ...req, site: 'c' }, { name: 'a', capabilities: {} })).toEqual([{ requirement: 'site', wanted: 'c', offered: 'a' }]);
  });
});

describe.each(DB_KINDS)('why on %s', (kind) => {
  let t: TestDb;
  beforeAll(async () => {
    t = await createTestDb(kind);
  });
  afterAll(async () => {
    await t?.drop();
  });

  it('names a reason per task, and counts them per job and dataset', async () => {
    const db = t.db;
    const ok = await grid(db, 'ok-grid');
    // dataset A: one grid that fits, tasks in every state
    const a = await insertDataset(db, { jobs: 1, tasks: [{ name: 'gen' }, { name: 'sim', depends: [0] }, { name: 'w1' }, { name: 'w2' }, { name: 'q' }, { name: 'p' }, { name: 'c' }] });
    await db('dataset_grid').insert({ dataset_id: a.datasetId, grid_id: ok });
    const [gen, sim, w1, w2, q, p, c] = a.taskIds[0]!;
    await db('task').where({ id: gen }).update({ status: 'PROCESSING', grid_id: ok, host: 'wn-3', started_at: NOW - 60_000, last_heartbeat_at: NOW - 5000, batch_id: '17' });
    await db('task').where({ id: w1 }).update({ next_retry_at: NOW + 600_000, failures: 2 });
    await db('task').where({ id: q }).update({ status: 'QUEUED', grid_id: ok, batch_id: '42_3', batch_reason: 'BadConstraints' });
    await db('task').where({ id: p }).update({ status: 'PROCESSING', grid_id: ok, host: 'wn-4', started_at: NOW - 1000, last_heartbeat_at: NOW - 500 });
    await db('task').where({ id: c }).update({ status: 'COPYING', status_changed_at: NOW - 3000 });

    const why = (id: number) => whyTask(db, id, { now: NOW });
    const dep = await why(sim!);
    expect(dep.reason.code).toBe(WhyCode.DEPENDENCIES);
    expect(dep.reason.message).toContain(`gen (task ${gen}) is PROCESSING`);
    expect((await why(w1!)).reason).toMatchObject({ code: WhyCode.BACKOFF, data: { next_retry_at: NOW + 600_000 } });
    expect((await why(w1!)).reason.message).toContain(new Date(NOW + 600_000).toISOString());
    expect((await why(w2!)).reason).toMatchObject({ code: WhyCode.READY, data: { grids: ['ok-grid'] } });
    const queued = await why(q!);
    expect(queued.reason).toMatchObject({ code: WhyCode.BATCH_QUEUED, data: { batch_id: '42_3', batch_reason: 'BadConstraints' } });
    expect(queued.reason.message).toContain('the batch system says: BadConstraints');
    const running = await why(gen!);
    expect(running.reason.code).toBe(WhyCode.RUNNING);
    expect(running.reason.message).toContain('host wn-3');
    expect(running.reason.message).toContain(new Date(NOW - 5000).toISOString());
    expect((await why(c!)).reason.code).toBe(WhyCode.COPYING);

    const job = await whyTasks(db, a.datasetId, 0, { now: NOW });
    expect(job.tasks).toBe(7);
    const codes = Object.fromEntries(job.reasons.map((r) => [r.code, r.count]));
    expect(codes).toEqual({ [WhyCode.RUNNING]: 2, [WhyCode.DEPENDENCIES]: 1, [WhyCode.BACKOFF]: 1, [WhyCode.READY]: 1, [WhyCode.BATCH_QUEUED]: 1, [WhyCode.COPYING]: 1 });
    expect(job.reasons.find((r) => r.code === WhyCode.DEPENDENCIES)!.message).toBe('sim: waiting for dependencies (gen: 1 not OK)');
    expect(job.reasons.find((r) => r.code === WhyCode.BATCH_QUEUED)!.message).toContain('BadConstraints');

    // dataset B: no grid assigned; C: assigned grid without a GPU; D: suspended
    const b = await insertDataset(db, { jobs: 2 });
    const bw = await why(b.taskIds[0]![0]!);
    expect(bw.reason.code).toBe(WhyCode.NO_GRID);
    expect(bw.reason.message).toContain('grids that fit: ok-grid');

    const cpuOnly = await grid(db, 'cpu-only', { capabilities: { cpu: 4, gpu: 0 } });
    const cds = await insertDataset(db, { jobs: 3, tasks: [{ name: 'photon' }] });
    await db('dataset_grid').insert({ dataset_id: cds.datasetId, grid_id: cpuOnly });
    await db('task').where({ dataset_id: cds.datasetId }).update({ req_gpu: 1 });
    const nofit = await why(cds.taskIds[0]![0]!);
    expect(nofit.reason.code).toBe(WhyCode.NO_FIT);
    expect(nofit.reason.message).toBe('no assigned grid offers gpu ≥ 1 (cpu-only: gpu 0)');
    const cAll = await whyTasks(db, cds.datasetId, null, { now: NOW });
    expect(cAll.reasons).toEqual([expect.objectContaining({ status: 'WAITING', code: WhyCode.NO_FIT, count: 3, message: 'no assigned grid offers gpu ≥ 1 (cpu-only: gpu 0)' })]);

    const d = await insertDataset(db, { jobs: 1, datasetStatus: 'SUSPENDED' });
    await db('dataset_grid').insert({ dataset_id: d.datasetId, grid_id: ok });
    expect((await why(d.taskIds[0]![0]!)).reason.code).toBe(WhyCode.DATASET_SUSPENDED);

    // grid-side reasons: one dataset per grid state
    const onGrid = async (name: string, o: Parameters<typeof grid>[2]) => {
      const g = await grid(db, name, o);
      const ds = await insertDataset(db, { jobs: 1 });
      await db('dataset_grid').insert({ dataset_id: ds.datasetId, grid_id: g });
      return { g, task: ds.taskIds[0]![0]!, ds: ds.datasetId };
    };
    const disabled = await onGrid('off', { status: 'disabled' });
    expect((await why(disabled.task)).reason).toMatchObject({ code: WhyCode.GRID_DISABLED, message: 'grid off is disabled' });
    const silent = await onGrid('quiet', { lastSeen: NOW - 3600_000 });
    expect((await why(silent.task)).reason.message).toBe(`grid quiet's queue daemon silent since ${new Date(NOW - 3600_000).toISOString()}`);
    const full = await onGrid('full', { maxQueued: 2 });
    const other = await insertDataset(db, { jobs: 2, status: () => 'QUEUED' });
    await db('task').where({ dataset_id: other.datasetId }).update({ grid_id: full.g });
    expect((await why(full.task)).reason).toMatchObject({ code: WhyCode.MAX_QUEUED, data: { queued: 2, max_queued: 2 } });
    const hole = await onGrid('laptop', { plugin: 'local' });
    await db('node').insert({ hostname: 'laptop-host', grid_id: hole.g, recent: 'FFFF', fail_count: 4, blackholed_until: NOW + 60_000, updated_at: NOW });
    const bh = await why(hole.task);
    expect(bh.reason.code).toBe(WhyCode.BLACKHOLE);
    expect(bh.reason.message).toContain(`laptop-host until ${new Date(NOW + 60_000).toISOString()}`);
    const bhAll = await whyTasks(db, hole.ds, null, { now: NOW });
    expect(bhAll.reasons[0]).toMatchObject({ code: WhyCode.BLACKHOLE, count: 1 });
    // a batch grid with one black-holed node of two still claims
    await db('node').insert({ hostname: 'wn-ok', grid_id: ok, recent: 'O', blackholed_until: NOW + 60_000, updated_at: NOW });
    await db('node').insert({ hostname: 'wn-ok2', grid_id: ok, recent: 'O', updated_at: NOW });
    expect((await why(w2!)).reason.code).toBe(WhyCode.READY);
  });
});
