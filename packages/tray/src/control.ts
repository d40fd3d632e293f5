import {
  RETRY_MATCH_MAX_INPUT, SUSPENDABLE, TaskStatus, settleResetTasks, transition, unfoldTaskStats,
  type RuleMatcher, type Trx,
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

/**
 * What a person's reset clears: the retry backoff only. The counters (`failures`, `evictions`,
 * `submit_errors`) are kept, as core's own retry reset keeps them and as
 * docs/production-manager.md says: they count every attempt the task ever made, so a task
 * reset after it reached `max_failures` gets one more attempt, and is FAILED again if that one
 * fails too (reset it again, with new requirements if that was the cause).
 */
export const RESET_COUNTERS = { next_retry_at: null } as const;

/** A requirement change: an absolute value, or `"xF"` — F times the task's own value, rounded up. */
export type RequirementChange = number | string;
export interface RequirementChanges {
  cpu?: RequirementChange; gpu?: RequirementChange; memory?: RequirementChange; disk?: RequirementChange; time?: RequirementChange;
  site?: string | null;
}

/** Bounds of the req_* columns (as the RPC schemas cap them). */
const REQUIREMENT_MAX = { cpu: 100_000, gpu: 1000, memory: 2_147_483_647, disk: 2_147_483_647, time: 2_147_483_647 } as const;
const REQUIREMENT_MIN = { cpu: 1, gpu: 0, memory: 1, disk: 1, time: 1 } as const;
type NumericRequirement = keyof typeof REQUIREMENT_MAX;

export interface TaskRequirementRow { req_cpu: number; req_gpu: number; req_memory: number; req_disk: number; req_time: number }

/**
 * The req_* columns a task gets (pure). A multiplier `xF` (F with at most 3 decimals) is applied
 * in integer thousandths — ceil(value × F) without floating-point drift (1000 × x1.1 is 1100) —
 * and kept within the column's bounds.
 */
export function requirementColumnsFor(task: TaskRequirementRow, r: RequirementChanges): Record<string, number | string | null> {
  const out: Record<string, number | string | null> = {};
  for (const k of Object.keys(REQUIREMENT_MAX) as NumericRequirement[]) {
    const v = r[k];
    if (v === undefined) continue;
    if (typeof v === 'number') {
      out[`req_${k}`] = v;
      continue;
    }
    const m = /^x(\d{1,2})(?:\.(\d{1,3}))?$/.exec(v);
    if (!m) throw new RangeError(`requirements.${k}: expected an integer or "xF", got ${JSON.stringify(v)}`);
    const thousandths = Number(m[1]) * 1000 + Number((m[2] ?? '').padEnd(3, '0'));
    const current = Number(task[`req_${k}`]);
    const scaled = Math.floor((current * thousandths + 999) / 1000);
    out[`req_${k}`] = Math.max(REQUIREMENT_MIN[k], Math.min(REQUIREMENT_MAX[k], scaled));
  }
  if (r.site !== undefined) out.req_site = r.site;
  return out;
}

/** Rows read per round by resetSelected (bounded memory on datasets of millions of tasks). */
const SELECT_PAGE = 2000;

export interface ResetSelection {
  /** Only tasks whose error summary (its first RETRY_MATCH_MAX_INPUT characters) matches. */
  match?: RuleMatcher;
  /** New requirements per task (absolute, or multipliers of the task's own). */
  requirements?: RequirementChanges;
}

/**
 * resetTasks for a selection: the tasks in scope in any of `from` whose error summary matches,
 * each with its own new requirements; tasks that end with the same new columns move in one
 * transition. Read in pages of SELECT_PAGE by id, inside the caller's transaction.
 */
export async function resetSelected(trx: Trx, scope: Scope, from: readonly TaskStatus[], options: ResetOptions, sel: ResetSelection): Promise<ControlOutcome> {
  const reset: number[] = [];
  let after = 0;
  for (;;) {
    const q = trx('task')
      .select('id', 'status', 'req_cpu', 'req_gpu', 'req_memory', 'req_disk', 'req_time', trx.raw('SUBSTR(error_summary, 1, ?) AS summary', [RETRY_MATCH_MAX_INPUT]))
      .where('dataset_id', scope.datasetId).whereIn('status', from).andWhere('id', '>', after).orderBy('id').limit(SELECT_PAGE);
    if (scope.jobId !== undefined) q.andWhere('job_id', scope.jobId);
    const rows = (await q) as Array<TaskRequirementRow & { id: number; status: TaskStatus; summary: string | null }>;
    if (rows.length === 0) break;
    after = Number(rows[rows.length - 1]!.id);
    const groups = new Map<string, { status: TaskStatus; set: Record<string, unknown>; ids: number[] }>();
    for (const r of rows) {
      if (sel.match && !sel.match.test(r.summary ?? '')) continue;
      const set = { ...options.set, ...(sel.requirements ? requirementColumnsFor(r, sel.requirements) : {}) };
      const key = `${r.status}\u0000${JSON.stringify(set)}`;
      let g = groups.get(key);
      if (!g) groups.set(key, (g = { status: r.status, set, ids: [] }));
      g.ids.push(Number(r.id));
    }
    for (const g of groups.values()) {
      const by = g.status === TaskStatus.ERROR || g.status === TaskStatus.EVICTED ? 'core' : 'tray';
      const moved = await transition(trx, {
        taskIds: g.ids, from: g.status, to: TaskStatus.RESET, by, actor: options.actor, reason: options.reason,
        isAdmin: options.isAdmin, set: g.set, strict: false,
      });
      if (g.status === TaskStatus.OK) await unfoldTaskStats(trx, moved);
      reset.push(...moved);
    }
    if (rows.length < SELECT_PAGE) break;
  }
  const settled = await settleResetTasks(trx, reset, options.actor, options.reason);
  return { changed: reset.length, waiting: settled.waiting.length, idle: settled.idle.length };
}
