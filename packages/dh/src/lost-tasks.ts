/**
 * The lost-task cycle: a PROCESSING task whose pilot has not been heard of for [dh]
 * heartbeat_timeout (no heartbeat since then, or none at all since it started) is EVICTED
 * (evictions + 1); its host gets a failed outcome (a node that silently kills its jobs is
 * how a black hole usually looks). The retry cycle decides what happens next.
 *
 * Silence is evidence only while the path from the pilot to the task row worked. When the
 * database was down, mon could not store the heartbeats it received (the pilots buffer them
 * and deliver them later), so a task's clock must not run through the outage. firn-dh keeps
 * an `EvidenceClock`: the start of the current stretch during which its own database access
 * worked without a break. It starts when dh starts (a dh that was down for an hour cannot
 * know who heartbeated meanwhile) and again when the database answers after failing (any
 * failed cycle of dh's, or a gap between two successful lost-task cycles longer than a
 * third of heartbeat_timeout: dh itself stalled). A task is evicted only when silent for
 * heartbeat_timeout *and* dh has seen the database healthy for heartbeat_timeout — so after
 * any outage, the pilots get a full heartbeat_timeout to be heard again.
 */
import { TaskStatus, recordNodeOutcomes, transition, type Db, type Logger } from '@firn/core';
import { writeTransaction } from './db-writes';

/** Since when firn-dh has had continuous, working access to the database (see the header). */
export class EvidenceClock {
  private since: number;
  private down = false;
  private lastOk: number | null = null;

  constructor(now: number) {
    this.since = now;
  }

  /** dh's database access failed (a cycle threw): the evidence stops until it works again. */
  failed(): void {
    this.down = true;
  }

  /**
   * A cycle that used the database worked at `now`. After a failure, or a stall longer than
   * `maxGapMs` since the previous success, the healthy stretch starts again now. Returns
   * whether it restarted.
   */
  ok(now: number, maxGapMs: number): boolean {
    const restart = this.down || (this.lastOk !== null && now - this.lastOk > maxGapMs);
    if (restart) this.since = now;
    this.down = false;
    this.lastOk = Math.max(this.lastOk ?? now, now);
    return restart;
  }

  /** The start of the current healthy stretch, or null while the database is failing. */
  healthySince(): number | null {
    return this.down ? null : this.since;
  }
}

export async function evictLostTasks(
  db: Db,
  logger: Logger,
  now: number,
  heartbeatTimeoutS: number,
  batchSize: number,
  /** Start of dh's current healthy stretch of database access (EvidenceClock); default: always healthy. */
  healthySince: number | null = 0,
): Promise<number[]> {
  const cutoff = now - heartbeatTimeoutS * 1000;
  // not yet heartbeat_timeout of evidence since dh started or the database came back
  if (healthySince === null || healthySince > cutoff) return [];
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
