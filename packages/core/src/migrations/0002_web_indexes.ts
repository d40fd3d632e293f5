import type { Knex } from 'knex';

/**
 * 0002 — indexes for the web monitor's aggregate queries (issue 8), so that its pages stay fast
 * on datasets of a million tasks:
 * - task (dataset_id, grid_id, status): a dataset's tasks by site and status in one covering
 *   index scan (the dataset view's per-site breakdown and its status counts);
 * - history (dataset_id, entity, created_at, from_status, to_status): a dataset's task
 *   transitions in a time window in one covering range scan (completion, errors and tasks by
 *   state over time).
 * Forward-only, like every migration.
 */
export async function up(knex: Knex): Promise<void> {
  await knex.schema.alterTable('task', (t) => {
    t.index(['dataset_id', 'grid_id', 'status'], 'task_dataset_grid_status_idx');
  });
  await knex.schema.alterTable('history', (t) => {
    t.index(['dataset_id', 'entity', 'created_at', 'from_status', 'to_status'], 'history_dataset_entity_time_idx');
  });
}

export async function down(): Promise<void> {
  throw new Error('migrations are forward-only');
}
