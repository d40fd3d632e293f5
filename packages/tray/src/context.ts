import fs from 'node:fs';
import path from 'node:path';
import {
  ForbiddenError, StorageRoots, authenticate, getDatasetOwner, hasRole, requireRole,
  type AuthUser, type Db, type DbOrTrx, type FirnConfig, type Logger, type Role, type RpcContext, type RpcMethod, type TraySection,
} from '@firn/core';
import type { LdapAuthenticator } from './ldap';
import type { LoginLimiter } from './login-limiter';

/**
 * [tray] keys firn-tray reads beyond the core TraySection: `fetch_ca` (PEM CA file trusted when
 * fetching external modules, e.g. a private CA) and `fetch_max_bytes` (largest module accepted).
 */
export interface TrayConfig extends TraySection {
  fetch_ca?: string;
  fetch_max_bytes: number;
  /** `[system] site_temp` and `[dh] destinations`: where a dataset's outputs may go (dataset.submit checks). */
  roots?: StorageRoots;
}

export const DEFAULT_FETCH_MAX_BYTES = 16 * 1024 * 1024;

export function trayConfigOf(config: FirnConfig): TrayConfig {
  const t = config.tray as TrayConfig;
  return { ...t, fetch_max_bytes: t.fetch_max_bytes ?? DEFAULT_FETCH_MAX_BYTES, roots: StorageRoots.fromConfig(config) };
}

/** What every tray method needs. */
export interface TrayContext {
  db: Db;
  tray: TrayConfig;
  logger: Logger;
  limiter: LoginLimiter;
  ldap: LdapAuthenticator | null;
  version: string;
  startedAt: number;
}

export type Methods = Record<string, RpcMethod>;

/** The caller behind the bearer token, holding at least `role` (-32001 without a valid token, -32003 without the role). */
export async function caller(ctx: TrayContext, rpc: RpcContext, role: Role): Promise<AuthUser> {
  const user = await authenticate(ctx.db, rpc.token);
  requireRole(user, role, rpc.method || 'this method');
  return user;
}

/**
 * May this user control the dataset? A manager controls their own datasets, an admin all.
 * -32004 when it does not exist, -32003 when it belongs to someone else.
 */
export async function controllableDataset(db: DbOrTrx, user: AuthUser, datasetId: number): Promise<{ id: number; owner_id: number | null; status: string; type: string }> {
  requireRole(user, 'manager', 'controlling a dataset');
  const ds = await getDatasetOwner(db, datasetId);
  if (!hasRole(user.role, 'admin') && ds.owner_id !== user.id) {
    throw new ForbiddenError(`dataset ${datasetId} belongs to another user: only its owner or an admin may change it`);
  }
  return ds;
}

/** The version in packages/tray/package.json (works from src/ and dist/). */
export function trayVersion(): string {
  try {
    const pkg = JSON.parse(fs.readFileSync(path.join(__dirname, '..', 'package.json'), 'utf8')) as { version?: string };
    return pkg.version ?? '0.0.0';
  } catch {
    return '0.0.0';
  }
}
