/**
 * The data cycle: READYTOCOPY → COPYING → COPIED → OK. Each STAGED output of a task is
 * copied from where the pilot staged it (temp_url, at site temp) to its destination (url)
 * and verified there; when every output is VERIFIED the task is COPIED, the temp copies of
 * permanent outputs are removed, and the task is OK — in the same transaction as its
 * job's dependents are released (IDLE → WAITING). A transfer that still fails after the
 * retries puts the task in ERROR (failures + 1) with the reason.
 *
 * Killed at any point, it resumes: COPYING / COPIED tasks are taken up again (all of them
 * when the daemon starts, later those whose lease ran out), files already VERIFIED are
 * skipped and a destination already holding the expected bytes is not copied again.
 * firn-dh is meant to run once per database.
 *
 * Tasks with nothing (left) to copy — no outputs, or all already verified — take a bulk
 * path: each step is one transition for all of them (finishTogether).
 *
 * Storage roots (core's storage-roots.ts): a file row whose temp_url is not under site temp or
 * whose url is not under `[dh] destinations` / site temp is never read, written or deleted —
 * it becomes REFUSED with the reason, is logged and counted (`refused`), and its task ERROR
 * (rows firn-mon derived are always inside; this catches an older mon or a tampered row).
 *
 * Statistics: the task's `task_stat` rows are folded into `dataset_stat` in the transaction
 * of COPIED → OK, on both lanes (core's dataset-stats.ts) — exactly once per task.
 */
import {
  LostRaceError, TaskStatus, chunk, coerceError, foldTaskStats, releaseReadyTasks, transition,
  type Db, type Logger, type StorageRoots,
} from '@firn/core';
import { writeTransaction } from './db-writes';
import { redactUrl, stagedSourceReadOptions, type Transfers } from './transfer';

export const FileState = {
  STAGED: 'STAGED',
  COPIED: 'COPIED',
  VERIFIED: 'VERIFIED',
  FAILED: 'FAILED',
  DELETED: 'DELETED',
  /** Outside the storage roots: left alone (file.error says why). */
  REFUSED: 'REFUSED',
} as const;

/** Output file types (dataset config `data[].type`). */
export const FileType = { PERMANENT: 'permanent', JOB_TEMP: 'job_temp', DATASET_TEMP: 'dataset_temp' } as const;

/** Longest error_summary / file.error written. */
const MAX_ERROR = 2000;

export interface DataMoverOptions {
  db: Db;
  transfers: Transfers;
  /** Where sources (site temp) and destinations may be: nothing outside is touched. */
  roots: StorageRoots;
  logger: Logger;
  /** Most tasks taken per cycle ([dh] batch_size). */
  batchSize: number;
  /** Tasks moved at once (files of one task go one after another). */
  concurrency: number;
  /** How long a COPYING claim holds without renewal before another cycle takes it up, ms. */
  leaseMs: number;
  /** Checked between tasks: stop taking new work (SIGTERM). */
  stopping?: () => boolean;
  /** Clock for leases (default Date.now; tests pass a fake one). */
  now?: () => number;
}

export interface DataCycleResult {
  /** READYTOCOPY tasks claimed. */
  claimed: number;
  /** COPYING / COPIED tasks taken up again (a killed dh, an expired lease). */
  resumed: number;
  ok: number;
  errors: number;
  /** Tasks that another actor moved meanwhile (e.g. suspended). */
  lost: number;
  /** Files copied (not counting those found already in place). */
  copied: number;
  /** Bytes of the files copied. */
  bytes: number;
  /** Files found already verified at their destination. */
  present: number;
  /** File rows outside the storage roots (left alone, REFUSED). */
  refused: number;
}

interface TaskRef {
  id: number;
  job_id: number;
  dataset_id: number;
  status: TaskStatus;
}

interface OutputFile {
  id: number;
  local_name: string;
  url: string;
  temp_url: string | null;
  type: string;
  md5: string | null;
  sha256: string | null;
  size: number | null;
  state: string;
}

type Outcome = 'ok' | 'error' | 'lost';

export class DataMover {
  /** Tasks this process is moving right now (never taken up twice). */
  private readonly active = new Set<number>();

  constructor(private readonly o: DataMoverOptions) {
    const warning = o.roots.startupWarning();
    if (warning) o.logger.warn(warning);
  }

  /**
   * One data cycle. `resumeAll` (the first cycle after start) takes up every COPYING /
   * COPIED task whatever its lease says: they belong to a dh that is no longer running.
   */
  async run(now: number, resumeAll = false): Promise<DataCycleResult> {
    const result: DataCycleResult = { claimed: 0, resumed: 0, ok: 0, errors: 0, lost: 0, copied: 0, bytes: 0, present: 0, refused: 0 };
    const resumed = await this.resumable(now, resumeAll);
    const claimed = await this.claim(now, Math.max(0, this.o.batchSize - resumed.length));
    result.resumed = resumed.length;
    result.claimed = claimed.length;
    // Tasks with nothing left to copy (no outputs, or every one VERIFIED already) are
    // finished together: a few statements for the whole batch instead of a dozen per task.
    const all = [...resumed, ...claimed];
    const toCopy = await this.tasksWithFilesToCopy(all.filter((t) => t.status === TaskStatus.COPYING).map((t) => t.id));
    const nothingToCopy = all.filter((t) => !toCopy.has(t.id));
    const queue = all.filter((t) => toCopy.has(t.id));
    if (nothingToCopy.length && !this.o.stopping?.()) await this.finishTogether(nothingToCopy, result);
    else queue.push(...nothingToCopy);
    const worker = async () => {
      for (let t = queue.shift(); t; t = queue.shift()) {
        if (this.o.stopping?.()) {
          // leave it COPYING with an expired lease: the next start takes it up
          await this.o.db('task').where({ id: t.id, status: TaskStatus.COPYING }).update({ lease_until: null });
          continue;
        }
        const outcome = await this.moveTask(t, result);
        if (outcome === 'ok') result.ok++;
        else if (outcome === 'error') result.errors++;
        else result.lost++;
      }
    };
    await Promise.all(Array.from({ length: Math.max(1, this.o.concurrency) }, worker));
    return result;
  }

  /** READYTOCOPY → COPYING for up to `limit` tasks, oldest first. */
  private async claim(now: number, limit: number): Promise<TaskRef[]> {
    if (limit <= 0) return [];
    const rows: TaskRef[] = await this.o.db('task')
      .select('id', 'job_id', 'dataset_id')
      .where('status', TaskStatus.READYTOCOPY)
      .orderBy('id')
      .limit(limit);
    if (rows.length === 0) return [];
    const changed = new Set(
      await transition(this.o.db, {
        taskIds: rows.map((r) => Number(r.id)),
        from: TaskStatus.READYTOCOPY,
        to: TaskStatus.COPYING,
        by: 'dh',
        actor: 'dh',
        reason: 'copying outputs to their destinations',
        set: { lease_until: now + this.o.leaseMs },
        strict: false,
      }),
    );
    return rows.filter((r) => changed.has(Number(r.id))).map((r) => ({ ...norm(r), status: TaskStatus.COPYING }));
  }

  /** COPYING / COPIED tasks no one is moving (lease expired, or every one on start). */
  private async resumable(now: number, all: boolean): Promise<TaskRef[]> {
    const q = this.o.db('task')
      .select('id', 'job_id', 'dataset_id', 'status')
      .whereIn('status', [TaskStatus.COPYING, TaskStatus.COPIED])
      .orderBy('id')
      .limit(this.o.batchSize + this.active.size);
    if (!all) q.andWhere((w) => w.whereNull('lease_until').orWhere('lease_until', '<', now));
    const rows = ((await q) as TaskRef[]).map(norm).filter((r) => !this.active.has(r.id)).slice(0, this.o.batchSize);
    if (rows.length) {
      await this.o.db('task')
        .whereIn('id', rows.map((r) => r.id))
        .whereIn('status', [TaskStatus.COPYING, TaskStatus.COPIED])
        .update({ lease_until: now + this.o.leaseMs });
      this.o.logger.info('resuming interrupted copies', { tasks: rows.length });
    }
    return rows;
  }

  /** Which of these COPYING tasks have an output that is not VERIFIED yet. */
  private async tasksWithFilesToCopy(taskIds: number[]): Promise<Set<number>> {
    const out = new Set<number>();
    for (const part of chunk(taskIds, 500)) {
      const rows: Array<{ task_id: number }> = await this.o.db('file')
        .distinct('task_id')
        .whereIn('task_id', part)
        .where('kind', 'output')
        .whereIn('state', [FileState.STAGED, FileState.COPIED]);
      for (const r of rows) out.add(Number(r.task_id));
    }
    return out;
  }

  /**
   * COPYING → COPIED → OK for tasks whose outputs are all at their destination, verified (or
   * that have none), in bulk: one transition per step for all of them, their temp copies
   * removed in between, dependents released with the last step. A task another actor moved
   * meanwhile is skipped (lost). Idempotent like the one-task path: killed anywhere, the next
   * cycle resumes the COPYING / COPIED tasks.
   */
  private async finishTogether(tasks: TaskRef[], result: DataCycleResult): Promise<void> {
    for (const t of tasks) this.active.add(t.id);
    try {
      const copying = tasks.filter((t) => t.status === TaskStatus.COPYING).map((t) => t.id);
      const copied = new Set(tasks.filter((t) => t.status === TaskStatus.COPIED).map((t) => t.id));
      if (copying.length) {
        const verified = await this.verifiedCounts(copying);
        // one transition per reason (the reason names the task's number of files)
        const byCount = new Map<number, number[]>();
        for (const id of copying) {
          const n = verified.get(id) ?? 0;
          const same = byCount.get(n);
          if (same) same.push(id);
          else byCount.set(n, [id]);
        }
        for (const [n, ids] of byCount) {
          const changed = await transition(this.o.db, {
            taskIds: ids, from: TaskStatus.COPYING, to: TaskStatus.COPIED, by: 'dh', actor: 'dh', strict: false,
            reason: `${n} output file${n === 1 ? '' : 's'} at destination, md5 + sha256 verified`,
          });
          for (const id of changed) copied.add(id);
        }
      }
      const ids = [...copied];
      if (ids.length) result.refused += await this.removeTempCopies(ids, this.o.logger);
      const jobOf = new Map(tasks.map((t) => [t.id, t.job_id]));
      const ok = ids.length
        ? await writeTransaction(this.o.db, async (trx) => {
          const changed = await transition(trx, {
            taskIds: ids, from: TaskStatus.COPIED, to: TaskStatus.OK, by: 'dh', actor: 'dh',
            reason: 'temporary copies removed', set: { lease_until: null }, strict: false,
          });
          await foldTaskStats(trx, changed);
          await releaseReadyTasks(trx, [...new Set(changed.map((id) => jobOf.get(id)!))], 'dh');
          return changed;
        })
        : [];
      result.ok += ok.length;
      result.lost += tasks.length - ok.length;
      if (ok.length < tasks.length) this.o.logger.info('tasks changed by another actor during copy; left alone', { tasks: tasks.length - ok.length });
    } catch (e) {
      // the database, most likely: leave them for the next cycle (lease dropped)
      this.o.logger.error('data movement interrupted', { error: coerceError(e).message, tasks: tasks.length });
      await this.o.db('task').whereIn('id', tasks.map((t) => t.id)).whereIn('status', [TaskStatus.COPYING, TaskStatus.COPIED]).update({ lease_until: null }).catch(() => undefined);
      result.lost += tasks.length;
    } finally {
      for (const t of tasks) this.active.delete(t.id);
    }
  }

  /** Verified output files per task. */
  private async verifiedCounts(taskIds: number[]): Promise<Map<number, number>> {
    const out = new Map<number, number>();
    for (const part of chunk(taskIds, 500)) {
      const rows: Array<{ task_id: number; n: number | string }> = await this.o.db('file')
        .select('task_id')
        .count({ n: '*' })
        .whereIn('task_id', part)
        .where({ kind: 'output', state: FileState.VERIFIED })
        .groupBy('task_id');
      for (const r of rows) out.set(Number(r.task_id), Number(r.n));
    }
    return out;
  }

  /** Renew the lease; false when the task is no longer COPYING (someone else moved it). */
  private async renew(taskId: number): Promise<boolean> {
    const n = await this.o.db('task')
      .where({ id: taskId, status: TaskStatus.COPYING })
      .update({ lease_until: (this.o.now ?? Date.now)() + this.o.leaseMs });
    return n === 1;
  }

  /** Move one task's outputs and finish it; never throws. */
  async moveTask(task: TaskRef, result: DataCycleResult): Promise<Outcome> {
    const log = this.o.logger.scope({ task: task.id });
    this.active.add(task.id);
    try {
      if (task.status === TaskStatus.COPYING) {
        const files: OutputFile[] = await this.o.db('file')
          .select('id', 'local_name', 'url', 'temp_url', 'type', 'md5', 'sha256', 'size', 'state')
          .where({ task_id: task.id, kind: 'output' })
          .whereIn('state', [FileState.STAGED, FileState.COPIED, FileState.VERIFIED])
          .orderBy('id');
        for (const f of files) {
          if (f.state === FileState.VERIFIED) continue;
          if (!(await this.renew(task.id))) return this.lost(log, 'no longer COPYING');
          const refusal = this.refusal(f);
          if (refusal) {
            result.refused++;
            return await this.fail(task, f, new Error(refusal), log, FileState.REFUSED);
          }
          let res;
          try {
            const expected = { md5: f.md5, sha256: f.sha256, size: f.size === null ? null : Number(f.size) };
            res = f.temp_url && f.temp_url !== f.url
              ? await this.o.transfers.copyVerified(f.temp_url, f.url, expected, stagedSourceReadOptions(f.temp_url, this.o.roots))
              : await this.o.transfers.verify(f.url, expected);
          } catch (e) {
            return await this.fail(task, f, coerceError(e), log);
          }
          if (res.alreadyPresent) result.present++;
          else {
            result.copied++;
            result.bytes += Number(res.checksums.size) || 0;
          }
          await this.o.db('file')
            .where({ id: f.id })
            .update({ state: FileState.VERIFIED, md5: res.checksums.md5, sha256: res.checksums.sha256, size: res.checksums.size, error: null, updated_at: Date.now() });
          log.debug('output verified at destination', { file: f.local_name, url: redactUrl(f.url), copied: !res.alreadyPresent });
        }
        await transition(this.o.db, {
          taskIds: [task.id], from: TaskStatus.COPYING, to: TaskStatus.COPIED, by: 'dh', actor: 'dh',
          reason: `${files.length} output file${files.length === 1 ? '' : 's'} at destination, md5 + sha256 verified`,
        });
      }
      result.refused += await this.removeTempCopies([task.id], log);
      await writeTransaction(this.o.db, async (trx) => {
        await transition(trx, {
          taskIds: [task.id], from: TaskStatus.COPIED, to: TaskStatus.OK, by: 'dh', actor: 'dh',
          reason: 'temporary copies removed', set: { lease_until: null },
        });
        await foldTaskStats(trx, [task.id]);
        await releaseReadyTasks(trx, [task.job_id], 'dh');
      });
      log.debug('task outputs delivered', { status: TaskStatus.OK });
      return 'ok';
    } catch (e) {
      if (e instanceof LostRaceError) return this.lost(log, e.message);
      // the database, most likely: leave the task for the next cycle (lease dropped)
      log.error('data movement interrupted', { error: coerceError(e).message });
      await this.o.db('task').where({ id: task.id }).whereIn('status', [TaskStatus.COPYING, TaskStatus.COPIED]).update({ lease_until: null }).catch(() => undefined);
      return 'lost';
    } finally {
      this.active.delete(task.id);
    }
  }

  private lost(log: Logger, why: string): Outcome {
    log.info('task changed by another actor during copy; left alone', { why });
    return 'lost';
  }

  /** Why this file may not be copied / verified (outside the storage roots), or null. */
  private refusal(f: Pick<OutputFile, 'url' | 'temp_url'>): string | null {
    const dest = this.o.roots.destinationRefusal(f.url);
    if (dest) return `destination refused: ${dest}`;
    if (f.temp_url && f.temp_url !== f.url) {
      const src = this.o.roots.stagingRefusal(f.temp_url);
      if (src) return `staged copy refused: ${src}`;
    }
    return null;
  }

  /** COPYING → ERROR (failures + 1), the failing file FAILED (or REFUSED), both with the reason. */
  private async fail(task: TaskRef, f: OutputFile, err: Error, log: Logger, state: string = FileState.FAILED): Promise<Outcome> {
    const reason = `output ${f.local_name}: ${err.message}`.slice(0, MAX_ERROR);
    if (state === FileState.REFUSED) log.warn('output outside the storage roots; not touched', { file: f.local_name, error: err.message });
    else log.warn('output transfer failed', { file: f.local_name, error: err.message });
    await writeTransaction(this.o.db, async (trx) => {
      await trx('file').where({ id: f.id }).update({ state, error: reason, updated_at: Date.now() });
      await transition(trx, {
        taskIds: [task.id], from: TaskStatus.COPYING, to: TaskStatus.ERROR, by: 'dh', actor: 'dh', reason,
        set: { failures: trx.raw('failures + 1'), error_summary: reason, lease_until: null },
      });
    });
    return 'error';
  }

  /**
   * Remove the temp copies of a task's verified permanent outputs (job_temp / dataset_temp
   * outputs stay until their job / dataset is done: GC). A removal that fails is left for GC; a
   * temp copy outside site temp is not removed (the row becomes REFUSED). Returns those refused.
   */
  private async removeTempCopies(taskIds: number[], log: Logger): Promise<number> {
    const temps: Array<{ id: number; temp_url: string; url: string }> = [];
    for (const part of chunk(taskIds, 500)) {
      temps.push(...(await this.o.db('file')
        .select('id', 'temp_url', 'url')
        .whereIn('task_id', part)
        .where({ kind: 'output', type: FileType.PERMANENT, state: FileState.VERIFIED })
        .whereNotNull('temp_url')));
    }
    const removed: number[] = [];
    const refused = new Map<number, string>();
    for (const t of temps) {
      if (t.temp_url === t.url) continue;
      const why = this.o.roots.stagingRefusal(t.temp_url);
      if (why) {
        refused.set(Number(t.id), `temp copy not removed: ${why}`.slice(0, MAX_ERROR));
        log.warn('temp copy outside site temp; not removed', { url: redactUrl(t.temp_url), error: why });
        continue;
      }
      try {
        await this.o.transfers.remove(t.temp_url);
        removed.push(Number(t.id));
      } catch (e) {
        log.warn('could not remove temp copy; garbage collection will retry', { url: redactUrl(t.temp_url), error: coerceError(e).message });
      }
    }
    for (const part of chunk(removed, 500)) await this.o.db('file').whereIn('id', part).update({ temp_url: null, updated_at: Date.now() });
    for (const [id, error] of refused) await this.o.db('file').where({ id }).update({ state: FileState.REFUSED, error, updated_at: Date.now() });
    return refused.size;
  }
}

function norm<T extends { id: number; job_id: number; dataset_id: number }>(r: T): T {
  return { ...r, id: Number(r.id), job_id: Number(r.job_id), dataset_id: Number(r.dataset_id) };
}
