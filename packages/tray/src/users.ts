import {
  ConflictError, actorOf, createUser, isMysql, listUsers, recordHistory, setUserRole, withTransaction,
  type DbOrTrx, type Role, type RpcContext,
} from '@firn/core';
import { caller, type Methods, type TrayContext } from './context';

/**
 * Refuse a change that would leave no enabled admin: nobody could then add users, change roles
 * or reset OK tasks, and only direct database access would repair it. The enabled admins are
 * read with their rows locked (MySQL/MariaDB `FOR UPDATE`; SQLite has one writer), so two
 * admins demoting each other at the same time cannot both succeed.
 */
export async function assertNotLastAdmin(trx: DbOrTrx, username: string, change: string): Promise<void> {
  const q = trx('user').select('username').where({ role: 'admin' }).andWhere((w) => void w.where('disabled', false).orWhereNull('disabled'));
  const admins = (await (isMysql(trx) ? q.forUpdate() : q)) as Array<{ username: string }>;
  if (admins.length === 1 && admins[0]!.username === username) {
    throw new ConflictError(`user ${JSON.stringify(username)} is the last enabled admin: ${change} would leave nobody able to administer firn; make another user admin first`);
  }
}

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
        const { user, before } = await withTransaction(ctx.db, async (trx) => {
          const row = (await trx('user').select('role').where({ username: p.username }).first()) as { role: string } | undefined;
          if (row?.role === 'admin' && p.role !== 'admin') await assertNotLastAdmin(trx, p.username, `making them ${p.role}`);
          const changed = await setUserRole(trx, p.username, p.role);
          await recordHistory(trx, { entity: 'user', entityId: changed.id, action: 'set_role', from: row?.role ?? null, to: changed.role, actor: actorOf(admin) });
          return { user: changed, before: row?.role ?? null };
        });
        ctx.logger.info('user role changed', { username: user.username, from: before, role: user.role, by: admin.username });
        return { user };
      },
    },
  };
}
