import type { Knex } from 'knex';

/**
 * 0003 — the web monitor's charts count task transitions by (from, to) and time (issue 8):
 * - history (dataset_id, entity, from_status, to_status, created_at): each (transition, time
 *   bucket) of a dataset is one range of this index, counted without reading a row, sorting or
 *   grouping (a window of a month of a 1M-task dataset is ~5.5M rows);
 * - it replaces 0002's history (dataset_id, entity, created_at, from_status, to_status), which
 *   only the charts read, so every history insert still maintains the same number of indexes.
 * Forward-only, like every migration.
 */
export async function up(knex: Knex): Promise<void> {
  await knex.schema.alterTable('history', (t) => {
    t.index(['dataset_id', 'entity', 'from_status', 'to_status', 'created_at'], 'history_dataset_flow_idx');
  });
  await knex.schema.alterTable('history', (t) => {
    t.dropIndex([], 'history_dataset_entity_time_idx');
  });
}

export async function down(): Promise<void> {
  throw new Error('migrations are forward-only');
}
