/**
 * bench/peers.ts — Firn's claim + complete path against two job queues people would reach for,
 * on the same machine, the same jobs and the same concurrency, in the same run.
 *
 * Each system gets FIRN_BENCH_JOBS (default 100,000) no-op jobs queued beforehand (not timed),
 * then FIRN_BENCH_CONCURRENCY (8) workers spread over FIRN_BENCH_PROCESSES (2) processes claim
 * and complete them all; timed from "go" until the last job is complete:
 *   - Firn: MariaDB (127.0.0.1:3306), WAITING tasks of one dataset; each worker is a loop of
 *     bench/workers/claim-worker.ts (the one bench/claim.ts measures): core's claimTasks (the call
 *     firn-queue makes, FIRN_BENCH_BATCH = 500 tasks a call, the default [queue]
 *     max_submit_per_cycle), then transition() through QUEUED → PROCESSING → READYTOCOPY → COPYING
 *     → COPIED → OK (the moves firn-queue, firn-mon and firn-dh make), with history rows;
 *   - graphile-worker on PostgreSQL (127.0.0.1:5432, database test): jobs added with addJobs,
 *     a runner of `concurrency` per process, a no-op task; completed jobs are deleted (its way);
 *   - BullMQ on Redis (127.0.0.1:6379): jobs added with addBulk, a Worker of `concurrency` per
 *     process, a no-op processor; removeOnComplete (else Redis keeps every finished job).
 * Then "one job at a time": concurrency 1 in one process, FIRN_BENCH_SERIAL_JOBS (10,000) jobs,
 * Firn claiming 1 task a call (a job claimed, walked to OK, then the next).
 *
 * Recorded per system: jobs/s, worker CPU ms per job (the worker processes, from /proc, start-up
 * excluded), server CPU ms per job (mariadbd / every postgres process / redis-server, from /proc:
 * shared with whatever else uses the server meanwhile, so an upper bound), and Firn's jobs/s ÷
 * each peer's. Checked: every job completed exactly once (Firn: every task OK, no id claimed
 * twice; the peers: their queues are empty and their completion events add up).
 *
 * Left out: what the peers do not do and Firn does — per-task requirements matching, priorities,
 * leases and passkeys, six state changes with history instead of one; what Firn does not do and
 * the peers do — retries with backoff inside the queue, LISTEN/NOTIFY wake-ups (graphile), pub/sub
 * events (BullMQ); servers tuned for the load (all three run with the machine's defaults, and
 * MariaDB is shared with other work), network latency (loopback), jobs added while workers run.
 * No target: the ratios are for reading, not for passing (issue 16 asks for them).
 *
 * Run: `npm run bench -- peers`. Environment: FIRN_BENCH_JOBS, FIRN_BENCH_SERIAL_JOBS,
 * FIRN_BENCH_CONCURRENCY, FIRN_BENCH_PROCESSES, FIRN_BENCH_BATCH, FIRN_BENCH_MYSQL_URL,
 * FIRN_BENCH_PG_URL (postgres://postgres@127.0.0.1:5432/test), FIRN_BENCH_REDIS_URL
 * (redis://127.0.0.1:6379), FIRN_BENCH_TIMEOUT_S (900 per run). Writes bench/results/peers.json.
 */
import { fork, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Queue } from 'bullmq';
import { makeWorkerUtils, runMigrations, Logger as GraphileLogger } from 'graphile-worker';
import { chunk, connect } from '@firn/core';
import { workerMain, type WorkerReport, type WorkerStart } from './workers/claim-worker';
import { seedWaitingTasks } from './workers/seed-waiting';
import { peerWorkerMain, type PeerWorkerReport, type PeerWorkerStart } from './workers/peers-worker';
import { procTicks, serverTicks, serverTicksBetween, ticksToMs } from './workers/proc-cpu';

type System = 'firn' | 'graphile' | 'bullmq';
const SERVER_PROCESS: Record<System, string[]> = { firn: ['mariadbd', 'mysqld'], graphile: ['postgres'], bullmq: ['redis-server'] };

export interface PeerRun {
  system: System;
  concurrency: number;
  processes: number;
  /** Firn: tasks per claimTasks call */
  batch?: number;
  jobs: number;
  completed: number;
  seconds: number;
  jobs_per_s: number;
  worker_cpu_ms_per_job: number;
  server_cpu_ms_per_job: number;
  /** Firn: ids handed out twice (must be 0) */
  double_claims?: number;
}

export interface PeersBenchResult {
  name: 'peers';
  date: string;
  cpus: number;
  loadavg: [number, number];
  servers: Partial<Record<System, string>>;
  concurrent: PeerRun[];
  one_at_a_time: PeerRun[];
  /** Firn's jobs/s ÷ the peer's, same concurrency, same run (null: the peer could not run) */
  ratio: {
    concurrent: { graphile: number | null; bullmq: number | null };
    one_at_a_time: { graphile: number | null; bullmq: number | null };
  };
  /** Peers that could not run here, and why. */
  skipped: Partial<Record<System, string>>;
  notes: string[];
  ok: boolean;
}

const round = (x: number, d = 2) => Math.round(x * 10 ** d) / 10 ** d;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const log = (m: string) => process.stderr.write(`[bench peers] ${m}\n`);

/** The checkout's root (where lerna.json is). */
function repoRoot(): string {
  for (let dir = __dirname; ; dir = path.dirname(dir)) {
    if (fs.existsSync(path.join(dir, 'lerna.json'))) return dir;
    if (path.dirname(dir) === dir) return process.cwd();
  }
}

/** CPU ticks of this process's reaped children (the worker processes, once they exited). */
const reapedTicks = () => procTicks(process.pid)!.children;

interface Phase {
  concurrency: number;
  processes: number;
  jobs: number;
  batch: number;
  timeoutMs: number;
}

/**
 * Fork `processes` workers of `kind`, send each its start message, "go" together; `finished`
 * resolves when the run is over (Firn: every worker reported; the peers: `drained()` said so,
 * then they are told to stop). Returns the wall time and the workers' CPU during the run.
 */
async function runWorkers<R extends { error?: string }>(
  kind: System,
  starts: Array<WorkerStart | PeerWorkerStart>,
  drained: (() => Promise<boolean>) | null,
  timeoutMs: number,
): Promise<{ reports: R[]; seconds: number; workerCpuMs: number; serverMs: number }> {
  const children: ChildProcess[] = [];
  const ticks0 = reapedTicks();
  try {
    const ready: Promise<void>[] = [];
    const reports: Promise<R>[] = [];
    starts.forEach((start, w) => {
      const child = fork(__filename, [], { env: { ...process.env, FIRN_BENCH_PEER_WORKER: `${kind}:${w}` }, stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
      children.push(child);
      ready.push(new Promise((resolve) => child.once('message', () => resolve())));
      reports.push(new Promise((resolve, reject) => {
        child.on('message', (m: { report?: R }) => m.report && resolve(m.report));
        child.once('exit', (code) => reject(new Error(`${kind} worker ${w} exited with ${code} before reporting`)));
      }));
      child.send({ start });
    });
    await Promise.all(ready);
    // the workers' start-up (loading modules, compiling TypeScript) is not the run's
    const startup = children.reduce((a, c) => a + (procTicks(c.pid!)?.self ?? 0), 0);
    const server0 = serverTicks(SERVER_PROCESS[kind]);
    const t0 = performance.now();
    for (const c of children) c.send({ go: true });
    if (drained) {
      const deadline = t0 + timeoutMs;
      while (!(await drained())) {
        if (performance.now() > deadline) throw new Error(`${kind}: not drained after ${timeoutMs} ms`);
        await sleep(20);
      }
    }
    const end = drained ? performance.now() : 0;
    if (drained) for (const c of children) c.send({ stop: true });
    const done = await Promise.all(reports);
    const seconds = ((drained ? end : performance.now()) - t0) / 1000;
    const serverMs = ticksToMs(serverTicksBetween(server0, serverTicks(SERVER_PROCESS[kind])));
    await Promise.all(children.map((c) => (c.exitCode === null && c.signalCode === null ? new Promise((r) => c.once('exit', r)) : null)));
    const failed = done.find((r) => r.error);
    if (failed) throw new Error(`${kind} worker failed: ${failed.error}`);
    return { reports: done, seconds, workerCpuMs: ticksToMs(reapedTicks() - ticks0 - startup), serverMs };
  } finally {
    for (const c of children) if (c.exitCode === null) c.kill();
  }
}

// ------------------------------------------------------------------ Firn (MariaDB)


async function runFirn(root: string, p: Phase, tag: string): Promise<PeerRun> {
  const dbName = `firn_bench_peers_${process.pid}_${tag}`;
  const url = `${root}/${dbName}`;
  const db = await connect(url, { poolMax: 2 });
  try {
    const seed = await seedWaitingTasks(db, p.jobs, 'bench-peers', 'peers bench');
    const starts: WorkerStart[] = Array.from({ length: p.processes }, (_, w) => ({
      url, gridId: seed.gridId, gridName: seed.gridName, batch: p.batch, durationMs: p.timeoutMs, walk: true,
      loops: Math.floor(p.concurrency / p.processes) + (w < p.concurrency % p.processes ? 1 : 0),
    }));
    const r = await runWorkers<WorkerReport>('firn', starts, null, p.timeoutMs);
    const ids = r.reports.flatMap((x) => x.ids);
    const [{ n }] = (await db('task').count({ n: '*' }).where('status', 'OK')) as [{ n: number | string }];
    if (Number(n) !== p.jobs) throw new Error(`firn: ${String(n)} of ${p.jobs} tasks OK`);
    return result('firn', p, ids.length, r, { batch: p.batch, double_claims: ids.length - new Set(ids).size });
  } finally {
    await db.raw('DROP DATABASE IF EXISTS ??', [dbName]).catch(() => undefined);
    await db.destroy();
  }
}

function result(system: System, p: Phase, completed: number, r: { seconds: number; workerCpuMs: number; serverMs: number }, extra: Partial<PeerRun> = {}): PeerRun {
  return {
    system, concurrency: p.concurrency, processes: p.processes, ...(extra.batch !== undefined ? { batch: extra.batch } : {}),
    jobs: p.jobs, completed, seconds: round(r.seconds, 3), jobs_per_s: Math.round(completed / r.seconds),
    worker_cpu_ms_per_job: round(r.workerCpuMs / Math.max(1, completed), 3),
    server_cpu_ms_per_job: round(r.serverMs / Math.max(1, completed), 3),
    ...(extra.double_claims !== undefined ? { double_claims: extra.double_claims } : {}),
  };
}

// ------------------------------------------------------------------ graphile-worker (PostgreSQL)

const quietGraphile = new GraphileLogger(() => (level, message) => {
  if (level === 'error') process.stderr.write(`graphile-worker: ${message}\n`);
});

async function runGraphileWorker(pgUrl: string, p: Phase, tag: string): Promise<PeerRun> {
  const schema = `firn_bench_peers_${process.pid}_${tag}`;
  await runMigrations({ connectionString: pgUrl, schema, logger: quietGraphile });
  const utils = await makeWorkerUtils({ connectionString: pgUrl, schema, logger: quietGraphile });
  const remaining = async () => {
    const { rows } = await utils.withPgClient((c) => c.query<{ n: string }>(`SELECT count(*) AS n FROM "${schema}"._private_jobs`));
    return Number(rows[0]?.n ?? -1);
  };
  try {
    for (const part of chunk(Array.from({ length: p.jobs }, (_, i) => i), 5000)) {
      await utils.addJobs(part.map((i) => ({ identifier: 'noop', payload: { i } })));
    }
    if ((await remaining()) !== p.jobs) throw new Error('graphile: jobs were not all added');
    const starts: PeerWorkerStart[] = Array.from({ length: p.processes }, (_, w) => ({
      kind: 'graphile', url: pgUrl, name: schema, concurrency: Math.floor(p.concurrency / p.processes) + (w < p.concurrency % p.processes ? 1 : 0),
    }));
    const r = await runWorkers<PeerWorkerReport>('graphile', starts, async () => (await remaining()) === 0, p.timeoutMs);
    const completed = r.reports.reduce((a, x) => a + x.completed, 0);
    const failed = r.reports.reduce((a, x) => a + x.failed, 0);
    if (completed !== p.jobs || failed) throw new Error(`graphile: ${completed} completed, ${failed} failed of ${p.jobs}`);
    return result('graphile', p, completed, r);
  } finally {
    await utils.withPgClient((c) => c.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`)).catch(() => undefined);
    await utils.release();
  }
}

// ------------------------------------------------------------------ BullMQ (Redis)

async function runBull(redisUrl: string, p: Phase, tag: string): Promise<PeerRun> {
  const u = new URL(redisUrl);
  const name = `firn-bench-peers-${process.pid}-${tag}`;
  const queue = new Queue(name, { connection: { host: u.hostname, port: Number(u.port || 6379) } });
  const waiting = async () => {
    const c = await queue.getJobCounts('wait', 'active', 'delayed', 'prioritized');
    return Object.values(c).reduce((a, b) => a + b, 0);
  };
  try {
    for (const part of chunk(Array.from({ length: p.jobs }, (_, i) => i), 1000)) {
      await queue.addBulk(part.map((i) => ({ name: 'noop', data: { i }, opts: { removeOnComplete: true, removeOnFail: false } })));
    }
    if ((await waiting()) !== p.jobs) throw new Error('bullmq: jobs were not all added');
    const starts: PeerWorkerStart[] = Array.from({ length: p.processes }, (_, w) => ({
      kind: 'bullmq', url: redisUrl, name, concurrency: Math.floor(p.concurrency / p.processes) + (w < p.concurrency % p.processes ? 1 : 0),
    }));
    const r = await runWorkers<PeerWorkerReport>('bullmq', starts, async () => (await waiting()) === 0, p.timeoutMs);
    const completed = r.reports.reduce((a, x) => a + x.completed, 0);
    const failed = (await queue.getJobCounts('failed')).failed ?? 0;
    if (completed !== p.jobs || failed) throw new Error(`bullmq: ${completed} completed, ${failed} failed of ${p.jobs}`);
    return result('bullmq', p, completed, r);
  } finally {
    await queue.obliterate({ force: true }).catch(() => undefined);
    await queue.close();
  }
}

// ------------------------------------------------------------------ the benchmark

/** BullMQ talks to Redis through ioredis, an optional peer dependency of it: null when it loads, else why not. */
function bullmqUnavailable(): string | null {
  try {
    require.resolve('ioredis');
    return null;
  } catch {
    return "BullMQ's Redis client (the optional peer dependency ioredis) is not installed: add ioredis as a root devDependency to measure BullMQ";
  }
}

async function versions(root: string, pgUrl: string, redisUrl: string | null): Promise<Partial<Record<System, string>>> {
  const db = await connect(`${root}/firn_bench_peers_${process.pid}_v`, { poolMax: 1 });
  let mariadb = '';
  try {
    mariadb = String(((await db.raw('SELECT VERSION() AS v')) as [Array<{ v: string }>])[0][0]!.v);
    await db.raw('DROP DATABASE IF EXISTS ??', [`firn_bench_peers_${process.pid}_v`]);
  } finally {
    await db.destroy();
  }
  const utils = await makeWorkerUtils({ connectionString: pgUrl, schema: `firn_bench_peers_${process.pid}_v`, logger: quietGraphile });
  let pg = '';
  try {
    pg = (await utils.withPgClient((c) => c.query<{ v: string }>('SHOW server_version'))).rows[0]?.v ?? '';
  } finally {
    await utils.release();
  }
  const pkg = (n: string) => (JSON.parse(fs.readFileSync(path.join(repoRoot(), 'node_modules', n, 'package.json'), 'utf8')) as { version: string }).version;
  const out: Partial<Record<System, string>> = { firn: `MariaDB ${mariadb}`, graphile: `graphile-worker ${pkg('graphile-worker')}, PostgreSQL ${pg}` };
  if (redisUrl) {
    const u = new URL(redisUrl);
    const q = new Queue(`firn-bench-peers-${process.pid}-v`, { connection: { host: u.hostname, port: Number(u.port || 6379) } });
    try {
      await q.backend.client; // connected: the server's version is known
      out.bullmq = `BullMQ ${pkg('bullmq')}, Redis ${q.backend.redisVersion}`;
    } finally {
      await q.close();
    }
  }
  return out;
}

export async function run(): Promise<PeersBenchResult> {
  const root = (process.env.FIRN_BENCH_MYSQL_URL ?? 'mysql://root@127.0.0.1:3306').replace(/\/$/, '');
  const pgUrl = process.env.FIRN_BENCH_PG_URL ?? 'postgres://postgres@127.0.0.1:5432/test';
  const redisUrl = process.env.FIRN_BENCH_REDIS_URL ?? 'redis://127.0.0.1:6379';
  const timeoutMs = Number(process.env.FIRN_BENCH_TIMEOUT_S ?? 900) * 1000;
  const concurrent: Phase = {
    jobs: Number(process.env.FIRN_BENCH_JOBS ?? 100_000),
    concurrency: Number(process.env.FIRN_BENCH_CONCURRENCY ?? 8),
    processes: Number(process.env.FIRN_BENCH_PROCESSES ?? 2),
    batch: Number(process.env.FIRN_BENCH_BATCH ?? 500),
    timeoutMs,
  };
  concurrent.processes = Math.max(1, Math.min(concurrent.processes, concurrent.concurrency));
  const serial: Phase = { jobs: Number(process.env.FIRN_BENCH_SERIAL_JOBS ?? 10_000), concurrency: 1, processes: 1, batch: 1, timeoutMs };
  const load0 = round(os.loadavg()[0] ?? 0);
  const skipped: Partial<Record<System, string>> = {};
  const noBull = bullmqUnavailable();
  if (noBull) {
    skipped.bullmq = noBull;
    log(`skipping BullMQ: ${noBull}`);
  }
  const servers = await versions(root, pgUrl, noBull ? null : redisUrl);

  const phase = async (p: Phase, tag: string): Promise<PeerRun[]> => {
    const out: PeerRun[] = [];
    const systems: Array<[System, () => Promise<PeerRun>]> = [['firn', () => runFirn(root, p, tag)], ['graphile', () => runGraphileWorker(pgUrl, p, tag)]];
    if (!noBull) systems.push(['bullmq', () => runBull(redisUrl, p, tag)]);
    for (const [system, f] of systems) {
      const r = await f();
      log(`${system}, ${p.concurrency} at once: ${r.completed} jobs in ${r.seconds} s = ${r.jobs_per_s} jobs/s; CPU/job workers ${r.worker_cpu_ms_per_job} ms, server ${r.server_cpu_ms_per_job} ms`);
      out.push(r);
    }
    return out;
  };
  const conc = await phase(concurrent, 'c');
  const one = await phase(serial, 's');
  const ratio = (runs: PeerRun[], peer: System) => {
    const other = runs.find((r) => r.system === peer);
    return other ? round(runs.find((r) => r.system === 'firn')!.jobs_per_s / Math.max(1, other.jobs_per_s)) : null;
  };
  const result: PeersBenchResult = {
    name: 'peers',
    date: new Date().toISOString(),
    cpus: os.cpus().length,
    loadavg: [load0, round(os.loadavg()[0] ?? 0)],
    servers,
    concurrent: conc,
    one_at_a_time: one,
    ratio: {
      concurrent: { graphile: ratio(conc, 'graphile'), bullmq: ratio(conc, 'bullmq') },
      one_at_a_time: { graphile: ratio(one, 'graphile'), bullmq: ratio(one, 'bullmq') },
    },
    skipped,
    notes: [
      'Firn: claimTasks (batch of `batch`) + six transition() calls per batch (QUEUEING → … → OK, with history); the peers: one claim and one completion per job',
      'server CPU is every mariadbd / postgres / redis-server process from /proc during the run: MariaDB is shared with other work on this machine, so its figure is an upper bound',
      'worker CPU excludes the worker processes\' start-up (until they are ready)',
    ],
    ok: [...conc, ...one].every((r) => r.completed === r.jobs && (r.double_claims ?? 0) === 0),
  };
  const out = path.join(repoRoot(), 'bench', 'results', 'peers.json');
  fs.mkdirSync(path.dirname(out), { recursive: true });
  fs.writeFileSync(out, JSON.stringify(result, null, 2) + '\n');
  return result;
}

const workerEnv = process.env.FIRN_BENCH_PEER_WORKER;
if (workerEnv !== undefined) {
  const [kind, w] = workerEnv.split(':');
  if (kind === 'firn') workerMain(Number(w));
  else peerWorkerMain(Number(w));
} else if (require.main === module) {
  run().then(
    (r) => {
      process.stdout.write(JSON.stringify(r, null, 2) + '\n');
      process.stdout.write(
        `peers: Firn ÷ graphile-worker ${r.ratio.concurrent.graphile}× (${r.concurrent[0]!.concurrency} at once), ${r.ratio.one_at_a_time.graphile}× (one at a time); ` +
          (r.skipped.bullmq ? `BullMQ not measured (${r.skipped.bullmq})\n` : `Firn ÷ BullMQ ${r.ratio.concurrent.bullmq}×, ${r.ratio.one_at_a_time.bullmq}×\n`),
      );
      process.exit(r.ok ? 0 : 1);
    },
    (e: unknown) => {
      process.stderr.write(`bench peers: ${e instanceof Error ? e.stack : String(e)}\n`);
      process.exit(1);
    },
  );
}
