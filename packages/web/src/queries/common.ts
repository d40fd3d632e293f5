import { JobStatus, TASK_STATUSES, type DbOrTrx, type JobStatus as JobStatusT, type TaskStatus } from '@firn/core';

/** One page of a list: 1-based page number, and how many pages there are. */
export interface Page<T> {
  rows: T[];
  total: number;
  page: number;
  pages: number;
  perPage: number;
}

export const PER_PAGE = 50;
export const MAX_PER_PAGE = 500;

/** A positive page number from user input (1 when absent or not a positive integer). */
export function pageNumber(value: unknown): number {
  const n = typeof value === 'number' ? value : Number.parseInt(String(value ?? ''), 10);
  return Number.isInteger(n) && n >= 1 && n <= 10_000_000 ? n : 1;
}

export function pageOf<T>(rows: T[], total: number, page: number, perPage: number): Page<T> {
  return { rows, total, page, pages: Math.max(1, Math.ceil(total / perPage)), perPage };
}

/** Every task status with 0. */
export function zeroTaskCounts(): Record<TaskStatus, number> {
  return Object.fromEntries(TASK_STATUSES.map((s) => [s, 0])) as Record<TaskStatus, number>;
}

export const JOB_STATUSES = Object.values(JobStatus) as JobStatusT[];

/** Every job status with 0. */
export function zeroJobCounts(): Record<JobStatusT, number> {
  return Object.fromEntries(JOB_STATUSES.map((s) => [s, 0])) as Record<JobStatusT, number>;
}

/** Numbers come back from drivers as number, string (BIGINT/DECIMAL) or null. */
export function num(v: unknown): number {
  return v === null || v === undefined ? 0 : Number(v);
}
export function numOrNull(v: unknown): number | null {
  return v === null || v === undefined ? null : Number(v);
}

/** Stored job statuses per dataset (one GROUP BY over the job (dataset_id, status) index). */
export async function jobCountsByDataset(db: DbOrTrx, datasetIds: readonly number[]): Promise<Map<number, Record<JobStatusT, number>>> {
  const out = new Map<number, Record<JobStatusT, number>>();
  for (const id of datasetIds) out.set(id, zeroJobCounts());
  if (datasetIds.length === 0) return out;
  const rows = (await db('job').select('dataset_id', 'status').count({ n: '*' }).whereIn('dataset_id', datasetIds).groupBy('dataset_id', 'status')) as Array<{
    dataset_id: number; status: string; n: number | string;
  }>;
  for (const r of rows) {
    const c = out.get(Number(r.dataset_id));
    if (c && r.status in c) c[r.status as JobStatusT] = Number(r.n);
  }
  return out;
}

/**
 * `LIKE` pattern matching `text` literally anywhere, for `LIKE ? ESCAPE '!'` ('!' rather than a
 * backslash, which MySQL string literals would themselves treat as an escape).
 */
export function likeContains(text: string): string {
  return `%${text.replace(/[!%_]/g, (c) => `!${c}`)}%`;
}
