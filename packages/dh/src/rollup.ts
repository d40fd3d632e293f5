/**
 * The roll-up cycle: job status from its tasks (core deriveJobStatus), dataset status from
 * its jobs (core deriveDatasetStatus), and the completion hook of a dataset's first COMPLETE.
 *
 * Only jobs whose stored status is now wrong are looked at, found with two index-driven
 * queries instead of recomputing every job: a PROCESSING job none of whose tasks is still in
 * progress (it became OK / FAILED / SUSPENDED), and a non-PROCESSING job with a task in
 * progress again (reset, resumed). Likewise for datasets. Each query is bounded by
 * [dh] batch_size; what is left over is found again next cycle.
 *
 * Then the web monitor's chart counts: task transitions of `history` into `task_flow`
 * (task-flow.ts).
 */
import { execFile } from 'node:child_process';
import {
  DatasetStatus, IN_PROGRESS_STATUSES, JobStatus, chunk, coerceError, deriveDatasetStatus, deriveJobStatus, redactText,
  type Db, type DbOrTrx, type Logger, type TaskStatus, type Trx,
} from '@firn/core';
import { insertHistory, writeTransaction, type HistoryRow } from './db-writes';
import { rollUpTaskFlow } from './task-flow';

export interface RollupResult {
  /** Jobs whose status changed. */
  jobs: number;
  /** Datasets whose status changed: id, from, to. */
  datasets: Array<{ id: number; from: string; to: string }>;
  /** Completion hooks run: dataset id and exit code (null: killed / not started). */
  hooks: Array<{ datasetId: number; code: number | null }>;
}

export interface RollupOptions {
  batchSize: number;
  /** [dh] completion_hook: a shell command, run with the dataset id as its argument. */
  completionHook?: string;
  /** Longest a hook may run, ms (default 10 min). */
  hookTimeoutMs?: number;
}

const HOOK_ACTION = 'completion_hook';
const HookState = { PENDING: 'PENDING', STARTED: 'STARTED', DONE: 'DONE', FAILED: 'FAILED' } as const;
const GONE_DATASET = [DatasetStatus.OBSOLETE, DatasetStatus.DELETED];

/** Jobs whose stored status is stale (see the file comment); `truncated` when the limit was hit. */
async function staleJobs(trx: DbOrTrx, limit: number, datasetIds?: readonly number[]): Promise<{ ids: number[]; truncated: boolean }> {
  const inProgress = IN_PROGRESS_STATUSES as readonly string[];
  const finished = trx('job as j')
    .select('j.id')
    .where('j.status', JobStatus.PROCESSING)
    .whereExists((q) => q.select(trx.raw('1')).from('task as t').whereRaw('t.job_id = j.id'))
    .whereNotExists((q) => q.select(trx.raw('1')).from('task as t').whereRaw('t.job_id = j.id').whereIn('t.status', inProgress))
    .limit(limit);
  const reopened = trx('task as t')
    .distinct('t.job_id as id')
    .join('job as j', 'j.id', 't.job_id')
    .whereIn('t.status', inProgress)
    .andWhereNot('j.status', JobStatus.PROCESSING)
    .limit(limit);
  if (datasetIds) {
    finished.whereIn('j.dataset_id', datasetIds);
    reopened.whereIn('j.dataset_id', datasetIds);
  } else {
    finished.whereIn('j.dataset_id', trx('dataset').select('id').whereNotIn('status', GONE_DATASET));
  }
  const [a, b] = [(await finished) as Array<{ id: number }>, (await reopened) as Array<{ id: number }>];
  return { ids: [...new Set([...a, ...b].map((r) => Number(r.id)))], truncated: a.length >= limit || b.length >= limit };
}

/** Recompute and store the status of these jobs; returns the datasets touched. */
async function rollUpJobs(trx: Trx, jobIds: readonly number[], now: number): Promise<{ changed: number; datasets: Set<number> }> {
  const datasets = new Set<number>();
  let changed = 0;
  const moves = new Map<string, { from: string; to: string; ids: number[] }>();
  const history: HistoryRow[] = [];
  for (const ids of chunk(jobIds, 500)) {
    const statuses = new Map<number, TaskStatus[]>();
    const rows: Array<{ job_id: number; status: TaskStatus }> = await trx('task').select('job_id', 'status').whereIn('job_id', ids).groupBy('job_id', 'status');
    for (const r of rows) statuses.set(Number(r.job_id), [...(statuses.get(Number(r.job_id)) ?? []), r.status]);
    const jobs: Array<{ id: number; dataset_id: number; status: string }> = await trx('job').select('id', 'dataset_id', 'status').whereIn('id', ids);
    for (const j of jobs) {
      const to = deriveJobStatus(statuses.get(Number(j.id)) ?? []);
      if (to === j.status) continue;
      const key = `${j.status}>${to}`;
      const m = moves.get(key) ?? { from: j.status, to, ids: [] };
      m.ids.push(Number(j.id));
      moves.set(key, m);
      history.push({ entity: 'job', entityId: Number(j.id), datasetId: Number(j.dataset_id), action: 'status', from: j.status, to, reason: 'derived from its tasks' });
      datasets.add(Number(j.dataset_id));
    }
  }
  for (const m of moves.values()) {
    for (const ids of chunk(m.ids, 500)) {
      changed += await trx('job').whereIn('id', ids).andWhere('status', m.from).update({ status: m.to, status_changed_at: now });
    }
  }
  await insertHistory(trx, history, now);
  return { changed, datasets };
}

/** Datasets whose stored status may be stale regardless of this cycle's job changes (restart catch-up). */
async function staleDatasets(trx: DbOrTrx, limit: number): Promise<number[]> {
  const processingJob = (q: ReturnType<DbOrTrx['queryBuilder']>) =>
    q.select(trx.raw('1')).from('job as j').whereRaw('j.dataset_id = d.id').andWhere('j.status', JobStatus.PROCESSING);
  const idle: Array<{ id: number }> = await trx('dataset as d')
    .select('d.id')
    .where('d.status', DatasetStatus.PROCESSING)
    .whereExists((q) => q.select(trx.raw('1')).from('job as j').whereRaw('j.dataset_id = d.id'))
    .whereNotExists(processingJob)
    .limit(limit);
  const busy: Array<{ id: number }> = await trx('dataset as d')
    .select('d.id')
    .whereIn('d.status', [DatasetStatus.COMPLETE, DatasetStatus.ERRORS, DatasetStatus.SUSPENDED])
    .whereExists(processingJob)
    .limit(limit);
  return [...idle, ...busy].map((r) => Number(r.id));
}

export async function rollUp(db: Db, logger: Logger, now: number, o: RollupOptions): Promise<RollupResult> {
  const result: RollupResult = { jobs: 0, datasets: [], hooks: [] };
  await writeTransaction(db, async (trx) => {
    result.jobs = 0;
    result.datasets = [];
    const stale = await staleJobs(trx, o.batchSize);
    const { changed, datasets } = await rollUpJobs(trx, stale.ids, now);
    result.jobs = changed;

    for (const id of await staleDatasets(trx, o.batchSize)) datasets.add(id);
    if (stale.truncated && datasets.size) {
      // some jobs are still to be rolled up: leave their datasets for a later cycle
      const pending = await staleJobs(trx, o.batchSize, [...datasets]);
      if (pending.ids.length) {
        const rows: Array<{ dataset_id: number }> = await trx('job').distinct('dataset_id').whereIn('id', pending.ids);
        for (const r of rows) datasets.delete(Number(r.dataset_id));
      }
    }
    const history: HistoryRow[] = [];
    const firstComplete: number[] = [];
    for (const ids of chunk([...datasets], 500)) {
      const counts = new Map<number, Partial<Record<JobStatus, number>>>();
      const rows: Array<{ dataset_id: number; status: JobStatus; n: number | string }> = await trx('job')
        .select('dataset_id', 'status')
        .count({ n: '*' })
        .whereIn('dataset_id', ids)
        .groupBy('dataset_id', 'status');
      for (const r of rows) {
        const c = counts.get(Number(r.dataset_id)) ?? {};
        c[r.status] = Number(r.n);
        counts.set(Number(r.dataset_id), c);
      }
      const current: Array<{ id: number; status: DatasetStatus }> = await trx('dataset').select('id', 'status').whereIn('id', ids);
      for (const d of current) {
        const to = deriveDatasetStatus(counts.get(Number(d.id)) ?? {}, d.status);
        if (to === d.status) continue;
        const n = await trx('dataset').where({ id: d.id, status: d.status }).update({ status: to, updated_at: now });
        if (n !== 1) continue;
        result.datasets.push({ id: Number(d.id), from: d.status, to });
        history.push({ entity: 'dataset', entityId: Number(d.id), datasetId: Number(d.id), action: 'status', from: d.status, to, reason: 'derived from its jobs' });
        if (to === DatasetStatus.COMPLETE) firstComplete.push(Number(d.id));
      }
    }
    if (o.completionHook && firstComplete.length) {
      // a hook runs on a dataset's first COMPLETE only
      const had: Array<{ entity_id: number }> = await trx('history')
        .distinct('entity_id')
        .where({ entity: 'dataset', action: HOOK_ACTION })
        .whereIn('entity_id', firstComplete);
      const seen = new Set(had.map((h) => Number(h.entity_id)));
      for (const id of firstComplete.filter((i) => !seen.has(i))) {
        history.push({ entity: 'dataset', entityId: id, datasetId: id, action: HOOK_ACTION, to: HookState.PENDING, reason: 'dataset complete: completion hook queued' });
      }
    }
    await insertHistory(trx, history, now);
  });
  for (const d of result.datasets) logger.info('dataset status changed', { dataset: d.id, from: d.from, to: d.to });
  await rollUpTaskFlow(db);
  if (o.completionHook) result.hooks = await runPendingHooks(db, logger, o.completionHook, o.hookTimeoutMs ?? 600_000);
  return result;
}

/**
 * Run the hooks queued for COMPLETE datasets and not yet started. STARTED is recorded
 * before the command runs, so a hook runs at most once even if firn-dh dies meanwhile.
 */
async function runPendingHooks(db: Db, logger: Logger, hook: string, timeoutMs: number): Promise<RollupResult['hooks']> {
  const hookRow = (state: string) => (q: ReturnType<DbOrTrx['queryBuilder']>) =>
    q.select(db.raw('1')).from('history as h')
      .where({ 'h.entity': 'dataset', 'h.action': HOOK_ACTION, 'h.to_status': state })
      .whereRaw('h.entity_id = d.id');
  const pending: Array<{ id: number }> = await db('dataset as d')
    .select('d.id')
    .where('d.status', DatasetStatus.COMPLETE)
    .whereExists(hookRow(HookState.PENDING))
    .whereNotExists(hookRow(HookState.STARTED))
    .orderBy('d.id');
  const out: RollupResult['hooks'] = [];
  for (const { id: rawId } of pending) {
    const id = Number(rawId);
    await insertHistory(db, [{ entity: 'dataset', entityId: id, datasetId: id, action: HOOK_ACTION, from: HookState.PENDING, to: HookState.STARTED, reason: 'running the completion hook' }], Date.now());
    const r = await runHook(hook, id, timeoutMs);
    const ok = r.code === 0;
    const reason = ok ? 'exit code 0' : `${r.code === null ? 'killed or not started' : `exit code ${r.code}`}${r.stderr ? `: ${redactText(r.stderr.trim().slice(-500))}` : ''}`;
    await insertHistory(db, [{ entity: 'dataset', entityId: id, datasetId: id, action: HOOK_ACTION, from: HookState.STARTED, to: ok ? HookState.DONE : HookState.FAILED, reason }], Date.now());
    if (ok) logger.info('completion hook ran', { dataset: id });
    else logger.warn('completion hook failed', { dataset: id, result: reason });
    out.push({ datasetId: id, code: r.code });
  }
  return out;
}

/**
 * `/bin/sh -c '<hook> "$1"' sh <datasetId>`: the hook is the operator's shell command, the
 * dataset id reaches it as a positional argument (and FIRN_DATASET), never spliced into it.
 */
export function runHook(hook: string, datasetId: number, timeoutMs: number): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(
      '/bin/sh',
      ['-c', `${hook} "$1"`, 'sh', String(datasetId)],
      { timeout: timeoutMs, maxBuffer: 1 << 20, env: { ...process.env, FIRN_DATASET: String(datasetId) } },
      (err, stdout, stderr) => {
        if (!err) return resolve({ code: 0, stdout, stderr });
        const e = err as { code?: number | string; killed?: boolean };
        resolve({ code: typeof e.code === 'number' && !e.killed ? e.code : null, stdout, stderr: stderr || coerceError(err).message });
      },
    );
  });
}
