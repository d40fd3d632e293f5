/**
 * The lost-task cycle: a PROCESSING task whose pilot has not been heard of for [dh]
 * heartbeat_timeout (no heartbeat since then, or none at all since it started) is EVICTED
 * (evictions + 1); its host gets a failed outcome (a node that silently kills its jobs is
 * how a black hole usually looks). The retry cycle decides what happens next.
 */
import { TaskStatus, recordNodeOutcomes, transition, type Db, type Logger } from '@firn/core';
import { writeTransaction } from './db-writes';

export async function evictLostTasks(db: Db, logger: Logger, now: number, heartbeatTimeoutS: number, batchSize: number): Promise<number[]> {
  const cutoff = now - heartbeatTimeoutS * 1000;
  const rows: Array<{ id: number; host: string | null; grid_id: number | null }> = await db('task')
    .select('id', 'host', 'grid_id')
    .where('status', TaskStatus.PROCESSING)
    .andWhereRaw('COALESCE(last_heartbeat_at, started_at, status_changed_at) < ?', [cutoff])
    .orderBy('id')
    .limit(batchSize);
  if (rows.length === 0) return [];
  const reason = `heartbeat lost: nothing heard from the pilot for more than ${heartbeatTimeoutS} s`;
  const evicted = await writeTransaction(db, async (trx) => {
    const changed = await transition(trx, {
      taskIds: rows.map((r) => Number(r.id)),
      from: TaskStatus.PROCESSING,
      to: TaskStatus.EVICTED,
      by: 'dh',
      actor: 'dh',
      reason,
      strict: false,
      // the queue daemon's cleanQ removes the batch job of a task no longer active
      set: { evictions: trx.raw('evictions + 1'), error_summary: reason, lease_until: null },
    });
    const gone = new Set(changed);
    await recordNodeOutcomes(
      trx,
      rows.filter((r) => gone.has(Number(r.id)) && r.host).map((r) => ({ host: r.host!, gridId: r.grid_id === null ? null : Number(r.grid_id), ok: false })),
      now,
    );
    return changed;
  });
  if (evicted.length) logger.warn('tasks evicted: heartbeat lost', { tasks: evicted.length, heartbeat_timeout: heartbeatTimeoutS });
  return evicted;
}
