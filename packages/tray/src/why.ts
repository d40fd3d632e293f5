/**
 * task.why, job.why, dataset.why (viewer): why tasks are not running, across every layer
 * Firn sees. The logic is core's why.ts (the web monitor calls the same); this only checks
 * the caller.
 */
import { whyTask, whyTasks, type RpcContext } from '@firn/core';
import { caller, type Methods, type TrayContext } from './context';

export function whyMethods(ctx: TrayContext): Methods {
  return {
    'task.why': {
      handler: async (p: { task_id: number }, rpc: RpcContext) => {
        await caller(ctx, rpc, 'viewer');
        return whyTask(ctx.db, p.task_id);
      },
    },
    'job.why': {
      handler: async (p: { dataset_id: number; job_index: number }, rpc: RpcContext) => {
        await caller(ctx, rpc, 'viewer');
        return whyTasks(ctx.db, p.dataset_id, p.job_index);
      },
    },
    'dataset.why': {
      handler: async (p: { dataset_id: number }, rpc: RpcContext) => {
        await caller(ctx, rpc, 'viewer');
        return whyTasks(ctx.db, p.dataset_id, null);
      },
    },
  };
}
