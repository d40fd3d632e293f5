import fs from 'node:fs';
import path from 'node:path';
import { TaskStatus, transition } from '@firn/core';
import { DhDaemon } from '@firn/dh';
import { createTestDb, DB_KINDS, type TestDb } from '../helpers/db';
import { dhConfig, insertDataset, tmpDir } from './fixtures';

describe.each(DB_KINDS)('roll-up on %s', (kind) => {
  let t: TestDb;
  let dir: string;
  beforeAll(async () => {
    t = await createTestDb(kind);
  });
  afterAll(async () => {
    await t?.drop();
  });
  beforeEach(() => {
    dir = tmpDir();
  });
  afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));

  const setTasks = (ids: number[], status: TaskStatus) => t.db('task').whereIn('id', ids).update({ status });
  const jobStatus = async (id: number) => (await t.db('job').where({ id }).first()).status as string;
  const datasetStatus = async (id: number) => (await t.db('dataset').where({ id }).first()).status as string;
  const hookRows = (id: number) => t.db('history').where({ entity: 'dataset', entity_id: id, action: 'completion_hook' }).orderBy('id').pluck('to_status');

  test('jobs and dataset roll up to COMPLETE; the completion hook runs once, with the id as an argument', async () => {
    const out = path.join(dir, 'hook.out');
    // the id arrives as "$1" appended to the command (and as FIRN_DATASET), never spliced into its text
    const dh = new DhDaemon({ db: t.db, config: dhConfig({ completion_hook: `printf '[%s] [%s]\\n' "$FIRN_DATASET" >> '${out}'` }) });
    try {
      const f = await insertDataset(t.db, { jobs: 2, tasks: [{ name: 'a' }, { name: 'b', depends: [0] }] });
      await setTasks(f.taskIds[0]!, TaskStatus.OK);
      expect(await dh.runCycle('rollup')).toMatchObject({ jobs: 1, datasets: [] });
      expect(await jobStatus(f.jobIds[0]!)).toBe('OK');
      expect(await jobStatus(f.jobIds[1]!)).toBe('PROCESSING');
      expect(await datasetStatus(f.datasetId)).toBe('PROCESSING');

      await setTasks(f.taskIds[1]!, TaskStatus.OK);
      const r = await dh.runCycle('rollup');
      expect(r).toMatchObject({ jobs: 1, datasets: [{ id: f.datasetId, from: 'PROCESSING', to: 'COMPLETE' }], hooks: [{ datasetId: f.datasetId, code: 0 }] });
      expect(await datasetStatus(f.datasetId)).toBe('COMPLETE');
      expect(fs.readFileSync(out, 'utf8')).toBe(`[${f.datasetId}] [${f.datasetId}]\n`);
      expect(await hookRows(f.datasetId)).toEqual(['PENDING', 'STARTED', 'DONE']);
      const hist = await t.db('history').where({ entity: 'job', entity_id: f.jobIds[1]! }).first();
      expect(hist).toMatchObject({ action: 'status', from_status: 'PROCESSING', to_status: 'OK', actor: 'dh' });

      // nothing changes: nothing is run again
      expect(await dh.runCycle('rollup')).toEqual({ jobs: 0, datasets: [], hooks: [] });

      // an admin resets a task: job and dataset go back to PROCESSING; done again: COMPLETE, hook not re-run
      await transition(t.db, { taskIds: [f.taskIds[1]![1]!], from: 'OK', to: 'RESET', by: 'tray', actor: 'user:admin', isAdmin: true });
      expect(await dh.runCycle('rollup')).toMatchObject({ jobs: 1, datasets: [{ from: 'COMPLETE', to: 'PROCESSING' }] });
      expect(await jobStatus(f.jobIds[1]!)).toBe('PROCESSING');
      await setTasks([f.taskIds[1]![1]!], TaskStatus.OK);
      expect(await dh.runCycle('rollup')).toMatchObject({ jobs: 1, datasets: [{ to: 'COMPLETE' }], hooks: [] });
      expect(fs.readFileSync(out, 'utf8')).toBe(`[${f.datasetId}] [${f.datasetId}]\n`);
      expect(await hookRows(f.datasetId)).toEqual(['PENDING', 'STARTED', 'DONE']);
    } finally {
      await dh.stop();
    }
  });

  test('a FAILED task with nothing left to do → job FAILED, dataset ERRORS, no hook', async () => {
    const dh = new DhDaemon({ db: t.db, config: dhConfig({ completion_hook: 'exit 0' }) });
    try {
      const f = await insertDataset(t.db, { jobs: 2, tasks: [{ name: 'a' }, { name: 'b' }] });
      await setTasks(f.taskIds[0]!, TaskStatus.OK);
      await setTasks([f.taskIds[1]![0]!], TaskStatus.FAILED);
      await setTasks([f.taskIds[1]![1]!], TaskStatus.ERROR); // still in progress (retry pending)
      await dh.runCycle('rollup');
      expect(await jobStatus(f.jobIds[1]!)).toBe('PROCESSING');
      await setTasks([f.taskIds[1]![1]!], TaskStatus.OK);
      const r = await dh.runCycle('rollup');
      expect(r.datasets).toEqual([{ id: f.datasetId, from: 'PROCESSING', to: 'ERRORS' }]);
      expect(r.hooks).toEqual([]);
      expect(await jobStatus(f.jobIds[1]!)).toBe('FAILED');
      expect(await hookRows(f.datasetId)).toEqual([]);
    } finally {
      await dh.stop();
    }
  });

  test('a failing hook is recorded with its exit code and stderr', async () => {
    const dh = new DhDaemon({ db: t.db, config: dhConfig({ completion_hook: 'echo "no publish for" >&2; exit 3; :' }) });
    try {
      const f = await insertDataset(t.db, { jobs: 1, status: () => TaskStatus.OK });
      expect((await dh.runCycle('rollup')).hooks).toEqual([{ datasetId: f.datasetId, code: 3 }]);
      const last = await t.db('history').where({ entity: 'dataset', entity_id: f.datasetId, action: 'completion_hook' }).orderBy('id', 'desc').first();
      expect(last).toMatchObject({ from_status: 'STARTED', to_status: 'FAILED', reason: 'exit code 3: no publish for' });
    } finally {
      await dh.stop();
    }
  });

  test('bounded by batch_size: jobs roll up over several cycles, the dataset only when all are done', async () => {
    const dh = new DhDaemon({ db: t.db, config: dhConfig({ batch_size: 2 }) });
    try {
      const f = await insertDataset(t.db, { jobs: 5, status: () => TaskStatus.OK });
      const seen: number[] = [];
      for (let i = 0; i < 3; i++) {
        const r = await dh.runCycle('rollup');
        seen.push(r.jobs);
        expect(await datasetStatus(f.datasetId)).toBe(i < 2 ? 'PROCESSING' : 'COMPLETE');
      }
      expect(seen).toEqual([2, 2, 1]);
    } finally {
      await dh.stop();
    }
  });
});
