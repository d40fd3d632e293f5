import type { DbOrTrx } from './db';
import { TaskStatus } from './states';
import { transition } from './transition';

/**
 * IDLE tasks of the given jobs whose every dependency (same job, by task_rel_dep) is OK.
 * One query, however many jobs.
 */
export async function readyIdleTasks(db: DbOrTrx, jobIds: readonly number[]): Promise<number[]> {
  if (jobIds.length === 0) return [];
  const ids: number[] = [];
  for (let i = 0; i < jobIds.length; i += 500) {
    const part = jobIds.slice(i, i + 500);
    const rows: Array<{ id: number }> = await db('task as t')
      .select('t.id')
      .whereIn('t.job_id', part)
      .andWhere('t.status', TaskStatus.IDLE)
      .whereNotExists(function () {
        this.select(db.raw('1'))
          .from('task_rel_dep as d')
          .join('task as dt', function () {
            this.on('dt.job_id', '=', 't.job_id').andOn('dt.task_rel_id', '=', 'd.depends_on_id');
          })
          .whereRaw('d.task_rel_id = t.task_rel_id')
          .andWhereNot('dt.status', TaskStatus.OK);
      });
    ids.push(...rows.map((r) => Number(r.id)));
  }
  return ids;
}

/** Move every IDLE task of these jobs whose dependencies are all OK to WAITING (by core). */
export async function releaseReadyTasks(db: DbOrTrx, jobIds: readonly number[], actor = 'core'): Promise<number[]> {
  const ready = await readyIdleTasks(db, jobIds);
  if (ready.length === 0) return [];
  return transition(db, {
    taskIds: ready, from: TaskStatus.IDLE, to: TaskStatus.WAITING, by: 'core', actor,
    reason: 'dependencies complete', strict: false,
  });
}

/** Task ids among `taskIds` with at least one dependency (same job) not OK. */
export async function tasksWithUnfinishedDeps(db: DbOrTrx, taskIds: readonly number[]): Promise<Set<number>> {
  const out = new Set<number>();
  for (let i = 0; i < taskIds.length; i += 500) {
    const part = taskIds.slice(i, i + 500);
    const rows: Array<{ id: number }> = await db('task as t')
      .distinct('t.id')
      .join('task_rel_dep as d', 'd.task_rel_id', 't.task_rel_id')
      .join('task as dt', function () {
        this.on('dt.job_id', '=', 't.job_id').andOn('dt.task_rel_id', '=', 'd.depends_on_id');
      })
      .whereIn('t.id', part)
      .andWhereNot('dt.status', TaskStatus.OK);
    for (const r of rows) out.add(Number(r.id));
  }
  return out;
}

/**
 * Move RESET tasks on: passkey revoked, then WAITING when every dependency is OK, else IDLE.
 * Returns the ids that went to WAITING and to IDLE.
 */
export async function settleResetTasks(
  db: DbOrTrx,
  taskIds: readonly number[],
  actor = 'core',
  reason: string | null = null,
): Promise<{ waiting: number[]; idle: number[] }> {
  if (taskIds.length === 0) return { waiting: [], idle: [] };
  const blocked = await tasksWithUnfinishedDeps(db, taskIds);
  const set = { passkey_hash: null, batch_id: null, grid_id: null, lease_until: null, host: null };
  const toIdle = taskIds.filter((id) => blocked.has(id));
  const toWaiting = taskIds.filter((id) => !blocked.has(id));
  const idle = await transition(db, { taskIds: toIdle, from: TaskStatus.RESET, to: TaskStatus.IDLE, by: 'core', actor, reason, set, strict: false });
  const waiting = await transition(db, { taskIds: toWaiting, from: TaskStatus.RESET, to: TaskStatus.WAITING, by: 'core', actor, reason, set, strict: false });
  return { waiting, idle };
}
