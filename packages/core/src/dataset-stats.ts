/**
 * A dataset's statistics (`dataset_stat`: n, sum, sum_sq, min, max per name) count each task's
 * statistics (`task_stat`) exactly once: when the task reaches OK. firn-dh calls
 * `foldTaskStats` in the transaction of COPIED → OK (the one-task lane and the bulk lane);
 * `unfoldTaskStats` takes them out again on the only move that leaves OK (OK → RESET, an
 * admin's reset: firn-tray's resetTasks, for dataset.reset and job.reset), in that move's
 * transaction. A task that fails, is evicted or whose copy
 * fails never reached OK and so never counted; the next attempt's `pilot.start` deletes the
 * rows an earlier attempt left.
 *
 * Both are one or two statements for many tasks, rows locked in (dataset, name) order so two
 * transactions folding into the same dataset cannot deadlock on each other's rows.
 */
import { chunk, isMysql, type DbOrTrx } from './db';

/** Add the statistics of these tasks (which just reached OK) to their datasets' aggregates. */
export async function foldTaskStats(trx: DbOrTrx, taskIds: readonly number[]): Promise<void> {
  if (taskIds.length === 0) return;
  const mysql = isMysql(trx);
  for (const part of chunk([...new Set(taskIds)], 500)) {
    const marks = part.map(() => '?').join(', ');
    const select = `SELECT s.dataset_id, s.name, COUNT(*), SUM(s.value), SUM(s.value * s.value), MIN(s.value), MAX(s.value)
       FROM task_stat s WHERE s.task_id IN (${marks}) GROUP BY s.dataset_id, s.name ORDER BY s.dataset_id, s.name`;
    const sql = mysql
      ? `INSERT INTO dataset_stat (dataset_id, name, n, \`sum\`, sum_sq, \`min\`, \`max\`) ${select}
         ON DUPLICATE KEY UPDATE n = dataset_stat.n + VALUES(n), \`sum\` = dataset_stat.\`sum\` + VALUES(\`sum\`),
         sum_sq = dataset_stat.sum_sq + VALUES(sum_sq), \`min\` = LEAST(dataset_stat.\`min\`, VALUES(\`min\`)),
         \`max\` = GREATEST(dataset_stat.\`max\`, VALUES(\`max\`))`
      : `INSERT INTO dataset_stat (dataset_id, name, n, "sum", sum_sq, "min", "max") ${select}
         ON CONFLICT (dataset_id, name) DO UPDATE SET n = dataset_stat.n + excluded.n, "sum" = dataset_stat."sum" + excluded."sum",
         sum_sq = dataset_stat.sum_sq + excluded.sum_sq, "min" = MIN(dataset_stat."min", excluded."min"), "max" = MAX(dataset_stat."max", excluded."max")`;
    await trx.raw(sql, part);
  }
}

interface Contribution {
  dataset_id: number | string;
  name: string;
  n: number | string;
  s: number | string;
  sq: number | string;
}

/**
 * Take the statistics of these tasks (leaving OK) out of their datasets' aggregates: n, sum and
 * sum_sq are subtracted; min and max are recomputed from the dataset's other OK tasks (they
 * cannot be subtracted); a name no OK task has any more is removed. Call it in the transaction
 * that moves the tasks out of OK (before or after the update: the leaving tasks are left out of
 * min / max by id), with the ids that really moved.
 */
export async function unfoldTaskStats(trx: DbOrTrx, taskIds: readonly number[]): Promise<void> {
  if (taskIds.length === 0) return;
  const ids = [...new Set(taskIds)];
  const contributions: Contribution[] = [];
  for (const part of chunk(ids, 500)) {
    contributions.push(...((await trx('task_stat')
      .select('dataset_id', 'name')
      .count({ n: '*' })
      .sum({ s: 'value' })
      .select(trx.raw('SUM(value * value) as sq'))
      .whereIn('task_id', part)
      .groupBy('dataset_id', 'name')) as unknown as Contribution[]));
  }
  contributions.sort((a, b) => Number(a.dataset_id) - Number(b.dataset_id) || (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  const leaving = new Set(ids);
  for (const c of contributions) {
    const where = { dataset_id: Number(c.dataset_id), name: c.name };
    await trx('dataset_stat').where(where).update({
      n: trx.raw('n - ?', [Number(c.n)]),
      sum: trx.raw(`${isMysql(trx) ? '`sum`' : '"sum"'} - ?`, [Number(c.s)]),
      sum_sq: trx.raw('sum_sq - ?', [Number(c.sq)]),
    });
    // min / max over the OK tasks that stay
    const rest = (await trx('task_stat as s')
      .join('task as t', 't.id', 's.task_id')
      .where({ 's.dataset_id': where.dataset_id, 's.name': c.name, 't.status': 'OK' })
      .whereNotIn('s.task_id', [...leaving].slice(0, 10_000))
      .min({ lo: 's.value' })
      .max({ hi: 's.value' })
      .count({ k: '*' })
      .first()) as { lo: number | null; hi: number | null; k: number | string } | undefined;
    if (!rest || Number(rest.k) === 0) await trx('dataset_stat').where(where).delete();
    else await trx('dataset_stat').where(where).update({ min: rest.lo, max: rest.hi });
  }
}
