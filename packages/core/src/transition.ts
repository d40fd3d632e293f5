import crypto from 'node:crypto';
import { chunk, isMysql, now, withTransaction, type Db, type DbOrTrx, type Trx } from './db';
import { IllegalTransitionError, LostRaceError } from './errors';
import { isLegal, type Actor, type TaskStatus } from './states';

export interface TransitionRequest {
  /** Tasks to move; each must currently be in `from`. */
  taskIds: readonly number[];
  from: TaskStatus;
  to: TaskStatus;
  /** Which part of the system applies it (checked against the table). */
  by: Actor;
  /** Who, for history: `user:alice`, `queue:grid1`, `dh`, `mon`, `core`. */
  actor: string;
  reason?: string | null;
  /** Needed for admin-only transitions (OK → RESET). */
  isAdmin?: boolean;
  /** Extra columns to set on the changed rows in the same statement. */
  set?: Record<string, unknown>;
  /**
   * When true (the default for a single task) a task not in `from` any more is a
   * LostRaceError; when false, tasks that moved meanwhile are skipped and not reported.
   */
  strict?: boolean;
}

const CHUNK = 500;

/**
 * The one way to change task status: checks the transition table, applies it as a
 * conditional update (`WHERE id IN (…) AND status = from`) and writes one `history` row
 * per changed task, in one transaction. Returns the ids that changed.
 *
 * Pass a transaction to compose with other writes; otherwise one is opened (and retried
 * on deadlock).
 */
export async function transition(db: DbOrTrx, req: TransitionRequest): Promise<number[]> {
  if (!isLegal(req.from, req.to, req.by, req.isAdmin ?? false)) {
    throw new IllegalTransitionError(
      `illegal transition ${req.from} → ${req.to} by ${req.by}${req.isAdmin ? ' (admin)' : ''}`,
      { from: req.from, to: req.to, by: req.by },
    );
  }
  if (req.taskIds.length === 0) return [];
  const strict = req.strict ?? req.taskIds.length === 1;
  const run = async (trx: Trx): Promise<number[]> => {
    const changed: number[] = [];
    const t = now();
    for (const ids of chunk(req.taskIds, CHUNK)) {
      const token = crypto.randomBytes(12).toString('hex');
      const n = await trx('task')
        .whereIn('id', ids)
        .andWhere('status', req.from)
        .update({ ...req.set, status: req.to, status_changed_at: t, transition_token: token });
      if (strict && n !== ids.length) {
        throw new LostRaceError(
          ids.length === 1
            ? `task ${ids[0]} is no longer ${req.from} (another actor changed it)`
            : `${ids.length - n} of ${ids.length} tasks are no longer ${req.from}`,
          { from: req.from, to: req.to },
        );
      }
      if (n === 0) continue;
      if (n === ids.length && new Set(ids).size === n) {
        // every id matched (a status change always changes the row): no need to ask which
        changed.push(...ids.map(Number));
      } else {
        const rows: Array<{ id: number }> = await trx('task')
          .select('id')
          .whereIn('id', ids)
          .andWhere('transition_token', token);
        changed.push(...rows.map((r) => Number(r.id)));
      }
      // history rows straight from the changed rows: exactly one per change
      await trx.raw(
        `INSERT INTO history (entity, entity_id, dataset_id, action, from_status, to_status, actor, reason, created_at)
         SELECT 'task', id, dataset_id, 'transition', ?, ?, ?, ?, ? FROM task WHERE transition_token = ? AND id IN (${ids.map(() => '?').join(',')})`,
        [req.from, req.to, req.actor, req.reason ?? null, t, token, ...ids],
      );
    }
    return changed;
  };
  if (isTransaction(db)) return run(db);
  return withTransaction(db as Db, run);
}

/** Is this knex object already a transaction? */
export function isTransaction(db: DbOrTrx): db is Trx {
  return (db as { isTransaction?: boolean }).isTransaction === true;
}

/** Write a history row for a non-status action (priority change, grid added, …). */
export async function recordHistory(
  db: DbOrTrx,
  row: { entity: string; entityId: number; datasetId?: number | null; action: string; actor: string; reason?: string | null; from?: string | null; to?: string | null },
): Promise<void> {
  await db('history').insert({
    entity: row.entity,
    entity_id: row.entityId,
    dataset_id: row.datasetId ?? null,
    action: row.action,
    from_status: row.from ?? null,
    to_status: row.to ?? null,
    actor: row.actor,
    reason: row.reason ?? null,
    created_at: now(),
  });
}

/** `SELECT … FOR UPDATE SKIP LOCKED` where the engine supports it (MySQL 8 / MariaDB 10.6+); SQLite serialises writers anyway. */
export function lockSkipLocked<T extends { forUpdate(): T; skipLocked(): T }>(db: DbOrTrx, q: T): T {
  return isMysql(db) ? q.forUpdate().skipLocked() : q;
}
