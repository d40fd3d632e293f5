/**
 * firn-queue against real batch systems, each started by test/services/start-<name>.sh:
 * Slurm, PBS (Slurm's Torque-compatible wrappers), Son of Grid Engine, and Slurm reached
 * through ssh2 on a real sshd (127.0.0.1:2222, user firnsite). A stand-in pilot records what
 * the batch system ran; the worker node is this host, so a pilot's pid tells whether its job
 * still runs.
 */
import fs from 'node:fs';
import path from 'node:path';
import {
  createExecutor,
  createPlugin,
  openQueueDaemon,
  queueSettings,
  type QueueDaemon,
} from '@firn/queue';
import { TaskStatus, loadConfig, nullLogger, transition, type FirnConfig } from '@firn/core';
import { createTestDb, waitUntil, type DbKind, type TestDb } from '../helpers/db';
import {
  alive,
  killRecordedPilots,
  randomTaskIdBase,
  recordsByTask,
  serviceEnv,
  sh,
  startService,
  tempDir,
  writeStandInPilot,
} from './support/harness';
import { seedDataset, statusOf } from './support/seed';
import { scancelTasks } from './support/slurm';

interface System {
  name: string;
  services: string[];
  plugin: 'slurm' | 'pbs' | 'sge';
  db: DbKind;
  ssh?: boolean;
  /** the submit command a PATH shim replaces */
  submitTool: string;
  /** environment of the daemon's local executor */
  env: () => Record<string, string>;
  /** cancel a job with the batch system's own tool, behind Firn's back */
  cancel: (batchId: string, env: Record<string, string>) => void;
}

const SYSTEMS: System[] = [
  {
    name: 'Slurm', services: ['slurm'], plugin: 'slurm', db: 'mariadb', submitTool: 'sbatch',
    env: () => ({}),
    cancel: (id) => sh('scancel', [id]),
  },
  {
    name: 'PBS (Slurm Torque wrappers)', services: ['slurm'], plugin: 'pbs', db: 'sqlite', submitTool: 'qsub',
    env: () => ({ PATH: `${serviceEnv('slurm').TORQUE_BIN ?? '/usr/bin'}:${process.env.PATH}` }),
    cancel: (id, env) => sh('qdel', [id], env),
  },
  {
    name: 'Son of Grid Engine', services: ['sge'], plugin: 'sge', db: 'sqlite', submitTool: 'qsub',
    env: () => {
      const e = serviceEnv('sge');
      return { SGE_ROOT: e.SGE_ROOT ?? '/var/lib/gridengine', SGE_CELL: e.SGE_CELL ?? 'default', PATH: `${e.SGE_BIN ?? '/usr/bin'}:${process.env.PATH}` };
    },
    cancel: (id, env) => sh('qdel', [id], env),
  },
  {
    name: 'Slurm over ssh2', services: ['slurm', 'sshd'], plugin: 'slurm', db: 'mariadb', ssh: true, submitTool: 'sbatch',
    env: () => ({}),
    cancel: (id) => sh('scancel', [id]),
  },
];

describe.each(SYSTEMS)('firn-queue with $name', (sys) => {
  let available = true;
  let t: TestDb;
  let dir: string;
  let records: string;
  let pilot: string;
  let sshUser: string | undefined;
  let sshUid: number | undefined;
  const daemons: QueueDaemon[] = [];
  let seeded: number[] = [];

  beforeAll(() => {
    for (const s of sys.services) if (startService(s) === 'skip') available = false;
    if (available && sys.ssh) {
      sshUser = serviceEnv('ssh').SSH_USER ?? 'firnsite';
      sshUid = Number(sh('id', ['-u', sshUser]).trim());
    }
  });

  const config = (queue: Record<string, string | number> = {}): FirnConfig => {
    const ssh = serviceEnv('ssh');
    return loadConfig({
      overrides: {
        db: { url: t.url },
        queue: {
          grid: `${sys.plugin}${sys.ssh ? '-ssh' : ''}-${process.pid}`,
          plugin: sys.plugin,
          submit_dir: path.join(dir, 'submit'),
          capabilities: '{"cpu": 2, "memory": 1000, "time": 60}',
          lease_seconds: 30,
          ...(sys.ssh ? { ssh_host: ssh.SSH_HOST ?? '127.0.0.1', ssh_port: ssh.SSH_PORT ?? '2222', ssh_user: sshUser!, ssh_key: ssh.SSH_KEY ?? '/etc/firn-test/ssh/id_ed25519' } : {}),
          ...queue,
        },
        system: { pilot },
        mon: { url: 'http://mon.test.invalid:8581' },
        environment: { FIRN_TEST_RECORD: records, SITE_NOTE: "it's a test" },
      },
    });
  };
  const open = async (env: Record<string, string> = {}) => {
    const d = await openQueueDaemon(config(), { logger: nullLogger, lostGraceMs: 0, env: { ...process.env, ...sys.env(), ...env } });
    daemons.push(d);
    return d;
  };
  const seed = async (d: QueueDaemon, jobs: number) => {
    const ds = await seedDataset(t.db, { jobs, grids: [d.grid], tasks: [{ name: 'sim', req: { cpu: 1, memory: 100, time: 10 } }] });
    seeded.push(...ds.all);
    return ds.all;
  };
  const rows = async (ids: number[]) =>
    (await t.db('task').select('id', 'status', 'batch_id', 'passkey_hash', 'submit_errors', 'error_summary', 'evictions').whereIn('id', ids).orderBy('id')) as Array<{
      id: number; status: string; batch_id: string | null; passkey_hash: string | null; submit_errors: number; error_summary: string | null; evictions: number;
    }>;
  /** cycle until every task is in `status` */
  const cycleUntil = (d: QueueDaemon, ids: number[], status: string, what: string) =>
    waitUntil(async () => {
      await d.runCycle();
      return Object.values(await statusOf(t.db, ids)).every((s) => s === status);
    }, 60_000, what, 500);

  beforeEach(async () => {
    if (!available) return;
    t = await createTestDb(sys.db);
    await randomTaskIdBase(t.db, sys.db);
    dir = tempDir('firn-queue-bs-', sshUid);
    records = path.join(dir, 'records');
    fs.mkdirSync(records, { mode: 0o777 });
    fs.chmodSync(records, 0o777);
    pilot = writeStandInPilot(dir);
    seeded = [];
  });
  afterEach(async () => {
    if (!available) return;
    for (const d of daemons.splice(0)) await d.close();
    if (sys.plugin !== 'sge') scancelTasks(seeded, sshUser);
    fs.rmSync(path.join(records, 'hold'), { force: true });
    killRecordedPilots(records);
    await t.drop();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  test('WAITING → QUEUED; the batch system runs the generated script (pilot args, 0600 passkey, [environment]); a job ending without the pilot reporting is EVICTED', async () => {
    if (!available) return;
    const d = await open();
    const ids = await seed(d, 3);
    const r = await d.runCycle();
    expect(r).toMatchObject({ errors: [], claimed: 3, submitted: 3 });
    const queued = await rows(ids);
    expect(queued.map((x) => x.status)).toEqual(['QUEUED', 'QUEUED', 'QUEUED']);
    expect(new Set(queued.map((x) => x.batch_id)).size).toBe(3);

    await waitUntil(() => recordsByTask(records).size === 3, 90_000, 'the batch system to run the three pilots', 250);
    const byTask = recordsByTask(records);
    for (const row of queued) {
      const recs = byTask.get(Number(row.id))!;
      expect(recs).toHaveLength(1);
      const rec = recs[0]!;
      expect(rec.args.slice(0, 5)).toEqual(['--mon', 'http://mon.test.invalid:8581', '--task', String(row.id), '--passkey-file']);
      expect(rec.args[5]!.startsWith(path.join(dir, 'submit') + '/')).toBe(true);
      expect(rec.passkeyMode).toBe('600');
      expect(rec.passkeySha).toBe(row.passkey_hash);
      expect(rec.env.SITE_NOTE).toBe("it's a test");
      expect(rec.user).toBe(sshUser ?? 'root');
    }
    await cycleUntil(d, ids, TaskStatus.EVICTED, 'finished jobs whose pilot never reported to be EVICTED');
    for (const row of await rows(ids)) expect(row.evictions).toBe(1);
  }, 180_000);

  test('cleanQ and remove cancel jobs; a job cancelled behind Firn\'s back becomes EVICTED', async () => {
    if (!available) return;
    fs.writeFileSync(path.join(records, 'hold'), '');
    const d = await open();
    const [a, b, c, keep] = (await seed(d, 4)) as [number, number, number, number];
    await d.runCycle();
    await waitUntil(() => recordsByTask(records).size === 4, 90_000, 'four pilots running', 250);
    const pid = (task: number) => recordsByTask(records).get(task)![0]!.pid;
    const batch = Object.fromEntries((await rows([a, b, c, keep])).map((x) => [Number(x.id), x.batch_id!]));

    // cleanQ: the task was suspended → its job is cancelled
    await transition(t.db, { taskIds: [a], from: TaskStatus.QUEUED, to: TaskStatus.SUSPENDED, by: 'tray', actor: 'user:alice' });
    expect((await d.runCycle()).removed).toBe(1);
    await waitUntil(() => !alive(pid(a)), 60_000, 'the suspended task\'s job to be cancelled', 250);

    // remove(): the plugin's own cancel
    const cfg = config();
    const settings = queueSettings(cfg);
    const executor = createExecutor(settings, nullLogger, { ...process.env, ...sys.env() });
    try {
      await createPlugin(settings.plugin, executor, settings.pluginOptions).remove([batch[b]!]);
    } finally {
      await executor.close();
    }
    await waitUntil(() => !alive(pid(b)), 60_000, 'remove() to cancel the job', 250);

    // behind Firn's back
    sys.cancel(batch[c]!, { ...process.env, ...sys.env() } as Record<string, string>);
    await waitUntil(() => !alive(pid(c)), 60_000, 'the batch system to cancel the job', 250);

    await cycleUntil(d, [b, c], TaskStatus.EVICTED, 'cancelled jobs to be EVICTED');
    const after = await rows([a, b, c, keep]);
    expect(after.map((x) => x.status)).toEqual(['SUSPENDED', 'EVICTED', 'EVICTED', 'QUEUED']);
    // Slurm says CANCELLED; SGE's qacct records a qdel'd job as failed (100, exit 137); either way: lost
    expect(after[2]!.error_summary).toMatch(/cancel|vanished|ended|fail/i);
    expect(alive(pid(keep))).toBe(true);
  }, 180_000);

  // over ssh the PATH is the remote account's own: the shim case is defined for the local executor only
  if (!sys.ssh) test('a failing submit command (PATH shim) leaves the tasks WAITING with its message, nothing lost', async () => {
    if (!available) return;
    const shim = path.join(dir, 'shim');
    fs.mkdirSync(shim);
    const msg = `${sys.submitTool}: error: Batch job submission failed: Invalid partition name specified`;
    fs.writeFileSync(path.join(shim, sys.submitTool), `#!/bin/sh\necho "${msg}" >&2\nexit 1\n`, { mode: 0o755 });
    const env = sys.env();
    const d = await open({ PATH: `${shim}:${env.PATH ?? process.env.PATH}` });
    const ids = await seed(d, 2);
    const r = await d.runCycle();
    expect(r).toMatchObject({ claimed: 2, submitted: 0, submit_failed: 2, released: 2 });
    for (const row of await rows(ids)) {
      expect(row).toMatchObject({ status: 'WAITING', submit_errors: 1, batch_id: null, passkey_hash: null });
      expect(row.error_summary).toContain('Invalid partition name specified');
    }
    const hist: Array<{ reason: string }> = await t.db('history').select('reason').where({ entity: 'task', from_status: 'QUEUEING', to_status: 'WAITING' });
    expect(hist).toHaveLength(2);
    expect(recordsByTask(records).size).toBe(0);
  }, 120_000);
});
