/**
 * The task state machine of ARCHITECTURE.md, as data. The only way to change a task's
 * status is `transition()` (transition.ts), which checks this table.
 */
export const TaskStatus = {
  IDLE: 'IDLE',
  WAITING: 'WAITING',
  QUEUEING: 'QUEUEING',
  QUEUED: 'QUEUED',
  PROCESSING: 'PROCESSING',
  READYTOCOPY: 'READYTOCOPY',
  COPYING: 'COPYING',
  COPIED: 'COPIED',
  OK: 'OK',
  ERROR: 'ERROR',
  EVICTED: 'EVICTED',
  RESET: 'RESET',
  FAILED: 'FAILED',
  SUSPENDED: 'SUSPENDED',
} as const;
export type TaskStatus = (typeof TaskStatus)[keyof typeof TaskStatus];
export const TASK_STATUSES = Object.values(TaskStatus) as TaskStatus[];

export const JobStatus = {
  PROCESSING: 'PROCESSING',
  OK: 'OK',
  FAILED: 'FAILED',
  SUSPENDED: 'SUSPENDED',
} as const;
export type JobStatus = (typeof JobStatus)[keyof typeof JobStatus];

export const DatasetStatus = {
  PROCESSING: 'PROCESSING',
  SUSPENDED: 'SUSPENDED',
  COMPLETE: 'COMPLETE',
  ERRORS: 'ERRORS',
  OBSOLETE: 'OBSOLETE',
  DELETED: 'DELETED',
} as const;
export type DatasetStatus = (typeof DatasetStatus)[keyof typeof DatasetStatus];

/** Who may drive a transition (ARCHITECTURE.md "by" column). */
export type Actor = 'core' | 'queue' | 'mon' | 'dh' | 'tray';

export interface TransitionRule {
  from: readonly TaskStatus[];
  to: TaskStatus;
  by: readonly Actor[];
  /** Only an admin may apply it (OK → RESET). */
  adminOnly?: boolean;
}

const S = TaskStatus;
/** Statuses from which a person may suspend (any not OK/FAILED, and not already SUSPENDED). */
export const SUSPENDABLE: readonly TaskStatus[] = TASK_STATUSES.filter(
  (s) => s !== S.OK && s !== S.FAILED && s !== S.SUSPENDED,
);

export const TRANSITIONS: readonly TransitionRule[] = [
  { from: [S.IDLE], to: S.WAITING, by: ['core'] },
  { from: [S.WAITING], to: S.QUEUEING, by: ['queue'] },
  { from: [S.QUEUEING], to: S.QUEUED, by: ['queue'] },
  { from: [S.QUEUEING], to: S.WAITING, by: ['queue'] },
  { from: [S.QUEUED], to: S.PROCESSING, by: ['mon'] },
  { from: [S.QUEUED, S.PROCESSING], to: S.EVICTED, by: ['queue', 'dh'] },
  { from: [S.PROCESSING], to: S.READYTOCOPY, by: ['mon'] },
  { from: [S.PROCESSING], to: S.ERROR, by: ['mon', 'queue'] },
  { from: [S.READYTOCOPY], to: S.COPYING, by: ['dh'] },
  { from: [S.COPYING], to: S.COPIED, by: ['dh'] },
  { from: [S.COPYING], to: S.ERROR, by: ['dh'] },
  { from: [S.COPIED], to: S.OK, by: ['dh'] },
  { from: [S.ERROR, S.EVICTED], to: S.RESET, by: ['core'] },
  // EVICTED → FAILED is not in the paper's table: a task evicted max_evictions times fails
  // (without it EVICTED could only ever be reset). Documented in docs/architecture.md.
  { from: [S.ERROR, S.EVICTED], to: S.FAILED, by: ['core'] },
  { from: [S.RESET], to: S.WAITING, by: ['core'] },
  // Not in the paper's table: a reset task whose dependencies are not all OK waits in IDLE
  // (e.g. a whole job reset). Documented in docs/architecture.md.
  { from: [S.RESET], to: S.IDLE, by: ['core'] },
  { from: SUSPENDABLE, to: S.SUSPENDED, by: ['tray'] },
  { from: [S.SUSPENDED, S.FAILED], to: S.RESET, by: ['tray'] },
  { from: [S.OK], to: S.RESET, by: ['tray'], adminOnly: true },
];

/** The rule allowing from → to, if any (ignoring who asks). */
export function findRule(from: TaskStatus, to: TaskStatus): TransitionRule | undefined {
  return TRANSITIONS.find((r) => r.to === to && r.from.includes(from));
}

export function isLegal(from: TaskStatus, to: TaskStatus, by?: Actor, isAdmin = false): boolean {
  return TRANSITIONS.some(
    (r) =>
      r.to === to &&
      r.from.includes(from) &&
      (by === undefined || r.by.includes(by)) &&
      (!r.adminOnly || isAdmin),
  );
}

/** Every status a task can move to from `from` (for any actor). */
export function nextStatuses(from: TaskStatus): TaskStatus[] {
  return [...new Set(TRANSITIONS.filter((r) => r.from.includes(from)).map((r) => r.to))];
}

/** Tasks in these statuses hold (or may soon hold) a batch job. */
export const ACTIVE_STATUSES: readonly TaskStatus[] = [S.QUEUEING, S.QUEUED, S.PROCESSING];
/**
 * Statuses in which a task's work is not finished and may still progress without a person.
 * IDLE is not among them: an IDLE task moves only when its dependencies do, so a job whose
 * only unfinished tasks are IDLE behind a FAILED (or SUSPENDED) one is stuck, not running.
 */
export const IN_PROGRESS_STATUSES: readonly TaskStatus[] = [
  S.WAITING, S.QUEUEING, S.QUEUED, S.PROCESSING, S.READYTOCOPY, S.COPYING, S.COPIED, S.ERROR, S.EVICTED, S.RESET,
];

export function isTaskStatus(s: unknown): s is TaskStatus {
  return typeof s === 'string' && (TASK_STATUSES as string[]).includes(s);
}

/**
 * Job status derived from its tasks: OK when all OK, FAILED when any FAILED and none
 * active, SUSPENDED when any suspended and none active, else PROCESSING.
 */
export function deriveJobStatus(taskStatuses: readonly TaskStatus[]): JobStatus {
  if (taskStatuses.length > 0 && taskStatuses.every((s) => s === S.OK)) return JobStatus.OK;
  const active = taskStatuses.some((s) => IN_PROGRESS_STATUSES.includes(s));
  if (!active && taskStatuses.some((s) => s === S.FAILED)) return JobStatus.FAILED;
  if (!active && taskStatuses.some((s) => s === S.SUSPENDED)) return JobStatus.SUSPENDED;
  return JobStatus.PROCESSING;
}

/**
 * Dataset status derived from its job statuses (OBSOLETE/DELETED are set by people and kept).
 * COMPLETE when every job OK; ERRORS when nothing can progress and some job FAILED;
 * SUSPENDED when nothing can progress and some job is suspended; else PROCESSING.
 */
export function deriveDatasetStatus(
  jobStatuses: Partial<Record<JobStatus, number>>,
  current?: DatasetStatus,
): DatasetStatus {
  if (current === DatasetStatus.OBSOLETE || current === DatasetStatus.DELETED) return current;
  const n = (k: JobStatus) => jobStatuses[k] ?? 0;
  const total = n('OK') + n('FAILED') + n('SUSPENDED') + n('PROCESSING');
  if (n('PROCESSING') > 0) return DatasetStatus.PROCESSING;
  if (total === 0) return current ?? DatasetStatus.PROCESSING;
  if (n('OK') === total) return DatasetStatus.COMPLETE;
  if (n('SUSPENDED') > 0) return DatasetStatus.SUSPENDED;
  return DatasetStatus.ERRORS;
}
