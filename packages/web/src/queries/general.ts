import { DatasetStatus, GRID_ACTIVE_STATUSES, type DbOrTrx, type JobStatus } from '@firn/core';
import { MAX_PER_PAGE, PER_PAGE, jobCountsByDataset, likeContains, num, numOrNull, pageOf, type Page } from './common';

/** The general view's filters (all optional; from the query string). */
export interface DatasetFilter {
  status?: string;
  type?: string;
  grid?: string;
  owner?: string;
  /** A dataset id, or text found in the description (case-insensitive). */
  search?: string;
  page?: number;
  perPage?: number;
}

export interface DatasetListRow {
  id: number;
  description: string;
  type: string;
  status: string;
  priority: number;
  owner: string | null;
  jobs_submitted: number;
  tasks_per_job: number;
  created_at: number;
  updated_at: number;
  /** Stored job statuses (kept by firn-dh's roll-up). */
  jobs: Record<JobStatus, number>;
  grids: string[];
}

const DATASET_STATUSES = Object.values(DatasetStatus) as string[];

/** Datasets matching the filter, newest first, one page; the total for pagination. */
export async function listDatasetsPage(db: DbOrTrx, filter: DatasetFilter = {}): Promise<Page<DatasetListRow>> {
  const perPage = Math.min(MAX_PER_PAGE, Math.max(1, filter.perPage ?? PER_PAGE));
  const page = Math.max(1, filter.page ?? 1);
  const base = () => {
    const q = db('dataset as d').leftJoin('user as u', 'u.id', 'd.owner_id');
    if (filter.status && DATASET_STATUSES.includes(filter.status)) q.where('d.status', filter.status);
    if (filter.type === 'simulation' || filter.type === 'offline') q.where('d.type', filter.type);
    if (filter.owner) q.where('u.username', filter.owner);
    if (filter.grid) {
      q.whereExists((s) =>
        s.select(db.raw('1')).from('dataset_grid as dg').join('grid as g', 'g.id', 'dg.grid_id').whereRaw('dg.dataset_id = d.id').andWhere('g.name', filter.grid!),
      );
    }
    const search = filter.search?.trim();
    if (search) {
      const id = /^#?\d{1,9}$/.test(search) ? Number(search.replace('#', '')) : null;
      q.where((w) => {
        w.whereRaw(`LOWER(d.description) LIKE ? ESCAPE '!'`, [likeContains(search.toLowerCase())]);
        if (id !== null) w.orWhere('d.id', id);
      });
    }
    return q;
  };
  const totalRow = (await base().count({ n: '*' }).first()) as { n: number | string } | undefined;
  const total = num(totalRow?.n);
  const rows = (await base()
    .select('d.id', 'd.description', 'd.type', 'd.status', 'd.priority', 'u.username as owner', 'd.jobs_submitted', 'd.tasks_per_job', 'd.created_at', 'd.updated_at')
    .orderBy('d.id', 'desc')
    .limit(perPage)
    .offset((page - 1) * perPage)) as Array<Record<string, unknown>>;
  const ids = rows.map((r) => Number(r.id));
  const jobs = await jobCountsByDataset(db, ids);
  const grids = new Map<number, string[]>();
  if (ids.length) {
    const g = (await db('dataset_grid as dg').join('grid as g', 'g.id', 'dg.grid_id').select('dg.dataset_id', 'g.name').whereIn('dg.dataset_id', ids).orderBy('g.name')) as Array<{
      dataset_id: number; name: string;
    }>;
    for (const r of g) grids.set(Number(r.dataset_id), [...(grids.get(Number(r.dataset_id)) ?? []), r.name]);
  }
  return pageOf(
    rows.map((r) => ({
      id: Number(r.id),
      description: String(r.description ?? ''),
      type: String(r.type),
      status: String(r.status),
      priority: num(r.priority),
      owner: (r.owner as string | null) ?? null,
      jobs_submitted: num(r.jobs_submitted),
      tasks_per_job: num(r.tasks_per_job),
      created_at: num(r.created_at),
      updated_at: num(r.updated_at),
      jobs: jobs.get(Number(r.id))!,
      grids: grids.get(Number(r.id)) ?? [],
    })),
    total,
    page,
    perPage,
  );
}

/** Choices for the general view's filter menus. */
export async function filterChoices(db: DbOrTrx): Promise<{ owners: string[]; grids: string[] }> {
  const owners = (await db('dataset as d').join('user as u', 'u.id', 'd.owner_id').distinct('u.username').orderBy('u.username')) as Array<{ username: string }>;
  const grids = (await db('grid').select('name').orderBy('name')) as Array<{ name: string }>;
  return { owners: owners.map((o) => o.username), grids: grids.map((g) => g.name) };
}

export interface GridListRow {
  name: string;
  plugin: string;
  status: string;
  last_seen_at: number | null;
  queueing: number;
  queued: number;
  processing: number;
  blackholed: number;
}

/** Every grid with its active task counts (tasks QUEUEING/QUEUED/PROCESSING: the (status, …) index) and black-holed nodes. */
export async function listGridsOverview(db: DbOrTrx, nowMs: number = Date.now()): Promise<GridListRow[]> {
  const grids = (await db('grid').select('id', 'name', 'plugin', 'status', 'last_seen_at').orderBy('name')) as Array<Record<string, unknown>>;
  // (grid_id, status) pairs as equality ranges of the task (grid_id, status) index: only the
  // active tasks' entries are read (`grid_id IS NOT NULL` would walk every claimed task's).
  const gridIds = grids.map((g) => Number(g.id));
  const active = gridIds.length
    ? ((await db('task').select('grid_id', 'status').count({ n: '*' }).whereIn('grid_id', gridIds).whereIn('status', GRID_ACTIVE_STATUSES).groupBy('grid_id', 'status')) as Array<{
      grid_id: number; status: string; n: number | string;
    }>)
    : [];
  const holes = (await db('node').select('grid_id').count({ n: '*' }).where('blackholed_until', '>', nowMs).whereNotNull('grid_id').groupBy('grid_id')) as Array<{
    grid_id: number; n: number | string;
  }>;
  return grids.map((g) => {
    const id = Number(g.id);
    const c = (s: string) => num(active.find((a) => Number(a.grid_id) === id && a.status === s)?.n);
    return {
      name: String(g.name),
      plugin: String(g.plugin),
      status: String(g.status),
      last_seen_at: numOrNull(g.last_seen_at),
      queueing: c('QUEUEING'),
      queued: c('QUEUED'),
      processing: c('PROCESSING'),
      blackholed: num(holes.find((h) => Number(h.grid_id) === id)?.n),
    };
  });
}
