import fs from 'node:fs';
import path from 'node:path';
import {
  ConfigError, ForbiddenError, StorageRoots, authenticate, getDatasetOwner, hasRole, requireRole,
  type AuthUser, type Db, type DbOrTrx, type FirnConfig, type Logger, type Role, type RpcContext, type RpcMethod, type TraySection,
} from '@firn/core';
import type { LdapAuthenticator } from './ldap';
import type { LoginLimiter } from './login-limiter';

/**
 * [tray] keys firn-tray reads beyond the core TraySection: `fetch_ca` (PEM CA file trusted when
 * fetching external modules, e.g. a private CA), `fetch_max_bytes` (largest module accepted),
 * `fetch_max_total_bytes` (all modules of one submission) and `fetch_allow_private`.
 */
export interface TrayConfig extends TraySection {
  fetch_ca?: string;
  fetch_max_bytes: number;
  fetch_max_total_bytes: number;
  /** Fetch modules from loopback/private addresses too (default false). */
  fetch_allow_private: boolean;
  /** `[system] site_temp` and `[dh] destinations`: where a dataset's outputs may go (dataset.submit checks). */
  roots?: StorageRoots;
}

/** 6 MiB: a module's INSERT (escaped, so up to twice that) stays under MySQL's default 16 MiB max_allowed_packet. */
export const DEFAULT_FETCH_MAX_BYTES = 6 * 1024 * 1024;
/** 12 MiB for all modules of one submission (16 MiB minus headroom). */
export const DEFAULT_FETCH_MAX_TOTAL_BYTES = 12 * 1024 * 1024;

export function trayConfigOf(config: FirnConfig): TrayConfig {
  const t = config.tray as TrayConfig;
  const out: TrayConfig = {
    ...t,
    fetch_max_bytes: t.fetch_max_bytes ?? DEFAULT_FETCH_MAX_BYTES,
    fetch_max_total_bytes: t.fetch_max_total_bytes ?? DEFAULT_FETCH_MAX_TOTAL_BYTES,
    fetch_allow_private: t.fetch_allow_private ?? false,
    roots: StorageRoots.fromConfig(config),
  };
  if (out.fetch_max_bytes > out.fetch_max_total_bytes) {
    throw new ConfigError(`[tray] fetch_max_bytes (${out.fetch_max_bytes}) must not exceed fetch_max_total_bytes (${out.fetch_max_total_bytes})`);
  }
  return out;
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
