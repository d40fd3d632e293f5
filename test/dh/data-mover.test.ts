import fs from 'node:fs';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { StorageRoots, TaskStatus, checksumFile } from '@firn/core';
import { DhDaemon, PART_SUFFIX } from '@firn/dh';
import { createTestDb, DB_KINDS, type TestDb } from '../helpers/db';
import {
  dhConfig, insertDataset, insertOutput, listFiles, randomFile, sshEnv, sshWritableDir, taskHistory, taskRow, tmpDir,
  type DatasetFixture,
} from './fixtures';

const fileUrl = (p: string) => pathToFileURL(p).href;

describe.each(DB_KINDS)('data movement on %s', (kind) => {
  let t: TestDb;
  let dir: string;
  const daemons: DhDaemon[] = [];
  const dh = (over: Parameters<typeof dhConfig>[0] = {}, now?: () => number, roots = new StorageRoots({ siteTemp: fileUrl(dir), destinations: [fileUrl(dir)] })) => {
    const d = new DhDaemon({ db: t.db, config: dhConfig(over), transferRetryDelayMs: 0, roots, ...(now ? { now } : {}) });
    daemons.push(d);
    return d;
  };
  beforeAll(async () => {
    t = await createTestDb(kind);
  });
  afterAll(async () => {
    await t?.drop();
  });
  beforeEach(() => {
    dir = tmpDir();
  });
  afterEach(async () => {
    for (const d of daemons.splice(0)) await d.stop();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  /** A job gen → proc; gen in `status` (READYTOCOPY by default), proc IDLE waiting for it. */
  async function genProc(status: TaskStatus = TaskStatus.READYTOCOPY): Promise<DatasetFixture & { gen: { id: number; jobId: number; datasetId: number } }> {
    const f = await insertDataset(t.db, { jobs: 1, tasks: [{ name: 'gen' }, { name: 'proc', depends: [0] }], status: (_j, i) => (i === 0 ? status : TaskStatus.IDLE) });
    return { ...f, gen: { id: f.taskIds[0]![0]!, jobId: f.jobIds[0]!, datasetId: f.datasetId } };
  }

  /** A gen task in `status` whose one output is VERIFIED at its destination, its temp copy still there. */
  async function verifiedAtDestination(status: TaskStatus) {
    const f = await genProc(status);
    const a = randomFile(path.join(dir, 'temp/a.dat'), 100);
    const dest = path.join(dir, 'dest/a.dat');
    fs.mkdirSync(path.dirname(dest), { recursive: true });
    fs.copyFileSync(a.path, dest);
    await insertOutput(t.db, f.gen, { local: 'a.dat', url: fileUrl(dest), tempUrl: fileUrl(a.path), md5: a.md5, sha256: a.sha256, size: a.size, state: 'VERIFIED' });
    return { ...f, temp: a.path, dest };
  }

  test('file://: outputs copied and verified, temp copies of permanent outputs removed, task OK, dependents released', async () => {
    const f = await genProc();
    const a = randomFile(path.join(dir, 'temp/a.dat'), 200_000);
    const b = randomFile(path.join(dir, 'temp/b.dat'), 1);
    const jt = randomFile(path.join(dir, 'temp/jt.dat'), 5000);
    const ids = [
      await insertOutput(t.db, f.gen, { local: 'a.dat', url: fileUrl(path.join(dir, 'dest/x/a.dat')), tempUrl: fileUrl(a.path), md5: a.md5, sha256: a.sha256, size: a.size }),
      await insertOutput(t.db, f.gen, { local: 'b.dat', url: fileUrl(path.join(dir, 'dest/b.dat')), tempUrl: fileUrl(b.path), md5: b.md5, sha256: b.sha256, size: b.size }),
      // job_temp: stays at site temp until its job is done (GC)
      await insertOutput(t.db, f.gen, { local: 'jt.dat', url: fileUrl(path.join(dir, 'jobtemp/jt.dat')), tempUrl: fileUrl(jt.path), md5: jt.md5, sha256: jt.sha256, size: jt.size, type: 'job_temp' }),
    ];
    const r = await dh().runCycle('data');
    expect(r).toMatchObject({ claimed: 1, ok: 1, errors: 0, copied: 3 });

    expect((await taskRow(t.db, f.gen.id)).status).toBe('OK');
    expect((await taskRow(t.db, f.taskIds[0]![1]!)).status).toBe('WAITING');
    expect((await taskHistory(t.db, f.gen.id)).map((h) => `${h.from_status}>${h.to_status}:${h.actor}`)).toEqual([
      'READYTOCOPY>COPYING:dh', 'COPYING>COPIED:dh', 'COPIED>OK:dh',
    ]);
    const files = await t.db('file').whereIn('id', ids).orderBy('id');
    expect(files.map((x) => [x.state, x.md5, x.sha256, Number(x.size)])).toEqual([
      ['VERIFIED', a.md5, a.sha256, a.size], ['VERIFIED', b.md5, b.sha256, b.size], ['VERIFIED', jt.md5, jt.sha256, jt.size],
    ]);
    expect(files.map((x) => x.temp_url === null)).toEqual([true, true, false]);
    expect(listFiles(path.join(dir, 'dest'))).toEqual(['b.dat', 'x/a.dat']);
    expect(await checksumFile(path.join(dir, 'dest/x/a.dat'))).toEqual({ md5: a.md5, sha256: a.sha256, size: a.size });
    expect(await checksumFile(path.join(dir, 'dest/b.dat'))).toEqual({ md5: b.md5, sha256: b.sha256, size: b.size });
    expect(await checksumFile(path.join(dir, 'jobtemp/jt.dat'))).toEqual({ md5: jt.md5, sha256: jt.sha256, size: jt.size });
    expect(listFiles(path.join(dir, 'temp'))).toEqual(['jt.dat']);
    expect(listFiles(path.join(dir, 'jobtemp'))).toEqual(['jt.dat']);
  });

  test('sftp:// both ways against the real sshd, verified at the destination', async () => {
    const ssh = sshEnv();
    if (!ssh) return;
    const remote = sshWritableDir(ssh.user);
    try {
      const f = await genProc();
      const up = randomFile(path.join(dir, 'temp/up.dat'), 700_000);
      const down = randomFile(path.join(remote, 'staged/down.dat'), 300_000);
      fs.chownSync(path.join(remote, 'staged'), fs.statSync(remote).uid, fs.statSync(remote).gid);
      fs.chownSync(down.path, fs.statSync(remote).uid, fs.statSync(remote).gid);
      const sftp = (p: string) => `sftp://${ssh.user}@${ssh.host}:${ssh.port}${p}`;
      await insertOutput(t.db, f.gen, { local: 'up.dat', url: sftp(path.join(remote, 'final/up.dat')), tempUrl: fileUrl(up.path), md5: up.md5, sha256: up.sha256, size: up.size });
      await insertOutput(t.db, f.gen, { local: 'down.dat', url: fileUrl(path.join(dir, 'dest/down.dat')), tempUrl: sftp(down.path), md5: down.md5, sha256: down.sha256, size: down.size });
      const roots = new StorageRoots({ siteTemp: [fileUrl(dir), sftp(remote)], destinations: [fileUrl(dir), sftp(remote)] });
      const r = await dh({ ssh_key: ssh.key, ssh_known_hosts: ssh.knownHosts }, undefined, roots).runCycle('data');
      expect(r).toMatchObject({ ok: 1, errors: 0, copied: 2 });
      expect((await taskRow(t.db, f.gen.id)).status).toBe('OK');
      expect(await checksumFile(path.join(remote, 'final/up.dat'))).toEqual({ md5: up.md5, sha256: up.sha256, size: up.size });
      expect(await checksumFile(path.join(dir, 'dest/down.dat'))).toEqual({ md5: down.md5, sha256: down.sha256, size: down.size });
      expect(fs.statSync(path.join(remote, 'final/up.dat')).uid).toBe(fs.statSync(remote).uid); // written by the site account
      expect(listFiles(remote)).toEqual(['final/up.dat']); // the sftp temp copy is removed, no part left
      expect(fs.existsSync(up.path)).toBe(false);
      expect(listFiles(path.join(dir, 'dest'))).toEqual(['down.dat']);
    } finally {
      fs.rmSync(remote, { recursive: true, force: true });
    }
  });

  test('a host key not in known_hosts is refused', async () => {
    const ssh = sshEnv();
    if (!ssh) return;
    const f = await genProc();
    const a = randomFile(path.join(dir, 'temp/a.dat'), 10);
    const known = path.join(dir, 'known_hosts');
    fs.writeFileSync(known, `[${ssh.host}]:${ssh.port} ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIK1fM6DkVqJ7QhO3sbZjCkNCz8r0mJpBz2rGqfWm4Fz2\n`);
    await insertOutput(t.db, f.gen, { local: 'a.dat', url: `sftp://${ssh.user}@${ssh.host}:${ssh.port}/tmp/never.dat`, tempUrl: fileUrl(a.path), md5: a.md5, sha256: a.sha256, size: a.size });
    const roots = new StorageRoots({ siteTemp: fileUrl(dir), destinations: [`sftp://${ssh.host}:${ssh.port}/tmp`] });
    const r = await dh({ ssh_key: ssh.key, ssh_known_hosts: known }, undefined, roots).runCycle('data');
    expect(r.errors).toBe(1);
    const row = await taskRow(t.db, f.gen.id);
    expect(row.status).toBe('ERROR');
    expect(row.error_summary).toMatch(/is not in .*: refused|presented a key that .* does not list/);
  });

  test('a staged output that is a symbolic link to a secret is refused: ERROR, nothing delivered', async () => {
    const f = await genProc();
    const secret = randomFile(path.join(dir, 'etc/db.ini'), 50);
    fs.mkdirSync(path.join(dir, 'temp'), { recursive: true });
    const planted = path.join(dir, 'temp/out.dat');
    fs.symlinkSync(secret.path, planted);
    const dest = path.join(dir, 'dest/out.dat');
    await insertOutput(t.db, f.gen, { local: 'out.dat', url: fileUrl(dest), tempUrl: fileUrl(planted), md5: secret.md5, sha256: secret.sha256, size: secret.size });
    const roots = new StorageRoots({ siteTemp: fileUrl(path.join(dir, 'temp')), destinations: [fileUrl(path.join(dir, 'dest'))] });
    const r = await dh({}, undefined, roots).runCycle('data');
    expect(r).toMatchObject({ ok: 0, errors: 1 });
    const row = await taskRow(t.db, f.gen.id);
    expect(row.status).toBe('ERROR');
    expect(row.error_summary).toMatch(/^output out\.dat: cannot read .*out\.dat: it is a symbolic link \(refused\)/);
    expect(fs.existsSync(path.join(dir, 'dest'))).toBe(false);
  });

  test('checksum mismatch after the retries → ERROR with the reason, failures + 1, nothing at the destination', async () => {
    const f = await genProc();
    const a = randomFile(path.join(dir, 'temp/a.dat'), 10_000);
    const dest = path.join(dir, 'dest/a.dat');
    const id = await insertOutput(t.db, f.gen, { local: 'a.dat', url: fileUrl(dest), tempUrl: fileUrl(a.path), md5: a.md5, sha256: 'f'.repeat(64), size: a.size });
    const r = await dh({ transfer_retries: 2 }).runCycle('data');
    expect(r).toMatchObject({ ok: 0, errors: 1 });
    const row = await taskRow(t.db, f.gen.id);
    expect(row.status).toBe('ERROR');
    expect(Number(row.failures)).toBe(1);
    expect(row.error_summary).toMatch(/^output a\.dat: checksum mismatch at destination .*sha256 [0-9a-f]{64} != expected f{64}.*\(after 3 attempts\)/);
    const hist = await taskHistory(t.db, f.gen.id);
    expect(hist.at(-1)).toMatchObject({ from_status: 'COPYING', to_status: 'ERROR', actor: 'dh', reason: row.error_summary });
    expect(await t.db('file').where({ id }).first()).toMatchObject({ state: 'FAILED', error: row.error_summary });
    expect(listFiles(path.join(dir, 'dest'))).toEqual([]);
    expect(fs.existsSync(a.path)).toBe(true); // the staged copy stays for a retry / inspection
    expect((await taskRow(t.db, f.taskIds[0]![1]!)).status).toBe('IDLE');
  });

  test('a missing staged file fails at once, a task without outputs goes straight to OK', async () => {
    const f = await genProc();
    await insertOutput(t.db, f.gen, { local: 'a.dat', url: fileUrl(path.join(dir, 'd/a')), tempUrl: fileUrl(path.join(dir, 'nothing-here')), md5: 'a'.repeat(32), sha256: null, size: null });
    const g = await genProc();
    const r = await dh({ transfer_retries: 5 }).runCycle('data');
    expect(r).toMatchObject({ claimed: 2, ok: 1, errors: 1 });
    expect((await taskRow(t.db, f.gen.id)).error_summary).toMatch(/does not exist/);
    expect((await taskRow(t.db, g.gen.id)).status).toBe('OK');
    expect((await taskRow(t.db, g.taskIds[0]![1]!)).status).toBe('WAITING');
  });

  test('a batch with nothing left to copy is finished together: 25 tasks without outputs and one whose outputs were all verified before a kill, each through COPYING > COPIED > OK exactly once', async () => {
    const f = await insertDataset(t.db, { jobs: 25, tasks: [{ name: 'gen' }, { name: 'proc', depends: [0] }], status: (_j, i) => (i === 0 ? TaskStatus.READYTOCOPY : TaskStatus.IDLE) });
    const v = await verifiedAtDestination(TaskStatus.COPYING); // lease_until NULL: a dh that is gone
    const r = await dh().runCycle('data');
    expect(r).toMatchObject({ claimed: 25, resumed: 1, ok: 26, errors: 0, lost: 0, copied: 0 });
    for (const [gen, proc] of f.taskIds.map((ids) => [ids[0]!, ids[1]!])) {
      expect((await taskRow(t.db, gen)).status).toBe('OK');
      expect((await taskRow(t.db, proc)).status).toBe('WAITING');
      expect((await taskHistory(t.db, gen)).map((h) => `${h.from_status}>${h.to_status}:${h.reason}`)).toEqual([
        'READYTOCOPY>COPYING:copying outputs to their destinations',
        'COPYING>COPIED:0 output files at destination, md5 + sha256 verified',
        'COPIED>OK:temporary copies removed',
      ]);
    }
    expect((await taskRow(t.db, v.gen.id)).status).toBe('OK');
    expect((await taskHistory(t.db, v.gen.id)).map((h) => `${h.from_status}>${h.to_status}:${h.reason}`)).toEqual([
      'COPYING>COPIED:1 output file at destination, md5 + sha256 verified', 'COPIED>OK:temporary copies removed',
    ]);
    expect(fs.existsSync(v.temp)).toBe(false);
    expect(fs.existsSync(v.dest)).toBe(true);
    expect((await taskRow(t.db, v.taskIds[0]![1]!)).status).toBe('WAITING');
  });

  describe('killed and restarted (each step of the protocol)', () => {
    test('killed after a file was renamed into place but before it was recorded, with a half-written part of the next', async () => {
      const f = await genProc(TaskStatus.COPYING);
      await t.db('task').where({ id: f.gen.id }).update({ lease_until: Date.now() + 3_600_000 }); // the dead dh's lease
      const a = randomFile(path.join(dir, 'temp/a.dat'), 50_000);
      const b = randomFile(path.join(dir, 'temp/b.dat'), 50_000);
      const destA = path.join(dir, 'dest/a.dat');
      const destB = path.join(dir, 'dest/b.dat');
      fs.mkdirSync(path.dirname(destA), { recursive: true });
      fs.copyFileSync(a.path, destA);
      fs.writeFileSync(destB + PART_SUFFIX, fs.readFileSync(b.path).subarray(0, 1000));
      const mtimeA = fs.statSync(destA).mtimeMs;
      await insertOutput(t.db, f.gen, { local: 'a.dat', url: fileUrl(destA), tempUrl: fileUrl(a.path), md5: a.md5, sha256: a.sha256, size: a.size });
      await insertOutput(t.db, f.gen, { local: 'b.dat', url: fileUrl(destB), tempUrl: fileUrl(b.path), md5: b.md5, sha256: b.sha256, size: b.size });

      const r = await dh().runCycle('data'); // the first cycle of a new dh takes it up despite the lease
      expect(r).toMatchObject({ resumed: 1, claimed: 0, ok: 1, present: 1, copied: 1 });
      expect((await taskRow(t.db, f.gen.id)).status).toBe('OK');
      expect(fs.statSync(destA).mtimeMs).toBe(mtimeA);
      expect(listFiles(path.join(dir, 'dest'))).toEqual(['a.dat', 'b.dat']);
      expect(await checksumFile(destB)).toEqual({ md5: b.md5, sha256: b.sha256, size: b.size });
      expect(await checksumFile(destA)).toEqual({ md5: a.md5, sha256: a.sha256, size: a.size });
      expect((await t.db('file').where({ task_id: f.gen.id })).map((x) => x.state)).toEqual(['VERIFIED', 'VERIFIED']);
      // exactly one COPYING → COPIED in history
      expect((await taskHistory(t.db, f.gen.id)).filter((h) => h.to_status === 'COPIED')).toHaveLength(1);
    });

    test('killed after COPIED: temp copies removed and OK on restart, dependents released', async () => {
      const f = await verifiedAtDestination(TaskStatus.COPIED);
      const r = await dh().runCycle('data');
      expect(r).toMatchObject({ resumed: 1, ok: 1, copied: 0 });
      expect((await taskRow(t.db, f.gen.id)).status).toBe('OK');
      expect(fs.existsSync(f.temp)).toBe(false);
      expect((await taskRow(t.db, f.taskIds[0]![1]!)).status).toBe('WAITING');
    });

    test('a running dh leaves a live lease alone and takes the task up once it expires', async () => {
      let now = Date.now();
      const d = dh({}, () => now);
      await d.runCycle('data'); // its first cycle (nothing to do)
      const f = await genProc(TaskStatus.COPYING);
      await t.db('task').where({ id: f.gen.id }).update({ lease_until: now + 60_000 });
      expect(await d.runCycle('data')).toMatchObject({ resumed: 0 });
      expect((await taskRow(t.db, f.gen.id)).status).toBe('COPYING');
      now += 61_000;
      expect(await d.runCycle('data')).toMatchObject({ resumed: 1, ok: 1 });
      expect((await taskRow(t.db, f.gen.id)).status).toBe('OK');
    });
  });

  test('batch_size bounds a cycle', async () => {
    const f = await insertDataset(t.db, { jobs: 5, status: () => TaskStatus.READYTOCOPY });
    const d = dh({ batch_size: 2 });
    expect(await d.runCycle('data')).toMatchObject({ claimed: 2, ok: 2 });
    expect(await d.runCycle('data')).toMatchObject({ claimed: 2, ok: 2 });
    expect(await d.runCycle('data')).toMatchObject({ claimed: 1, ok: 1 });
    const statuses = await t.db('task').whereIn('id', f.taskIds.flat()).pluck('status');
    expect(statuses).toEqual(['OK', 'OK', 'OK', 'OK', 'OK']);
  });
});
