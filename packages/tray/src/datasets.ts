import {
  ConflictError, DatasetStatus, ForbiddenError, NotFoundError, RulePatternError, TaskStatus, ValidationError, actorOf, compileRulePattern,
  datasetListProgress, datasetStats, datasetStatus, getDataset, getDatasetConfig, hasRole, listDatasets, now, recordHistory, withTransaction,
  type AuthUser, type RpcContext, type RuleMatcher, type Trx,
} from '@firn/core';
import { caller, controllableDataset, type Methods, type TrayContext } from './context';
import { RESET_COUNTERS, resetSelected, resetTasks, suspendTasks, type ControlOutcome, type RequirementChanges } from './control';

/**
 * Datasets that people have retired take no changes (-32009 naming the status): a DELETED one
 * none at all, an OBSOLETE one none but `dataset.reset` by an admin (which brings it back to
 * PROCESSING). Every changing method — suspend, resume, reset, obsolete, set_priority, add_grid,
 * remove_grid, add_jobs and the job.* actions — asks here first.
 */
export function assertLive(ds: { id: number; status: string }, change: { action?: string; user?: AuthUser } = {}): void {
  if (ds.status === DatasetStatus.DELETED) {
    throw new ConflictError(`dataset ${ds.id} is ${ds.status}: it can no longer be changed`);
  }
  if (ds.status === DatasetStatus.OBSOLETE) {
    if (change.action === 'reset' && change.user && hasRole(change.user.role, 'admin')) return;
    throw new ConflictError(`dataset ${ds.id} is ${ds.status}: it takes no changes${change.action ? ` (${change.action})` : ''}; only an admin may reset it`);
  }
}

/** What a control method answers. */
export interface ControlResult extends ControlOutcome {
  dataset_id: number;
  job_index?: number;
  /** Dataset status (dataset methods) or the job's derived status (job methods) afterwards. */
  status: string;
}

async function setDatasetStatus(trx: Trx, id: number, from: string, to: string, action: string, actor: string, reason: string | null): Promise<void> {
  await trx('dataset').where({ id }).update({ status: to, updated_at: now() });
  await recordHistory(trx, { entity: 'dataset', entityId: id, datasetId: id, action, from, to, actor, reason });
}

function why(outcome: ControlOutcome, verb: string, reason: string | undefined): string {
  return `${outcome.changed} tasks ${verb}${reason ? `: ${reason}` : ''}`;
}

/** dataset.suspend — also used by dataset.obsolete. */
export async function suspendDataset(ctx: TrayContext, user: AuthUser, datasetId: number, reason?: string, obsolete = false): Promise<ControlResult> {
  const actor = actorOf(user);
  return withTransaction(ctx.db, async (trx) => {
    const ds = await controllableDataset(trx, user, datasetId);
    assertLive(ds, { action: obsolete ? 'obsolete' : 'suspend', user });
    const changed = await suspendTasks(trx, { datasetId }, actor, reason ?? null);
    const outcome = { changed, waiting: 0, idle: 0 };
    const to = obsolete ? DatasetStatus.OBSOLETE : DatasetStatus.SUSPENDED;
    await setDatasetStatus(trx, datasetId, ds.status, to, obsolete ? 'obsolete' : 'suspend', actor, why(outcome, 'suspended', reason));
    ctx.logger.info(`dataset ${obsolete ? 'obsoleted' : 'suspended'}`, { dataset: datasetId, tasks: changed, by: user.username });
    return { dataset_id: datasetId, status: to, ...outcome };
  });
}

/** dataset.resume / dataset.reset */
export interface DatasetResetOptions {
  includeOk?: boolean;
  reason?: string;
  /** Reset only tasks in these statuses (dataset.reset `status`; OK needs includeOk). */
  status?: TaskStatus[];
  /** Reset only tasks whose error summary matches this RE2 pattern (dataset.reset `match`). */
  match?: string;
  /** New requirements for the reset tasks: absolute or "xF" multipliers (dataset.reset `requirements`). */
  requirements?: RequirementChanges;
}

/**
 * dataset.resume / dataset.reset. A call that changes no task leaves the dataset's status as it
 * was (`unchanged: true`): resuming a COMPLETE dataset does not make it PROCESSING. Only a
 * SUSPENDED dataset (resume) or an OBSOLETE one (an admin's reset) changes status regardless.
 */
export async function resetDataset(
  ctx: TrayContext, user: AuthUser, datasetId: number, mode: 'resume' | 'reset', options: DatasetResetOptions = {},
): Promise<ControlResult & { unchanged?: true }> {
  const actor = actorOf(user);
  const isAdmin = hasRole(user.role, 'admin');
  if (options.includeOk && !isAdmin) {
    throw new ForbiddenError('resetting OK tasks (include_ok) needs role admin');
  }
  if (options.status?.includes(TaskStatus.OK) && !options.includeOk) {
    throw new ValidationError('invalid params', [{ path: '/params/status', message: 'OK tasks are reset only with include_ok (admin)' }]);
  }
  let matcher: RuleMatcher | undefined;
  if (options.match !== undefined) {
    try {
      matcher = compileRulePattern(options.match);
    } catch (e) {
      if (e instanceof RulePatternError) throw new ValidationError('invalid params', [{ path: '/params/match', message: `pattern ${e.message}` }]);
      throw e;
    }
  }
  const selective = Boolean(options.status || matcher || options.requirements);
  return withTransaction(ctx.db, async (trx) => {
    const ds = await controllableDataset(trx, user, datasetId);
    assertLive(ds, { action: mode, user });
    const from: TaskStatus[] =
      mode === 'resume'
        ? [TaskStatus.SUSPENDED]
        : options.status ?? [TaskStatus.FAILED, TaskStatus.ERROR, TaskStatus.SUSPENDED, ...(options.includeOk ? [TaskStatus.OK] : [])];
    // re-running OK tasks re-runs what follows them: hold everything first (WAITING tasks downstream would not wait otherwise)
    if (options.includeOk && from.includes(TaskStatus.OK)) await suspendTasks(trx, { datasetId }, actor, options.reason ?? null);
    const resetOptions = { actor, reason: options.reason ?? null, isAdmin, set: mode === 'reset' ? RESET_COUNTERS : undefined };
    const outcome = mode === 'reset' && selective
      ? await resetSelected(trx, { datasetId }, from, resetOptions, { ...(matcher ? { match: matcher } : {}), ...(options.requirements ? { requirements: options.requirements } : {}) })
      : await resetTasks(trx, { datasetId }, from, resetOptions);
    const revives = ds.status === DatasetStatus.SUSPENDED || ds.status === DatasetStatus.OBSOLETE;
    if (outcome.changed === 0 && !revives && !(options.includeOk && from.includes(TaskStatus.OK))) {
      ctx.logger.info(`dataset ${mode}: nothing to do`, { dataset: datasetId, status: ds.status, by: user.username });
      return { dataset_id: datasetId, status: ds.status, ...outcome, unchanged: true };
    }
    const what = [
      options.status ? `status ${options.status.join(',')}` : '', options.match !== undefined ? `error matching /${options.match}/` : '',
      options.requirements ? `requirements ${JSON.stringify(options.requirements)}` : '',
    ].filter(Boolean).join(', ');
    const reason = [what, options.reason].filter(Boolean).join(': ') || undefined;
    await setDatasetStatus(trx, datasetId, ds.status, DatasetStatus.PROCESSING, mode, actor, why(outcome, mode === 'resume' ? 'resumed' : 'reset', reason));
    ctx.logger.info(`dataset ${mode}`, { dataset: datasetId, tasks: outcome.changed, by: user.username });
    return { dataset_id: datasetId, status: DatasetStatus.PROCESSING, ...outcome };
  });
}

async function gridNames(trx: Trx, datasetId: number): Promise<string[]> {
  const rows = (await trx('dataset_grid as dg').join('grid as g', 'g.id', 'dg.grid_id').where('dg.dataset_id', datasetId).orderBy('g.name').select('g.name')) as Array<{ name: string }>;
  return rows.map((r) => r.name);
}

async function gridId(trx: Trx, name: string): Promise<number> {
  const g = (await trx('grid').select('id').where({ name }).first()) as { id: number } | undefined;
  if (!g) throw new NotFoundError(`no grid ${JSON.stringify(name)}`);
  return Number(g.id);
}

export function datasetMethods(ctx: TrayContext): Methods {
  return {
    'dataset.list': {
      handler: async (p: { status?: DatasetStatus | DatasetStatus[]; owner?: string; limit?: number; offset?: number }, rpc: RpcContext) => {
        await caller(ctx, rpc, 'viewer');
        const datasets = await listDatasets(ctx.db, p);
        // % complete and FAILED tasks of the listed datasets: one grouped query, not one per dataset
        const progress = await datasetListProgress(ctx.db, datasets.map((d) => d.id));
        return { datasets: datasets.map((d) => ({ ...d, progress: progress.get(d.id) })) };
      },
    },
    'dataset.get': {
      handler: async (p: { dataset_id: number }, rpc: RpcContext) => {
        await caller(ctx, rpc, 'viewer');
        return { dataset: await getDataset(ctx.db, p.dataset_id) };
      },
    },
    'dataset.config': {
      handler: async (p: { dataset_id: number }, rpc: RpcContext) => {
        await caller(ctx, rpc, 'viewer');
        return getDatasetConfig(ctx.db, p.dataset_id);
      },
    },
    'dataset.status': {
      handler: async (p: { dataset_id: number }, rpc: RpcContext) => {
        await caller(ctx, rpc, 'viewer');
        return datasetStatus(ctx.db, p.dataset_id);
      },
    },
    'dataset.stats': {
      handler: async (p: { dataset_id: number }, rpc: RpcContext) => {
        await caller(ctx, rpc, 'viewer');
        return { stats: await datasetStats(ctx.db, p.dataset_id) };
      },
    },
    'dataset.suspend': {
      handler: async (p: { dataset_id: number; reason?: string }, rpc: RpcContext) =>
        suspendDataset(ctx, await caller(ctx, rpc, 'manager'), p.dataset_id, p.reason),
    },
    'dataset.obsolete': {
      handler: async (p: { dataset_id: number; reason?: string }, rpc: RpcContext) =>
        suspendDataset(ctx, await caller(ctx, rpc, 'manager'), p.dataset_id, p.reason, true),
    },
    'dataset.resume': {
      handler: async (p: { dataset_id: number; reason?: string }, rpc: RpcContext) =>
        resetDataset(ctx, await caller(ctx, rpc, 'manager'), p.dataset_id, 'resume', { reason: p.reason }),
    },
    'dataset.reset': {
      handler: async (p: { dataset_id: number; include_ok?: boolean; reason?: string; status?: TaskStatus[]; match?: string; requirements?: RequirementChanges }, rpc: RpcContext) =>
        resetDataset(ctx, await caller(ctx, rpc, 'manager'), p.dataset_id, 'reset', {
          includeOk: p.include_ok, reason: p.reason, status: p.status, match: p.match, requirements: p.requirements,
        }),
    },
    'dataset.set_priority': {
      handler: async (p: { dataset_id: number; priority: number; reason?: string }, rpc: RpcContext) => {
        const user = await caller(ctx, rpc, 'manager');
        return withTransaction(ctx.db, async (trx) => {
          assertLive(await controllableDataset(trx, user, p.dataset_id), { action: 'set_priority', user });
          const before = (await trx('dataset').select('priority').where({ id: p.dataset_id }).first()) as { priority: number };
          await trx('dataset').where({ id: p.dataset_id }).update({ priority: p.priority, updated_at: now() });
          await recordHistory(trx, {
            entity: 'dataset', entityId: p.dataset_id, datasetId: p.dataset_id, action: 'priority',
            from: String(before.priority), to: String(p.priority), actor: actorOf(user), reason: p.reason ?? null,
          });
          ctx.logger.info('dataset priority changed', { dataset: p.dataset_id, priority: p.priority, by: user.username });
          return { dataset_id: p.dataset_id, priority: p.priority };
        });
      },
    },
    'dataset.add_grid': {
      handler: async (p: { dataset_id: number; grid: string }, rpc: RpcContext) => {
        const user = await caller(ctx, rpc, 'manager');
        return withTransaction(ctx.db, async (trx) => {
          assertLive(await controllableDataset(trx, user, p.dataset_id), { action: 'add_grid', user });
          const gid = await gridId(trx, p.grid);
          const exists = await trx('dataset_grid').where({ dataset_id: p.dataset_id, grid_id: gid }).first();
          if (!exists) {
            await trx('dataset_grid').insert({ dataset_id: p.dataset_id, grid_id: gid });
            await recordHistory(trx, { entity: 'dataset', entityId: p.dataset_id, datasetId: p.dataset_id, action: 'add_grid', actor: actorOf(user), reason: p.grid });
          }
          return { dataset_id: p.dataset_id, grids: await gridNames(trx, p.dataset_id) };
        });
      },
    },
    'dataset.remove_grid': {
      handler: async (p: { dataset_id: number; grid: string }, rpc: RpcContext) => {
        const user = await caller(ctx, rpc, 'manager');
        return withTransaction(ctx.db, async (trx) => {
          assertLive(await controllableDataset(trx, user, p.dataset_id), { action: 'remove_grid', user });
          const gid = await gridId(trx, p.grid);
          const n = await trx('dataset_grid').where({ dataset_id: p.dataset_id, grid_id: gid }).delete();
          if (n === 0) throw new NotFoundError(`grid ${JSON.stringify(p.grid)} is not assigned to dataset ${p.dataset_id}`);
          await recordHistory(trx, { entity: 'dataset', entityId: p.dataset_id, datasetId: p.dataset_id, action: 'remove_grid', actor: actorOf(user), reason: p.grid });
          return { dataset_id: p.dataset_id, grids: await gridNames(trx, p.dataset_id) };
        });
      },
    },
  };
}
