import fs from 'node:fs';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { StorageRoots, TaskStatus } from '@firn/core';
import { DhDaemon } from '@firn/dh';
import { createTestDb, DB_KINDS, type TestDb } from '../helpers/db';
import { dhConfig, insertDataset, insertOutput, randomFile, tmpDir } from './fixtures';

const DAY = 86_400_000;

describe.each(DB_KINDS)('garbage collection on %s', (kind) => {
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

  const url = (p: string) => pathToFileURL(path.join(dir, p)).href;
  async function output(task: { id: number; jobId: number; datasetId: number }, name: string, o: { type?: string; state?: string; temp?: boolean; dest?: boolean } = {}) {
    const temp = o.temp === false ? null : randomFile(path.join(dir, 'temp', name), 10);
    if (o.dest) randomFile(path.join(dir, 'dest', name), 10);
    const id = await insertOutput(t.db, task, { local: name, url: url(`dest/${name}`), tempUrl: temp ? url(`temp/${name}`) : null, md5: null, sha256: null, size: null, type: o.type ?? 'permanent', state: o.state ?? 'VERIFIED' });
    return id;
  }
  const exists = (p: string) => fs.existsSync(path.join(dir, p));
  const file = async (id: number) => t.db('file').where({ id }).first();

  test('after retention_days: temp leftovers of finished, failed and obsolete work removed; recent work and permanent destinations kept', async () => {
    const now = Date.now() + 30 * DAY;
    const old = now - 8 * DAY;
    const recent = now - 1 * DAY;
    const dh = new DhDaemon({ db: t.db, config: dhConfig({ retention_days: 7, transfer_retries: 0 }), roots: new StorageRoots({ siteTemp: pathToFileURL(dir).href, destinations: [pathToFileURL(dir).href] }), now: () => now });
    try {
      // job OK long ago: its job_temp goes (url and temp copy); a permanent output's leftover temp copy goes, its destination stays
      const a = await insertDataset(t.db, { jobs: 2, status: () => TaskStatus.OK });
      await t.db('job').whereIn('id', a.jobIds).update({ status: 'OK' });
      await t.db('job').where({ id: a.jobIds[0]! }).update({ status_changed_at: old });
      await t.db('job').where({ id: a.jobIds[1]! }).update({ status_changed_at: recent });
      await t.db('task').whereIn('id', a.taskIds.flat()).update({ status_changed_at: old });
      const ta0 = { id: a.taskIds[0]![0]!, jobId: a.jobIds[0]!, datasetId: a.datasetId };
      const ta1 = { id: a.taskIds[1]![0]!, jobId: a.jobIds[1]!, datasetId: a.datasetId };
      const jt = await output(ta0, 'jt0', { type: 'job_temp', dest: true });
      const jtRecent = await output(ta1, 'jt1', { type: 'job_temp', dest: true });
      const perm = await output(ta0, 'perm0', { dest: true });

      // a FAILED task's never-copied staged output: temp copy removed, row DELETED
      const b = await insertDataset(t.db, { jobs: 1, status: () => TaskStatus.FAILED });
      await t.db('task').whereIn('id', b.taskIds.flat()).update({ status_changed_at: old });
      const staged = await output({ id: b.taskIds[0]![0]!, jobId: b.jobIds[0]!, datasetId: b.datasetId }, 'staged', { state: 'STAGED' });

      // dataset_temp of a dataset COMPLETE long ago; and one still PROCESSING
      const c = await insertDataset(t.db, { jobs: 1, status: () => TaskStatus.OK, datasetStatus: 'COMPLETE' });
      await t.db('dataset').where({ id: c.datasetId }).update({ updated_at: old });
      const dt = await output({ id: c.taskIds[0]![0]!, jobId: c.jobIds[0]!, datasetId: c.datasetId }, 'dt', { type: 'dataset_temp', dest: true, temp: false });
      const d = await insertDataset(t.db, { jobs: 1, status: () => TaskStatus.OK });
      await t.db('dataset').where({ id: d.datasetId }).update({ updated_at: old });
      const dtLive = await output({ id: d.taskIds[0]![0]!, jobId: d.jobIds[0]!, datasetId: d.datasetId }, 'dtlive', { type: 'dataset_temp', dest: true, temp: false });

      // an obsolete dataset's running task: its job_temp goes
      const e = await insertDataset(t.db, { jobs: 1, status: () => TaskStatus.PROCESSING, datasetStatus: 'OBSOLETE' });
      await t.db('dataset').where({ id: e.datasetId }).update({ updated_at: old });
      const obs = await output({ id: e.taskIds[0]![0]!, jobId: e.jobIds[0]!, datasetId: e.datasetId }, 'obs', { type: 'job_temp', dest: true, state: 'STAGED' });

      const r = await dh.runCycle('gc');
      expect(r).toEqual({ cleaned: 5, removed: 7, failed: 0, refused: 0 }); // jt0 ×2, perm0 temp, staged temp, dt, obs ×2
      expect(await file(jt)).toMatchObject({ state: 'DELETED', temp_url: null });
      expect(exists('dest/jt0') || exists('temp/jt0')).toBe(false);
      expect(await file(jtRecent)).toMatchObject({ state: 'VERIFIED' });
      expect(exists('dest/jt1') && exists('temp/jt1')).toBe(true);
      expect(await file(perm)).toMatchObject({ state: 'VERIFIED', temp_url: null });
      expect([exists('dest/perm0'), exists('temp/perm0')]).toEqual([true, false]);
      expect(await file(staged)).toMatchObject({ state: 'DELETED', temp_url: null });
      expect(exists('temp/staged')).toBe(false);
      expect(await file(dt)).toMatchObject({ state: 'DELETED' });
      expect(exists('dest/dt')).toBe(false);
      expect(await file(dtLive)).toMatchObject({ state: 'VERIFIED' });
      expect(exists('dest/dtlive')).toBe(true);
      expect(await file(obs)).toMatchObject({ state: 'DELETED' });
      expect(exists('dest/obs') || exists('temp/obs')).toBe(false);

      expect(await dh.runCycle('gc')).toEqual({ cleaned: 0, removed: 0, failed: 0, refused: 0 });
    } finally {
      await dh.stop();
    }
  });

  test('a removal that fails is recorded and retried in a later cycle', async () => {
    const now = Date.now() + 30 * DAY;
    const dh = new DhDaemon({ db: t.db, config: dhConfig({ retention_days: 7, transfer_retries: 0 }), roots: new StorageRoots({ siteTemp: [pathToFileURL(dir).href, 'http://127.0.0.1:1/temp'], destinations: [pathToFileURL(dir).href] }), now: () => now });
    try {
      const a = await insertDataset(t.db, { jobs: 1, status: () => TaskStatus.FAILED });
      await t.db('task').whereIn('id', a.taskIds.flat()).update({ status_changed_at: now - 8 * DAY });
      const id = await insertOutput(t.db, { id: a.taskIds[0]![0]!, jobId: a.jobIds[0]!, datasetId: a.datasetId }, {
        local: 'x', url: url('dest/x'), tempUrl: 'http://127.0.0.1:1/temp/x', md5: null, sha256: null, size: null, state: 'STAGED',
      });
      expect(await dh.runCycle('gc')).toMatchObject({ cleaned: 0, failed: 1 });
      expect((await file(id)).error).toMatch(/^gc: DELETE http:\/\/127\.0\.0\.1:1\/temp\/x: .*ECONNREFUSED/);
      await t.db('file').where({ id }).update({ temp_url: url('temp/x') });
      expect(await dh.runCycle('gc')).toMatchObject({ cleaned: 1, failed: 0 });
    } finally {
      await dh.stop();
    }
  });
});
