import type { Knex } from 'knex';
import { statMean, statPopulationStddev } from './stats';
import { isMysql, now, withTransaction, type Db, type DbOrTrx } from './db';
import { NotFoundError } from './errors';
import { TASK_FLOW_HISTORY_WHERE } from './task-flow';
import {
  DatasetStatus, IN_PROGRESS_STATUSES, JobStatus, TASK_STATUSES, TaskStatus, deriveDatasetStatus, deriveJobStatus,
  type JobStatus as JobStatusT, type TaskStatus as TaskStatusT,
} from './states';

/**
 * Read helpers over datasets, jobs, tasks, statistics and grids, shared by firn-tray, firn-mon,
 * firn-dh and the web monitor. Every count is one GROUP BY query (never a row-by-row walk), so
 * they stay fast for datasets of a million tasks. Results are plain JSON-able objects.
 */

// ---------------------------------------------------------------- datasets

export interface DatasetInfo {
  id: number;
  description: string;
  type: 'simulation' | 'offline';
  status: DatasetStatus;
  priority: number;
  owner: string | null;
  jobs_submitted: number;
  tasks_per_job: number;
  config_hash: string;
  created_at: number;
  updated_at: number;
}

export interface DatasetDetail extends DatasetInfo {
  /** Names of the grids that may run it. */
  grids: string[];
  /** Retry policy (JSON), defaults applied at submission. */
  retry: unknown;
}

interface DatasetRow {
  id: number; description: string; type: string; status: string; priority: number; owner_id: number | null;
  owner: string | null; jobs_submitted: number; tasks_per_job: number; config_hash: string; retry: string | null;
  created_at: number; updated_at: number;
}

const DATASET_COLUMNS = [
  'd.id', 'd.description', 'd.type', 'd.status', 'd.priority', 'd.owner_id', 'u.username as owner', 'd.jobs_submitted',
  'd.tasks_per_job', 'd.config_hash', 'd.retry', 'd.created_at', 'd.updated_at',
];

function datasetInfo(r: DatasetRow): DatasetInfo {
  return {
    id: Number(r.id),
    description: r.description,
    type: r.type === 'offline' ? 'offline' : 'simulation',
    status: r.status as DatasetStatus,
    priority: Number(r.priority),
    owner: r.owner ?? null,
    jobs_submitted: Number(r.jobs_submitted),
    tasks_per_job: Number(r.tasks_per_job),
    config_hash: r.config_hash,
    created_at: Number(r.created_at),
    updated_at: Number(r.updated_at),
  };
}

function parseJson(text: string | null | undefined): unknown {
  if (text === null || text === undefined || text === '') return null;
  try {
    return JSON.parse(text);
  } catch {
    return null;
  }
}

/** The dataset row's owner and status (for permission checks); NotFoundError when absent. */
export async function getDatasetOwner(db: DbOrTrx, datasetId: number): Promise<{ id: number; owner_id: number | null; status: DatasetStatus; type: string }> {
  const row = (await db('dataset').select('id', 'owner_id', 'status', 'type').where({ id: datasetId }).first()) as
    | { id: number; owner_id: number | null; status: string; type: string }
    | undefined;
  if (!row) throw new NotFoundError(`no dataset ${datasetId}`);
  return { id: Number(row.id), owner_id: row.owner_id === null ? null : Number(row.owner_id), status: row.status as DatasetStatus, type: row.type };
}

export async function getDataset(db: DbOrTrx, datasetId: number): Promise<DatasetDetail> {
  const row = (await db('dataset as d').leftJoin('user as u', 'u.id', 'd.owner_id').select(DATASET_COLUMNS).where('d.id', datasetId).first()) as
    | DatasetRow
    | undefined;
  if (!row) throw new NotFoundError(`no dataset ${datasetId}`);
  const grids = (await db('dataset_grid as dg').join('grid as g', 'g.id', 'dg.grid_id').where('dg.dataset_id', datasetId).orderBy('g.name').select('g.name')) as Array<{ name: string }>;
  return { ...datasetInfo(row), grids: grids.map((g) => g.name), retry: parseJson(row.retry) };
}

export interface ListDatasetsOptions {
  status?: DatasetStatus | DatasetStatus[];
  owner?: string;
  limit?: number;
  offset?: number;
}

/** Newest first. */
export async function listDatasets(db: DbOrTrx, options: ListDatasetsOptions = {}): Promise<DatasetInfo[]> {
  const q = db('dataset as d').leftJoin('user as u', 'u.id', 'd.owner_id').select(DATASET_COLUMNS).orderBy('d.id', 'desc');
  if (options.status !== undefined) q.whereIn('d.status', Array.isArray(options.status) ? options.status : [options.status]);
  if (options.owner !== undefined) q.where('u.username', options.owner);
  q.limit(options.limit ?? 1000).offset(options.offset ?? 0);
  return ((await q) as DatasetRow[]).map(datasetInfo);
}

/** The config exactly as submitted, and its hash. */
export async function getDatasetConfig(db: DbOrTrx, datasetId: number): Promise<{ config: unknown; config_hash: string }> {
  const row = (await db('dataset').select('config', 'config_hash').where({ id: datasetId }).first()) as { config: string; config_hash: string } | undefined;
  if (!row) throw new NotFoundError(`no dataset ${datasetId}`);
  return { config: JSON.parse(row.config) as unknown, config_hash: row.config_hash };
}

// ---------------------------------------------------------------- status counts

/** Tasks per status, every status present (0 when none). One GROUP BY. */
export async function taskStatusCounts(db: DbOrTrx, datasetId: number): Promise<Record<TaskStatusT, number>> {
  const rows = (await db('task').select('status').count({ n: '*' }).where({ dataset_id: datasetId }).groupBy('status')) as Array<{ status: string; n: number | string }>;
  const out = Object.fromEntries(TASK_STATUSES.map((s) => [s, 0])) as Record<TaskStatusT, number>;
  for (const r of rows) if (r.status in out) out[r.status as TaskStatusT] = Number(r.n);
  return out;
}

/**
 * SQL for a job's status derived from its tasks (alias `t`), matching states.ts
 * deriveJobStatus: OK when all OK; PROCESSING when any task is still in progress; else FAILED
 * when any FAILED; else SUSPENDED when any SUSPENDED; else PROCESSING.
 */
function jobStatusCase(alias: string): { sql: string; bindings: string[] } {
  const inProgress = IN_PROGRESS_STATUSES.map(() => '?').join(', ');
  return {
    sql: `CASE WHEN SUM(CASE WHEN ${alias}.status = ? THEN 1 ELSE 0 END) = COUNT(*) THEN ?
      WHEN SUM(CASE WHEN ${alias}.status IN (${inProgress}) THEN 1 ELSE 0 END) > 0 THEN ?
      WHEN SUM(CASE WHEN ${alias}.status = ? THEN 1 ELSE 0 END) > 0 THEN ?
      WHEN SUM(CASE WHEN ${alias}.status = ? THEN 1 ELSE 0 END) > 0 THEN ?
      ELSE ? END`,
    bindings: [
      TaskStatus.OK, JobStatus.OK,
      ...IN_PROGRESS_STATUSES, JobStatus.PROCESSING,
      TaskStatus.FAILED, JobStatus.FAILED,
      TaskStatus.SUSPENDED, JobStatus.SUSPENDED,
      JobStatus.PROCESSING,
    ],
  };
}

/** The derived job status as a knex raw expression over task alias `alias` (use with GROUP BY job). */
export function jobStatusSql(db: DbOrTrx, alias = 't'): Knex.Raw {
  const c = jobStatusCase(alias);
  return db.raw(c.sql, c.bindings);
}

/** Jobs per derived status (every job status present). Computed in SQL: one grouped subquery. */
export async function jobStatusCounts(db: DbOrTrx, datasetId: number): Promise<Record<JobStatusT, number>> {
  const perJob = db('task as t').select('t.job_id').select(db.raw('? as ??', [jobStatusSql(db), 'status'])).where('t.dataset_id', datasetId).groupBy('t.job_id').as('j');
  const rows = (await db.from(perJob).select('j.status').count({ n: '*' }).groupBy('j.status')) as Array<{ status: string; n: number | string }>;
  const out = Object.fromEntries(Object.values(JobStatus).map((s) => [s, 0])) as Record<JobStatusT, number>;
  for (const r of rows) if (r.status in out) out[r.status as JobStatusT] = Number(r.n);
  return out;
}

export interface DatasetStatusResult {
  status: DatasetStatus;
  tasks: Record<TaskStatusT, number>;
  jobs: Record<JobStatusT, number>;
  progress?: DatasetProgress;
}

// ---------------------------------------------------------------- progress

const MINUTE_MS = 60_000;
const HOUR_MS = 60 * MINUTE_MS;
/** task_flow's finest span: the rate's window is read from these buckets where they fit. */
const FLOW_SPAN_MS = 5 * MINUTE_MS;

export interface DatasetProgress {
  /** OK tasks / all tasks × 100, rounded down to 0.1 (100 only when every task is OK); 0 with no tasks. */
  percent: number;
  ok: number;
  total: number;
  /** Tasks that reached OK in the hour before now. */
  tasks_per_hour: number;
  /** When the remaining tasks (total − ok) are done at that rate (ISO 8601); null when the rate is 0 or nothing remains. */
  eta: string | null;
}

/** Percent complete, rounded down to 0.1 so that 99.97 % does not read as done. */
export function percentComplete(ok: number, total: number): number {
  if (total <= 0) return 0;
  return Math.floor((ok * 1000) / total) / 10;
}

/** Progress from the counts and the last hour's completions (pure: the numbers the status shows). */
export function progressFrom(ok: number, total: number, tasksPerHour: number, nowMs: number): DatasetProgress {
  const remaining = Math.max(0, total - ok);
  const eta = tasksPerHour > 0 && remaining > 0 ? new Date(nowMs + Math.round((remaining / tasksPerHour) * HOUR_MS)).toISOString() : null;
  return { percent: percentComplete(ok, total), ok, total, tasks_per_hour: tasksPerHour, eta };
}

/**
 * Tasks of a dataset that reached OK in (nowMs − 1 h, nowMs], read as the web's charts read
 * (web queries/series.ts): the whole 5-minute `task_flow` buckets inside the hour, plus the
 * `history` rows past the roll-up's watermark in those buckets (a primary-key range), plus the
 * history rows of the two partial buckets at the hour's ends (< 10 minutes together, on the
 * (dataset_id, created_at) index). So it is exact whether or not firn-dh has caught up, and a
 * busy dataset's hour costs eleven flow rows, not every transition of the hour. Call it inside
 * a transaction (one snapshot of watermark, flow and history); datasetStatus does.
 */
export async function completedLastHour(db: DbOrTrx, datasetId: number, nowMs: number = Date.now()): Promise<number> {
  const windowStart = nowMs - HOUR_MS;
  // whole buckets: [fullStart, fullEnd); the hour's ends outside them are read from history
  const fullStart = Math.ceil((windowStart + 1) / FLOW_SPAN_MS) * FLOW_SPAN_MS;
  const fullEnd = Math.floor((nowMs + 1) / FLOW_SPAN_MS) * FLOW_SPAN_MS;
  const state = (await db('task_flow_state').select('history_id').where({ id: 1 }).first()) as { history_id: number } | undefined;
  const watermark = state ? Number(state.history_id) : 0;
  const flow = (await db('task_flow').sum({ n: 'n' })
    .where({ dataset_id: datasetId, span_ms: FLOW_SPAN_MS, to_status: TaskStatus.OK })
    .andWhere('bucket_start', '>=', fullStart)
    .andWhere('bucket_start', '<', fullEnd)
    .first()) as { n: number | string | null } | undefined;
  const ends = await db.raw(
    `SELECT COUNT(*) AS n FROM history h
     WHERE h.dataset_id = ? AND ((h.created_at > ? AND h.created_at < ?) OR (h.created_at >= ? AND h.created_at <= ?))
       AND h.to_status = ? AND ${TASK_FLOW_HISTORY_WHERE}`,
    [datasetId, windowStart, fullStart, fullEnd, nowMs, TaskStatus.OK],
  );
  const source = watermark > 0 ? (isMysql(db) ? 'history h FORCE INDEX (PRIMARY)' : 'history h NOT INDEXED') : 'history h';
  const tail = await db.raw(
    `SELECT COUNT(*) AS n FROM ${source}
     WHERE h.id > ? AND h.dataset_id = ? AND h.created_at >= ? AND h.created_at < ? AND h.to_status = ? AND ${TASK_FLOW_HISTORY_WHERE}`,
    [watermark, datasetId, fullStart, fullEnd, TaskStatus.OK],
  );
  return Number(flow?.n ?? 0) + countOf(ends) + countOf(tail);
}

function countOf(res: unknown): number {
  // mysql2: [rows, fields]; better-sqlite3: rows
  const rows = (Array.isArray(res) && Array.isArray(res[0]) ? res[0] : res) as Array<{ n: number | string }> | undefined;
  return Number(rows?.[0]?.n ?? 0);
}

/** A dataset's progress: counts, the last hour's rate and the ETA. */
export async function datasetProgress(db: DbOrTrx, datasetId: number, nowMs: number = Date.now()): Promise<DatasetProgress> {
  const read = async (q: DbOrTrx): Promise<DatasetProgress> => {
    await getDatasetOwner(q, datasetId);
    const tasks = await taskStatusCounts(q, datasetId);
    return progressFrom(tasks.OK, sumCounts(tasks), await completedLastHour(q, datasetId, nowMs), nowMs);
  };
  if ((db as { isTransaction?: boolean }).isTransaction) return read(db);
  return withTransaction(db as Db, read);
}

function sumCounts(c: Record<string, number>): number {
  return Object.values(c).reduce((a, b) => a + b, 0);
}

export interface DatasetListProgress {
  ok: number;
  failed: number;
  total: number;
  percent: number;
}

/** OK, FAILED and all tasks of each listed dataset: one GROUP BY over the (dataset_id, status) index. */
export async function datasetListProgress(db: DbOrTrx, datasetIds: readonly number[]): Promise<Map<number, DatasetListProgress>> {
  const out = new Map<number, DatasetListProgress>();
  for (const id of datasetIds) out.set(id, { ok: 0, failed: 0, total: 0, percent: 0 });
  for (let i = 0; i < datasetIds.length; i += 1000) {
    const part = datasetIds.slice(i, i + 1000);
    const rows = (await db('task').select('dataset_id', 'status').count({ n: '*' }).whereIn('dataset_id', part).groupBy('dataset_id', 'status')) as Array<{
      dataset_id: number; status: string; n: number | string;
    }>;
    for (const r of rows) {
      const p = out.get(Number(r.dataset_id));
      if (!p) continue;
      const n = Number(r.n);
      p.total += n;
      if (r.status === TaskStatus.OK) p.ok += n;
      else if (r.status === TaskStatus.FAILED) p.failed += n;
    }
  }
  for (const p of out.values()) p.percent = percentComplete(p.ok, p.total);
  return out;
}

/**
 * `dataset.status`: task and job counts, the dataset status derived from the job counts
 * (OBSOLETE/DELETED as stored; a dataset with no jobs keeps its stored status), and its
 * progress (percent, last hour's rate, ETA) from the same snapshot.
 */
export async function datasetStatus(db: DbOrTrx, datasetId: number, nowMs: number = Date.now()): Promise<DatasetStatusResult> {
  // One snapshot for both counts: read apart, a dataset that completed in between showed
  // COMPLETE (from its jobs) with its tasks' counts from before (none OK yet).
  const read = async (q: DbOrTrx): Promise<DatasetStatusResult> => {
    const ds = await getDatasetOwner(q, datasetId);
    const [tasks, jobs] = [await taskStatusCounts(q, datasetId), await jobStatusCounts(q, datasetId)];
    const progress = progressFrom(tasks.OK, sumCounts(tasks), await completedLastHour(q, datasetId, nowMs), nowMs);
    return { status: deriveDatasetStatus(jobs, ds.status), tasks, jobs, progress };
  };
  if ((db as { isTransaction?: boolean }).isTransaction) return read(db);
  return withTransaction(db as Db, read);
}

/**
 * Store each job's derived status in `job.status` (one UPDATE with a correlated subquery per
 * chunk of 500 jobs; jobs without tasks are left alone). Returns how many rows changed.
 */
export async function refreshJobStatuses(db: DbOrTrx, jobIds: readonly number[]): Promise<number> {
  let changed = 0;
  const t = now();
  const c = jobStatusCase('t');
  const derived = `(SELECT ${c.sql} FROM task t WHERE t.job_id = job.id)`;
  for (let i = 0; i < jobIds.length; i += 500) {
    const part = jobIds.slice(i, i + 500);
    const placeholders = part.map(() => '?').join(', ');
    const res = (await db.raw(
      `UPDATE job SET status = ${derived}, status_changed_at = ?
       WHERE id IN (${placeholders}) AND EXISTS (SELECT 1 FROM task t2 WHERE t2.job_id = job.id) AND status <> ${derived}`,
      [...c.bindings, t, ...part, ...c.bindings],
    )) as unknown;
    changed += affectedRows(res);
  }
  return changed;
}

function affectedRows(res: unknown): number {
  // mysql2: [ResultSetHeader, fields]; better-sqlite3 through knex.raw: { changes }
  if (Array.isArray(res)) {
    const first = res[0] as { affectedRows?: number } | undefined;
    return Number(first?.affectedRows ?? 0);
  }
  const r = res as { changes?: number; affectedRows?: number } | undefined;
  return Number(r?.changes ?? r?.affectedRows ?? 0);
}

// ---------------------------------------------------------------- statistics

export interface StatSummary {
  n: number;
  sum: number;
  mean: number;
  /** Population standard deviation, from n, sum and sum of squares. */
  stddev: number;
  min: number;
  max: number;
}

/** mean and (population) stddev from n, sum and sum of squares; variance rounding below 0 is clamped. */
export function statsFromSums(r: { n: number; sum: number; sum_sq: number; min: number; max: number }): StatSummary {
  // a dataset's tasks are the whole population, not a sample: population stddev (stats.ts)
  const s = { n: Number(r.n), sum: Number(r.sum), sum_sq: Number(r.sum_sq) };
  return { n: s.n, sum: s.sum, mean: statMean(s), stddev: statPopulationStddev(s), min: Number(r.min), max: Number(r.max) };
}

/** `dataset.stats`: one entry per statistic name from `dataset_stat`. */
export async function datasetStats(db: DbOrTrx, datasetId: number): Promise<Record<string, StatSummary>> {
  await getDatasetOwner(db, datasetId);
  const rows = (await db('dataset_stat').select('name', 'n', 'sum', 'sum_sq', 'min', 'max').where({ dataset_id: datasetId }).orderBy('name')) as Array<{
    name: string; n: number; sum: number; sum_sq: number; min: number; max: number;
  }>;
  const out: Record<string, StatSummary> = {};
  for (const r of rows) out[r.name] = statsFromSums(r);
  return out;
}

// ---------------------------------------------------------------- jobs and tasks

export interface JobInfo {
  id: number;
  dataset_id: number;
  job_index: number;
  /** Derived from its tasks. */
  status: JobStatusT;
  run_id: number | null;
  status_changed_at: number;
}

export interface JobDetail extends JobInfo {
  args: unknown;
  run: { run_number: number; date: string } | null;
  input_files: Array<{ url: string; local_name: string; md5: string | null; sha256: string | null; size: number | null }>;
}

export interface TaskInfo {
  id: number;
  dataset_id: number;
  job_id: number;
  job_index: number;
  task_index: number;
  name: string;
  status: TaskStatusT;
  status_changed_at: number;
  requirements: { cpu: number; gpu: number; memory: number; disk: number; time: number; site: string | null };
  grid: string | null;
  batch_id: string | null;
  failures: number;
  evictions: number;
  submit_errors: number;
  next_retry_at: number | null;
  error_summary: string | null;
  host: string | null;
  started_at: number | null;
  finished_at: number | null;
  last_heartbeat_at: number | null;
  usage: { cpu_seconds: number | null; rss_mb: number | null; disk_mb: number | null; wall_seconds: number | null; gpu_util: number | null };
}

export interface ListJobsOptions {
  status?: JobStatusT;
  limit?: number;
  offset?: number;
}

/** Jobs of a dataset by job index, with their derived status (filterable). */
export async function listJobs(db: DbOrTrx, datasetId: number, options: ListJobsOptions = {}): Promise<JobInfo[]> {
  await getDatasetOwner(db, datasetId);
  const q = db('job as j')
    .join('task as t', 't.job_id', 'j.id')
    .select('j.id', 'j.job_index', 'j.run_id', 'j.status_changed_at')
    .select(db.raw('? as ??', [jobStatusSql(db), 'status']))
    .where('j.dataset_id', datasetId)
    .groupBy('j.id', 'j.job_index', 'j.run_id', 'j.status_changed_at')
    .orderBy('j.job_index')
    .limit(options.limit ?? 1000)
    .offset(options.offset ?? 0);
  if (options.status) {
    // the whole expression, not its alias: `status` would be ambiguous with job.status / task.status
    const c = jobStatusCase('t');
    q.havingRaw(`${c.sql} = ?`, [...c.bindings, options.status]);
  }
  const rows = (await q) as Array<{ id: number; job_index: number; run_id: number | null; status_changed_at: number; status: string }>;
  return rows.map((r) => ({
    id: Number(r.id), dataset_id: datasetId, job_index: Number(r.job_index), status: r.status as JobStatusT,
    run_id: r.run_id === null ? null : Number(r.run_id), status_changed_at: Number(r.status_changed_at),
  }));
}

const TASK_COLUMNS = [
  't.id', 't.dataset_id', 't.job_id', 'j.job_index', 't.task_index', 't.name', 't.status', 't.status_changed_at',
  't.req_cpu', 't.req_gpu', 't.req_memory', 't.req_disk', 't.req_time', 't.req_site', 'g.name as grid', 't.batch_id',
  't.failures', 't.evictions', 't.submit_errors', 't.next_retry_at', 't.error_summary', 't.host', 't.started_at',
  't.finished_at', 't.last_heartbeat_at', 't.cpu_seconds', 't.rss_mb', 't.disk_mb', 't.wall_seconds', 't.gpu_util',
];

type TaskRow = Record<string, unknown>;
const num = (v: unknown): number | null => (v === null || v === undefined ? null : Number(v));

function taskInfo(r: TaskRow): TaskInfo {
  return {
    id: Number(r.id), dataset_id: Number(r.dataset_id), job_id: Number(r.job_id), job_index: Number(r.job_index),
    task_index: Number(r.task_index), name: String(r.name), status: r.status as TaskStatusT,
    status_changed_at: Number(r.status_changed_at),
    requirements: {
      cpu: Number(r.req_cpu), gpu: Number(r.req_gpu), memory: Number(r.req_memory), disk: Number(r.req_disk),
      time: Number(r.req_time), site: (r.req_site as string | null) ?? null,
    },
    grid: (r.grid as string | null) ?? null,
    batch_id: (r.batch_id as string | null) ?? null,
    failures: Number(r.failures), evictions: Number(r.evictions), submit_errors: Number(r.submit_errors),
    next_retry_at: num(r.next_retry_at), error_summary: (r.error_summary as string | null) ?? null,
    host: (r.host as string | null) ?? null, started_at: num(r.started_at), finished_at: num(r.finished_at),
    last_heartbeat_at: num(r.last_heartbeat_at),
    usage: { cpu_seconds: num(r.cpu_seconds), rss_mb: num(r.rss_mb), disk_mb: num(r.disk_mb), wall_seconds: num(r.wall_seconds), gpu_util: num(r.gpu_util) },
  };
}

function taskQuery(db: DbOrTrx) {
  return db('task as t').join('job as j', 'j.id', 't.job_id').leftJoin('grid as g', 'g.id', 't.grid_id').select(TASK_COLUMNS);
}

/** `job.get`: the job (derived status, args, run, input files) and its tasks by index. */
export async function getJob(db: DbOrTrx, datasetId: number, jobIndex: number): Promise<{ job: JobDetail; tasks: TaskInfo[] }> {
  const row = (await db('job').where({ dataset_id: datasetId, job_index: jobIndex }).first()) as
    | { id: number; job_index: number; run_id: number | null; args: string | null; status_changed_at: number }
    | undefined;
  if (!row) throw new NotFoundError(`no job ${jobIndex} in dataset ${datasetId}`);
  const tasks = ((await taskQuery(db).where('t.job_id', row.id).orderBy('t.task_index')) as TaskRow[]).map(taskInfo);
  const run = row.run_id === null ? null : ((await db('run').select('run_number', 'date').where({ id: row.run_id }).first()) as { run_number: number; date: string } | undefined);
  const files = (await db('file').select('url', 'local_name', 'md5', 'sha256', 'size').where({ job_id: row.id, kind: 'input' }).orderBy('id')) as Array<{
    url: string; local_name: string; md5: string | null; sha256: string | null; size: number | null;
  }>;
  return {
    job: {
      id: Number(row.id), dataset_id: datasetId, job_index: Number(row.job_index),
      status: deriveJobStatus(tasks.map((t) => t.status)), run_id: row.run_id === null ? null : Number(row.run_id),
      status_changed_at: Number(row.status_changed_at), args: parseJson(row.args),
      run: run ? { run_number: Number(run.run_number), date: run.date } : null,
      input_files: files.map((f) => ({ ...f, size: num(f.size) })),
    },
    tasks,
  };
}

/** `task.get` */
export async function getTask(db: DbOrTrx, taskId: number): Promise<TaskInfo> {
  const row = (await taskQuery(db).where('t.id', taskId).first()) as TaskRow | undefined;
  if (!row) throw new NotFoundError(`no task ${taskId}`);
  return taskInfo(row);
}

export interface TaskLog {
  name: string;
  data: string;
  updated_at: number;
}

/** `task.logs`: every log of a task (or the one named), by name. */
export async function getTaskLogs(db: DbOrTrx, taskId: number, name?: string): Promise<TaskLog[]> {
  const exists = await db('task').select('id').where({ id: taskId }).first();
  if (!exists) throw new NotFoundError(`no task ${taskId}`);
  const q = db('task_log').select('name', 'data', 'updated_at').where({ task_id: taskId }).orderBy('name');
  if (name !== undefined) q.andWhere({ name });
  const rows = (await q) as Array<{ name: string; data: string | null; updated_at: number }>;
  return rows.map((r) => ({ name: r.name, data: r.data ?? '', updated_at: Number(r.updated_at) }));
}

// ---------------------------------------------------------------- grids

export interface GridInfo {
  id: number;
  name: string;
  plugin: string;
  capabilities: Record<string, unknown>;
  status: 'enabled' | 'disabled';
  last_seen_at: number | null;
  created_at: number;
}

function gridInfo(r: { id: number; name: string; plugin: string; capabilities: string; status: string; last_seen_at: number | null; created_at: number }): GridInfo {
  const caps = parseJson(r.capabilities);
  return {
    id: Number(r.id), name: r.name, plugin: r.plugin,
    capabilities: caps && typeof caps === 'object' && !Array.isArray(caps) ? (caps as Record<string, unknown>) : {},
    status: r.status === 'disabled' ? 'disabled' : 'enabled',
    last_seen_at: num(r.last_seen_at), created_at: Number(r.created_at),
  };
}

const GRID_COLUMNS = ['id', 'name', 'plugin', 'capabilities', 'status', 'last_seen_at', 'created_at'];

export async function listGrids(db: DbOrTrx): Promise<GridInfo[]> {
  return ((await db('grid').select(GRID_COLUMNS).orderBy('name')) as Parameters<typeof gridInfo>[0][]).map(gridInfo);
}

export async function getGrid(db: DbOrTrx, name: string): Promise<GridInfo> {
  const row = (await db('grid').select(GRID_COLUMNS).where({ name }).first()) as Parameters<typeof gridInfo>[0] | undefined;
  if (!row) throw new NotFoundError(`no grid ${JSON.stringify(name)}`);
  return gridInfo(row);
}

/** Task statuses counted as "active" on a grid (holding or about to hold a batch job). */
export const GRID_ACTIVE_STATUSES: readonly TaskStatusT[] = [TaskStatus.QUEUEING, TaskStatus.QUEUED, TaskStatus.PROCESSING];
