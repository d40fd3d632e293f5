import { NotFoundError, TASK_STATUSES, TaskStatus, isMysql, taskStatusCounts, type DbOrTrx, type TaskStatus as TaskStatusT } from '@firn/core';
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
 * the history inside the window is read — one range scan of the history (dataset_id, entity,
 * created_at, from_status, to_status) index, grouped in SQL — however long the dataset has run.
 * Counts and history are read in one transaction (a consistent snapshot).
 */
export async function datasetSeries(db: DbOrTrx, datasetId: number, range: SeriesRange = DEFAULT_SERIES_RANGE, nowMs: number = Date.now()): Promise<DatasetSeries> {
  const read = async (trx: DbOrTrx) => {
    const ds = (await trx('dataset').select('created_at').where({ id: datasetId }).first()) as { created_at: number } | undefined;
    if (!ds) throw new NotFoundError(`no dataset ${datasetId}`);
    const createdAt = num(ds.created_at);
    const span = SERIES_RANGES[range];
    const from = span === null ? createdAt : Math.max(createdAt, nowMs - span);
    const end = Math.max(nowMs, from + MINUTE);
    const width = bucketWidth(end - from);
    const start = Math.floor(from / width) * width;
    const k = Math.max(1, Math.ceil((end - start) / width));
    const bucket = isMysql(trx) ? '(created_at - ?) DIV ?' : 'CAST((created_at - ?) / ? AS INTEGER)';
    const rows = (await trx.raw(
      `SELECT ${bucket} AS b, from_status, to_status, COUNT(*) AS n FROM history
       WHERE dataset_id = ? AND entity = ? AND created_at >= ? GROUP BY b, from_status, to_status`,
      [start, width, datasetId, 'task', start],
    )) as unknown;
    const counts = await taskStatusCounts(trx, datasetId);
    return { start, end, width, k, rows: rawRows(rows), counts };
  };
  const { start, end, width, k, rows, counts } = await (isTransactionLike(db) ? read(db) : (db as import('knex').Knex).transaction(read));

  const perBucket: Array<Array<{ from: string | null; to: string | null; n: number }>> = Array.from({ length: k }, () => []);
  const completed = new Array<number>(k).fill(0);
  const errors = new Array<number>(k).fill(0);
  const evictions = new Array<number>(k).fill(0);
  for (const r of rows) {
    const b = Math.min(k - 1, Math.max(0, num(r.b)));
    const n = num(r.n);
    const to = (r.to_status as string | null) ?? null;
    perBucket[b]!.push({ from: (r.from_status as string | null) ?? null, to, n });
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

function isTransactionLike(db: DbOrTrx): boolean {
  return (db as { isTransaction?: boolean }).isTransaction === true;
}

/** Rows of a knex.raw SELECT: mysql2 answers [rows, fields], better-sqlite3 the rows. */
export function rawRows(res: unknown): Array<Record<string, unknown>> {
  if (Array.isArray(res) && Array.isArray(res[0])) return res[0] as Array<Record<string, unknown>>;
  return (res as Array<Record<string, unknown>>) ?? [];
}
