import type { Knex } from 'knex';

/**
 * 0004 — `task_flow`, the charts' pre-aggregated task transitions (issue 8), and its watermark:
 * - task_flow (dataset_id, span_ms, bucket_start, from_status, to_status) → n: task transitions
 *   of a dataset per bucket of 5 minutes, 1 hour and 1 day (core task-flow.ts);
 * - task_flow_state: one row, `history_id`: every counted history row has an id ≤ it, every
 *   history row ≤ it is counted; `seen_id` / `seen_at`: the newest history id seen by the last
 *   roll-up and the database server's time then (ms), from which the next one may count;
 * - drops 0003's history (dataset_id, entity, from_status, to_status, created_at) index, which
 *   only the charts read: every history insert maintains one index fewer.
 * Forward-only, like every migration.
 */
export async function up(knex: Knex): Promise<void> {
  // MySQL/MariaDB: InnoDB, utf8mb4 with the binary collation, as every table of 0001
  const mysql = knex.client.config.client === 'mysql2';
  const engine = (t: Knex.CreateTableBuilder) => mysql && [t.engine('InnoDB'), t.charset('utf8mb4'), t.collate('utf8mb4_bin')];
  // Derived from history, like history without a foreign key to dataset.
  await knex.schema.createTable('task_flow', (t) => {
    engine(t);
    t.integer('dataset_id').notNullable();
    t.integer('span_ms').unsigned().notNullable();
    t.bigInteger('bucket_start').notNullable();
    t.string('from_status', 16).notNullable();
    t.string('to_status', 16).notNullable();
    t.bigInteger('n').notNullable();
    t.primary(['dataset_id', 'span_ms', 'bucket_start', 'from_status', 'to_status']);
  });
  await knex.schema.createTable('task_flow_state', (t) => {
    engine(t);
    t.integer('id').unsigned().notNullable().primary();
    t.bigInteger('history_id').notNullable();
    t.bigInteger('seen_id').notNullable();
    t.bigInteger('seen_at').notNullable();
  });
  await knex('task_flow_state').insert({ id: 1, history_id: 0, seen_id: 0, seen_at: 0 });
  await knex.schema.alterTable('history', (t) => {
    t.dropIndex([], 'history_dataset_flow_idx');
  });
}

export async function down(): Promise<void> {
  throw new Error('migrations are forward-only');
}
