import { connect, type FirnConfig, type Logger } from '@firn/core';
import { createPlugin } from './plugins';
import { QueueDaemon, type CrashPoint } from './queue-daemon';
import { createExecutor, queueSettings } from './queue-settings';

export interface OpenQueueDaemonOptions {
  logger: Logger;
  /** Environment of the local executor (tests prepend shim directories to PATH). */
  env?: Record<string, string | undefined>;
  crashAt?: CrashPoint;
  lostGraceMs?: number;
  /** Clock (tests). */
  now?: () => number;
}

/**
 * Assemble a daemon from configuration: database (migrated), executor (local or ssh2),
 * the configured plugin, and the grid row. close() releases all of them.
 */
export async function openQueueDaemon(config: FirnConfig, options: OpenQueueDaemonOptions): Promise<QueueDaemon> {
  const settings = queueSettings(config);
  const db = await connect(config.db.url, { poolMax: config.db.pool_max });
  try {
    const executor = createExecutor(settings, options.logger, options.env);
    const plugin = createPlugin(settings.plugin, executor, { ...settings.pluginOptions, onWarning: (m) => options.logger.warn(m, { grid: settings.grid }) });
    const daemon = new QueueDaemon({
      db, settings, plugin, executor, logger: options.logger, closeDb: true, crashAt: options.crashAt, lostGraceMs: options.lostGraceMs, now: options.now,
    });
    await daemon.init();
    return daemon;
  } catch (e) {
    await db.destroy();
    throw e;
  }
}
