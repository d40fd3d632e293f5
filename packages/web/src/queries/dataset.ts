import {
  TaskStatus, datasetStats, getDataset,
  type DatasetDetail, type DbOrTrx, type JobStatus, type StatSummary, type TaskStatus as TaskStatusT,
} from '@firn/core';
import { JOB_STATUSES, MAX_PER_PAGE, PER_PAGE, jobCountsByDataset, num, pageOf, zeroTaskCounts, type Page } from './common';

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

/** One page of a dataset's jobs by index (stored status; optionally only one status). */
export async function jobsPage(
  db: DbOrTrx, datasetId: number, options: { status?: string; page?: number; perPage?: number; jobCounts?: Record<JobStatus, number> } = {},
): Promise<Page<JobListRow>> {
  const perPage = Math.min(MAX_PER_PAGE, Math.max(1, options.perPage ?? PER_PAGE));
  const page = Math.max(1, options.page ?? 1);
  const status = options.status && (JOB_STATUSES as string[]).includes(options.status) ? options.status : undefined;
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
}

/** Everything the dataset page shows above its job list. */
export async function datasetView(db: DbOrTrx, datasetId: number): Promise<DatasetView> {
  const dataset = await getDataset(db, datasetId); // first: an unknown dataset is a 404 before any scan starts
  const [counts, errors, stats, actions] = await Promise.all([
    datasetCounts(db, datasetId), errorGroups(db, datasetId), statsTable(db, datasetId), datasetActions(db, datasetId),
  ]);
  return { dataset, counts, errors, stats, actions };
}
