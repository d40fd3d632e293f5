import { NotFoundError, TASK_STATUSES, TRANSITIONS, TaskStatus, isMysql, taskStatusCounts, type DbOrTrx, type TaskStatus as TaskStatusT } from '@firn/core';
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

/** Every (from, to) a task transition can write to `history`: the state machine's table. */
export const TRANSITION_PAIRS: ReadonlyArray<readonly [TaskStatusT, TaskStatusT]> = [
  ...new Map(TRANSITIONS.flatMap((r) => r.from.map((f) => [`${f}>${r.to}`, [f, r.to] as const]))).values(),
];

/**
 * Charts of a dataset over a time window, from its `history` rows.
 *
 * Completions, errors and evictions are the transitions into OK / ERROR / EVICTED per bucket.
 * Tasks by state over time are reconstructed backwards from the current counts: walking from the
 * newest bucket to the oldest, each transition `from → to` is undone (to − n, from + n). So only
 * the history inside the window is read, however long the dataset has run.
 *
 * How it is read (issue 8: a 30-day window of a 1M-task dataset is ~5.5M history rows): counts
 * per (transition, bucket) over ranges of the history (dataset_id, entity, from_status,
 * to_status, created_at) index — migration 0003 — reading nothing but the index (see
 * transitionCounts). Only task transitions are counted (the state machine's pairs),
 * not the other task events `history` records (a retry wait, a refused start), which change no
 * status. On SQLite (one connection) counts and history are read in one transaction, a
 * consistent snapshot; on MySQL/MariaDB they are read side by side on two connections, so a
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
  const both = async (trx: DbOrTrx) => [await transitionCounts(trx, datasetId, start, width, k), await taskStatusCounts(trx, datasetId)] as const;
  const [rows, counts] = isTransactionLike(db)
    ? await both(db)
    : isMysql(db)
      ? await Promise.all([transitionCounts(db, datasetId, start, width, k), taskStatusCounts(db, datasetId)])
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
 * clock running ahead may write them), zero counts left out, over
 * ranges of the history (dataset_id, entity, from_status, to_status, created_at) index:
 * - SQLite: a COUNT(*) per (bucket, pair), each a correlated subquery over one index range —
 *   counting entries is cheap there, while grouping by a computed bucket sorts every row;
 * - MySQL/MariaDB: one GROUP BY bucket per pair (a UNION ALL) — it does not use a range for a
 *   correlated subquery, and its grouping into a small in-memory table is cheap.
 */
async function transitionCounts(
  db: DbOrTrx, datasetId: number, start: number, width: number, k: number,
): Promise<Array<{ b: number; from: string; to: string; n: number }>> {
  if (isMysql(db)) {
    return countRows(await db.raw(
      TRANSITION_PAIRS.map(() => `SELECT (h.created_at - ?) DIV ? AS b, ? AS f, ? AS t, COUNT(*) AS n FROM history h
        WHERE h.dataset_id = ? AND h.entity = ? AND h.from_status = ? AND h.to_status = ? AND h.created_at >= ? GROUP BY b`).join(' UNION ALL '),
      TRANSITION_PAIRS.flatMap(([f, t]) => [start, width, f, t, datasetId, 'task', f, t, start]),
    ));
  }
  return countRows(await db.raw(
    `WITH RECURSIVE b (i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM b WHERE i < ?),
       p (f, t) AS (${TRANSITION_PAIRS.map(() => 'SELECT ?, ?').join(' UNION ALL ')})
     SELECT b.i AS b, p.f AS f, p.t AS t,
       (SELECT COUNT(*) FROM history h WHERE h.dataset_id = ? AND h.entity = ? AND h.from_status = p.f AND h.to_status = p.t
         AND h.created_at >= ? + b.i * ? AND h.created_at < CASE WHEN b.i = ? THEN ? ELSE ? + (b.i + 1) * ? END) AS n
     FROM b CROSS JOIN p`,
    [k - 1, ...TRANSITION_PAIRS.flat(), datasetId, 'task', start, width, k - 1, Number.MAX_SAFE_INTEGER, start, width],
  ));
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
