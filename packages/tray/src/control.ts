import {
  SUSPENDABLE, TaskStatus, settleResetTasks, transition, unfoldTaskStats,
  type Trx,
} from '@firn/core';

/**
 * The control actions people take on sets of tasks (a whole dataset or one job). Every status
 * change goes through core transition() — conditional updates with one history row per task —
 * inside the caller's transaction.
 */
export interface Scope {
  datasetId: number;
  jobId?: number;
}

export interface ControlOutcome {
  /** Tasks whose status changed (suspended, or reset). */
  changed: number;
  /** Reset tasks that went on to WAITING (dependencies OK) … */
  waiting: number;
  /** … and to IDLE (waiting for a dependency). */
  idle: number;
}

async function idsByStatus(trx: Trx, scope: Scope, statuses: readonly TaskStatus[]): Promise<Map<TaskStatus, number[]>> {
  const q = trx('task').select('id', 'status').where('dataset_id', scope.datasetId).whereIn('status', statuses).orderBy('id');
  if (scope.jobId !== undefined) q.andWhere('job_id', scope.jobId);
  const rows = (await q) as Array<{ id: number; status: TaskStatus }>;
  const out = new Map<TaskStatus, number[]>();
  for (const r of rows) {
    let list = out.get(r.status);
    if (!list) out.set(r.status, (list = []));
    list.push(Number(r.id));
  }
  return out;
}

/**
 * Suspend every task in scope that is not OK/FAILED/SUSPENDED. A task that another daemon moves
 * meanwhile is picked up again in its new status (up to 5 rounds), so none is left running.
 */
export async function suspendTasks(trx: Trx, scope: Scope, actor: string, reason: string | null): Promise<number> {
  let changed = 0;
  for (let round = 0; round < 5; round++) {
    const groups = await idsByStatus(trx, scope, SUSPENDABLE);
    if (groups.size === 0) break;
    for (const [from, ids] of groups) {
      changed += (await transition(trx, { taskIds: ids, from, to: TaskStatus.SUSPENDED, by: 'tray', actor, reason, strict: false })).length;
    }
  }
  return changed;
}

export interface ResetOptions {
  actor: string;
  reason: string | null;
  isAdmin: boolean;
  /** Columns set on the tasks as they go to RESET (new requirements, cleared counters). */
  set?: Record<string, unknown>;
}

/**
 * Tasks in scope in any of `from` → RESET → WAITING (every dependency OK) or IDLE. SUSPENDED,
 * FAILED and OK (admin only) are a person's transitions (by tray); ERROR and EVICTED are reset
 * as the retry policy would (by core, the actor still the person). Tasks leaving OK take their
 * statistics out of the dataset's (core unfoldTaskStats) in this transaction, so the run that
 * follows counts once, not on top of the one before.
 */
export async function resetTasks(trx: Trx, scope: Scope, from: readonly TaskStatus[], options: ResetOptions): Promise<ControlOutcome> {
  const groups = await idsByStatus(trx, scope, from);
  const reset: number[] = [];
  for (const [status, ids] of groups) {
    const by = status === TaskStatus.ERROR || status === TaskStatus.EVICTED ? 'core' : 'tray';
    const moved = await transition(trx, {
      taskIds: ids, from: status, to: TaskStatus.RESET, by, actor: options.actor, reason: options.reason,
      isAdmin: options.isAdmin, set: options.set, strict: false,
    });
    if (status === TaskStatus.OK) await unfoldTaskStats(trx, moved);
    reset.push(...moved);
  }
  const settled = await settleResetTasks(trx, reset, options.actor, options.reason);
  return { changed: reset.length, waiting: settled.waiting.length, idle: settled.idle.length };
}

/** Counters a person's reset clears, so a task that had used up its retries gets them back. */
export const RESET_COUNTERS = { failures: 0, evictions: 0, submit_errors: 0, next_retry_at: null } as const;
