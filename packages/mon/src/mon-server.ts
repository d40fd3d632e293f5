import client from 'prom-client';
import {
  HTTP_LIMIT_DEFAULTS, StorageRoots, connect, createRpcServer, httpLimitsOf, nullLogger, redactDbUrl, serverUrl,
  type Db, type FirnConfig, type Logger, type RpcServer,
} from '@firn/core';
import * as web from '@firn/web';
import { createPilotMethods } from './pilot-methods';
import { WriteBatcher } from './write-batcher';

/**
 * firn-mon: the JSON-RPC API for pilots (pilot.*), `/healthz`, `/metrics`, and — when
 * `[mon] web` is true — the web monitor mounted on the same server.
 */

export interface MonServerOptions {
  db: Db;
  config: FirnConfig;
  logger?: Logger;
  /** Heartbeat period told to pilots (default: from `[dh] heartbeat_timeout` / 6, within 5..300 s). */
  heartbeatSeconds?: number;
  /** Own prom-client registry (default: a new one). */
  registry?: client.Registry;
  /** Flush transactions allowed side by side on MySQL/MariaDB (default 2; see WriteBatcher). */
  maxConcurrentFlushes?: number;
}

export interface MonServer {
  rpc: RpcServer;
  app: RpcServer['app'];
  batcher: WriteBatcher;
  registry: client.Registry;
  /** The URL after listen(). */
  url: string | null;
  /** Listen on `[mon] host`/`[mon] port` (or the given ones); returns the URL. */
  listen(port?: number, host?: string): Promise<string>;
  /** Stop accepting calls, answer the ones in flight, write every queued update. Leaves the db open. */
  close(): Promise<void>;
}

/** Heartbeat period that keeps several heartbeats within dh's heartbeat timeout. */
export function defaultHeartbeatSeconds(config: FirnConfig): number {
  return Math.max(5, Math.min(300, Math.floor(config.dh.heartbeat_timeout / 6)));
}

export async function createMonServer(options: MonServerOptions): Promise<MonServer> {
  const { db, config } = options;
  const logger = options.logger ?? nullLogger;
  const registry = options.registry ?? new client.Registry();
  client.collectDefaultMetrics({ register: registry, prefix: 'firn_mon_' });

  const updates = new client.Counter({
    name: 'firn_mon_updates_received_total', help: 'pilot calls received, by method', labelNames: ['method'], registers: [registry],
  });
  const refused = new client.Counter({
    name: 'firn_mon_updates_refused_total', help: 'pilot calls refused: stale/invalid passkey, backpressure, or output records the task does not declare or outside the storage roots (outputs)', labelNames: ['reason'], registers: [registry],
  });
  const flushSize = new client.Histogram({
    name: 'firn_mon_flush_size', help: 'updates written per flush transaction',
    buckets: [1, 5, 10, 50, 100, 250, 500, 1000, 2500, 5000], registers: [registry],
  });
  const flushDuration = new client.Histogram({
    name: 'firn_mon_flush_duration_seconds', help: 'duration of one flush transaction',
    buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1], registers: [registry],
  });
  const flushFailures = new client.Counter({
    name: 'firn_mon_flush_failures_total', help: 'flush transactions that failed', registers: [registry],
  });

  const batcher = new WriteBatcher({
    db,
    flushMs: config.mon.flush_ms,
    maxPending: config.mon.max_pending,
    logCap: config.mon.log_cap,
    maxConcurrentFlushes: options.maxConcurrentFlushes,
    logger,
    onFlush: (f) => {
      flushSize.observe(f.updates);
      flushDuration.observe(f.seconds);
      if (!f.ok) flushFailures.inc();
    },
  });
  // read at scrape time
  new client.Gauge({
    name: 'firn_mon_pending_updates', help: 'updates queued or being written', registers: [registry],
    collect() {
      this.set(batcher.pending);
    },
  });

  const heartbeatSeconds = options.heartbeatSeconds ?? defaultHeartbeatSeconds(config);
  const limits = httpLimitsOf(config.mon, HTTP_LIMIT_DEFAULTS.mon);
  if (limits.idleTimeoutMs <= heartbeatSeconds * 1000 + 5000) {
    // pilots keep their connection between heartbeats: closing it just as one is reused fails that call
    logger.warn('[mon] idle_timeout should exceed the pilots\' heartbeat period by more than 5 s', {
      idle_timeout: limits.idleTimeoutMs / 1000, heartbeat_seconds: heartbeatSeconds,
    });
  }
  // where outputs may be staged and delivered (storage-roots.ts); a bad root is a ConfigError
  const roots = StorageRoots.fromConfig(config);
  const rootsWarning = roots.startupWarning();
  if (rootsWarning) logger.warn(rootsWarning);
  const methods = createPilotMethods({
    db,
    batcher,
    siteTemp: config.system.site_temp,
    roots,
    heartbeatSeconds,
    logger,
    onReceived: (m) => updates.inc({ method: m }),
    onRefused: (reason) => refused.inc({ reason }),
  });

  const rpc = await createRpcServer({
    name: 'mon',
    logger,
    bodyLimit: config.mon.body_limit,
    limits,
    ...(config.mon.tls_cert && config.mon.tls_key ? { tls: { cert: config.mon.tls_cert, key: config.mon.tls_key } } : {}),
    methods,
    registry,
    health: async () => {
      let database = 'ok';
      try {
        await db.raw('SELECT 1');
      } catch {
        database = 'unavailable';
      }
      return { database, pending_updates: batcher.pending };
    },
  });

  // ---- web monitor mount point: `[mon] web` true and @firn/web exports mountWeb(app, deps)
  const mountWeb = (web as { mountWeb?: unknown }).mountWeb;
  if (config.mon.web && typeof mountWeb === 'function') {
    await (web.mountWeb as (app: RpcServer['app'], deps: web.WebDeps) => Promise<void>)(rpc.app, { db, config, logger: logger.scope({ component: 'web' }) });
    logger.debug('web monitor mounted');
  }

  let closing: Promise<void> | null = null;
  const server: MonServer = {
    rpc,
    app: rpc.app,
    batcher,
    registry,
    url: null,
    async listen(port = config.mon.port, host = config.mon.host) {
      const address = await rpc.listen(port, host);
      const actualPort = Number(new URL(address).port) || port;
      server.url = serverUrl({ host, port: actualPort, tls_cert: config.mon.tls_cert });
      return server.url;
    },
    close() {
      closing ??= (async () => {
        // new calls are answered 503 / -32050 at once; calls in flight wait on the batcher, which
        // keeps flushing until they are answered
        await rpc.close();
        await batcher.close();
      })();
      return closing;
    },
  };
  return server;
}

export interface StartMonOptions {
  config: FirnConfig;
  logger?: Logger;
  /** Use this database instead of opening `[db] url` (it is then not closed by close()). */
  db?: Db;
  heartbeatSeconds?: number;
}

export interface RunningMon {
  server: MonServer;
  db: Db;
  url: string;
  /** Drain and close the server, then the database pool (if opened here). */
  close(): Promise<void>;
}

/** Open (and migrate) the database, create firn-mon and listen: what `firn-mon` and `firn up` run. */
export async function startMon(options: StartMonOptions): Promise<RunningMon> {
  const { config } = options;
  const logger = options.logger ?? nullLogger;
  const ownDb = !options.db;
  const db = options.db ?? (await connect(config.db.url, { poolMax: config.db.pool_max }));
  try {
    const server = await createMonServer({ db, config, logger, heartbeatSeconds: options.heartbeatSeconds });
    const url = await server.listen();
    logger.info('firn-mon listening', { url, db: redactDbUrl(config.db.url), tls: Boolean(config.mon.tls_cert) });
    return {
      server,
      db,
      url,
      async close() {
        await server.close();
        if (ownDb) await db.destroy();
      },
    };
  } catch (e) {
    if (ownDb) await db.destroy();
    throw e;
  }
}
