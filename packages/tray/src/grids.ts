import {
  ConflictError, GRID_ACTIVE_STATUSES, actorOf, checkName, getGrid, listGrids, now, recordHistory, withTransaction, type RpcContext,
} from '@firn/core';
import { caller, type Methods, type TrayContext } from './context';

export interface GridCapabilities { cpu?: number; gpu?: number; memory?: number; disk?: number; time?: number; site?: string }

function isDuplicate(e: unknown): boolean {
  const code = (e as { code?: string }).code ?? '';
  return code === 'ER_DUP_ENTRY' || code.startsWith('SQLITE_CONSTRAINT');
}

export function gridMethods(ctx: TrayContext): Methods {
  return {
    'grid.list': {
      handler: async (_p: Record<string, never>, rpc: RpcContext) => {
        await caller(ctx, rpc, 'viewer');
        return { grids: await listGrids(ctx.db) };
      },
    },
    'grid.add': {
      handler: async (p: { name: string; plugin: string; capabilities?: GridCapabilities; status?: 'enabled' | 'disabled' }, rpc: RpcContext) => {
        const user = await caller(ctx, rpc, 'admin');
        const name = checkName('grid', p.name); // the schema's firn-grid-name format, also for in-process callers
        try {
          await ctx.db('grid').insert({
            name, plugin: p.plugin, capabilities: JSON.stringify(p.capabilities ?? {}), status: p.status ?? 'enabled', created_at: now(),
          });
        } catch (e) {
          if (isDuplicate(e)) throw new ConflictError(`grid ${JSON.stringify(p.name)} already exists`);
          throw e;
        }
        const grid = await getGrid(ctx.db, p.name);
        await recordHistory(ctx.db, { entity: 'grid', entityId: grid.id, action: 'add', to: grid.status, actor: actorOf(user), reason: `plugin ${grid.plugin}` });
        ctx.logger.info('grid added', { grid: grid.name, plugin: grid.plugin, by: user.username });
        return { grid };
      },
    },
    'grid.set_status': {
      handler: async (p: { name: string; status: 'enabled' | 'disabled' }, rpc: RpcContext) => {
        const user = await caller(ctx, rpc, 'admin');
        const before = await getGrid(ctx.db, p.name);
        await ctx.db('grid').where({ id: before.id }).update({ status: p.status });
        await recordHistory(ctx.db, { entity: 'grid', entityId: before.id, action: 'set_status', from: before.status, to: p.status, actor: actorOf(user) });
        ctx.logger.info('grid status changed', { grid: p.name, status: p.status, by: user.username });
        return { grid: await getGrid(ctx.db, p.name) };
      },
    },
    'grid.remove': {
      handler: async (p: { name: string }, rpc: RpcContext) => {
        const user = await caller(ctx, rpc, 'admin');
        const grid = await getGrid(ctx.db, p.name);
        await withTransaction(ctx.db, async (trx) => {
          const active = (await trx('task').where({ grid_id: grid.id }).whereIn('status', GRID_ACTIVE_STATUSES).count({ n: '*' }).first()) as { n: number | string };
          if (Number(active.n) > 0) {
            throw new ConflictError(`grid ${JSON.stringify(p.name)} still has ${Number(active.n)} queued or running tasks: disable it and wait, or suspend them`);
          }
          await trx('task').where({ grid_id: grid.id }).update({ grid_id: null });
          await trx('node').where({ grid_id: grid.id }).update({ grid_id: null });
          await trx('grid').where({ id: grid.id }).delete();
          await recordHistory(trx, { entity: 'grid', entityId: grid.id, action: 'remove', from: grid.status, actor: actorOf(user) });
        });
        ctx.logger.info('grid removed', { grid: p.name, by: user.username });
        return { removed: p.name };
      },
    },
  };
}
