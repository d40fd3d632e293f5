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
  gridJobPrefix,
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
  readRecords,
  recordsByTask,
  serviceEnv,
  sh,
  startService,
  tempDir,
  writeStandInPilot,
} from './support/harness';
import { blackholeNode, seedDataset, statusOf } from './support/seed';
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
  let idBase = 0;

  beforeAll(() => {
    for (const s of sys.services) if (startService(s) === 'skip') available = false;
    if (available && sys.ssh) {
      sshUser = serviceEnv('ssh').SSH_USER ?? 'firnsite';
      sshUid = Number(sh('id', ['-u', sshUser]).trim());
    }
  });

  /** `o`: another database (another Firn instance) and records directory. */
  const config = (queue: Record<string, string | number> = {}, o: { dbUrl?: string; records?: string } = {}): FirnConfig => {
    const ssh = serviceEnv('ssh');
    return loadConfig({
      overrides: {
        db: { url: o.dbUrl ?? t.url },
        queue: {
          grid: `${sys.plugin}${sys.ssh ? '-ssh' : ''}-${process.pid}`,
          plugin: sys.plugin,
          submit_dir: path.join(dir, 'submit'),
          capabilities: '{"cpu": 2, "memory": 1000, "time": 60}',
          lease_seconds: 30,
          ...(sys.ssh ? { ssh_host: ssh.SSH_HOST ?? '127.0.0.1', ssh_port: ssh.SSH_PORT ?? '2222', ssh_user: sshUser!, ssh_key: ssh.SSH_KEY ?? '/etc/firn-test/ssh/id_ed25519', ssh_known_hosts: ssh.SSH_KNOWN_HOSTS ?? '/etc/firn-test/ssh/known_hosts' } : {}),
          ...queue,
        },
        system: { pilot },
        mon: { url: 'http://mon.test.invalid:8581' },
        environment: { FIRN_TEST_RECORD: o.records ?? records, SITE_NOTE: "it's a test" },
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
    idBase = await randomTaskIdBase(t.db, sys.db);
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

  /** The submit script of the batch that holds this task (in the daemon's submit_dir). */
  const scriptOf = (taskId: number, submitDir = path.join(dir, 'submit')): string => {
    const batch = fs.readdirSync(submitDir).find((b) => fs.existsSync(path.join(submitDir, b, `task-${taskId}`)));
    if (!batch) throw new Error(`no batch directory holds task ${taskId}`);
    return fs.readFileSync(path.join(submitDir, batch, 'submit.sh'), 'utf8');
  };

  // PBS cannot exclude nodes (see pbs.ts); there firn-mon's refusal at pilot.start is all
  if (sys.plugin !== 'pbs') test('black-holed nodes of the grid are kept out by the batch system itself; hosts it does not know do no harm', async () => {
    if (!available) return;
    const d = await open();
    const until = Date.now() + 60 * 60_000;
    if (sys.plugin === 'slurm') {
      const node = serviceEnv('slurm').SLURM_NODE ?? 'vm';
      await blackholeNode(t.db, node, d.grid, until);
      await blackholeNode(t.db, 'ghost.invalid', d.grid, until);
      const [id] = (await seed(d, 1)) as [number];
      // The test partition has one node: with it excluded, sbatch refuses the job outright
      // (on a bigger cluster it would run elsewhere). A host Slurm does not know is left out
      // of --exclude — naming it would make sbatch refuse every job ("Invalid node name").
      const r = await d.runCycle();
      expect(r).toMatchObject({ claimed: 1, submitted: 0, submit_failed: 1, blackholed_hosts: 2 });
      const row = (await rows([id]))[0]!;
      expect(row).toMatchObject({ status: 'WAITING', submit_errors: 1 });
      expect(row.error_summary).toContain('Requested node configuration is not available');
      expect(row.error_summary).not.toContain('Invalid node name');
      // the node's cool-down ends: submitted without --exclude (the unknown host only noted), and it runs
      await t.db('node').where('hostname', node).update({ blackholed_until: Date.now() - 1 });
      await cycleUntil(d, [id], 'QUEUED', 'the task submitted once the node is out of its cool-down');
      const script = scriptOf(id);
      expect(script).not.toContain('--exclude');
      expect(script).toContain('# Black-holed hosts Slurm does not know (not excluded): ghost.invalid');
      await waitUntil(() => recordsByTask(records).has(id), 90_000, 'the pilot to run', 250);
    } else {
      const host = serviceEnv('sge').SGE_HOST ?? 'localhost'; // SGE's name for its only execution host
      await blackholeNode(t.db, host, d.grid, until);
      await blackholeNode(t.db, 'ghost.invalid', d.grid, until);
      const [id] = (await seed(d, 1)) as [number];
      expect(await d.runCycle()).toMatchObject({ claimed: 1, submitted: 1, blackholed_hosts: 2 });
      const row = (await rows([id]))[0]!;
      expect(row.status).toBe('QUEUED');
      expect(scriptOf(id)).toContain(`#$ -l hostname=!ghost.invalid&!${host}&!${host}.*\n`);
      // SGE takes the job and keeps it waiting: its only host is excluded
      const env = { ...process.env, ...sys.env() } as Record<string, string>;
      const info = await waitUntil(() => {
        const out = sh('qstat', ['-j', row.batch_id!], env);
        return /cannot run in queue .* because it offers only qf:hostname=/.test(out) ? out : '';
      }, 60_000, 'the SGE scheduler to say why the job cannot run', 500);
      expect(info).toMatch(new RegExp(`job_name:\\s+${gridJobPrefix(d.settings.grid).replace(/\./g, '\\.')}${id}\\n`));
      expect(recordsByTask(records).size).toBe(0);
      // its own (grid-tagged) job is found by cleanQ: suspending the task cancels it
      await transition(t.db, { taskIds: [id], from: TaskStatus.QUEUED, to: TaskStatus.SUSPENDED, by: 'tray', actor: 'user:alice' });
      expect((await d.runCycle()).removed).toBe(1);
      await waitUntil(() => !sh('qstat', ['-xml'], env).includes(`<JB_job_number>${row.batch_id}</JB_job_number>`), 60_000, 'the job deleted', 500);
    }
  }, 180_000);

  if (sys.plugin !== 'pbs') test('another grid (another Firn instance, same task ids) on the same batch account: neither cancels nor adopts the other\'s jobs', async () => {
    if (!available) return;
    fs.writeFileSync(path.join(records, 'hold'), '');
    const recordsB = path.join(dir, 'records-b');
    fs.mkdirSync(recordsB, { mode: 0o777 });
    fs.chmodSync(recordsB, 0o777);
    fs.writeFileSync(path.join(recordsB, 'hold'), '');
    const t2 = await createTestDb(sys.db);
    let b: QueueDaemon | undefined;
    try {
      await randomTaskIdBase(t2.db, sys.db, idBase);
      const a = await open();
      const ids = await seed(a, 2);
      expect(await a.runCycle()).toMatchObject({ submitted: 2, errors: [] });
      await waitUntil(() => recordsByTask(records).size === 2, 90_000, 'grid A\'s two pilots running', 250);

      // the other instance: a grid name with characters no job name may carry, the same task ids
      b = await openQueueDaemon(config({ grid: `other-grid.${process.pid}`, submit_dir: path.join(dir, 'submit-b') }, { dbUrl: t2.url, records: recordsB }), {
        logger: nullLogger, lostGraceMs: 0, env: { ...process.env, ...sys.env() },
      });
      const dsB = await seedDataset(t2.db, { jobs: 2, grids: [b.grid], tasks: [{ name: 'sim', req: { cpu: 1, memory: 100, time: 10 } }] });
      expect(dsB.all).toEqual(ids);
      const [x, y] = ids as [number, number];
      // there x is suspended (its cleanQ cancels any job of task x it sees) and y a claim whose
      // lease expired (its recovery adopts any queued job of task y it sees)
      await t2.db('task').where('id', x).update({ status: TaskStatus.SUSPENDED });
      await t2.db('task').where('id', y).update({ status: TaskStatus.QUEUEING, grid_id: b.grid, lease_until: Date.now() - 1000, passkey_hash: 'x'.repeat(64) });
      const rb = await b.runCycle();
      // nothing of A's seen: y given back (then claimed and submitted anew by B), nothing removed or adopted
      expect(rb).toMatchObject({ removed: 0, adopted: 0, released: 1, claimed: 1, submitted: 1, errors: [] });
      await waitUntil(() => recordsByTask(recordsB).size === 1, 90_000, 'grid B\'s pilot running', 250);
      const rowB = (await t2.db('task').where('id', y).first()) as { status: string; batch_id: string };
      expect(rowB.status).toBe('QUEUED');
      expect((await rows(ids)).map((r) => r.batch_id)).not.toContain(rowB.batch_id);

      // and A does not see B's job of its task y (it would cancel it as superseded by its own)
      expect(await a.runCycle()).toMatchObject({ removed: 0, evicted: 0, adopted: 0, errors: [] });
      expect(await b.runCycle()).toMatchObject({ removed: 0, evicted: 0, adopted: 0, errors: [] });
      for (const rec of [...readRecords(records), ...readRecords(recordsB)]) expect({ task: rec.task, alive: alive(rec.pid) }).toEqual({ task: rec.task, alive: true });
      expect((await rows(ids)).map((r) => r.status)).toEqual(['QUEUED', 'QUEUED']);
    } finally {
      await b?.close();
      fs.rmSync(path.join(recordsB, 'hold'), { force: true });
      killRecordedPilots(recordsB);
      await t2.drop();
    }
  }, 240_000);

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
