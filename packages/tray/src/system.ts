import { isMysql, migrationStatus, type RpcContext } from '@firn/core';
import type { Methods, TrayContext } from './context';

/** Is the database answering? */
export async function dbHealthy(ctx: TrayContext): Promise<boolean> {
  try {
    await ctx.db.raw('SELECT 1');
    return true;
  } catch {
    return false;
  }
}

export function systemMethods(ctx: TrayContext): Methods {
  return {
    'system.health': {
      handler: async (_p: Record<string, never>, _rpc: RpcContext) => {
        const ok = await dbHealthy(ctx);
        return { status: ok ? 'ok' : 'degraded', db: ok ? 'ok' : 'error', uptime_seconds: Math.round((Date.now() - ctx.startedAt) / 1000) };
      },
    },
    'system.version': {
      handler: async (_p: Record<string, never>, _rpc: RpcContext) => {
        const m = await migrationStatus(ctx.db);
        return { name: 'firn-tray', version: ctx.version, node: process.version, migrations: m.applied, db: isMysql(ctx.db) ? 'mysql' : 'sqlite' };
      },
    },
  };
}
