/**
 * End-to-end harness: firn-tray, firn-mon, firn-dh and firn-queue as separate processes,
 * each started by its real bin (packages/<pkg>/bin/<name>, running the built dist/) with its
 * own INI file, on a fresh MariaDB database; the queue runs the bundled firn-pilot.
 *
 *   const s = await E2eSuite.create({ name: 'dag', queue: { plugin: 'local', ... } });
 *   await s.startAll();                 // tray + mon (ports 0, read back from their logs), dh, queue
 *   const { dataset_id } = await s.submit(config, 20);
 *   await s.waitForDataset(dataset_id, ['COMPLETE']);
 *   await s.close();                    // every process, pilot and batch job ends; db dropped
 *
 * Every daemon logs (JSON lines) to <dir>/logs/<name>.log; `s.tails()` gives the end of
 * each, and `s.guard(fn)` prints them when fn throws, so a failing test shows what the
 * daemons were doing.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { RpcClient } from '@firn/core';
import { createTestDb, missingService, type TestDb } from '../helpers/db';

export const ROOT = path.resolve(__dirname, '..', '..');
export const PILOT_BUNDLE = path.join(ROOT, 'packages', 'pilot', 'dist', 'firn-pilot.js');
export const EXAMPLES = path.join(ROOT, 'examples', 'datasets');

export type DaemonName = 'tray' | 'mon' | 'dh' | 'queue';
export const DAEMONS: readonly DaemonName[] = ['tray', 'mon', 'dh', 'queue'];

const BIN: Record<DaemonName, string> = {
  tray: path.join(ROOT, 'packages', 'tray', 'bin', 'firn-tray'),
  mon: path.join(ROOT, 'packages', 'mon', 'bin', 'firn-mon'),
  dh: path.join(ROOT, 'packages', 'dh', 'bin', 'firn-dh'),
  queue: path.join(ROOT, 'packages', 'queue', 'bin', 'firn-queue'),
};

/**
 * The bins run the built code (dist/): fail with a clear message when it is missing.
 * `npm test` builds first; running jest alone needs `npm run build` once.
 */
export function assertBuilt(): void {
  const needed = [
    ...(['core', 'tray', 'mon', 'dh', 'queue', 'web'] as const).map((p) => path.join(ROOT, 'packages', p, 'dist', p === 'core' || p === 'web' ? 'index.js' : 'cli.js')),
    PILOT_BUNDLE,
  ];
  const missing = needed.filter((f) => !fs.existsSync(f));
  if (missing.length) {
    throw new Error(`the e2e tests run the built daemons, but ${missing.map((m) => path.relative(ROOT, m)).join(', ')} ${missing.length === 1 ? 'is' : 'are'} missing: run \`npm run build\` first (\`npm test\` does)`);
  }
}

/** KEY=VALUE lines of /etc/firn-test/<file>.env (empty when missing). */
export function serviceEnv(file: string): Record<string, string> {
  const out: Record<string, string> = {};
  let text = '';
  try {
    text = fs.readFileSync(`/etc/firn-test/${file}.env`, 'utf8');
  } catch {
    return out;
  }
  for (const line of text.split('\n')) {
    const m = /^([A-Z0-9_]+)=(.*)$/.exec(line.trim());
    if (m) out[m[1]!] = m[2]!;
  }
  return out;
}

/** Run test/services/start-<name>.sh (idempotent); a service that will not start is missing. */
export function startService(name: string): 'ok' | 'skip' {
  const script = path.join(ROOT, 'test', 'services', `start-${name}.sh`);
  if (!fs.existsSync(script)) return missingService(name, `test/services/start-${name}.sh (not found)`);
  const r = spawnSync('bash', [script], { encoding: 'utf8', timeout: 15 * 60_000 });
  if (r.status !== 0) {
    return missingService(name, `bash test/services/start-${name}.sh (it failed: ${(r.stderr || r.stdout || String(r.error)).trim().split('\n').slice(-3).join(' | ')})`);
  }
  return 'ok';
}

export type IniSections = Record<string, Record<string, string | number | boolean | undefined>>;

/** Write an INI file; values holding ';' or '#' (comment starters) are quoted. */
export function writeIni(file: string, sections: IniSections): string {
  const value = (v: string | number | boolean) => {
    const s = String(v);
    return /[;#]/.test(s) ? JSON.stringify(s) : s;
  };
  const text = Object.entries(sections)
    .map(([name, values]) => `[${name}]\n${Object.entries(values).filter(([, v]) => v !== undefined).map(([k, v]) => `${k} = ${value(v!)}`).join('\n')}\n`)
    .join('\n');
  fs.writeFileSync(file, text);
  return file;
}

/** md5 and sha256 of a file, streamed (outputs may be hundreds of MB). */
export async function checksums(file: string): Promise<{ md5: string; sha256: string; size: number }> {
  const md5 = crypto.createHash('md5');
  const sha = crypto.createHash('sha256');
  let size = 0;
  for await (const chunk of fs.createReadStream(file, { highWaterMark: 4 << 20 })) {
    md5.update(chunk as Buffer);
    sha.update(chunk as Buffer);
    size += (chunk as Buffer).length;
  }
  return { md5: md5.digest('hex'), sha256: sha.digest('hex'), size };
}

/** examples/datasets/README.md: summed statistics of dag-gpu.json over N jobs (indices 0 … N−1). */
export function dagExpected(n: number): Record<string, number> {
  const energy = 5650 * n + 50 * n * (n - 1);
  return { events: 100 * n, energy_sum: energy, photons: 3 * energy, calib_passes: 2 * n, detected_events: 100 * n, hits: energy + 100 * n };
}

/** examples/datasets/README.md: simulation.json over N jobs. */
export function simulationExpected(n: number): Record<string, number> {
  return { events: 100 * n, energy_sum: 50 * n * (n + 112) };
}

export function exampleConfig(name: string): Record<string, unknown> {
  return JSON.parse(fs.readFileSync(path.join(EXAMPLES, `${name}.json`), 'utf8')) as Record<string, unknown>;
}

/** utime + stime (+ cutime + cstime: reaped children) of a process from /proc, in clock ticks. */
export function procCpuTicks(pid: number): { self: number; children: number } | null {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    // fields after the command: state(3) … utime(14) stime(15) cutime(16) cstime(17) → indices 11..14
    return { self: Number(f[11]) + Number(f[12]), children: Number(f[13]) + Number(f[14]) };
  } catch {
    return null;
  }
}

/** Clock ticks per second (USER_HZ; 100 on Linux). */
export const CLK_TCK = Number(spawnSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).stdout.trim()) || 100;

function killGroupOrPid(pid: number, signal: NodeJS.Signals): void {
  try {
    process.kill(-pid, signal);
  } catch {
    try {
      process.kill(pid, signal);
    } catch {
      /* gone */
    }
  }
}

export interface Daemon {
  name: DaemonName;
  proc: ChildProcess;
  pid: number;
  ini: string;
  log: string;
  /** exit code / signal once it has exited */
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

export interface QueueOptions {
  plugin: 'local' | 'slurm' | 'sge' | 'pbs' | 'condor';
  /** default e2e-<plugin>-<pid> */
  grid?: string;
  /** [queue] keys beyond the defaults below */
  extra?: Record<string, string | number | undefined>;
  /** environment of the queue daemon (SGE_ROOT, PATH, …), added to this process's */
  env?: Record<string, string>;
  /** [system] pilot (default: `node <abs path of the bundle>`) */
  pilot?: string;
  /** [environment] section: variables exported to every job */
  jobEnv?: Record<string, string>;
}

export interface SuiteOptions {
  /** prefix of the temp directory */
  name: string;
  queue: QueueOptions;
  /** node-cron schedule of queue and dh (default every second) */
  schedule?: string;
  /** [dh] keys beyond the defaults */
  dh?: Record<string, string | number | undefined>;
  /** [mon] keys beyond the defaults */
  mon?: Record<string, string | number | boolean | undefined>;
  /** [log] level of the daemons (default info) */
  logLevel?: 'error' | 'warn' | 'info' | 'debug';
  /** start task ids at a random high base (batch systems shared by concurrent test files) */
  randomTaskIds?: boolean;
  /** The database to use instead of a fresh one on the shared MariaDB (e.g. on a private server a test stops); close() drops it. */
  db?: () => Promise<TestDb>;
  /** extra node options per daemon, e.g. {queue: ['--cpu-prof', '--cpu-prof-dir=DIR']} (profiling) */
  nodeArgs?: Partial<Record<DaemonName, string[]>>;
}

export interface DatasetStatus {
  status: string;
  tasks: Record<string, number>;
  jobs: Record<string, number>;
}

export const ADMIN = { username: 'e2e-admin', password: 'e2e-admin-password' };

export class E2eSuite {
  /** keyed by daemon name, or by the label of a second firn-queue (startQueue) */
  readonly daemons = new Map<string, Daemon>();
  /** submit directories of the firn-queues started by startQueue (their local pilots are killed on close) */
  private readonly extraSubmitDirs: string[] = [];
  /** every process ever started (restarts too), for close() */
  private readonly started: Daemon[] = [];
  /** processes stopped on purpose (stop()): their exit is not a failure */
  private readonly stopped = new Set<number>();
  trayUrl = '';
  monUrl = '';
  rpc: RpcClient | null = null;
  readonly grid: string;
  readonly siteTemp: string;
  readonly submitDir: string;
  readonly scratch: string;

  private constructor(
    readonly dir: string,
    readonly db: TestDb,
    readonly o: SuiteOptions,
  ) {
    this.grid = o.queue.grid ?? `e2e-${o.queue.plugin}-${process.pid}`;
    this.siteTemp = path.join(dir, 'site-temp');
    this.submitDir = path.join(dir, 'submit');
    this.scratch = path.join(dir, 'scratch');
    for (const d of [this.siteTemp, this.submitDir, this.scratch, path.join(dir, 'logs')]) fs.mkdirSync(d, { recursive: true });
  }

  /** A temp directory (world-readable: batch jobs may run elsewhere on this host) and a fresh MariaDB database. */
  static async create(o: SuiteOptions): Promise<E2eSuite> {
    assertBuilt();
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), `firn-e2e-${o.name}-`));
    fs.chmodSync(dir, 0o755);
    const db = o.db ? await o.db() : await createTestDb('mariadb');
    if (o.randomTaskIds) {
      const base = 1_000_000 + crypto.randomInt(0, 2_000_000) * 100;
      await db.db.raw('ALTER TABLE task AUTO_INCREMENT = ?', [base]);
    }
    return new E2eSuite(dir, db, o);
  }

  private common(): IniSections {
    return {
      db: { url: this.db.url, pool_max: 5 },
      log: { level: this.o.logLevel ?? 'info', format: 'json' },
    };
  }

  /** The INI file each daemon is started with. */
  iniFor(name: DaemonName): IniSections {
    const schedule = this.o.schedule ?? '* * * * * *';
    const c = this.common();
    switch (name) {
      case 'tray':
        return { ...c, tray: { host: '127.0.0.1', port: 0 }, system: { site_temp: `file://${this.siteTemp}` }, dh: { destinations: String(this.o.dh?.destinations ?? `file://${this.dir}`) } };
      case 'mon':
        return {
          ...c,
          mon: { host: '127.0.0.1', port: 0, web: false, ...this.o.mon },
          system: { site_temp: `file://${this.siteTemp}` },
          // outputs may be delivered anywhere under the suite's directory (storage-roots.ts)
          dh: { heartbeat_timeout: Number(this.o.dh?.heartbeat_timeout ?? 300), destinations: String(this.o.dh?.destinations ?? `file://${this.dir}`) },
        };
      case 'dh':
        return { ...c, system: { site_temp: `file://${this.siteTemp}` }, dh: { schedule, heartbeat_timeout: 300, transfer_retries: 2, retention_days: 1, destinations: `file://${this.dir}`, ...this.o.dh } };
      case 'queue': {
        const q = this.o.queue;
        if (!this.monUrl) throw new Error('start firn-mon before firn-queue: the queue tells pilots its URL');
        return {
          ...c,
          queue: {
            grid: this.grid,
            plugin: q.plugin,
            schedule,
            max_queued: 20,
            concurrency: 4,
            submit_dir: this.submitDir,
            lease_seconds: 60,
            capabilities: JSON.stringify({ cpu: 2, gpu: 1, memory: 4000, disk: 100_000, time: 60 }),
            ...q.extra,
          },
          mon: { url: this.monUrl },
          system: { pilot: q.pilot ?? `${process.execPath} ${PILOT_BUNDLE}`, scratch: this.scratch, site_temp: `file://${this.siteTemp}` },
          ...(q.jobEnv ? { environment: q.jobEnv } : {}),
        };
      }
    }
  }

  /**
   * Another firn-queue on this suite's grid with a submit directory of its own (a second submit
   * host), labelled `label` (its INI file and log are named so); stopped and cleaned up by close().
   */
  async startQueue(label: string, queue: Record<string, string | number> = {}): Promise<Daemon> {
    const submitDir = path.join(this.dir, `submit-${label}`);
    fs.mkdirSync(submitDir, { recursive: true });
    this.extraSubmitDirs.push(submitDir);
    return this.start('queue', label, { submit_dir: submitDir, ...queue });
  }

  /** Start one daemon by its bin; resolves once it has started (tray/mon: listening). */
  async start(name: DaemonName, label: string = name, queueKeys: Record<string, string | number> = {}): Promise<Daemon> {
    const prev = this.daemons.get(label);
    if (prev && prev.proc.exitCode === null && prev.proc.signalCode === null) throw new Error(`firn-${label} runs already (pid ${prev.pid})`);
    const sections = this.iniFor(name);
    if (name === 'queue') sections.queue = { ...sections.queue, ...queueKeys };
    const ini = writeIni(path.join(this.dir, `${label}.ini`), sections);
    const log = path.join(this.dir, 'logs', `${label}.log`);
    fs.appendFileSync(log, `--- firn-${name} started ${new Date().toISOString()}\n`);
    const offset = fs.statSync(log).size;
    const fd = fs.openSync(log, 'a');
    const env: NodeJS.ProcessEnv = { ...process.env, ...(name === 'queue' ? this.o.queue.env : {}) };
    // the daemons' own config comes from the INI file only
    for (const k of Object.keys(env)) if (k.startsWith('FIRN_')) delete env[k];
    const proc = spawn(process.execPath, [...(this.o.nodeArgs?.[name] ?? []), BIN[name], '--config', ini], { cwd: this.dir, env, stdio: ['ignore', fd, fd] });
    fs.closeSync(fd);
    if (proc.pid === undefined) throw new Error(`could not start firn-${name}`);
    const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => proc.on('exit', (code, signal) => resolve({ code, signal })));
    const d: Daemon = { name, proc, pid: proc.pid, ini, log, exited };
    this.daemons.set(label, d);
    this.started.push(d);
    const ready: Record<DaemonName, string> = {
      tray: 'firn-tray listening',
      mon: 'firn-mon listening',
      dh: 'firn-dh started',
      queue: 'scheduled',
    };
    const m = await this.waitFor(() => {
      if (proc.exitCode !== null || proc.signalCode !== null) throw new Error(`firn-${name} exited (${proc.exitCode ?? proc.signalCode}) while starting:\n${tail(log, 20)}`);
      for (const line of fs.readFileSync(log).subarray(offset).toString('utf8').split('\n')) {
        if (!line.startsWith('{')) continue;
        try {
          const j = JSON.parse(line) as { message?: string; url?: string };
          if (j.message === ready[name]) return j;
        } catch {
          /* a partial line */
        }
      }
      return null;
    }, 30_000, `firn-${name} to start`, 25);
    if (name === 'tray') this.trayUrl = m.url!;
    if (name === 'mon') this.monUrl = m.url!;
    return d;
  }

  /** SIGTERM (graceful drain) or SIGKILL; waits for the exit. */
  async stop(name: DaemonName, signal: NodeJS.Signals = 'SIGTERM', timeoutMs = 20_000): Promise<{ code: number | null; signal: NodeJS.Signals | null }> {
    const d = this.daemons.get(name);
    if (!d) throw new Error(`firn-${name} was never started`);
    this.stopped.add(d.pid);
    if (d.proc.exitCode === null && d.proc.signalCode === null) d.proc.kill(signal);
    const timer = setTimeout(() => d.proc.kill('SIGKILL'), timeoutMs);
    try {
      return await d.exited;
    } finally {
      clearTimeout(timer);
    }
  }

  /** tray (+ admin user, login), mon, dh, queue. */
  async startAll(): Promise<void> {
    // independent of one another except that the queue must know mon's URL
    await Promise.all([
      this.start('tray').then(() => this.addAdmin()).then(() => this.login()),
      this.start('mon').then(() => this.start('queue')),
      this.start('dh'),
    ]);
  }

  /** `firn-tray user add NAME --role admin --config FILE`, the password on stdin. */
  async addAdmin(): Promise<void> {
    const ini = path.join(this.dir, 'tray.ini');
    const r = spawnSync(process.execPath, [BIN.tray, 'user', 'add', ADMIN.username, '--role', 'admin', '--config', ini], {
      input: `${ADMIN.password}\n`, encoding: 'utf8', timeout: 30_000,
    });
    if (r.status !== 0 || r.stdout !== `user ${ADMIN.username} created with role admin\n`) {
      throw new Error(`firn-tray user add failed (${r.status}): ${r.stdout}${r.stderr}`);
    }
  }

  async login(): Promise<RpcClient> {
    const c = new RpcClient(this.trayUrl);
    const r = await c.call<{ token: string; role: string }>('auth.login', { username: ADMIN.username, password: ADMIN.password });
    if (r.role !== 'admin') throw new Error(`logged in with role ${r.role}`);
    c.token = r.token;
    this.rpc?.close();
    this.rpc = c;
    return c;
  }

  get tray(): RpcClient {
    if (!this.rpc) throw new Error('not logged in to firn-tray');
    return this.rpc;
  }

  /** dataset.submit through firn-tray RPC, allowed on this suite's grid. */
  async submit(config: Record<string, unknown>, jobs: number, extra: Record<string, unknown> = {}): Promise<{ dataset_id: number; jobs: number; tasks: number }> {
    return this.tray.call('dataset.submit', { config, jobs, grids: [this.grid], ...extra });
  }

  status(datasetId: number): Promise<DatasetStatus> {
    return this.tray.call('dataset.status', { dataset_id: datasetId });
  }

  /**
   * Poll dataset.status until it is one of `statuses`. Fails at once when the dataset ends
   * ERRORS unexpectedly (a FAILED task never comes back by itself) or a daemon died.
   */
  async waitForDataset(datasetId: number, statuses: string[], timeoutMs: number): Promise<DatasetStatus> {
    let last: DatasetStatus | null = null;
    try {
      return await this.waitFor(async () => {
        last = await this.status(datasetId);
        if (statuses.includes(last.status)) return last;
        if (!statuses.includes('ERRORS') && last.status === 'ERRORS') throw new Error(`dataset ${datasetId} ended ERRORS`);
        return null;
      }, timeoutMs, `dataset ${datasetId} to be ${statuses.join('|')}`, 250);
    } catch (e) {
      throw new Error(`${(e as Error).message}\nlast status: ${JSON.stringify(last)}`);
    }
  }

  /**
   * Poll `cond` until it returns a truthy value (like waitUntil, but an exception thrown by
   * `cond` fails at once), and give up at once when a daemon exited without stop().
   */
  async waitFor<T>(cond: () => Promise<T | null | undefined | false> | T | null | undefined | false, timeoutMs: number, what: string, intervalMs = 100): Promise<T> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const v = await cond();
      if (v) return v;
      for (const d of this.daemons.values()) {
        if (!this.stopped.has(d.pid) && (d.proc.exitCode !== null || d.proc.signalCode !== null)) {
          throw new Error(`firn-${d.name} (pid ${d.pid}) exited with ${d.proc.exitCode ?? d.proc.signalCode} while waiting for ${what}`);
        }
      }
      if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
      await new Promise((r) => setTimeout(r, intervalMs));
    }
  }

  /** Is the daemon still running? */
  running(name: DaemonName): boolean {
    const d = this.daemons.get(name);
    return !!d && d.proc.exitCode === null && d.proc.signalCode === null;
  }

  /** The last lines of every daemon log (and of the pilots' stderr files that exist). */
  tails(lines = 40): string {
    const out: string[] = [];
    for (const name of new Set<string>([...DAEMONS, ...this.daemons.keys()])) {
      const f = path.join(this.dir, 'logs', `${name}.log`);
      if (!fs.existsSync(f)) continue;
      const text = fs.readFileSync(f, 'utf8').trimEnd().split('\n');
      out.push(`===== firn-${name} (${f}), last ${Math.min(lines, text.length)} lines\n${text.slice(-lines).join('\n')}`);
    }
    const pilots = findFiles(this.submitDir, (f) => path.basename(f) === 'stderr').slice(-3);
    for (const f of pilots) out.push(`===== pilot ${f}\n${fs.readFileSync(f, 'utf8').trimEnd().split('\n').slice(-15).join('\n')}`);
    return out.join('\n');
  }

  /** Run a test body; when it throws, print the daemon log tails, then rethrow. */
  async guard<T>(fn: () => Promise<T>): Promise<T> {
    try {
      return await fn();
    } catch (e) {
      console.error(`${(e as Error).message}\n\n${this.tails()}`);
      throw e;
    }
  }

  /** Batch ids of this database's tasks (for cancelling leftovers). */
  async batchIds(): Promise<string[]> {
    const rows = (await this.db.db('task').distinct('batch_id').whereNotNull('batch_id')) as Array<{ batch_id: string }>;
    return rows.map((r) => r.batch_id);
  }

  /**
   * Stop every daemon (SIGTERM, then SIGKILL), kill local pilots still running (their
   * process groups, from the local plugin's pid files), cancel leftover batch jobs, close
   * the RPC client, drop the database. The temp directory stays when KEEP_E2E=1.
   */
  async close(): Promise<void> {
    let ids: string[] = [];
    try {
      ids = await this.batchIds();
    } catch {
      /* db gone */
    }
    await Promise.all(this.started.map(async (d) => {
      if (d.proc.exitCode !== null || d.proc.signalCode !== null) return;
      d.proc.kill('SIGTERM');
      const timer = setTimeout(() => d.proc.kill('SIGKILL'), 10_000);
      await d.exited;
      clearTimeout(timer);
    }));
    for (const dir of [this.submitDir, ...this.extraSubmitDirs]) killLocalPilots(dir);
    const plugin = this.o.queue.plugin;
    if (plugin === 'slurm' && ids.length) spawnSync('scancel', ids, { encoding: 'utf8', timeout: 30_000 });
    if (plugin === 'sge' && ids.length) {
      const jobs = [...new Set(ids.map((i) => i.split('.')[0]!))];
      spawnSync('qdel', jobs, { encoding: 'utf8', timeout: 30_000, env: { ...process.env, ...this.o.queue.env } });
    }
    this.rpc?.close();
    await this.db.drop();
    if (process.env.KEEP_E2E !== '1') fs.rmSync(this.dir, { recursive: true, force: true });
  }
}

/** The last `n` lines of a text file. */
export function tail(file: string, n: number): string {
  try {
    return fs.readFileSync(file, 'utf8').trimEnd().split('\n').slice(-n).join('\n');
  } catch {
    return '';
  }
}

/** Files under `dir` (recursive) for which `want` holds. */
export function findFiles(dir: string, want: (file: string) => boolean): string[] {
  const out: string[] = [];
  const walk = (d: string) => {
    let entries: fs.Dirent[];
    try {
      entries = fs.readdirSync(d, { withFileTypes: true });
    } catch {
      return;
    }
    for (const e of entries) {
      const p = path.join(d, e.name);
      if (e.isDirectory()) walk(p);
      else if (want(p)) out.push(p);
    }
  };
  walk(dir);
  return out.sort();
}

/**
 * The live process of a local-plugin pid file ("PID START", START = /proc start time), or
 * null once it has exited and been reaped — a pid reused by another process is not ours.
 */
export function localPilotPid(pidFile: string): number | null {
  const [pid = '', start = ''] = fs.readFileSync(pidFile, 'utf8').trim().split(/\s+/);
  let stat: string;
  try {
    stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
  } catch {
    return null;
  }
  return stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19] === start ? Number(pid) : null;
}

/** The local plugin's pilots outlive their daemon by design: kill the process groups of those still running. */
export function killLocalPilots(submitDir: string): void {
  for (const f of findFiles(submitDir, (p) => /\/local-\d+-[0-9a-f]+\.pid$/.test(p))) {
    const pid = localPilotPid(f);
    if (pid !== null && pid > 1) killGroupOrPid(pid, 'SIGKILL');
  }
}


/**
 * examples/datasets/simulation.json with `jobs` jobs through this suite's grid: COMPLETE,
 * every task OK, each sim_NNNNNN.txt at its destination with the recorded checksums, the
 * README's exact statistics. Returns the dataset id.
 */
export async function runSimulation(s: E2eSuite, jobs: number, timeoutMs: number): Promise<number> {
  const sub = await s.submit(exampleConfig('simulation'), jobs);
  expect(sub).toMatchObject({ dataset_id: expect.any(Number), jobs, tasks: jobs }); // and grids, warnings
  const id = sub.dataset_id;
  const st = await s.waitForDataset(id, ['COMPLETE'], timeoutMs);
  expect(Object.fromEntries(Object.entries(st.tasks).filter(([, n]) => n > 0))).toEqual({ OK: jobs });

  const tasks = (await s.db.db('task as t').join('job as j', 'j.id', 't.job_id').select('t.id', 't.status', 't.batch_id', 't.failures', 't.host', 'j.job_index')
    .where('t.dataset_id', id).orderBy('j.job_index')) as Array<{ id: number; status: string; batch_id: string | null; failures: number; host: string | null; job_index: number }>;
  expect(tasks.map((t) => [t.status, t.failures])).toEqual(Array.from({ length: jobs }, () => ['OK', 0]));
  for (const t of tasks) expect(t.batch_id).toEqual(expect.any(String));

  const files = (await s.db.db('file').select('task_id', 'url', 'state', 'size', 'md5', 'sha256', 'temp_url').where({ dataset_id: id, kind: 'output' })) as Array<{
    task_id: number; url: string; state: string; size: number; md5: string; sha256: string; temp_url: string | null;
  }>;
  expect(files).toHaveLength(jobs);
  for (const t of tasks) {
    const f = files.find((x) => Number(x.task_id) === Number(t.id))!;
    const file = path.join(s.siteTemp, 'results', String(id), `sim_${String(t.job_index).padStart(6, '0')}.txt`);
    expect([f.url, f.state, f.temp_url]).toEqual([`file://${file}`, 'VERIFIED', null]);
    expect(await checksums(file)).toEqual({ md5: f.md5, sha256: f.sha256, size: Number(f.size) });
    expect(fs.readFileSync(file, 'utf8').split('\n')[0]).toBe(`0 ${7 + Number(t.job_index)}`);
  }
  const stats = (await s.tray.call<{ stats: Record<string, { n: number; sum: number }> }>('dataset.stats', { dataset_id: id })).stats;
  expect(Object.fromEntries(Object.entries(stats).filter(([k]) => k !== 'cpu_seconds').map(([k, v]) => [k, v.sum]))).toEqual(simulationExpected(jobs));
  return id;
}
