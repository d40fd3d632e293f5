/**
 * bench/claim.ts — how fast, and how safely, queue daemons claim tasks from one MariaDB.
 *
 * 8 claim loops, each in its own process (child_process.fork of this file, running
 * bench/workers/claim-worker.ts), claim batches from one MariaDB holding 100,000 WAITING tasks
 * until none is left, all through core's claimTasks (the same call firn-queue makes).
 * Measured: claims/s (tasks moved WAITING → QUEUEING per second of wall time, from "go" to
 * the last worker finding nothing), per-call latency, and safety: every worker reports the
 * ids it got — the union must hold no duplicate and every task — and the database history
 * must show exactly one WAITING → QUEUEING per task. Target: ≥ 5,000 claims/s, 0 double claims.
 *
 * Run: `npm run bench -- claim` (after the build: `node --import tsx bench/claim.ts`), or from
 * the sources without a build: `node -r ./test/queue/support/register.js bench/claim.ts`.
 * The workers are forked with this process's execArgv, so they run under the same loader.
 * Two runs, each on a fresh database: 500 tasks per claim call (the default
 * [queue] max_submit_per_cycle — the most a daemon claims in one cycle; the headline), and 100.
 * Environment: FIRN_BENCH_MYSQL_URL (default mysql://root@127.0.0.1:3306), FIRN_BENCH_TASKS (100000),
 * FIRN_BENCH_WORKERS (8), FIRN_BENCH_BATCHES (500,100: tasks per claim call, one run each).
 * Writes bench/results/claim.json.
 */
import { fork, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { chunk, connect, type Db } from '@firn/core';
import { workerMain, type WorkerReport, type WorkerStart } from './workers/claim-worker';

export interface ClaimBenchOptions {
  mysqlUrl?: string;
  tasks?: number;
  workers?: number;
  /**
   * Tasks per claimTasks call, one measured run each on a fresh database. The first is the
   * headline: 500 = `[queue] max_submit_per_cycle`'s default, what a daemon claims at most in
   * one cycle; 100 shows the cost of smaller claims.
   */
  batches?: number[];
  /** Where to write the JSON result (null: do not write). */
  out?: string | null;
}

export interface ClaimRun {
  batch: number;
  seed_seconds: number;
  seconds: number;
  /** tasks moved WAITING → QUEUEING per second of wall time */
  claims_per_s: number;
  calls: number;
  calls_per_s: number;
  call_p50_ms: number;
  call_p99_ms: number;
  /** ids handed out more than once (to two workers, or twice to one) */
  double_claims: number;
  /** tasks no worker got */
  missed: number;
  /** tasks whose history does not show exactly one WAITING → QUEUEING */
  history_mismatches: number;
  per_worker: Array<{ worker: number; claimed: number; calls: number }>;
  /** 1-minute load average before and after the claim phase (this machine may be shared) */
  loadavg: [number, number];
}

export interface ClaimBenchResult {
  name: 'claim';
  date: string;
  cpus: number;
  /** 1-minute load average when the runs started (other work on the machine) */
  loadavg_at_start: number;
  database: string;
  tasks: number;
  workers: number;
  /** headline numbers = runs[0] */
  batch: number;
  claims_per_s: number;
  double_claims: number;
  runs: ClaimRun[];
  target: { claims_per_s: number; double_claims: number };
  ok: boolean;
}

/** The checkout's root (where lerna.json is), from the sources or a bundle in bench/dist. */
function repoRoot(): string {
  for (let dir = __dirname; ; dir = path.dirname(dir)) {
    if (fs.existsSync(path.join(dir, 'lerna.json'))) return dir;
    if (path.dirname(dir) === dir) return process.cwd();
  }
}

const quantile = (sorted: number[], q: number) => (sorted.length ? sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))]! : 0);
const round = (x: number, d = 2) => Math.round(x * 10 ** d) / 10 ** d;

/** 100,000 WAITING tasks (one per job) of one PROCESSING dataset assigned to one grid, by multi-row inserts. */
async function seed(db: Db, tasks: number): Promise<{ gridId: number; gridName: string }> {
  const t = Date.now();
  const gridName = 'bench-grid';
  await db('grid').insert({ name: gridName, plugin: 'slurm', capabilities: '{}', status: 'enabled', created_at: t });
  const gridId = Number(((await db('grid').where('name', gridName).first()) as { id: number }).id);
  const [datasetId = 0] = (await db('dataset').insert({
    description: 'claim bench', status: 'PROCESSING', priority: 0, tasks_per_job: 1, config: '{}', config_hash: '0'.repeat(64),
    created_at: t, updated_at: t, jobs_submitted: tasks,
  })) as number[];
  const [relId = 0] = (await db('task_rel').insert({ dataset_id: datasetId, task_index: 0, name: 'main', requirements: '{}' })) as number[];
  await db('dataset_grid').insert({ dataset_id: datasetId, grid_id: gridId });
  const indexes = Array.from({ length: tasks }, (_, i) => i);
  await db.transaction(async (trx) => {
    for (const part of chunk(indexes, 2000)) {
      await trx('job').insert(part.map((i) => ({ dataset_id: datasetId, job_index: i, status: 'PROCESSING', status_changed_at: t })));
    }
  });
  await db.raw(
    `INSERT INTO task (dataset_id, job_id, task_rel_id, task_index, name, status, status_changed_at)
     SELECT dataset_id, id, ?, 0, 'main', 'WAITING', ? FROM job WHERE dataset_id = ? ORDER BY id`,
    [relId, t, datasetId],
  );
  await db.raw('ANALYZE TABLE task');
  return { gridId, gridName };
}

/** One measured run: fresh database, `tasks` WAITING tasks, `workers` claim loops of `batch`. */
async function measure(root: string, tasks: number, workers: number, batch: number): Promise<ClaimRun & { database: string }> {
  const dbName = `firn_bench_claim_${process.pid}_${batch}`;
  const url = `${root}/${dbName}`;
  const db = await connect(url);
  const children: ChildProcess[] = [];
  try {
    const s0 = performance.now();
    const { gridId, gridName } = await seed(db, tasks);
    const seedSeconds = (performance.now() - s0) / 1000;

    // start the workers, wait until each is connected and ready, then "go" together
    const reports: Promise<WorkerReport>[] = [];
    const ready: Promise<void>[] = [];
    for (let w = 0; w < workers; w++) {
      const child = fork(__filename, [], { env: { ...process.env, FIRN_BENCH_CLAIM_WORKER: String(w) }, stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
      children.push(child);
      ready.push(new Promise((resolve) => child.once('message', () => resolve())));
      reports.push(new Promise((resolve, reject) => {
        child.on('message', (m: { report?: WorkerReport }) => m.report && resolve(m.report));
        child.once('exit', (code) => reject(new Error(`claim worker ${w} exited with ${code} before reporting`)));
      }));
      const start: WorkerStart = { url, gridId, gridName, batch };
      child.send({ start });
    }
    await Promise.all(ready);
    const load0 = os.loadavg()[0] ?? 0;
    const t0 = performance.now();
    for (const c of children) c.send({ go: true });
    const done = await Promise.all(reports);
    const seconds = (performance.now() - t0) / 1000;
    const failed = done.find((r) => r.error);
    if (failed) throw new Error(`claim worker ${failed.worker} failed: ${failed.error}`);

    // safety: the union of what the workers got, and what the database says happened
    const all = done.flatMap((r) => r.ids);
    const distinct = new Set(all);
    const [mismatch] = (await db.raw(
      `SELECT COUNT(*) AS n FROM (
         SELECT t.id FROM task t
         LEFT JOIN history h ON h.entity = 'task' AND h.entity_id = t.id AND h.from_status = 'WAITING' AND h.to_status = 'QUEUEING'
         GROUP BY t.id HAVING COUNT(h.id) <> 1) AS bad`,
    )) as [Array<{ n: number }>];
    const latencies = done.flatMap((r) => r.latencies).sort((a, b) => a - b);
    return {
      database: String(((await db.raw('SELECT VERSION() AS v')) as [Array<{ v: string }>])[0][0]!.v),
      batch,
      seed_seconds: round(seedSeconds),
      seconds: round(seconds, 3),
      claims_per_s: Math.round(all.length / seconds),
      calls: latencies.length,
      calls_per_s: Math.round(latencies.length / seconds),
      call_p50_ms: round(quantile(latencies, 0.5)),
      call_p99_ms: round(quantile(latencies, 0.99)),
      double_claims: all.length - distinct.size,
      missed: tasks - distinct.size,
      history_mismatches: Number(mismatch[0]!.n),
      per_worker: done.map((r) => ({ worker: r.worker, claimed: r.ids.length, calls: r.calls })),
      loadavg: [round(load0), round(os.loadavg()[0] ?? 0)],
    };
  } finally {
    for (const c of children) if (c.exitCode === null) c.kill();
    await db.raw('DROP DATABASE IF EXISTS ??', [dbName]).catch(() => undefined);
    await db.destroy();
  }
}

export async function run(options: ClaimBenchOptions = {}): Promise<ClaimBenchResult> {
  const root = (options.mysqlUrl ?? process.env.FIRN_BENCH_MYSQL_URL ?? 'mysql://root@127.0.0.1:3306').replace(/\/$/, '');
  const tasks = options.tasks ?? Number(process.env.FIRN_BENCH_TASKS ?? 100_000);
  const workers = options.workers ?? Number(process.env.FIRN_BENCH_WORKERS ?? 8);
  const batches = options.batches ?? (process.env.FIRN_BENCH_BATCHES ?? '500,100').split(',').map(Number);
  const loadavg = os.loadavg()[0] ?? 0;
  const runs: Array<ClaimRun & { database: string }> = [];
  for (const batch of batches) runs.push(await measure(root, tasks, workers, batch));
  const head = runs[0]!;
  const result: ClaimBenchResult = {
    name: 'claim',
    date: new Date().toISOString(),
    cpus: os.cpus().length,
    loadavg_at_start: round(loadavg),
    database: head.database,
    tasks,
    workers,
    batch: head.batch,
    claims_per_s: head.claims_per_s,
    double_claims: runs.reduce((n, r) => n + r.double_claims, 0),
    runs: runs.map(({ database: _database, ...r }) => r),
    target: { claims_per_s: 5000, double_claims: 0 },
    ok: false,
  };
  result.ok = head.claims_per_s >= 5000 && runs.every((r) => r.double_claims === 0 && r.missed === 0 && r.history_mismatches === 0);
  const out = options.out === undefined ? path.join(repoRoot(), 'bench', 'results', 'claim.json') : options.out;
  if (out) {
    fs.mkdirSync(path.dirname(out), { recursive: true });
    fs.writeFileSync(out, JSON.stringify(result, null, 2) + '\n');
  }
  return result;
}

if (process.env.FIRN_BENCH_CLAIM_WORKER !== undefined) {
  workerMain(Number(process.env.FIRN_BENCH_CLAIM_WORKER));
} else if (require.main === module) {
  run().then(
    (r) => {
      process.stdout.write(JSON.stringify(r, null, 2) + '\n');
      process.exit(r.ok ? 0 : 1);
    },
    (e: unknown) => {
      process.stderr.write(`bench claim: ${e instanceof Error ? e.stack : String(e)}\n`);
      process.exit(1);
    },
  );
}
