/**
 * The task-flow roll-up (part of the roll-up cycle): counts the task transitions of `history`
 * past the watermark into `task_flow` (core task-flow.ts) and moves the watermark, in one
 * transaction — so a pass is all or nothing, and running it again counts nothing twice.
 *
 * The watermark may only pass history ids below which no row can still appear. `history.id`
 * is AUTO_INCREMENT, and on MySQL/MariaDB ids are handed out when rows are inserted, not when
 * they are committed: a transaction holding id 100 can commit after id 101 is visible. So on
 * MySQL a pass counts only up to the newest id an earlier pass saw (`seen_id`, at server time
 * `seen_at`), once that id is *settled*: no transaction that started before `seen_at` is still
 * open (information_schema.INNODB_TRX, which needs the PROCESS privilege; looked at no sooner
 * than 0.25 s after `seen_at`, as InnoDB caches it for 0.1 s) — every id up to it is then
 * committed or rolled back. Without PROCESS an id counts as settled `settleMs` after it
 * was seen (default 10 minutes): exact as long as no transaction writing history stays open
 * longer. On SQLite writers take turns and this transaction holds the write lock, so every id
 * up to the newest is committed: a pass counts up to it.
 *
 * Readers add the history past the watermark themselves (packages/web series.ts), so the
 * charts are exact whether or not this has caught up; a lagging watermark only makes them
 * read more raw history.
 */
import { TASK_FLOW_HISTORY_WHERE, TASK_FLOW_SPANS_MS, chunk, isMysql, type Db, type DbOrTrx, type Trx } from '@firn/core';
import { writeTransaction } from './db-writes';

export interface TaskFlowOptions {
  /** Most history ids one pass covers (default 1,000,000); the rest is left for later passes. */
  maxIds?: number;
  /** MySQL without the PROCESS privilege: ms after which a seen history id counts as settled (default 10 min). */
  settleMs?: number;
}

export interface TaskFlowResult {
  /** The watermark before and after this pass. */
  from: number;
  to: number;
  /** History rows counted (task transitions between the two). */
  rows: number;
  /** History exists past the new watermark (not settled yet or over maxIds). */
  behind: boolean;
}

const FINEST_SPAN = TASK_FLOW_SPANS_MS[TASK_FLOW_SPANS_MS.length - 1]!;

interface FlowState {
  history_id: number;
  seen_id: number;
  seen_at: number;
}

async function readState(db: DbOrTrx, lock: boolean): Promise<FlowState> {
  const q = db('task_flow_state').select('history_id', 'seen_id', 'seen_at').where({ id: 1 });
  const row = (await (lock && isMysql(db) ? q.forUpdate() : q).first()) as Record<string, unknown> | undefined;
  if (!row) throw new Error('task_flow_state has no row: is migration 0004_task_flow applied?');
  return { history_id: Number(row.history_id), seen_id: Number(row.seen_id), seen_at: Number(row.seen_at) };
}

/** The database server's clock, ms (MySQL; INNODB_TRX times are the server's). */
async function serverNowMs(db: DbOrTrx): Promise<number> {
  const [rows] = (await db.raw('SELECT ROUND(UNIX_TIMESTAMP(NOW(3)) * 1000) AS t')) as [Array<{ t: number | string }>];
  return Number(rows[0]!.t);
}

/**
 * InnoDB serves INNODB_TRX from a cache refreshed at most every 0.1 s: only a look taken well
 * after `seen_at` surely lists every transaction that was open then.
 */
const INNODB_TRX_CACHE_MS = 250;

/** MySQL: has every transaction that started at or before `seenAt` (server ms) ended? */
async function settled(db: Db, seenAt: number, settleMs: number): Promise<boolean> {
  const elapsed = (await serverNowMs(db)) - seenAt;
  if (elapsed < INNODB_TRX_CACHE_MS) return false;
  try {
    const [rows] = (await db.raw(
      'SELECT COUNT(*) AS n FROM information_schema.INNODB_TRX WHERE trx_mysql_thread_id <> CONNECTION_ID() AND trx_started <= FROM_UNIXTIME(? / 1000)',
      [seenAt],
    )) as [Array<{ n: number | string }>];
    return Number(rows[0]!.n) === 0;
  } catch {
    // no PROCESS privilege: fall back to time
    return elapsed >= settleMs;
  }
}

/** One pass; see the file comment. */
export async function rollUpTaskFlow(db: Db, o: TaskFlowOptions = {}): Promise<TaskFlowResult> {
  const maxIds = o.maxIds ?? 1_000_000;
  const mysql = isMysql(db);
  // Decided before the transaction reads history, so that its snapshot includes every row
  // the settled transactions committed.
  const before = mysql ? await readState(db, false) : null;
  const isSettled = before !== null && before.seen_id > before.history_id && (await settled(db, before.seen_at, o.settleMs ?? 600_000));
  return writeTransaction(db, async (trx) => {
    const state = await readState(trx, true);
    const from = state.history_id;
    const newest = Number(((await trx('history').max({ m: 'id' }).first()) as { m: number | string | null } | undefined)?.m ?? 0);
    let upTo = newest;
    if (mysql) {
      upTo = isSettled && state.seen_at === before!.seen_at ? state.seen_id : from;
      if (Math.min(upTo, from + maxIds) >= state.seen_id) {
        // the last seen id is used up: remember the newest one, then the time (ids before clock)
        await trx('task_flow_state').where({ id: 1 }).update({ seen_id: newest, seen_at: await serverNowMs(trx) });
      }
    }
    const to = Math.max(from, Math.min(upTo, from + maxIds));
    const rows = to > from ? await countInto(trx, from, to) : 0;
    if (to > from) await trx('task_flow_state').where({ id: 1 }).update({ history_id: to });
    return { from, to, rows, behind: newest > to };
  });
}

/** Count the task transitions with history id in (from, to] into task_flow; returns the rows counted. */
async function countInto(trx: Trx, from: number, to: number): Promise<number> {
  const mysql = isMysql(trx);
  const res = (await trx.raw(
    `SELECT h.dataset_id AS d, ${mysql ? 'h.created_at DIV ?' : 'CAST(h.created_at / ? AS INTEGER)'} AS b, h.from_status AS f, h.to_status AS t, COUNT(*) AS n
     FROM history h WHERE h.id > ? AND h.id <= ? AND ${TASK_FLOW_HISTORY_WHERE} GROUP BY d, b, f, t`,
    [FINEST_SPAN, from, to],
  )) as unknown;
  const groups: Array<Record<string, unknown>> = mysql ? (res as [Array<Record<string, unknown>>])[0] : (res as Array<Record<string, unknown>>);
  const sums = new Map<string, [number, number, number, string, string, number]>();
  let counted = 0;
  for (const g of groups) {
    const n = Number(g.n);
    counted += n;
    const at = Number(g.b) * FINEST_SPAN;
    for (const span of TASK_FLOW_SPANS_MS) {
      const bucket = Math.floor(at / span) * span;
      const key = `${String(g.d)}|${span}|${bucket}|${String(g.f)}|${String(g.t)}`;
      const row = sums.get(key);
      if (row) row[5] += n;
      else sums.set(key, [Number(g.d), span, bucket, String(g.f), String(g.t), n]);
    }
  }
  const upsert = mysql
    ? 'ON DUPLICATE KEY UPDATE n = n + VALUES(n)'
    : 'ON CONFLICT (dataset_id, span_ms, bucket_start, from_status, to_status) DO UPDATE SET n = n + excluded.n';
  for (const part of chunk([...sums.values()], 500)) {
    await trx.raw(
      `INSERT INTO task_flow (dataset_id, span_ms, bucket_start, from_status, to_status, n) VALUES ${part.map(() => '(?, ?, ?, ?, ?, ?)').join(', ')} ${upsert}`,
      part.flat(),
    );
  }
  return counted;
}
