/**
 * The benches' claimable work: `tasks` WAITING tasks (one per job) of one PROCESSING dataset
 * assigned to one grid, written with multi-row inserts and one INSERT … SELECT (MySQL/MariaDB).
 */
import { chunk, type Db } from '@firn/core';

export async function seedWaitingTasks(db: Db, tasks: number, gridName: string, description: string): Promise<{ gridId: number; gridName: string }> {
  const t = Date.now();
  await db('grid').insert({ name: gridName, plugin: 'slurm', capabilities: '{}', status: 'enabled', created_at: t });
  const gridId = Number(((await db('grid').where('name', gridName).first()) as { id: number }).id);
  const [datasetId = 0] = (await db('dataset').insert({
    description, status: 'PROCESSING', priority: 0, tasks_per_job: 1, config: '{}', config_hash: '0'.repeat(64),
    created_at: t, updated_at: t, jobs_submitted: tasks,
  })) as number[];
  const [relId = 0] = (await db('task_rel').insert({ dataset_id: datasetId, task_index: 0, name: 'main', requirements: '{}' })) as number[];
  await db('dataset_grid').insert({ dataset_id: datasetId, grid_id: gridId });
  await db.transaction(async (trx) => {
    for (const part of chunk(Array.from({ length: tasks }, (_, i) => i), 2000)) {
      await trx('job').insert(part.map((i) => ({ dataset_id: datasetId, job_index: i, status: 'PROCESSING', status_changed_at: t })));
    }
  });
  await db.raw(
    `INSERT INTO task (dataset_id, job_id, task_rel_id, task_index, name, status, status_changed_at)
     SELECT dataset_id, id, ?, 0, 'main', 'WAITING', ? FROM job WHERE dataset_id = ? ORDER BY id`,
    [relId, t, datasetId],
  );
  await db.raw('ANALYZE TABLE task');
  return { gridId, gridName };
}
