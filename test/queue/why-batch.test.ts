/**
 * The batch system's own pending reason, through real Slurm and SGE. Slurm: a grid whose jobs Slurm holds
 * (`[queue] extra_directives`, the site's sbatch options: a task config cannot pass sbatch
 * options) records Slurm's reason (`squeue %r`) in task.batch_reason each cycle, and `firn why`
 * shows it; a resubmission clears it. Slurm 22.05 refuses an unknown `--constraint` at
 * submission ("Invalid feature specification") instead of holding the job, so the hold here is
 * `--begin` in an hour (reason BeginTime); a refused submission shows through `firn why` as
 * the task's last submit error. SGE: a job asking for an architecture the host lacks waits with
 * the scheduler's `qstat -j` scheduling info.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { spawnSync } from 'node:child_process';
import { createUser, loadConfig, nullLogger, type TaskWhy } from '@firn/core';
import { openQueueDaemon, type QueueDaemon } from '@firn/queue';
import { startTray, type Tray } from '@firn/tray';
import { createTestDb, waitUntil, type TestDb } from '../helpers/db';
import { randomTaskIdBase, serviceEnv, startService } from './support/harness';
import { seedDataset } from './support/seed';
import { trayConfig } from '../tray/helpers';
import { runFirn } from '../helpers/cli';

let available = true;
let sgeAvailable = true;
let t: TestDb;
let dir: string;
let tray: Tray;
const daemons: QueueDaemon[] = [];
const batchIds: string[] = [];
const sgeIds: string[] = [];

const firn = async (argv: string[], env: Record<string, string>, input = '') => {
  // stdout and stderr together: the reasons may come on either
  const r = await runFirn(argv, env, input);
  return { code: r.code, out: r.out + r.err };
};

beforeAll(async () => {
  if (startService('sge') === 'skip') sgeAvailable = false;
  if (startService('slurm') === 'skip') available = false;
  if (!available && !sgeAvailable) return;
  t = await createTestDb('sqlite');
  await randomTaskIdBase(t.db, 'sqlite');
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'firn-why-slurm-'));
  await createUser(t.db, { username: 'viewer', role: 'viewer', password: 'viewer-password' });
  tray = await startTray({ config: trayConfig(t.url), db: t.db });
}, 120_000);
afterAll(async () => {
  for (const d of daemons.splice(0)) await d.close();
  if (batchIds.length) spawnSync('scancel', batchIds.map((b) => b.split('_')[0]!));
  if (sgeIds.length) spawnSync('qdel', sgeIds.map((b) => b.split('.')[0]!), { env: { ...process.env, ...sgeEnv() } });
  await tray?.close();
  await t?.drop();
  if (dir) fs.rmSync(dir, { recursive: true, force: true });
});

const sgeEnv = (): Record<string, string> => {
  const e = serviceEnv('sge');
  return { SGE_ROOT: e.SGE_ROOT ?? '/var/lib/gridengine', SGE_CELL: e.SGE_CELL ?? 'default', PATH: `${e.SGE_BIN ?? '/usr/bin'}:${process.env.PATH}` };
};

const open = async (grid: string, extra: string, plugin: 'slurm' | 'sge' = 'slurm') => {
  const d = await openQueueDaemon(loadConfig({
    overrides: {
      db: { url: t.url },
      queue: { grid, plugin, submit_dir: path.join(dir, grid), capabilities: '{"cpu": 1, "memory": 1000, "time": 60}', lease_seconds: 30, extra_directives: extra },
      system: { pilot: '/bin/true' },
      mon: { url: 'http://mon.test.invalid:8581' },
    },
  }), { logger: nullLogger, lostGraceMs: 0, env: { ...process.env, ...(plugin === 'sge' ? sgeEnv() : {}) } as Record<string, string> });
  daemons.push(d);
  return d;
};

test('a held Slurm job: Slurm\'s reason in task.batch_reason and in firn why; an sbatch refusal as the last submit error', async () => {
  if (!available) return;
  const d = await open(`why-held-${process.pid}`, '--begin=now+3600');
  const ds = await seedDataset(t.db, { jobs: 1, grids: [d.grid], tasks: [{ name: 'sim', req: { cpu: 1, memory: 100, time: 10 } }] });
  const task = ds.all[0]!;
  const first = await d.runCycle();
  expect(first).toMatchObject({ errors: [], submitted: 1, max_queued: expect.any(Number) });
  const row = (await t.db('task').where({ id: task }).first()) as { status: string; batch_id: string };
  expect(row.status).toBe('QUEUED');
  batchIds.push(row.batch_id);
  // Slurm's own words, as squeue prints them
  const sq = spawnSync('squeue', ['-h', '-j', row.batch_id.split('_')[0]!, '-o', '%r'], { encoding: 'utf8' });
  expect(sq.stdout.trim()).toBe('BeginTime');
  await d.runCycle();
  expect(((await t.db('task').where({ id: task }).first()) as { batch_reason: string | null }).batch_reason).toBe('BeginTime');

  const env = { FIRN_CONFIG_DIR: path.join(dir, 'cfg'), HOME: dir };
  expect((await firn(['login', tray.url, '-u', 'viewer'], env, 'viewer-password\n')).code).toBe(0);
  const why = await firn(['why', `t${task}`], env);
  expect(why.out).toContain(`waiting in grid why-held-${process.pid}'s batch queue as ${row.batch_id}`);
  expect(why.out).toContain('the batch system says: BeginTime');
  const json = JSON.parse((await firn(['--json', 'why', `t${task}`], env)).out) as TaskWhy;
  expect(json.reason).toMatchObject({ code: 'batch_queued', data: { batch_reason: 'BeginTime', batch_id: row.batch_id } });
  const counted = await firn(['why', String(ds.datasetId)], env);
  expect(counted.out).toContain('1 QUEUED: in grid');
  expect(counted.out).toContain('the batch system says: BeginTime');

  // an unsatisfiable constraint: this Slurm refuses the submission itself
  const bad = await open(`why-bad-${process.pid}`, '--constraint=nosuchfeature');
  const ds2 = await seedDataset(t.db, { jobs: 1, grids: [bad.grid], tasks: [{ name: 'sim', req: { cpu: 1, memory: 100, time: 10 } }] });
  const r = await bad.runCycle();
  expect(r.submit_failed).toBe(1);
  const refused = await firn(['why', `t${ds2.all[0]!}`], env);
  expect(refused.out).toMatch(/why: its batch submission failed 1 time\(s\), last: .*Invalid feature specification/);
}, 180_000);

test('an SGE job its scheduler cannot place: SGE\'s scheduling info in task.batch_reason and in firn why', async () => {
  if (!sgeAvailable) return;
  const d = await open(`why-sge-${process.pid}`, '-l arch=sparc64', 'sge');
  const ds = await seedDataset(t.db, { jobs: 2, grids: [d.grid], tasks: [{ name: 'sim', req: { cpu: 1, memory: 100, time: 10 } }] });
  expect(await d.runCycle()).toMatchObject({ errors: [], submitted: 2 });
  const rows = (await t.db('task').whereIn('id', ds.all).orderBy('id')) as Array<{ id: number; status: string; batch_id: string }>;
  expect(rows.map((r) => r.status)).toEqual(['QUEUED', 'QUEUED']);
  sgeIds.push(...rows.map((r) => r.batch_id));
  // the plugin's own -l (time, memory) joins the site's in SGE's words
  const because = '(-l arch=sparc64,h_rt=600,mem_free=100M) cannot run at host "localhost" because it offers only hl:arch=lx-amd64';
  await waitUntil(async () => {
    await d.runCycle();
    const reasons = (await t.db('task').whereIn('id', ds.all).pluck('batch_reason')) as Array<string | null>;
    return reasons.every((r) => r === because);
  }, 30_000, 'SGE\'s scheduling info on both tasks', 500);
  const env = { FIRN_CONFIG_DIR: path.join(dir, 'cfg-sge'), HOME: dir };
  expect((await firn(['login', tray.url, '-u', 'viewer'], env, 'viewer-password\n')).code).toBe(0);
  const counted = await firn(['why', String(ds.datasetId)], env);
  expect(counted.out).toContain(`2 QUEUED: in grid why-sge-${process.pid}'s batch queue; the batch system says: ${because}`);
}, 120_000);
