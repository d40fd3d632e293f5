/**
 * The embedded suite (`firn up`, `npm start`, the demo): firn-tray, firn-mon, firn-dh and
 * one firn-queue with the local plugin, in one process, on one SQLite file. Every piece is
 * the same code the separate daemons run; only the wiring is here.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import {
  StorageRoots, connect, createUser, loadConfig, randomSecret, redactDbUrl, registerTaskGauges, type Db, type FirnConfig, type Logger, type RawConfig,
} from '@firn/core';
import { DhDaemon, createDhMetrics } from '@firn/dh';
import { startMon, type RunningMon } from '@firn/mon';
import { QueueDaemon, createExecutor, createPlugin, createQueueMetrics, queueSettings } from '@firn/queue';
import { startTray, type Tray } from '@firn/tray';

export interface EmbeddedOptions {
  /** Data directory: database, submit directories, site temp storage, outputs (default ./firn-data). */
  dataDir: string;
  /** Optional INI file with overrides (same sections as the daemons'). */
  configFile?: string;
  /** Environment for FIRN_<SECTION>_<KEY> overrides (default process.env). */
  env?: Record<string, string | undefined>;
  /** Ports (0 = any free port). Defaults 8580 / 8581. */
  trayPort?: number;
  monPort?: number;
  /** How often the queue and dh cycles run (cron with seconds; default every 2 s). */
  schedule?: string;
  /** Concurrent local processes (default: number of CPUs, at least 2). */
  concurrency?: number;
  /** Capabilities of the local grid (default: this machine's CPUs and memory, no GPU). */
  capabilities?: Record<string, unknown>;
  logger: Logger;
  /** Ports, data directory and concurrency given here beat the config file (command-line flags). */
  flagsWin?: boolean;
}

export interface EmbeddedSuite {
  config: FirnConfig;
  db: Db;
  tray: Tray;
  mon: RunningMon;
  dh: DhDaemon;
  queue: QueueDaemon;
  trayUrl: string;
  monUrl: string;
  /** Set when this start created the first admin: shown once, never stored in clear. */
  firstAdmin?: { username: string; password: string };
  close(): Promise<void>;
}

export const EMBEDDED_GRID = 'local';

function defaults(o: EmbeddedOptions): RawConfig {
  const data = path.resolve(o.dataDir);
  const schedule = o.schedule ?? '*/2 * * * * *';
  const concurrency = o.concurrency ?? Math.max(2, os.cpus().length);
  const capabilities = o.capabilities ?? {
    cpu: os.cpus().length,
    gpu: 0,
    memory: Math.floor(os.totalmem() / 1024 / 1024),
    disk: 1_000_000,
    time: 7 * 24 * 60,
  };
  return {
    db: { url: `sqlite://${path.join(data, 'firn.sqlite')}` },
    // a dataset submitted without grids is assigned this machine's grid ([tray] default_grids)
    tray: { host: '127.0.0.1', port: o.trayPort ?? 8580, default_grids: EMBEDDED_GRID },
    mon: { host: '127.0.0.1', port: o.monPort ?? 8581 },
    queue: {
      grid: EMBEDDED_GRID,
      plugin: 'local',
      schedule,
      max_queued: concurrency * 2,
      concurrency,
      submit_dir: path.join(data, 'submit'),
      capabilities: JSON.stringify(capabilities),
      lease_seconds: 60,
    },
    // outputs may be delivered anywhere under the data directory (storage-roots.ts)
    // one host runs everything: a black hole there stops all production, so it lasts a minute, not an hour
    dh: { schedule, heartbeat_timeout: 600, retention_days: 7, destinations: `file://${data}`, blackhole_cooldown: EMBEDDED_BLACKHOLE_COOLDOWN },
    system: { data, site_temp: `file://${path.join(data, 'site-temp')}`, scratch: path.join(data, 'scratch') },
    log: { format: 'text' },
  };
}

/** `[dh] blackhole_cooldown` of `firn up` (s) unless its config file says otherwise. */
export const EMBEDDED_BLACKHOLE_COOLDOWN = 60;

/** Start everything; resumes whatever the data directory's database holds. */
export async function startEmbedded(o: EmbeddedOptions): Promise<EmbeddedSuite> {
  const logger = o.logger;
  // private: the database (password, token and passkey hashes, logs), scripts and outputs live here
  fs.mkdirSync(path.resolve(o.dataDir), { recursive: true, mode: 0o700 });
  const dirMode = fs.statSync(path.resolve(o.dataDir)).mode & 0o777;
  if (dirMode & 0o077) logger.warn('the data directory is open to other users: chmod 700 it', { dir: path.resolve(o.dataDir), mode: dirMode.toString(8) });
  const overrides: RawConfig = {};
  if (o.flagsWin) {
    if (o.trayPort !== undefined) (overrides.tray ??= {}).port = o.trayPort;
    if (o.monPort !== undefined) (overrides.mon ??= {}).port = o.monPort;
    if (o.concurrency !== undefined) (overrides.queue ??= {}).concurrency = o.concurrency;
    (overrides.system ??= {}).data = path.resolve(o.dataDir);
  }
  const config = loadConfig({ file: o.configFile, env: o.env ?? process.env, defaults: defaults(o), overrides });
  const db = await connect(config.db.url);
  const opened: Array<() => Promise<void>> = [async () => db.destroy()];
  const closeAll = async () => {
    for (const c of opened.splice(0).reverse()) await c().catch((e: unknown) => logger.error('close failed', { error: String(e) }));
  };
  try {
    let firstAdmin: EmbeddedSuite['firstAdmin'];
    const users = Number(((await db('user').count({ n: '*' })) as Array<{ n: number | string }>)[0]?.n ?? 0);
    if (users === 0) {
      const password = randomSecret(12);
      await createUser(db, { username: 'admin', role: 'admin', password });
      firstAdmin = { username: 'admin', password };
    }

    const tray = await startTray({ config, db, logger });
    opened.push(() => tray.close());
    // the web monitor (mounted by mon) acts through tray RPC
    config.mon.tray_url ??= tray.url;
    const mon = await startMon({ config, db, logger });
    opened.push(() => mon.close());
    // pilots must be told the port mon really listens on (0 = any free port)
    config.mon.url = mon.url;

    // firn-mon's /metrics carries the task gauges and dh's and the queue's series too
    const registry = mon.server.registry;
    registerTaskGauges(registry, db, { logger });
    const dhMetrics = createDhMetrics(db, { registry, logger });
    const dh = new DhDaemon({ db, config: config.dh, logger, roots: StorageRoots.fromConfig(config), onCycle: (ev) => dhMetrics.observe(ev) });
    dh.start();
    opened.push(() => dh.stop());

    const settings = queueSettings(config);
    const executor = createExecutor(settings, logger);
    const plugin = createPlugin(settings.plugin, executor, { ...settings.pluginOptions, onWarning: (m) => logger.warn(m, { grid: settings.grid }) });
    const queueMetrics = createQueueMetrics(db, settings.grid, { registry, logger });
    const queue = new QueueDaemon({ db, settings, plugin, executor, logger, onCycle: (r) => queueMetrics.observe(r) });
    await queue.init();
    queue.start();
    opened.push(() => queue.close());

    logger.info('embedded suite running', { db: redactDbUrl(config.db.url), tray: tray.url, mon: mon.url, grid: settings.grid });
    return {
      config, db, tray, mon, dh, queue, trayUrl: tray.url, monUrl: mon.url, firstAdmin,
      close: closeAll,
    };
  } catch (e) {
    await closeAll();
    throw e;
  }
}
