/**
 * Issue 14: firn-dh reads, writes and deletes only under site temp and `[dh] destinations`,
 * even for rows inserted straight into `file` (an older mon, a tampered row). Canary files
 * outside must keep content, mtime and existence; a capture HTTP server on loopback must
 * receive no request. Issue 15: a task's statistics enter dataset_stat exactly once (at OK),
 * also through COPYING → ERROR → retry → OK.
 */
import fs from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { StorageRoots, TaskStatus, transition } from '@firn/core';
import { DhDaemon } from '@firn/dh';
import { createTestDb, DB_KINDS, type TestDb } from '../helpers/db';
import { dhConfig, insertDataset, insertOutput, randomFile, taskRow, tmpDir } from './fixtures';

const fileUrl = (p: string) => pathToFileURL(p).href;
const DAY = 86_400_000;

describe.each(DB_KINDS)('storage roots and statistics on %s', (kind) => {
  let t: TestDb;
  let dir: string;
  let capture: http.Server;
  let captureUrl: string;
  const requests: string[] = [];

  beforeAll(async () => {
    t = await createTestDb(kind);
    capture = http.createServer((req, res) => {
      requests.push(`${req.method} ${req.url}`);
      req.resume();
      res.end('ok');
    });
    await new Promise<void>((r) => capture.listen(0, '127.0.0.1', r));
    captureUrl = `http://127.0.0.1:${(capture.address() as AddressInfo).port}`;
  });
  afterAll(async () => {
    await new Promise<void>((r) => capture.close(() => r()));
    await t?.drop();
  });
  beforeEach(() => {
    dir = tmpDir('firn-dh-roots-');
  });
  afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));

  const rootsOf = () => new StorageRoots({ siteTemp: fileUrl(path.join(dir, 'site-temp')), destinations: [fileUrl(path.join(dir, 'dest'))] });

  test('rows outside the roots are never read, written or deleted: REFUSED, task ERROR, canaries untouched, no HTTP request', async () => {
    const secret = randomFile(path.join(dir, 'outside/db-password'), 64);
    const victim = randomFile(path.join(dir, 'outside/victim.conf'), 64);
    const doomed = randomFile(path.join(dir, 'outside/doomed.dat'), 64);
    const staged = randomFile(path.join(dir, 'site-temp/1/0/gen/ok.dat'), 64);
    const old = new Date(Date.now() - 3600_000);
    for (const c of [secret, victim, doomed]) fs.utimesSync(c.path, old, old);
    const canaries = [secret, victim, doomed].map((c) => ({ ...c, mtime: fs.statSync(c.path).mtimeMs, bytes: fs.readFileSync(c.path) }));

    const ds = await insertDataset(t.db, { jobs: 5, status: () => TaskStatus.READYTOCOPY });
    const task = (j: number) => ({ id: ds.taskIds[j]![0]!, jobId: ds.jobIds[j]!, datasetId: ds.datasetId });
    const sums = (c: { md5: string; sha256: string; size: number }) => ({ md5: c.md5, sha256: c.sha256, size: c.size });
    // exfiltration: a secret outside site temp "staged" to the capture server
    await insertOutput(t.db, task(0), { local: 'a', url: `${captureUrl}/upload`, tempUrl: fileUrl(secret.path), ...sums(secret) });
    // overwrite: a good staged file copied over a file outside the destinations (via ..)
    await insertOutput(t.db, task(1), { local: 'b', url: `${fileUrl(path.join(dir, 'dest'))}/../outside/victim.conf`, tempUrl: fileUrl(staged.path), ...sums(staged) });
    // delete: the temp copy (removed after a copy) outside site temp, the destination legitimate
    await insertOutput(t.db, task(2), { local: 'c', url: fileUrl(path.join(dir, 'dest/c.dat')), tempUrl: fileUrl(doomed.path), ...sums(doomed) });
    // verify-only read of a file outside, and a percent-encoded traversal
    await insertOutput(t.db, task(3), { local: 'd', url: 'file:///etc/passwd', tempUrl: null, md5: null, sha256: null, size: null });
    await insertOutput(t.db, task(4), { local: 'e', url: fileUrl(path.join(dir, 'dest')) + '/%2e%2e/outside/victim.conf', tempUrl: fileUrl(staged.path), ...sums(staged) });

    const dh = new DhDaemon({ db: t.db, config: dhConfig({ transfer_retries: 0 }), roots: rootsOf(), transferRetryDelayMs: 0 });
    try {
      const r = await dh.runCycle('data');
      expect(r).toMatchObject({ ok: 0, errors: 5, refused: 5, copied: 0 });
      for (let j = 0; j < 5; j++) expect((await taskRow(t.db, task(j).id)).status).toBe('ERROR');
      const files = await t.db('file').where({ dataset_id: ds.datasetId }).orderBy('id');
      expect(files.map((f: { state: string }) => f.state)).toEqual(['REFUSED', 'REFUSED', 'REFUSED', 'REFUSED', 'REFUSED']);
      expect(files.every((f: { error: string }) => /refused/.test(f.error))).toBe(true);

      // GC of the same kinds of rows (job_temp url outside, temp copy outside), long after
      const gcDs = await insertDataset(t.db, { jobs: 1, status: () => TaskStatus.OK });
      await t.db('job').where({ id: gcDs.jobIds[0]! }).update({ status: 'OK', status_changed_at: Date.now() - 30 * DAY });
      await t.db('task').where({ id: gcDs.taskIds[0]![0]! }).update({ status_changed_at: Date.now() - 30 * DAY });
      const g = { id: gcDs.taskIds[0]![0]!, jobId: gcDs.jobIds[0]!, datasetId: gcDs.datasetId };
      await insertOutput(t.db, g, { local: 'jt', url: fileUrl(doomed.path), tempUrl: null, md5: null, sha256: null, size: null, type: 'job_temp', state: 'VERIFIED' });
      await insertOutput(t.db, g, { local: 'pt', url: fileUrl(path.join(dir, 'dest/x')), tempUrl: fileUrl(victim.path), md5: null, sha256: null, size: null, state: 'VERIFIED' });
      await insertOutput(t.db, g, { local: 'ht', url: `${captureUrl}/delete-me`, tempUrl: null, md5: null, sha256: null, size: null, type: 'dataset_temp', state: 'VERIFIED' });
      await t.db('dataset').where({ id: gcDs.datasetId }).update({ status: 'COMPLETE', updated_at: Date.now() - 30 * DAY });
      const gc = await dh.runCycle('gc');
      expect(gc).toMatchObject({ refused: 3, removed: 0 });
      const again = await dh.runCycle('gc'); // refused rows are not picked up again
      expect(again).toMatchObject({ refused: 0, removed: 0 });
      expect((await t.db('file').where({ dataset_id: gcDs.datasetId })).map((f: { state: string }) => f.state)).toEqual(['REFUSED', 'REFUSED', 'REFUSED']);
    } finally {
      await dh.stop();
    }
    for (const c of canaries) {
      expect(fs.existsSync(c.path)).toBe(true);
      expect(fs.readFileSync(c.path).equals(c.bytes)).toBe(true);
      expect(fs.statSync(c.path).mtimeMs).toBe(c.mtime);
    }
    expect(fs.existsSync(staged.path)).toBe(true);
    expect(fs.existsSync(path.join(dir, 'dest'))).toBe(false); // nothing written anywhere
    expect(requests).toEqual([]);
  });

  test('a task\'s statistics count once: COPYING → ERROR (copy failed) → retry → OK, and the bulk lane', async () => {
    const ds = await insertDataset(t.db, { jobs: 3, status: () => TaskStatus.READYTOCOPY });
    const ids = ds.taskIds.map((x) => x[0]!);
    const stat = async (taskId: number, v: number) => {
      await t.db('task_stat').where({ task_id: taskId }).delete();
      await t.db('task_stat').insert([{ task_id: taskId, dataset_id: ds.datasetId, name: 'events', value: v }]);
    };
    for (const [i, id] of ids.entries()) await stat(id, 10 * (i + 1));
    // task 0 has an output whose staged copy is missing: the copy fails → ERROR
    await insertOutput(t.db, { id: ids[0]!, jobId: ds.jobIds[0]!, datasetId: ds.datasetId }, {
      local: 'o', url: fileUrl(path.join(dir, 'dest/o')), tempUrl: fileUrl(path.join(dir, 'site-temp/o')), md5: 'a'.repeat(32), sha256: null, size: null,
    });
    const dh = new DhDaemon({ db: t.db, config: dhConfig({ transfer_retries: 0 }), roots: rootsOf(), transferRetryDelayMs: 0 });
    try {
      const r1 = await dh.runCycle('data');
      expect(r1).toMatchObject({ ok: 2, errors: 1 });
      const after1 = await t.db('dataset_stat').where({ dataset_id: ds.datasetId, name: 'events' }).first();
      expect([Number(after1.n), Number(after1.sum)]).toEqual([2, 50]); // tasks 1 and 2 (bulk lane), not the failed one

      // the retry: a new attempt (pilot.start deletes the old stats), finishes, its copy succeeds
      await transition(t.db, { taskIds: [ids[0]!], from: TaskStatus.ERROR, to: TaskStatus.RESET, by: 'core', actor: 'core' });
      await transition(t.db, { taskIds: [ids[0]!], from: TaskStatus.RESET, to: TaskStatus.WAITING, by: 'core', actor: 'core' });
      for (const to of [TaskStatus.QUEUEING, TaskStatus.QUEUED, TaskStatus.PROCESSING, TaskStatus.READYTOCOPY] as const) {
        const from = { QUEUEING: TaskStatus.WAITING, QUEUED: TaskStatus.QUEUEING, PROCESSING: TaskStatus.QUEUED, READYTOCOPY: TaskStatus.PROCESSING }[to];
        await transition(t.db, { taskIds: [ids[0]!], from, to, by: to === TaskStatus.PROCESSING || to === TaskStatus.READYTOCOPY ? 'mon' : 'queue', actor: 'test' });
      }
      await stat(ids[0]!, 7);
      const staged = randomFile(path.join(dir, 'site-temp/o'), 32);
      await t.db('file').where({ task_id: ids[0]! }).update({ state: 'STAGED', md5: staged.md5, sha256: staged.sha256, size: staged.size });
      const r2 = await dh.runCycle('data');
      expect(r2).toMatchObject({ ok: 1, errors: 0 });
      expect((await taskRow(t.db, ids[0]!)).status).toBe('OK');
      const after2 = await t.db('dataset_stat').where({ dataset_id: ds.datasetId, name: 'events' }).first();
      expect([Number(after2.n), Number(after2.sum), Number(after2.sum_sq), Number(after2.min), Number(after2.max)]).toEqual([3, 57, 49 + 400 + 900, 7, 30]);
      // another cycle folds nothing again
      await dh.runCycle('data');
      expect(Number((await t.db('dataset_stat').where({ dataset_id: ds.datasetId, name: 'events' }).first()).n)).toBe(3);
    } finally {
      await dh.stop();
    }
  });
});
