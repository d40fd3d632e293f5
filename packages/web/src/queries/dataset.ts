import {
  TaskStatus, ValidationError, datasetProgress, datasetStats, getDataset,
  type DatasetDetail, type DatasetProgress, type DbOrTrx, type JobStatus, type StatSummary, type TaskStatus as TaskStatusT,
} from '@firn/core';
import { JOB_STATUSES, MAX_PER_PAGE, PER_PAGE, jobCountsByDataset, likeContains, num, pageOf, zeroTaskCounts, type Page } from './common';

export interface SiteCounts {
  /** Grid name; null for tasks never claimed by a site. */
  grid: string | null;
  total: number;
  tasks: Record<TaskStatusT, number>;
}

export interface DatasetCounts {
  tasks: Record<TaskStatusT, number>;
  /** Stored job statuses (firn-dh's roll-up keeps them). */
  jobs: Record<JobStatus, number>;
  total_tasks: number;
  total_jobs: number;
  /** Per site: one GROUP BY (grid_id, status) over the task (dataset_id, grid_id, status) index. */
  sites: SiteCounts[];
}

/**
 * Task counts by status and by site in one indexed GROUP BY, and job counts by stored status.
 * The task status totals are the sums over sites, so the two can never disagree.
 */
export async function datasetCounts(db: DbOrTrx, datasetId: number): Promise<DatasetCounts> {
  // the two scans are independent: on a server database they run side by side
  const [rows, jobCounts] = await Promise.all([
    db('task').select('grid_id', 'status').count({ n: '*' }).where('dataset_id', datasetId).groupBy('grid_id', 'status') as Promise<Array<{
      grid_id: number | null; status: string; n: number | string;
    }>>,
    jobCountsByDataset(db, [datasetId]),
  ]);
  const tasks = zeroTaskCounts();
  const bySite = new Map<number | null, Record<TaskStatusT, number>>();
  for (const r of rows) {
    const gid = r.grid_id === null ? null : Number(r.grid_id);
    const n = num(r.n);
    if (r.status in tasks) tasks[r.status as TaskStatusT] += n;
    const c = bySite.get(gid) ?? zeroTaskCounts();
    if (r.status in c) c[r.status as TaskStatusT] += n;
    bySite.set(gid, c);
  }
  const gridIds = [...bySite.keys()].filter((g): g is number => g !== null);
  const names = new Map<number, string>();
  if (gridIds.length) {
    for (const g of (await db('grid').select('id', 'name').whereIn('id', gridIds)) as Array<{ id: number; name: string }>) names.set(Number(g.id), g.name);
  }
  const sites: SiteCounts[] = [...bySite.entries()]
    .map(([gid, c]) => ({ grid: gid === null ? null : (names.get(gid) ?? `#${gid}`), total: Object.values(c).reduce((a, b) => a + b, 0), tasks: c }))
    .sort((a, b) => (a.grid === null ? 1 : b.grid === null ? -1 : a.grid.localeCompare(b.grid)));
  const jobs = jobCounts.get(datasetId)!;
  return {
    tasks,
    jobs,
    total_tasks: Object.values(tasks).reduce((a, b) => a + b, 0),
    total_jobs: JOB_STATUSES.reduce((a, s) => a + jobs[s], 0),
    sites,
  };
}

export interface ErrorGroup {
  /** The normalised reason (numbers → N, long hex → X, whitespace collapsed). */
  reason: string;
  /** One original summary, as an example. */
  example: string;
  count: number;
}

const MAX_REASON = 300;

/** Normalise an error summary so that the same failure on different tasks groups together. */
export function normaliseError(summary: string): string {
  const firstLines = summary.replace(/\r/g, '').split('\n').map((l) => l.trim()).filter(Boolean).slice(0, 3).join(' | ');
  const s = firstLines
    .replace(/\b[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\b/gi, 'X')
    .replace(/\b(?=[0-9a-f]*\d)[0-9a-f]{8,}\b/gi, 'X')
    .replace(/\b0x[0-9a-f]+\b/gi, 'X')
    .replace(/\d+(\.\d+)?/g, 'N')
    .replace(/\s+/g, ' ')
    .trim();
  return s.length > MAX_REASON ? `${s.slice(0, MAX_REASON)}…` : s || '(empty)';
}

/**
 * Errors of the tasks now in ERROR or FAILED, grouped by normalised reason, most frequent first.
 * SQL groups identical summaries (the (dataset_id, status) index finds the tasks); the
 * normalisation then merges groups that differ only in numbers or ids.
 *
 * Reading each task's summary is a row lookup, and the tasks in error are scattered over the
 * whole task table (the bench's 20,000 of 1,000,000 touch nearly every page of it), so the two
 * statuses are read side by side: on a server database, two connections and two cores.
 */
export async function errorGroups(db: DbOrTrx, datasetId: number, top = 10): Promise<{ groups: ErrorGroup[]; total: number }> {
  const bySummary = async (status: TaskStatusT) =>
    (await db('task')
      .select('error_summary')
      .count({ n: '*' })
      .where({ dataset_id: datasetId, status })
      .groupBy('error_summary')
      .orderBy('n', 'desc')
      .limit(5000)) as Array<{ error_summary: string | null; n: number | string }>;
  // most frequent summary first, so that it is the example of its group
  const rows = (await Promise.all([bySummary(TaskStatus.ERROR), bySummary(TaskStatus.FAILED)])).flat().sort((a, b) => num(b.n) - num(a.n));
  const groups = new Map<string, ErrorGroup>();
  let total = 0;
  for (const r of rows) {
    const raw = r.error_summary ?? '';
    const reason = raw ? normaliseError(raw) : '(no error summary)';
    const n = num(r.n);
    total += n;
    const g = groups.get(reason);
    if (g) g.count += n;
    else groups.set(reason, { reason, example: raw.length > 2000 ? `${raw.slice(0, 2000)}…` : raw, count: n });
  }
  return { groups: [...groups.values()].sort((a, b) => b.count - a.count || a.reason.localeCompare(b.reason)).slice(0, top), total };
}

export interface JobListRow {
  job_index: number;
  status: string;
  status_changed_at: number;
  run_id: number | null;
}

/** Longest error text the job list filters by (the filter is a LIKE over the tasks in error). */
export const MAX_ERROR_FILTER = 200;

/**
 * The job list's `error` filter from the query string: trimmed, 1–200 characters, no control
 * characters; undefined when absent. Throws a ValidationError naming the parameter otherwise.
 */
export function errorFilter(value: string | undefined): string | undefined {
  if (value === undefined) return undefined;
  const t = value.trim();
  if (t === '') return undefined;
  if (t.length > MAX_ERROR_FILTER) throw new ValidationError(`error must be at most ${MAX_ERROR_FILTER} characters, got ${t.length}`);
  if (/[\u0000-\u001f\u007f]/.test(t)) throw new ValidationError('error must not hold control characters');
  return t;
}

/** The job list's `job_status` filter: one of the job statuses, or undefined; else a ValidationError. */
export function jobStatusFilter(value: string | undefined): JobStatus | undefined {
  if (value === undefined) return undefined;
  if (!(JOB_STATUSES as string[]).includes(value)) throw new ValidationError(`job_status must be one of ${JOB_STATUSES.join(', ')}, got ${JSON.stringify(value.slice(0, 40))}`);
  return value as JobStatus;
}

/**
 * The text an error group's link filters the job list by: the longest run of the normalised
 * reason between its folded numbers and ids (`module sim exited with code` of `module sim exited
 * with code N: memory limit exceeded (rss N MB)`), so the filter finds every task of the group
 * whatever its numbers. Any N or X may be a folded one (`out_N`), so the text is cut at each; the
 * filter may also find tasks of another group that shares the text, and misses a task only when
 * its summary had runs of whitespace inside that text (the reason collapses them).
 */
export function errorGroupFilter(reason: string): string {
  const parts = reason.replace(/…$/, '').split(/[NX|]/).map((p) => p.replace(/^[\s:;,.()=\-]+|[\s:;,=\-]+$/g, '')).filter(Boolean);
  const best = parts.reduce((a, b) => (b.length > a.length ? b : a), '');
  return (best || reason).slice(0, MAX_ERROR_FILTER);
}

const ERROR_STATUSES = [TaskStatus.ERROR, TaskStatus.FAILED];

/**
 * One page of a dataset's jobs by index (stored status; optionally only one status, and only
 * the jobs with a task in ERROR or FAILED whose error summary holds `error`, ASCII case
 * ignored: the (dataset_id, status) index finds those tasks, a parameterised LIKE filters them).
 */
export async function jobsPage(
  db: DbOrTrx, datasetId: number, options: { status?: string; error?: string; page?: number; perPage?: number; jobCounts?: Record<JobStatus, number> } = {},
): Promise<Page<JobListRow>> {
  const perPage = Math.min(MAX_PER_PAGE, Math.max(1, options.perPage ?? PER_PAGE));
  const page = Math.max(1, options.page ?? 1);
  const status = options.status && (JOB_STATUSES as string[]).includes(options.status) ? options.status : undefined;
  if (options.error !== undefined) return jobsWithError(db, datasetId, options.error, status, page, perPage);
  const counts = options.jobCounts ?? (await jobCountsByDataset(db, [datasetId])).get(datasetId)!;
  const total = status ? counts[status as JobStatus] : JOB_STATUSES.reduce((a, s) => a + counts[s], 0);
  // Deep pages: the OFFSET is walked in the index alone — (dataset_id, status) or (dataset_id,
  // job_index), both holding the primary key — and only the page's rows are then read. Ids
  // follow job indexes (jobs are inserted in index order), so ordering by id walks the
  // (dataset_id, status) index in order when filtering.
  const ids = db('job').select('id').where('dataset_id', datasetId);
  if (status) ids.andWhere('status', status).orderBy('id');
  else ids.orderBy('job_index');
  const pageIds = ((await ids.limit(perPage).offset((page - 1) * perPage)) as Array<{ id: number }>).map((r) => Number(r.id));
  const rows = pageIds.length
    ? ((await db('job').select('job_index', 'status', 'status_changed_at', 'run_id').whereIn('id', pageIds).orderBy(status ? 'id' : 'job_index')) as Array<Record<string, unknown>>)
    : [];
  return pageOf(
    rows.map((r) => ({ job_index: num(r.job_index), status: String(r.status), status_changed_at: num(r.status_changed_at), run_id: r.run_id === null ? null : num(r.run_id) })),
    total,
    page,
    perPage,
  );
}

async function jobsWithError(db: DbOrTrx, datasetId: number, error: string, status: string | undefined, page: number, perPage: number): Promise<Page<JobListRow>> {
  const matching = () => {
    const q = db('task as t').join('job as j', 'j.id', 't.job_id')
      .where('t.dataset_id', datasetId).whereIn('t.status', ERROR_STATUSES)
      .whereRaw(`LOWER(t.error_summary) LIKE ? ESCAPE '!'`, [likeContains(error.toLowerCase())]);
    if (status) q.andWhere('j.status', status);
    return q;
  };
  const totalRow = (await matching().countDistinct({ n: 't.job_id' }).first()) as { n: number | string } | undefined;
  const rows = (await matching()
    .select('j.job_index', 'j.status', 'j.status_changed_at', 'j.run_id')
    .groupBy('j.id', 'j.job_index', 'j.status', 'j.status_changed_at', 'j.run_id')
    .orderBy('j.job_index')
    .limit(perPage)
    .offset((page - 1) * perPage)) as Array<Record<string, unknown>>;
  return pageOf(
    rows.map((r) => ({ job_index: num(r.job_index), status: String(r.status), status_changed_at: num(r.status_changed_at), run_id: r.run_id === null ? null : num(r.run_id) })),
    num(totalRow?.n ?? 0),
    page,
    perPage,
  );
}

export interface HistoryEntry {
  entity: string;
  entity_id: number;
  action: string;
  from_status: string | null;
  to_status: string | null;
  actor: string;
  reason: string | null;
  created_at: number;
}

export function historyEntry(r: Record<string, unknown>): HistoryEntry {
  return {
    entity: String(r.entity), entity_id: num(r.entity_id), action: String(r.action),
    from_status: (r.from_status as string | null) ?? null, to_status: (r.to_status as string | null) ?? null,
    actor: String(r.actor), reason: (r.reason as string | null) ?? null, created_at: num(r.created_at),
  };
}

export const HISTORY_COLUMNS = ['entity', 'entity_id', 'action', 'from_status', 'to_status', 'actor', 'reason', 'created_at'];

/** The dataset's own recent actions (submit, suspend, priority, …) via the (entity, entity_id) index. */
export async function datasetActions(db: DbOrTrx, datasetId: number, limit = 20): Promise<HistoryEntry[]> {
  const rows = (await db('history').select(HISTORY_COLUMNS).where({ entity: 'dataset', entity_id: datasetId }).orderBy('id', 'desc').limit(limit)) as Array<Record<string, unknown>>;
  return rows.map(historyEntry);
}

export interface StatRow extends StatSummary {
  name: string;
}

/** The statistics table (n, sum, mean, stddev, min, max) exactly as `dataset.stats` computes it. */
export async function statsTable(db: DbOrTrx, datasetId: number): Promise<StatRow[]> {
  const stats = await datasetStats(db, datasetId);
  return Object.entries(stats).map(([name, s]) => ({ name, ...s }));
}

export interface DatasetView {
  dataset: DatasetDetail;
  counts: DatasetCounts;
  errors: { groups: ErrorGroup[]; total: number };
  stats: StatRow[];
  actions: HistoryEntry[];
  /** % complete, last hour's rate and ETA (core datasetProgress), with the texts the page shows. */
  progress?: ProgressView;
}

export interface ProgressView extends DatasetProgress {
  /** What the page shows (and the live summary updates): `60.0%`, `6 tasks/h`, an ISO time, `unknown` or `done`. */
  text: { percent: string; rate: string; eta: string };
}

export function progressView(p: DatasetProgress): ProgressView {
  const eta = p.total > 0 && p.ok >= p.total ? 'done' : p.eta === null ? 'unknown' : p.eta.replace(/\.\d+Z$/, 'Z');
  return { ...p, text: { percent: `${p.percent.toFixed(1)}%`, rate: `${p.tasks_per_hour.toLocaleString('en-US')} tasks/h`, eta } };
}

/** Everything the dataset page shows above its job list. */
export async function datasetView(db: DbOrTrx, datasetId: number): Promise<DatasetView> {
  const dataset = await getDataset(db, datasetId); // first: an unknown dataset is a 404 before any scan starts
  const [counts, errors, stats, actions, progress] = await Promise.all([
    datasetCounts(db, datasetId), errorGroups(db, datasetId), statsTable(db, datasetId), datasetActions(db, datasetId), datasetProgress(db, datasetId),
  ]);
  return { dataset, counts, errors, stats, actions, progress: progressView(progress) };
}
