import { GRID_ACTIVE_STATUSES, NotFoundError, type DbOrTrx } from '@firn/core';
import { num, numOrNull } from './common';

export interface GridNode {
  hostname: string;
  ok_count: number;
  fail_count: number;
  recent: string;
  blackholed_until: number | null;
  updated_at: number;
}

export interface GridDatasetRow {
  id: number;
  description: string;
  status: string;
  priority: number;
  /** May run here (dataset_grid). */
  assigned: boolean;
  queueing: number;
  queued: number;
  processing: number;
}

export interface GridView {
  name: string;
  plugin: string;
  status: string;
  capabilities: Record<string, unknown>;
  last_seen_at: number | null;
  /** The queue daemon's summary of its last cycle (JSON, as it wrote it). */
  last_cycle: Record<string, unknown> | null;
  created_at: number;
  counts: { QUEUEING: number; QUEUED: number; PROCESSING: number };
  datasets: GridDatasetRow[];
  /** Hosts black-holed now. */
  blackholed: GridNode[];
  /** Hosts with the most failures (up to 20). */
  worst: GridNode[];
}

function jsonObject(text: unknown): Record<string, unknown> | null {
  if (typeof text !== 'string' || text === '') return null;
  try {
    const v = JSON.parse(text) as unknown;
    return v && typeof v === 'object' && !Array.isArray(v) ? (v as Record<string, unknown>) : null;
  } catch {
    return null;
  }
}

function nodeRow(r: Record<string, unknown>): GridNode {
  return {
    hostname: String(r.hostname), ok_count: num(r.ok_count), fail_count: num(r.fail_count), recent: String(r.recent ?? ''),
    blackholed_until: numOrNull(r.blackholed_until), updated_at: num(r.updated_at),
  };
}

/** `/grids/NAME`: the grid row, active task counts (the (grid_id, status) index), its datasets and nodes. */
export async function gridView(db: DbOrTrx, name: string, nowMs: number = Date.now()): Promise<GridView> {
  const g = (await db('grid').select('id', 'name', 'plugin', 'status', 'capabilities', 'last_seen_at', 'last_cycle', 'created_at').where({ name }).first()) as
    | Record<string, unknown>
    | undefined;
  if (!g) throw new NotFoundError(`no grid ${JSON.stringify(name)}`);
  const id = Number(g.id);
  const active = (await db('task').select('dataset_id', 'status').count({ n: '*' }).where('grid_id', id).whereIn('status', GRID_ACTIVE_STATUSES).groupBy('dataset_id', 'status')) as Array<{
    dataset_id: number; status: string; n: number | string;
  }>;
  const counts = { QUEUEING: 0, QUEUED: 0, PROCESSING: 0 };
  const perDataset = new Map<number, { QUEUEING: number; QUEUED: number; PROCESSING: number }>();
  for (const r of active) {
    const s = r.status as keyof typeof counts;
    counts[s] += num(r.n);
    const d = perDataset.get(Number(r.dataset_id)) ?? { QUEUEING: 0, QUEUED: 0, PROCESSING: 0 };
    d[s] += num(r.n);
    perDataset.set(Number(r.dataset_id), d);
  }
  const assigned = (await db('dataset_grid').select('dataset_id').where('grid_id', id)) as Array<{ dataset_id: number }>;
  const assignedIds = new Set(assigned.map((a) => Number(a.dataset_id)));
  const ids = [...new Set([...assignedIds, ...perDataset.keys()])];
  const datasets = ids.length
    ? ((await db('dataset').select('id', 'description', 'status', 'priority').whereIn('id', ids).orderBy('priority', 'desc').orderBy('id', 'desc')) as Array<Record<string, unknown>>)
    : [];
  const nodeColumns = ['hostname', 'ok_count', 'fail_count', 'recent', 'blackholed_until', 'updated_at'];
  const blackholed = (await db('node').select(nodeColumns).where('grid_id', id).andWhere('blackholed_until', '>', nowMs).orderBy('hostname').limit(1000)) as Array<Record<string, unknown>>;
  const worst = (await db('node').select(nodeColumns).where('grid_id', id).andWhere('fail_count', '>', 0).orderBy('fail_count', 'desc').orderBy('hostname').limit(20)) as Array<Record<string, unknown>>;
  return {
    name: String(g.name),
    plugin: String(g.plugin),
    status: String(g.status),
    capabilities: jsonObject(g.capabilities) ?? {},
    last_seen_at: numOrNull(g.last_seen_at),
    last_cycle: jsonObject(g.last_cycle),
    created_at: num(g.created_at),
    counts,
    datasets: datasets.map((d) => {
      const c = perDataset.get(Number(d.id)) ?? { QUEUEING: 0, QUEUED: 0, PROCESSING: 0 };
      return {
        id: Number(d.id), description: String(d.description ?? ''), status: String(d.status), priority: num(d.priority),
        assigned: assignedIds.has(Number(d.id)), queueing: c.QUEUEING, queued: c.QUEUED, processing: c.PROCESSING,
      };
    }),
    blackholed: blackholed.map(nodeRow),
    worst: worst.map(nodeRow),
  };
}
