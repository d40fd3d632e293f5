/**
 * Black holes, seen and ended by people: `grid.holes` lists the worker nodes firn-dh excluded
 * (node.blackholed_until in the future) with why and until when; `grid.clear_hole` ends one
 * node's exclusion at once (admin), with a history row. firn-dh decides black holes
 * (packages/dh/src/blackholes.ts); this is the only place that lifts one early.
 */
import { NotFoundError, actorOf, clearBlackhole, getGrid, listBlackholes, now, getDatasetOwner, recordHistory, withTransaction, type RpcContext } from '@firn/core';
import { caller, type Methods, type TrayContext } from './context';

export function gridHoleMethods(ctx: TrayContext): Methods {
  return {
    'grid.holes': {
      handler: async (p: { grid?: string; dataset_id?: number }, rpc: RpcContext) => {
        await caller(ctx, rpc, 'viewer');
        let gridIds: number[] | undefined;
        if (p.grid !== undefined) gridIds = [(await getGrid(ctx.db, p.grid)).id];
        if (p.dataset_id !== undefined) {
          await getDatasetOwner(ctx.db, p.dataset_id); // NotFoundError for an unknown dataset
          const rows: Array<{ grid_id: number }> = await ctx.db('dataset_grid').select('grid_id').where('dataset_id', p.dataset_id);
          const ofDataset = rows.map((r) => Number(r.grid_id));
          gridIds = gridIds ? gridIds.filter((id) => ofDataset.includes(id)) : ofDataset;
        }
        return listBlackholes(ctx.db, now(), gridIds);
      },
    },
    'grid.clear_hole': {
      handler: async (p: { grid: string | null; node: string }, rpc: RpcContext) => {
        const user = await caller(ctx, rpc, 'admin');
        const gridId = p.grid === null ? null : (await getGrid(ctx.db, p.grid)).id;
        const t = now();
        const r = await withTransaction(ctx.db, async (trx) => {
          const cleared = await clearBlackhole(trx, gridId, p.node, t);
          if (!cleared) throw new NotFoundError(`no node ${JSON.stringify(p.node)} on ${p.grid === null ? 'no grid' : `grid ${JSON.stringify(p.grid)}`}`);
          if (cleared.wasBlackholed) {
            await recordHistory(trx, {
              entity: 'node', entityId: cleared.id, action: 'clear_hole', actor: actorOf(user),
              reason: `${p.node}: black hole cleared by hand (was excluded until ${new Date(cleared.until!).toISOString()})`,
            });
          }
          return cleared;
        });
        if (r.wasBlackholed) ctx.logger.info('black hole cleared', { grid: p.grid, node: p.node, by: user.username });
        return { grid: p.grid, node: p.node, cleared: r.wasBlackholed };
      },
    },
  };
}
