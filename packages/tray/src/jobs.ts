import {
  DatasetStatus, ForbiddenError, NotFoundError, TaskStatus, actorOf, deriveJobStatus, getJob, getTask, getTaskLogs,
  hasRole, listJobs, now, recordHistory, withTransaction,
  type AuthUser, type JobStatus, type RpcContext, type Trx,
} from '@firn/core';
import { caller, controllableDataset, type Methods, type TrayContext } from './context';
import { RESET_COUNTERS, resetTasks, suspendTasks, type ControlOutcome } from './control';
import { assertLive, type ControlResult } from './datasets';

export interface Requirements { cpu?: number; gpu?: number; memory?: number; disk?: number; time?: number; site?: string | null }

/** req_* columns for the requirements given (only those named). */
export function requirementColumns(r: Requirements | undefined): Record<string, unknown> {
  if (!r) return {};
  const out: Record<string, unknown> = {};
  if (r.cpu !== undefined) out.req_cpu = r.cpu;
  if (r.gpu !== undefined) out.req_gpu = r.gpu;
  if (r.memory !== undefined) out.req_memory = r.memory;
  if (r.disk !== undefined) out.req_disk = r.disk;
  if (r.time !== undefined) out.req_time = r.time;
  if (r.site !== undefined) out.req_site = r.site;
  return out;
}

async function jobRow(trx: Trx, datasetId: number, jobIndex: number): Promise<{ id: number }> {
  const row = (await trx('job').select('id').where({ dataset_id: datasetId, job_index: jobIndex }).first()) as { id: number } | undefined;
  if (!row) throw new NotFoundError(`no job ${jobIndex} in dataset ${datasetId}`);
  return { id: Number(row.id) };
}

async function jobStatus(trx: Trx, jobId: number): Promise<JobStatus> {
  const rows = (await trx('task').select('status').where({ job_id: jobId })) as Array<{ status: TaskStatus }>;
  return deriveJobStatus(rows.map((r) => r.status));
}

type JobAction = 'suspend' | 'resume' | 'reset';

/** job.suspend / job.resume / job.reset: one job's tasks, with a job history row. */
export async function controlJob(
  ctx: TrayContext, user: AuthUser, p: { dataset_id: number; job_index: number; reason?: string; requirements?: Requirements; include_ok?: boolean }, action: JobAction,
): Promise<ControlResult> {
  const actor = actorOf(user);
  const isAdmin = hasRole(user.role, 'admin');
  if (p.include_ok && !isAdmin) throw new ForbiddenError('resetting OK tasks (include_ok) needs role admin');
  return withTransaction(ctx.db, async (trx) => {
    const ds = await controllableDataset(trx, user, p.dataset_id);
    // an OBSOLETE dataset takes one change: an admin's reset (as dataset.reset)
    assertLive(ds, { action, user });
    const job = await jobRow(trx, p.dataset_id, p.job_index);
    const scope = { datasetId: p.dataset_id, jobId: job.id };
    const before = await jobStatus(trx, job.id);
    const reason = p.reason ?? null;
    let outcome: ControlOutcome;
    if (action === 'suspend') {
      outcome = { changed: await suspendTasks(trx, scope, actor, reason), waiting: 0, idle: 0 };
    } else {
      const from = action === 'resume'
        ? [TaskStatus.SUSPENDED]
        : [TaskStatus.FAILED, TaskStatus.ERROR, TaskStatus.SUSPENDED, ...(p.include_ok ? [TaskStatus.OK] : [])];
      // re-running OK tasks re-runs what follows them: hold the whole job first
      if (p.include_ok) await suspendTasks(trx, scope, actor, reason);
      const set = action === 'reset' ? { ...RESET_COUNTERS, ...requirementColumns(p.requirements) } : undefined;
      outcome = await resetTasks(trx, scope, from, { actor, reason, isAdmin, set });
      // a job brought back to life makes a stopped dataset schedulable again
      if (outcome.changed > 0 && ([DatasetStatus.SUSPENDED, DatasetStatus.COMPLETE, DatasetStatus.ERRORS, DatasetStatus.OBSOLETE] as string[]).includes(ds.status)) {
        await trx('dataset').where({ id: ds.id }).update({ status: DatasetStatus.PROCESSING, updated_at: now() });
        await recordHistory(trx, { entity: 'dataset', entityId: ds.id, datasetId: ds.id, action, from: ds.status, to: DatasetStatus.PROCESSING, actor, reason: `job ${p.job_index} ${action}` });
      }
    }
    const after = await jobStatus(trx, job.id);
    await trx('job').where({ id: job.id }).update({ status: after, status_changed_at: now() });
    const req = p.requirements ? ` requirements ${JSON.stringify(p.requirements)}` : '';
    await recordHistory(trx, {
      entity: 'job', entityId: job.id, datasetId: p.dataset_id, action, from: before, to: after, actor,
      reason: `${outcome.changed} tasks${req}${p.reason ? `: ${p.reason}` : ''}`,
    });
    ctx.logger.info(`job ${action}`, { dataset: p.dataset_id, job: p.job_index, tasks: outcome.changed, by: user.username });
    return { dataset_id: p.dataset_id, job_index: p.job_index, status: after, ...outcome };
  });
}

export function jobMethods(ctx: TrayContext): Methods {
  return {
    'job.list': {
      handler: async (p: { dataset_id: number; status?: JobStatus; limit?: number; offset?: number }, rpc: RpcContext) => {
        await caller(ctx, rpc, 'viewer');
        return { jobs: await listJobs(ctx.db, p.dataset_id, p) };
      },
    },
    'job.get': {
      handler: async (p: { dataset_id: number; job_index: number }, rpc: RpcContext) => {
        await caller(ctx, rpc, 'viewer');
        return getJob(ctx.db, p.dataset_id, p.job_index);
      },
    },
    'job.suspend': { handler: async (p, rpc: RpcContext) => controlJob(ctx, await caller(ctx, rpc, 'manager'), p, 'suspend') },
    'job.resume': { handler: async (p, rpc: RpcContext) => controlJob(ctx, await caller(ctx, rpc, 'manager'), p, 'resume') },
    'job.reset': { handler: async (p, rpc: RpcContext) => controlJob(ctx, await caller(ctx, rpc, 'manager'), p, 'reset') },
    'task.get': {
      handler: async (p: { task_id: number }, rpc: RpcContext) => {
        await caller(ctx, rpc, 'viewer');
        return { task: await getTask(ctx.db, p.task_id) };
      },
    },
    'task.logs': {
      handler: async (p: { task_id: number; name?: string }, rpc: RpcContext) => {
        await caller(ctx, rpc, 'viewer');
        return { logs: await getTaskLogs(ctx.db, p.task_id, p.name) };
      },
    },
  };
}
