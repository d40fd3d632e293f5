import type { Knex } from 'knex';

/**
 * 0005 — one execution per attempt (issue 15):
 * - task.attempt: the random start nonce of the pilot whose `pilot.start` moved the task
 *   QUEUED → PROCESSING (firn-mon). Another pilot holding the same passkey (the same batch
 *   job submitted twice, or started twice) presents a different nonce and is refused with
 *   -32009; a retried start of the same pilot presents the same nonce and gets the same answer.
 *   Written again by the next attempt's start; NULL for pilots that send none.
 * - task.claimed_by: which firn-queue instance (`<host>:<submit_dir>`, the holder of that
 *   submit directory's lock) holds the claim of a QUEUEING task. A restarted daemon gives
 *   back its own claims that never reached the batch system at once, instead of waiting for
 *   their lease to expire. NULL for claims made before this migration.
 * Forward-only, like every migration.
 */
export const ATTEMPT_MAX = 64;
export const CLAIMED_BY_MAX = 255;

export async function up(knex: Knex): Promise<void> {
  await knex.schema.alterTable('task', (t) => {
    t.string('attempt', ATTEMPT_MAX).nullable();
    t.string('claimed_by', CLAIMED_BY_MAX).nullable();
  });
}

export async function down(): Promise<void> {
  throw new Error('migrations are forward-only');
}
