import fs from 'node:fs';
import {
  HTTP_LIMIT_DEFAULTS, connect, createRpcServer, httpLimitsOf, nullLogger, purgeExpiredTokens, serverUrl,
  type Db, type FirnConfig, type Logger, type RpcServer,
} from '@firn/core';
import { authMethods } from './auth';
import { trayConfigOf, trayVersion, type Methods, type TrayContext } from './context';
import { datasetMethods } from './datasets';
import { gridMethods } from './grids';
import { gridHoleMethods } from './grid-holes';
import { jobMethods } from './jobs';
import { LdapAuthenticator } from './ldap';
import { LoginLimiter, loginLimitsOf } from './login-limiter';
import { submitMethods } from './submit';
import { dbHealthy, systemMethods } from './system';
import { userMethods } from './users';
import { whyMethods } from './why';

export interface TrayOptions {
  config: FirnConfig;
  /** An open, migrated database (tests); otherwise [db] url is connected and migrated. */
  db?: Db;
  logger?: Logger;
}

export interface Tray {
  /** Where it listens, e.g. https://127.0.0.1:8580 */
  url: string;
  ctx: TrayContext;
  server: RpcServer;
  /** Stop accepting, finish calls in flight, close the database (if the tray opened it). */
  close(): Promise<void>;
}

export function createTrayContext(config: FirnConfig, db: Db, logger: Logger): TrayContext {
  const tray = trayConfigOf(config);
  return {
    db,
    tray,
    logger,
    limiter: new LoginLimiter(loginLimitsOf(tray)),
    ldap: tray.ldap_url
      ? new LdapAuthenticator({ url: tray.ldap_url, bindDnTemplate: tray.ldap_bind_dn, caFile: tray.ldap_tls_ca, logger })
      : null,
    version: trayVersion(),
    startedAt: Date.now(),
  };
}

/** Every firn-tray JSON-RPC method (ARCHITECTURE.md "RPC"). */
export function trayMethods(ctx: TrayContext): Methods {
  return {
    ...authMethods(ctx),
    ...submitMethods(ctx),
    ...datasetMethods(ctx),
    ...jobMethods(ctx),
    ...gridMethods(ctx),
    ...gridHoleMethods(ctx),
    ...whyMethods(ctx),
    ...userMethods(ctx),
    ...systemMethods(ctx),
  };
}

/** Start firn-tray: HTTP, or HTTPS when [tray] tls_cert / tls_key are set. */
export async function startTray(options: TrayOptions): Promise<Tray> {
  const logger = (options.logger ?? nullLogger).scope({ daemon: 'tray' });
  const { config } = options;
  const fetchCa = trayConfigOf(config).fetch_ca;
  if (fetchCa !== undefined) fs.accessSync(fetchCa, fs.constants.R_OK); // fail at start, not at the first submission
  const ownDb = !options.db;
  const db = options.db ?? (await connect(config.db.url, { poolMax: config.db.pool_max }));
  const ctx = createTrayContext(config, db, logger);
  let server: RpcServer;
  try {
    server = await createRpcServer({
      name: 'tray',
      logger,
      bodyLimit: config.tray.body_limit,
      limits: httpLimitsOf(config.tray, HTTP_LIMIT_DEFAULTS.tray),
      tls: config.tray.tls_cert && config.tray.tls_key ? { cert: config.tray.tls_cert, key: config.tray.tls_key } : undefined,
      methods: trayMethods(ctx),
      health: async () => ({ db: (await dbHealthy(ctx)) ? 'ok' : 'error' }),
    });
    await server.listen(config.tray.port, config.tray.host);
  } catch (e) {
    if (ownDb) await db.destroy();
    throw e;
  }
  const address = server.app.server.address();
  const port = address && typeof address === 'object' ? address.port : config.tray.port;
  const url = serverUrl({ ...config.tray, port, url: undefined });
  logger.info('firn-tray listening', { url, tls: Boolean(config.tray.tls_cert) });
  // expired tokens are useless: drop them hourly (and once at start)
  const purge = () =>
    purgeExpiredTokens(db).then(
      (n) => (n ? logger.debug('expired tokens purged', { count: n }) : undefined),
      (e: unknown) => logger.warn('purging expired tokens failed', { error: String(e) }),
    );
  void purge();
  const purgeTimer = setInterval(() => void purge(), 3600_000);
  purgeTimer.unref();
  let closed: Promise<void> | null = null;
  return {
    url,
    ctx,
    server,
    close() {
      closed ??= (async () => {
        clearInterval(purgeTimer);
        await server.close();
        if (ownDb) await db.destroy();
        logger.info('firn-tray stopped');
      })();
      return closed;
    },
  };
}
