import { actorOf, createUser, listUsers, recordHistory, setUserRole, type Role, type RpcContext } from '@firn/core';
import { caller, type Methods, type TrayContext } from './context';

export function userMethods(ctx: TrayContext): Methods {
  return {
    'user.add': {
      handler: async (p: { username: string; role: Role; password?: string; source?: 'local' | 'ldap' }, rpc: RpcContext) => {
        const admin = await caller(ctx, rpc, 'admin');
        const user = await createUser(ctx.db, { username: p.username, role: p.role, password: p.password ?? null, source: p.source ?? 'local' });
        await recordHistory(ctx.db, { entity: 'user', entityId: user.id, action: 'add', to: user.role, actor: actorOf(admin), reason: `source ${user.source}` });
        ctx.logger.info('user added', { username: user.username, role: user.role, by: admin.username });
        return { user };
      },
    },
    'user.list': {
      handler: async (_p: Record<string, never>, rpc: RpcContext) => {
        await caller(ctx, rpc, 'admin');
        return { users: await listUsers(ctx.db) };
      },
    },
    'user.set_role': {
      handler: async (p: { username: string; role: Role }, rpc: RpcContext) => {
        const admin = await caller(ctx, rpc, 'admin');
        const before = (await ctx.db('user').select('role').where({ username: p.username }).first()) as { role: string } | undefined;
        const user = await setUserRole(ctx.db, p.username, p.role);
        await recordHistory(ctx.db, { entity: 'user', entityId: user.id, action: 'set_role', from: before?.role ?? null, to: user.role, actor: actorOf(admin) });
        ctx.logger.info('user role changed', { username: user.username, role: user.role, by: admin.username });
        return { user };
      },
    },
  };
}
