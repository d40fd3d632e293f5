import type { Knex } from 'knex';

/**
 * 0007 — why a queued task is not running, in the batch system's words (issue 18):
 * task.batch_reason is what the batch system says of the task's pending job, recorded by
 * firn-queue every cycle (Slurm `squeue %r` such as `Priority`, `Resources`, `BadConstraints`;
 * SGE's scheduling info from `qstat -j`; HTCondor's `condor_q -better-analyze` summary), NULL
 * when it gives none or the job is not pending. Read by `task.why` / `firn why` for QUEUED
 * tasks only; cleared when the task is (re)submitted.
 * Forward-only, like every migration.
 */
export const BATCH_REASON_MAX = 255;

export async function up(knex: Knex): Promise<void> {
  await knex.schema.alterTable('task', (t) => {
    t.string('batch_reason', BATCH_REASON_MAX).nullable();
  });
}

export async function down(): Promise<void> {
  throw new Error('migrations are forward-only');
}
