/** Small write helpers the dh cycles share: a write transaction, bulk history, bulk CASE updates. */
import { chunk, isMysql, withTransaction, type Db, type DbOrTrx, type Trx } from '@firn/core';

/**
 * A transaction that writes. On SQLite the write lock is taken first, so a transaction that
 * reads and then writes cannot fail with SQLITE_BUSY_SNAPSHOT when another process (firn-mon,
 * firn-queue) wrote in between; deadlocks are retried (core's withTransaction).
 */
export function writeTransaction<T>(db: Db, fn: (trx: Trx) => Promise<T>): Promise<T> {
  return withTransaction(db, async (trx) => {
    if (!isMysql(trx)) await trx.raw('UPDATE task SET id = id WHERE 0');
    return fn(trx);
  });
}

export interface HistoryRow {
  entity: 'task' | 'job' | 'dataset' | 'node';
  entityId: number;
  datasetId?: number | null;
  action: string;
  from?: string | null;
  to?: string | null;
  reason?: string | null;
}

/** Insert history rows for non-transition events, many per statement (actor 'dh'). */
export async function insertHistory(db: DbOrTrx, rows: readonly HistoryRow[], at: number, actor = 'dh'): Promise<void> {
  for (const part of chunk(rows, 200)) {
    await db('history').insert(
      part.map((r) => ({
        entity: r.entity,
        entity_id: r.entityId,
        dataset_id: r.datasetId ?? null,
        action: r.action,
        from_status: r.from ?? null,
        to_status: r.to ?? null,
        actor,
        reason: r.reason ?? null,
        created_at: at,
      })),
    );
  }
}

/**
 * `UPDATE table SET column = CASE id WHEN … THEN … END WHERE id IN (…) [AND col IN (…)]` for
 * per-row values, one statement per 500 rows. Returns the rows changed.
 */
export async function updateByCase(
  db: DbOrTrx,
  table: string,
  column: string,
  values: ReadonlyMap<number, number | string | null>,
  whereIn: Record<string, readonly string[]> = {},
): Promise<number> {
  let n = 0;
  for (const part of chunk([...values.entries()], 500)) {
    const q = db(table).whereIn('id', part.map(([id]) => id));
    for (const [col, vals] of Object.entries(whereIn)) q.whereIn(col, vals);
    n += await q.update({ [column]: db.raw(`CASE id ${part.map(() => 'WHEN ? THEN ?').join(' ')} END`, part.flat()) });
  }
  return n;
}
