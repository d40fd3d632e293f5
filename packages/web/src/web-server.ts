import Fastify, { type FastifyInstance } from 'fastify';
import { HTTP_LIMIT_DEFAULTS, addStrictTransportSecurity, applyHttpLimits, fastifyHttpOptions, httpLimitsOf, migrationStatus, nullLogger, openDb, redactDbUrl, serverUrl, type Db, type FirnConfig, type Logger } from '@firn/core';
import { mountWeb, trayUrlOf, type WebDeps } from './web-routes';

export interface StartWebOptions {
  config: FirnConfig;
  /** Use this database (not closed by close()); otherwise `[db] url` is opened — without migrating. */
  db?: Db;
  logger?: Logger;
  /** Override `[mon] host` / `[mon] port`. */
  host?: string;
  port?: number;
  /** Passed on to mountWeb. */
  web?: Omit<WebDeps, 'db' | 'logger' | 'config'>;
}

export interface RunningWeb {
  app: FastifyInstance;
  url: string;
  db: Db;
  close(): Promise<void>;
}

/**
 * `firn-web`: the web monitor alone, on its own fastify server (for a read-only database account;
 * firn-mon normally serves it). It never migrates: it checks that the schema is current and
 * warns when it is not.
 */
export async function startWeb(options: StartWebOptions): Promise<RunningWeb> {
  const { config } = options;
  const logger = (options.logger ?? nullLogger).scope({ daemon: 'web' });
  const ownDb = !options.db;
  const db = options.db ?? openDb(config.db.url, { poolMax: config.db.pool_max });
  try {
    const status = await migrationStatus(db);
    if (status.pending.length) logger.warn('database schema is behind: run `firn db migrate`', { pending: status.pending });
    const tls = config.mon.tls_cert && config.mon.tls_key ? { cert: config.mon.tls_cert, key: config.mon.tls_key } : undefined;
    // the same connection limits as firn-mon's built-in web monitor: [mon] idle_timeout, request_timeout, …
    const limits = httpLimitsOf(config.mon, HTTP_LIMIT_DEFAULTS.mon);
    const app = Fastify({ logger: false, bodyLimit: 1024 * 1024, ...fastifyHttpOptions(limits, tls), return503OnClosing: true }) as unknown as FastifyInstance;
    applyHttpLimits(app.server, limits);
    addStrictTransportSecurity(app);
    app.get('/healthz', async () => {
      let database = 'ok';
      try {
        await db.raw('SELECT 1');
      } catch {
        database = 'unavailable';
      }
      return { status: 'ok', daemon: 'web', database };
    });
    await mountWeb(app, { ...options.web, db, config, logger });
    const host = options.host ?? config.mon.host;
    const address = await app.listen({ port: options.port ?? config.mon.port, host });
    const url = serverUrl({ host, port: Number(new URL(address).port), tls_cert: config.mon.tls_cert });
    logger.info('firn-web listening', { url, db: redactDbUrl(config.db.url), tray: trayUrlOf({ config, trayUrl: options.web?.trayUrl }) });
    return {
      app,
      url,
      db,
      async close() {
        await app.close();
        if (ownDb) await db.destroy();
      },
    };
  } catch (e) {
    if (ownDb) await db.destroy();
    throw e;
  }
}
