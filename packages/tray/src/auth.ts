import {
  RateLimitedError, UnauthenticatedError, createUser, findUser, isRole, issueToken, revokeToken, verifyPassword,
  type AuthUser, type RpcContext,
} from '@firn/core';
import { caller, type Methods, type TrayContext } from './context';

/**
 * Check a user name and password: a local user against its scrypt hash; otherwise, when
 * [tray] ldap_url is set, by an LDAP bind (a first LDAP login creates a `user` row with
 * source 'ldap' and [tray] ldap_default_role). Null when refused. Not rate-limited here (auth.login
 * counts attempts first); an unknown user costs one scrypt like a known one, so timing tells nothing.
 * Throws RateLimitedError when too many password checks already wait (core SCRYPT_QUEUE).
 */
export async function checkCredentials(ctx: TrayContext, username: string, password: string): Promise<AuthUser | null> {
  const row = await findUser(ctx.db, username);
  if (row && row.source !== 'ldap') {
    const ok = await verifyPassword(password, row.password_hash);
    if (!ok || Boolean(row.disabled) || !isRole(row.role)) return null;
    return { id: Number(row.id), username: row.username, role: row.role, source: 'local' };
  }
  if (!ctx.ldap) {
    await verifyPassword(password, null); // same time as a real check
    return null;
  }
  if (!(await ctx.ldap.verify(username, password))) return null;
  if (row) {
    if (Boolean(row.disabled) || !isRole(row.role)) return null;
    return { id: Number(row.id), username: row.username, role: row.role, source: 'ldap' };
  }
  let created;
  try {
    created = await createUser(ctx.db, { username, role: ctx.tray.ldap_default_role, source: 'ldap' });
    ctx.logger.info('LDAP user created on first login', { username, role: created.role });
  } catch {
    created = await findUser(ctx.db, username); // a concurrent first login created it
    if (!created || !isRole(created.role)) return null;
  }
  return { id: Number(created.id), username, role: created.role as AuthUser['role'], source: 'ldap' };
}

export function authMethods(ctx: TrayContext): Methods {
  return {
    'auth.login': {
      handler: async (p: { username: string; password: string }, rpc: RpcContext) => {
        // counted before the check (synchronously, before any await): see LoginLimiter
        const attempt = ctx.limiter.begin(p.username, rpc.ip, rpc.perRequest);
        let user: AuthUser | null;
        try {
          user = await checkCredentials(ctx, p.username, p.password);
        } catch (e) {
          if (e instanceof RateLimitedError) attempt.notChecked(); // scrypt queue full: nothing was checked
          throw e;
        }
        if (!user) {
          ctx.logger.info('login refused', { username: p.username, ip: rpc.ip });
          throw new UnauthenticatedError('invalid user name or password');
        }
        attempt.succeeded();
        const t = await issueToken(ctx.db, user.id, ctx.tray.token_ttl);
        ctx.logger.info('login', { username: user.username, role: user.role, source: user.source, ip: rpc.ip });
        return { token: t.token, expires: new Date(t.expiresAt).toISOString(), username: user.username, role: user.role };
      },
    },
    'auth.logout': {
      handler: async (_p: Record<string, never>, rpc: RpcContext) => {
        const user = await caller(ctx, rpc, 'viewer');
        await revokeToken(ctx.db, rpc.token!);
        ctx.logger.info('logout', { username: user.username });
        return { ok: true };
      },
    },
    'auth.whoami': {
      handler: async (_p: Record<string, never>, rpc: RpcContext) => {
        const user = await caller(ctx, rpc, 'viewer');
        return { username: user.username, role: user.role, source: user.source };
      },
    },
  };
}
