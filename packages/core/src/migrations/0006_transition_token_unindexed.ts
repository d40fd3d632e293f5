import type { Knex } from 'knex';

/**
 * 0006 — drops `task_transition_token_idx` (issue 16: cheaper transitions).
 *
 * transition() writes a fresh `transition_token` on every row it moves, so InnoDB kept this
 * index up to date on every status change of every task — one of the five secondary indexes
 * a transition touches — while every read of the token also names the rows by primary key
 * (`WHERE id IN (…) AND transition_token = ?`, to learn which of them changed and to write
 * their history rows): the primary key finds them, the token only filters. So the index cost
 * every transition and served no query. Forward-only, like every migration.
 */
export async function up(knex: Knex): Promise<void> {
  await knex.schema.alterTable('task', (t) => {
    t.dropIndex(['transition_token'], 'task_transition_token_idx');
  });
}

export async function down(): Promise<void> {
  throw new Error('migrations are forward-only');
}
