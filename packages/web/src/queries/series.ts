import { NotFoundError, TASK_FLOW_HISTORY_WHERE, TASK_STATUSES, TaskStatus, isMysql, taskFlowSpanFor, taskStatusCounts, type DbOrTrx, type TaskStatus as TaskStatusT } from '@firn/core';
import { num } from './common';

const MINUTE = 60_000;
const HOUR = 60 * MINUTE;
const DAY = 24 * HOUR;

/** The time windows the dataset charts offer (`all`: since the dataset was created). */
export const SERIES_RANGES = { '6h': 6 * HOUR, '1d': DAY, '7d': 7 * DAY, '30d': 30 * DAY, all: null } as const;
export type SeriesRange = keyof typeof SERIES_RANGES;
export const DEFAULT_SERIES_RANGE: SeriesRange = '1d';

export function isSeriesRange(x: unknown): x is SeriesRange {
  return typeof x === 'string' && Object.prototype.hasOwnProperty.call(SERIES_RANGES, x);
}

/** Bucket widths, smallest first; the first giving at most MAX_BUCKETS buckets is used. */
const BUCKET_WIDTHS = [MINUTE, 5 * MINUTE, 15 * MINUTE, 30 * MINUTE, HOUR, 3 * HOUR, 6 * HOUR, 12 * HOUR, DAY, 7 * DAY, 30 * DAY];
const MAX_BUCKETS = 120;

export interface DatasetSeries {
  range: SeriesRange;
  /** Window start (aligned to the bucket width) and end, epoch ms. */
  start: number;
  end: number;
  bucket_ms: number;
  /** End time of each bucket. */
  times: number[];
  /** Tasks in each status at the end of each bucket. */
  states: Record<TaskStatusT, number[]>;
  /** Tasks that reached OK in each bucket (completion rate). */
  completed: number[];
  /** Tasks that went to ERROR in each bucket. */
  errors: number[];
  /** Tasks that were EVICTED in each bucket. */
  evictions: number[];
}

export function bucketWidth(spanMs: number): number {
  return BUCKET_WIDTHS.find((w) => spanMs / w <= MAX_BUCKETS) ?? BUCKET_WIDTHS[BUCKET_WIDTHS.length - 1]!;
}

/**
 * Charts of a dataset over a time window, from its `history` rows.
 *
 * Completions, errors and evictions are the transitions into OK / ERROR / EVICTED per bucket.
 * Tasks by state over time are reconstructed backwards from the current counts: walking from the
 * newest bucket to the oldest, each transition `from → to` is undone (to − n, from + n). So only
 * the history inside the window is read, however long the dataset has run.
 *
 * How it is read (issue 8: a 30-day window of a 1M-task dataset is ~5.5M history rows): from
 * `task_flow` — the task transitions counted per (dataset, 5 min | 1 h | 1 day bucket, from,
 * to) by firn-dh's roll-up up to the watermark `task_flow_state.history_id` — plus the history
 * rows past that watermark, counted here (see transitionCounts). So the counts are exact
 * however far behind firn-dh is; being behind only costs reading more history. Only task
 * transitions are counted (action 'transition'), not the other task events `history` records
 * (a retry wait, a refused start), which change no status. On SQLite (one connection) counts
 * and transitions are read in one transaction, a consistent snapshot; on MySQL/MariaDB the
 * transitions in one transaction and the counts beside it on a second connection, so a
 * transition committed between the two reads shifts the chart by that one task until the next
 * refresh (the states are clamped at 0).
 */
export async function datasetSeries(db: DbOrTrx, datasetId: number, range: SeriesRange = DEFAULT_SERIES_RANGE, nowMs: number = Date.now()): Promise<DatasetSeries> {
  const ds = (await db('dataset').select('created_at').where({ id: datasetId }).first()) as { created_at: number } | undefined;
  if (!ds) throw new NotFoundError(`no dataset ${datasetId}`);
  const createdAt = num(ds.created_at);
  const span = SERIES_RANGES[range];
  const from = span === null ? createdAt : Math.max(createdAt, nowMs - span);
  const end = Math.max(nowMs, from + MINUTE);
  const width = bucketWidth(end - from);
  const start = Math.floor(from / width) * width;
  const k = Math.max(1, Math.ceil((end - start) / width));
  const both = async (trx: DbOrTrx) => [await transitionCounts(trx, datasetId, start, width), await taskStatusCounts(trx, datasetId)] as const;
  const [rows, counts] = isTransactionLike(db)
    ? await both(db)
    : isMysql(db)
      ? await Promise.all([transitionCounts(db, datasetId, start, width), taskStatusCounts(db, datasetId)])
      : await (db as import('knex').Knex).transaction(both);

  const perBucket: Array<Array<{ from: string | null; to: string | null; n: number }>> = Array.from({ length: k }, () => []);
  const completed = new Array<number>(k).fill(0);
  const errors = new Array<number>(k).fill(0);
  const evictions = new Array<number>(k).fill(0);
  for (const r of rows) {
    const b = Math.min(k - 1, Math.max(0, r.b));
    const { n, to } = r;
    perBucket[b]!.push({ from: r.from, to, n });
    if (to === TaskStatus.OK) completed[b]! += n;
    else if (to === TaskStatus.ERROR) errors[b]! += n;
    else if (to === TaskStatus.EVICTED) evictions[b]! += n;
  }
  const states = Object.fromEntries(TASK_STATUSES.map((s) => [s, new Array<number>(k).fill(0)])) as Record<TaskStatusT, number[]>;
  const cur = new Map<string, number>(TASK_STATUSES.map((s) => [s, counts[s]]));
  for (let b = k - 1; b >= 0; b--) {
    for (const s of TASK_STATUSES) states[s][b] = Math.max(0, cur.get(s) ?? 0);
    for (const t of perBucket[b]!) {
      if (t.to !== null && cur.has(t.to)) cur.set(t.to, (cur.get(t.to) ?? 0) - t.n);
      if (t.from !== null && cur.has(t.from)) cur.set(t.from, (cur.get(t.from) ?? 0) + t.n);
    }
  }
  return {
    range,
    start,
    end,
    bucket_ms: width,
    times: Array.from({ length: k }, (_, i) => Math.min(end, start + (i + 1) * width)),
    states,
    completed,
    errors,
    evictions,
  };
}

/**
 * Task transitions per (bucket, from, to) from `start` on (later ones in the last bucket, as a
 * clock running ahead may write them), zero counts left out: `task_flow` rows of the largest
 * span dividing the bucket width, plus the history rows past its watermark (a primary-key
 * range: what firn-dh has not rolled up yet, normally a cycle or two). A bucket width no span
 * divides (1 minute: the `all` range of a dataset younger than two hours) is counted from
 * history alone. MySQL/MariaDB: in one transaction of its own, so watermark, flow and history
 * are one snapshot.
 */
async function transitionCounts(
  db: DbOrTrx, datasetId: number, start: number, width: number,
): Promise<Array<{ b: number; from: string; to: string; n: number }>> {
  if (isMysql(db) && !isTransactionLike(db)) return (db as import('knex').Knex).transaction((trx) => transitionCounts(trx, datasetId, start, width));
  const span = taskFlowSpanFor(width);
  const out: Array<{ b: number; from: string; to: string; n: number }> = [];
  let watermark = 0;
  if (span !== null) {
    const state = (await db('task_flow_state').select('history_id').where({ id: 1 }).first()) as { history_id: number } | undefined;
    watermark = state ? num(state.history_id) : 0;
    const flow = (await db('task_flow')
      .select('bucket_start', 'from_status', 'to_status', 'n')
      .where({ dataset_id: datasetId, span_ms: span })
      .andWhere('bucket_start', '>=', start)) as Array<Record<string, unknown>>;
    for (const r of flow) out.push({ b: Math.floor((num(r.bucket_start) - start) / width), from: String(r.from_status), to: String(r.to_status), n: num(r.n) });
  }
  const mysql = isMysql(db);
  // past a watermark: a primary-key range; from the start (no watermark): the (dataset_id, created_at) index
  const source = watermark > 0 ? (mysql ? 'history h FORCE INDEX (PRIMARY)' : 'history h NOT INDEXED') : 'history h';
  const tail = await db.raw(
    `SELECT ${mysql ? '(h.created_at - ?) DIV ?' : 'CAST((h.created_at - ?) / ? AS INTEGER)'} AS b, h.from_status AS f, h.to_status AS t, COUNT(*) AS n
     FROM ${source} WHERE h.id > ? AND h.dataset_id = ? AND h.created_at >= ? AND ${TASK_FLOW_HISTORY_WHERE} GROUP BY b, f, t`,
    [start, width, watermark, datasetId, start],
  );
  out.push(...countRows(tail));
  return out.filter((r) => r.n > 0);
}

function countRows(res: unknown): Array<{ b: number; from: string; to: string; n: number }> {
  return rawRows(res)
    .map((r) => ({ b: num(r.b), from: String(r.f), to: String(r.t), n: num(r.n) }))
    .filter((r) => r.n > 0);
}

function isTransactionLike(db: DbOrTrx): boolean {
  return (db as { isTransaction?: boolean }).isTransaction === true;
}

/** Rows of a knex.raw SELECT: mysql2 answers [rows, fields], better-sqlite3 the rows. */
export function rawRows(res: unknown): Array<Record<string, unknown>> {
  if (Array.isArray(res) && Array.isArray(res[0])) return res[0] as Array<Record<string, unknown>>;
  return (res as Array<Record<string, unknown>>) ?? [];
}
