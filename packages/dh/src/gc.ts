/**
 * The garbage-collection cycle: once [dh] retention_days have passed, remove what finished,
 * failed and obsolete work left at site temp storage (the only leftovers the central dh can
 * reach; worker scratch is the pilot's, submit directories the queue daemon's):
 *   - job_temp outputs of a job that is OK or FAILED, or of an obsolete / deleted dataset;
 *   - dataset_temp outputs of a dataset that is COMPLETE, ERRORS, OBSOLETE or DELETED;
 *   - temp copies of permanent outputs whose task is OK or FAILED, or whose dataset is
 *     obsolete / deleted (the destination of a verified permanent output is never touched).
 * Removed files' rows become DELETED (a verified permanent output stays VERIFIED and loses
 * its temp_url). A removal that fails is recorded in file.error and tried again later.
 *
 * Nothing outside the storage roots is deleted: a temp_url must be under site temp, a job_temp
 * / dataset_temp url under site temp or a `[dh] destinations` root (storage-roots.ts). A row
 * naming anything else is not touched at all: it becomes REFUSED with the reason, is logged
 * and counted (`refused`), and is never picked up again.
 */
import { DatasetStatus, JobStatus, TaskStatus, chunk, coerceError, type Db, type Logger, type StorageRoots } from '@firn/core';
import { FileState, FileType } from './data-mover';
import { redactUrl, type Transfers } from './transfer';

export interface GcResult {
  /** File rows cleaned. */
  cleaned: number;
  /** Files (url or temp_url) removed. */
  removed: number;
  /** Rows whose removal failed this time. */
  failed: number;
  /** Rows naming a location outside the storage roots (left alone, now REFUSED). */
  refused: number;
}

interface Row {
  id: number;
  url: string;
  temp_url: string | null;
  type: string;
  state: string;
}

export async function collectGarbage(
  db: Db, logger: Logger, transfers: Transfers, roots: StorageRoots, now: number, retentionDays: number, batchSize: number,
): Promise<GcResult> {
  const cutoff = now - retentionDays * 86_400_000;
  const gone = [DatasetStatus.OBSOLETE, DatasetStatus.DELETED];
  const rows: Row[] = await db('file as f')
    .join('task as t', 't.id', 'f.task_id')
    .join('job as j', 'j.id', 't.job_id')
    .join('dataset as d', 'd.id', 'f.dataset_id')
    .select('f.id', 'f.url', 'f.temp_url', 'f.type', 'f.state')
    .where('f.kind', 'output')
    .whereNotIn('f.state', [FileState.DELETED, FileState.REFUSED])
    .andWhere((w) => {
      const datasetGone = (q: typeof w) => q.whereIn('d.status', gone).andWhere('d.updated_at', '<', cutoff);
      w.where((q) =>
        q.where('f.type', FileType.JOB_TEMP).andWhere((q2) =>
          q2.where((q3) => q3.whereIn('j.status', [JobStatus.OK, JobStatus.FAILED]).andWhere('j.status_changed_at', '<', cutoff)).orWhere(datasetGone),
        ),
      )
        .orWhere((q) =>
          q.where('f.type', FileType.DATASET_TEMP)
            .whereIn('d.status', [DatasetStatus.COMPLETE, DatasetStatus.ERRORS, ...gone])
            .andWhere('d.updated_at', '<', cutoff),
        )
        .orWhere((q) =>
          q.where('f.type', FileType.PERMANENT).whereNotNull('f.temp_url').andWhere((q2) =>
            q2.where((q3) => q3.whereIn('t.status', [TaskStatus.OK, TaskStatus.FAILED]).andWhere('t.status_changed_at', '<', cutoff)).orWhere(datasetGone),
          ),
        );
    })
    .orderBy([{ column: 'f.updated_at', order: 'asc' }, { column: 'f.id', order: 'asc' }])
    .limit(batchSize);

  const result: GcResult = { cleaned: 0, removed: 0, failed: 0, refused: 0 };
  const refused = new Map<number, string>();
  const deleted: number[] = [];
  const tempGone: number[] = [];
  const errors = new Map<number, string>();
  for (const r of rows) {
    const temp = r.type !== FileType.PERMANENT;
    const targets = [...new Set([temp ? r.url : null, r.temp_url].filter((u): u is string => Boolean(u)))];
    const why = (temp ? roots.removalRefusal(r.url) : null) ?? (r.temp_url ? roots.stagingRefusal(r.temp_url) : null);
    if (why) {
      refused.set(Number(r.id), `gc refused: ${why}`.slice(0, 2000));
      logger.warn('garbage collection refused a location outside the storage roots; not removed', { file: Number(r.id), error: why });
      continue;
    }
    try {
      for (const u of targets) {
        await transfers.remove(u);
        result.removed++;
      }
    } catch (e) {
      errors.set(Number(r.id), `gc: ${coerceError(e).message}`.slice(0, 2000));
      logger.warn('garbage collection could not remove a file; will retry', { file: Number(r.id), urls: targets.map(redactUrl), error: coerceError(e).message });
      continue;
    }
    if (temp || r.state !== FileState.VERIFIED) deleted.push(Number(r.id));
    else tempGone.push(Number(r.id));
  }
  for (const ids of chunk(deleted, 500)) await db('file').whereIn('id', ids).update({ state: FileState.DELETED, temp_url: null, updated_at: now });
  for (const ids of chunk(tempGone, 500)) await db('file').whereIn('id', ids).update({ temp_url: null, updated_at: now });
  for (const [id, error] of errors) await db('file').where({ id }).update({ error, updated_at: now });
  for (const [id, error] of refused) await db('file').where({ id }).update({ state: FileState.REFUSED, error, updated_at: now });
  result.cleaned = deleted.length + tempGone.length;
  result.failed = errors.size;
  result.refused = refused.size;
  if (result.cleaned || result.failed || result.refused) logger.info('garbage collected', { ...result });
  return result;
}
