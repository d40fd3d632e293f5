/**
 * bench/web.ts — the web monitor's dataset view on a 1,000,000-task dataset, on SQLite and on
 * MariaDB. Target: the dataset page answers in < 1 s.
 *
 * Each database gets a fresh schema (migrated: the 0002 web indexes, the 0004 task_flow table), seeded with bulk
 * inserts: 250,000 jobs × 4 tasks in a realistic mid-production mix (55% of jobs done, some
 * running, queued, failed, in error, suspended), spread over 5 grids and 30 days, with the
 * full `history` of every task's transitions written by INSERT … SELECT (≈ 5.5 million rows),
 * error summaries, and dataset statistics. On SQLite in one transaction with multi-row inserts
 * of ≤ 500 rows per statement (SQLite's compound-select limit); on MariaDB 5,000 rows per statement.
 *
 * Then the charts' counts (`task_flow`) are built from that history by firn-dh's own roll-up code
 * (rollUpTaskFlow, passes of 1M history ids, as the dh roll-up cycle runs it) and the time it
 * takes is reported (`flow`). Then firn-web serves it over HTTP (loopback, no result cache, so
 * every request hits the database) and each page / endpoint is fetched: once cold, then
 * `FIRN_BENCH_WEB_REPEAT` times (default 5) for the median.
 *
 *   run(): Promise<WebBenchResult>   (used by `npm run bench`)
 *   node <compiled web.js>           (prints the result, writes bench/results/web.json)
 * Compile alone after `npm run build`:
 *   npx esbuild bench/web.ts --bundle --platform=node --packages=external --outfile=bench/dist/web.js && node bench/dist/web.js
 * Environment: FIRN_BENCH_MYSQL_URL (server root URL, default mysql://root@127.0.0.1:3306),
 * FIRN_BENCH_WEB_TASKS (default 1000000), FIRN_BENCH_WEB_REPEAT (5), FIRN_BENCH_WEB_DBS (sqlite,mariadb).
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { connect, deriveJobStatus, isMysql, loadConfig, type Db, type TaskStatus } from '@firn/core';
import { rollUpTaskFlow } from '@firn/dh';
import { startWeb } from '@firn/web';

const TASKS_PER_JOB = 4;
const GRIDS = 5;
const DAY = 24 * 3600_000;

/** Jobs by fate: [per cent, task statuses]. */
const FATES: Array<[number, TaskStatus[]]> = [
  [55, ['OK', 'OK', 'OK', 'OK']],
  [15, ['OK', 'OK', 'WAITING', 'IDLE']],
  [10, ['WAITING', 'IDLE', 'IDLE', 'IDLE']],
  [4, ['OK', 'PROCESSING', 'IDLE', 'IDLE']],
  [2, ['OK', 'QUEUED', 'IDLE', 'IDLE']],
  [5, ['OK', 'OK', 'FAILED', 'IDLE']],
  [3, ['OK', 'ERROR', 'IDLE', 'IDLE']],
  [4, ['SUSPENDED', 'SUSPENDED', 'SUSPENDED', 'SUSPENDED']],
  [2, ['OK', 'OK', 'OK', 'READYTOCOPY']],
];
const FATE_TABLE: TaskStatus[][] = FATES.flatMap(([pct, s]) => Array.from({ length: pct }, () => s));
const NAMES = ['generate', 'propagate', 'detect', 'filter'];
const PATH: TaskStatus[] = ['WAITING', 'QUEUEING', 'QUEUED', 'PROCESSING', 'READYTOCOPY', 'COPYING', 'COPIED', 'OK'];
const NEVER_CLAIMED: TaskStatus[] = ['IDLE', 'WAITING', 'SUSPENDED'];

/** A cheap deterministic hash of an index. */
const hash = (i: number) => Math.imul(i ^ 0x9e3779b9, 2654435761) >>> 0;

/** The transitions a task made from WAITING to its status, as [from, to, minutes before its status time]. */
function stepsTo(final: TaskStatus): Array<[TaskStatus, TaskStatus, number]> {
  if (NEVER_CLAIMED.includes(final)) return final === 'SUSPENDED' ? [['WAITING', 'SUSPENDED', 0]] : [];
  const target: TaskStatus = final === 'ERROR' || final === 'FAILED' ? 'PROCESSING' : final;
  const steps: Array<[TaskStatus, TaskStatus]> = [];
  for (let i = 1; i <= PATH.indexOf(target); i++) steps.push([PATH[i - 1]!, PATH[i]!]);
  if (final === 'ERROR' || final === 'FAILED') steps.push(['PROCESSING', 'ERROR']);
  if (final === 'FAILED') steps.push(['ERROR', 'FAILED']);
  return steps.map(([f, t], i) => [f, t, steps.length - 1 - i]);
}

export interface SeedResult {
  dataset_id: number;
  tasks: number;
  jobs: number;
  history_rows: number;
  seed_seconds: number;
}

/** Seed one dataset of `tasks` tasks (a multiple of 4) with bulk inserts. */
export async function seedBigDataset(db: Db, tasks: number, now = Date.now()): Promise<SeedResult> {
  const t0 = process.hrtime.bigint();
  const phase = (what: string) => {
    if (process.env.FIRN_BENCH_VERBOSE) process.stderr.write(`  [${(Number(process.hrtime.bigint() - t0) / 1e9).toFixed(1)} s] ${what}\n`);
  };
  const mysql = isMysql(db);
  const chunkRows = mysql ? 5000 : 500;
  const jobs = Math.ceil(tasks / TASKS_PER_JOB);
  await db('user').insert({ username: 'bench', password_hash: null, role: 'manager', source: 'local', disabled: false, created_at: now });
  const owner = Number(((await db('user').select('id').where({ username: 'bench' }).first()) as { id: number }).id);
  await db('grid').insert(Array.from({ length: GRIDS }, (_, g) => ({ name: `site-${g + 1}`, plugin: 'slurm', capabilities: '{}', status: 'enabled', last_seen_at: now - 5_000, created_at: now - 40 * DAY })));
  const gridIds = ((await db('grid').select('id').orderBy('id')) as Array<{ id: number }>).map((g) => Number(g.id));
  const config = JSON.stringify({ version: 1, description: 'bench: 1M tasks', tasks: NAMES.map((name) => ({ name })) });
  const [datasetId] = await db('dataset').insert({
    description: `bench: ${tasks.toLocaleString('en-US')} tasks`, type: 'simulation', status: 'PROCESSING', priority: 0, owner_id: owner,
    jobs_submitted: jobs, tasks_per_job: TASKS_PER_JOB, config, config_hash: '0'.repeat(64), created_at: now - 31 * DAY, updated_at: now,
  });
  const id = Number(datasetId);
  await db('dataset_grid').insert(gridIds.map((g) => ({ dataset_id: id, grid_id: g })));
  await db('task_rel').insert(NAMES.map((name, i) => ({ dataset_id: id, task_index: i, name, requirements: '{}' })));
  const rels = ((await db('task_rel').select('id').where({ dataset_id: id }).orderBy('task_index')) as Array<{ id: number }>).map((r) => Number(r.id));

  const fateOf = (j: number) => FATE_TABLE[hash(j) % 100]!;
  const timeOf = (j: number, k: number, status: TaskStatus) =>
    NEVER_CLAIMED.includes(status) && status !== 'SUSPENDED' ? now - 31 * DAY : status === 'OK' ? now - ((hash(j * 7 + k) % (30 * 24 * 60)) * 60_000) : now - ((hash(j + k) % 120) * 60_000);

  await db.transaction(async (trx) => {
    for (let j0 = 0; j0 < jobs; j0 += chunkRows) {
      const rows = [];
      for (let j = j0; j < Math.min(jobs, j0 + chunkRows); j++) {
        rows.push({ dataset_id: id, job_index: j, status: deriveJobStatus(fateOf(j)), status_changed_at: now - (hash(j) % DAY) });
      }
      await trx('job').insert(rows);
    }
    const jobIds = ((await trx('job').select('id').where({ dataset_id: id }).orderBy('job_index')) as Array<{ id: number }>).map((r) => Number(r.id));
    let rows: Array<Record<string, unknown>> = [];
    for (let j = 0; j < jobs; j++) {
      const fate = fateOf(j);
      for (let k = 0; k < TASKS_PER_JOB; k++) {
        const status = fate[k]!;
        const ran = !NEVER_CLAIMED.includes(status);
        const err = status === 'ERROR' || status === 'FAILED';
        rows.push({
          dataset_id: id, job_id: jobIds[j], task_rel_id: rels[k], task_index: k, name: NAMES[k], status, status_changed_at: timeOf(j, k, status),
          grid_id: ran ? gridIds[hash(j) % GRIDS] : null, host: ran ? `node${String(hash(j) % 400).padStart(3, '0')}.site-${(hash(j) % GRIDS) + 1}` : null,
          error_summary: err ? (j % 3 === 0 ? `transfer failed: checksum mismatch for out_${j}.i3` : `module ${NAMES[k]} exited with code 137: memory limit exceeded (rss ${2000 + (j % 700)} MB)`) : null,
          failures: err ? 1 : 0, cpu_seconds: status === 'OK' ? 100 + (j % 50) : null,
        });
        if (rows.length >= chunkRows) {
          await trx('task').insert(rows);
          rows = [];
        }
      }
    }
    if (rows.length) await trx('task').insert(rows);
  });

  phase('jobs and tasks inserted');
  // history: every task's path to its status, straight from the task rows (INSERT … SELECT)
  let historyRows = 0;
  const insertSteps = async (where: { status: TaskStatus }, from: TaskStatus, to: TaskStatus, minutesBefore: number, extra?: string) => {
    const res = (await db.raw(
      `INSERT INTO history (entity, entity_id, dataset_id, action, from_status, to_status, actor, reason, created_at)
       SELECT ?, id, dataset_id, ?, ?, ?, ?, NULL, status_changed_at - ? FROM task WHERE dataset_id = ? AND status = ?${extra ?? ''}`,
      ['task', 'transition', from, to, 'core', minutesBefore * 60_000, id, where.status],
    )) as unknown;
    historyRows += affected(res);
  };
  for (const status of new Set(FATE_TABLE.flat())) {
    const steps = stepsTo(status);
    for (const [from, to, before] of steps) await insertSteps({ status }, from, to, before);
    // later tasks of a job start IDLE and become WAITING when the one before is done
    if (steps.length) await insertSteps({ status }, 'IDLE', 'WAITING', steps.length + 1, ' AND task_index > 0');
    phase(`history of ${status} tasks inserted`);
  }
  await db('history').insert({ entity: 'dataset', entity_id: id, dataset_id: id, action: 'submit', from_status: null, to_status: 'PROCESSING', actor: 'user:bench', reason: null, created_at: now - 31 * DAY });
  const stat = (name: string, n: number, mean: number, sd: number) => ({ dataset_id: id, name, n, sum: n * mean, sum_sq: n * (sd * sd + mean * mean), min: mean - 3 * sd, max: mean + 3 * sd });
  await db('dataset_stat').insert([stat('cpu_seconds', 600_000, 125, 14), stat('events', 600_000, 1000, 0), stat('energy_gev', 600_000, 5.2, 1.7)]);
  if (mysql) await db.raw('ANALYZE TABLE task, job, history');
  else await db.raw('ANALYZE');
  phase('analyzed');
  return { dataset_id: id, tasks: jobs * TASKS_PER_JOB, jobs, history_rows: historyRows, seed_seconds: Number(process.hrtime.bigint() - t0) / 1e9 };
}

function affected(res: unknown): number {
  if (Array.isArray(res)) return Number((res[0] as { affectedRows?: number } | undefined)?.affectedRows ?? 0);
  const r = res as { changes?: number } | undefined;
  return Number(r?.changes ?? 0);
}

export interface Timing {
  cold_ms: number;
  median_ms: number;
  max_ms: number;
  bytes: number;
}

async function timeGet(url: string, repeat: number): Promise<Timing> {
  const once = async () => {
    const t0 = process.hrtime.bigint();
    const res = await fetch(url);
    const body = await res.arrayBuffer();
    const ms = Number(process.hrtime.bigint() - t0) / 1e6;
    if (res.status !== 200) throw new Error(`GET ${url}: HTTP ${res.status}`);
    return { ms, bytes: body.byteLength };
  };
  const cold = await once();
  const runs: number[] = [];
  for (let i = 0; i < repeat; i++) runs.push((await once()).ms);
  runs.sort((a, b) => a - b);
  const r = (x: number) => Math.round(x * 10) / 10;
  return { cold_ms: r(cold.ms), median_ms: r(runs[Math.floor(runs.length / 2)] ?? cold.ms), max_ms: r(runs[runs.length - 1] ?? cold.ms), bytes: cold.bytes };
}

export interface FlowBuild {
  /** Building task_flow from the whole seeded history (firn-dh's rollUpTaskFlow passes). */
  seconds: number;
  passes: number;
  history_rows_counted: number;
  task_flow_rows: number;
}

/** Build task_flow from the history as firn-dh's roll-up cycle does, pass after pass. */
export async function buildTaskFlow(db: Db): Promise<FlowBuild> {
  const t0 = process.hrtime.bigint();
  let passes = 0;
  let counted = 0;
  for (let behind = true; behind; ) {
    const r = await rollUpTaskFlow(db);
    passes++;
    counted += r.rows;
    behind = r.behind;
    if (behind && r.to === r.from) await new Promise((res) => setTimeout(res, 300)); // MySQL: the ids it saw settle
  }
  const rows = Number(((await db('task_flow').count({ n: '*' }).first()) as { n: number | string }).n);
  return { seconds: Number(process.hrtime.bigint() - t0) / 1e9, passes, history_rows_counted: counted, task_flow_rows: rows };
}

export interface DbBench {
  db: 'sqlite' | 'mariadb';
  seed: SeedResult;
  flow: FlowBuild;
  pages: Record<string, Timing>;
  /** The dataset view's median under the 1 s target? */
  dataset_view_ok: boolean;
  /** Every page's and endpoint's median under the 1 s target? */
  all_pages_ok: boolean;
}

export interface WebBenchResult {
  name: 'web';
  date: string;
  cpus: number;
  tasks: number;
  target_ms: number;
  results: DbBench[];
}

async function benchOne(kind: 'sqlite' | 'mariadb', tasks: number, repeat: number): Promise<DbBench> {
  const root = process.env.FIRN_BENCH_MYSQL_URL ?? 'mysql://root@127.0.0.1:3306';
  const tmp = kind === 'sqlite' ? fs.mkdtempSync(path.join(os.tmpdir(), 'firn-bench-web-')) : null;
  const name = `firn_bench_web_${process.pid}`;
  const url = kind === 'sqlite' ? `sqlite://${path.join(tmp!, 'firn.sqlite')}` : `${root}/${name}`;
  const db = await connect(url, { poolMax: 8 });
  try {
    const seed = await seedBigDataset(db, tasks);
    const flow = await buildTaskFlow(db);
    const config = loadConfig({ overrides: { db: { url }, mon: { host: '127.0.0.1', port: 0, tray_url: 'http://127.0.0.1:9' }, log: { level: 'error' } } });
    // the bench measures the queries behind the pages, not the login: pages are served without a session
    const web = await startWeb({ config, db, web: { cacheMs: 0, anonymousRead: true } });
    try {
      const d = seed.dataset_id;
      const pages: Record<string, Timing> = {};
      pages.dataset_view = await timeGet(`${web.url}/datasets/${d}`, repeat);
      pages.dataset_view_failed_jobs_page_100 = await timeGet(`${web.url}/datasets/${d}?job_status=FAILED&jobs_page=100`, repeat);
      pages.summary_json = await timeGet(`${web.url}/api/datasets/${d}/summary`, repeat);
      pages.series_1d = await timeGet(`${web.url}/api/datasets/${d}/series?range=1d`, repeat);
      pages.series_7d = await timeGet(`${web.url}/api/datasets/${d}/series?range=7d`, repeat);
      pages.series_30d = await timeGet(`${web.url}/api/datasets/${d}/series?range=30d`, repeat);
      pages.general_view = await timeGet(`${web.url}/`, repeat);
      pages.grid_view = await timeGet(`${web.url}/grids/site-1`, repeat);
      pages.job_view = await timeGet(`${web.url}/datasets/${d}/jobs/${Math.floor(seed.jobs / 2)}`, repeat);
      return {
        db: kind, seed, flow, pages,
        dataset_view_ok: pages.dataset_view.median_ms < 1000,
        all_pages_ok: Object.values(pages).every((p) => p.median_ms < 1000),
      };
    } finally {
      await web.close();
    }
  } finally {
    if (kind === 'mariadb') await db.raw('DROP DATABASE IF EXISTS ??', [name]).catch(() => undefined);
    await db.destroy();
    if (tmp) fs.rmSync(tmp, { recursive: true, force: true });
  }
}

export async function run(): Promise<WebBenchResult> {
  const tasks = Number(process.env.FIRN_BENCH_WEB_TASKS ?? 1_000_000);
  const repeat = Number(process.env.FIRN_BENCH_WEB_REPEAT ?? 5);
  const kinds = (process.env.FIRN_BENCH_WEB_DBS ?? 'sqlite,mariadb').split(',').map((s) => s.trim()) as Array<'sqlite' | 'mariadb'>;
  const results: DbBench[] = [];
  for (const k of kinds) results.push(await benchOne(k, tasks, repeat));
  return { name: 'web', date: new Date().toISOString(), cpus: os.cpus().length, tasks, target_ms: 1000, results };
}

/** bench/results, found from wherever this file was compiled to. */
function resultsDir(): string {
  for (let dir = __dirname; ; dir = path.dirname(dir)) {
    if (path.basename(dir) === 'bench') return path.join(dir, 'results');
    if (fs.existsSync(path.join(dir, 'bench', 'web.ts'))) return path.join(dir, 'bench', 'results');
    if (path.dirname(dir) === dir) return path.join(process.cwd(), 'bench', 'results');
  }
}

if (require.main === module) {
  run().then(
    (result) => {
      const dir = resultsDir();
      fs.mkdirSync(dir, { recursive: true });
      fs.writeFileSync(path.join(dir, 'web.json'), JSON.stringify(result, null, 2) + '\n');
      for (const r of result.results) {
        process.stdout.write(
          `${r.db}: ${r.seed.tasks.toLocaleString('en-US')} tasks, ${r.seed.history_rows.toLocaleString('en-US')} history rows seeded in ${r.seed.seed_seconds.toFixed(1)} s\n`,
        );
        process.stdout.write(`  task_flow built from it in ${r.flow.seconds.toFixed(1)} s (${r.flow.passes} passes, ${r.flow.task_flow_rows.toLocaleString('en-US')} rows)\n`);
        for (const [k, v] of Object.entries(r.pages)) process.stdout.write(`  ${k.padEnd(34)} cold ${String(v.cold_ms).padStart(8)} ms   median ${String(v.median_ms).padStart(8)} ms\n`);
        process.stdout.write(`  dataset view < 1 s: ${r.dataset_view_ok ? 'yes' : 'NO'}; every page < 1 s: ${r.all_pages_ok ? 'yes' : 'NO'}\n`);
      }
    },
    (e: unknown) => {
      process.stderr.write(`bench web failed: ${(e as Error).stack ?? String(e)}\n`);
      process.exitCode = 1;
    },
  );
}
