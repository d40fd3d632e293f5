import { connect, startMetricsServer, type FirnConfig, type Logger, type MetricsServer } from '@firn/core';
import { createPlugin } from './plugins';
import { QueueDaemon, type CrashPoint } from './queue-daemon';
import { createQueueMetrics } from './queue-metrics';
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
 * the configured plugin, the grid row, and — with `[queue] metrics_port` — `/metrics` and
 * `/healthz` (queue-metrics.ts). close() releases all of them.
 */
export async function openQueueDaemon(config: FirnConfig, options: OpenQueueDaemonOptions): Promise<QueueDaemon> {
  const settings = queueSettings(config);
  const db = await connect(config.db.url, { poolMax: config.db.pool_max });
  let metricsServer: MetricsServer | null = null;
  try {
    const executor = createExecutor(settings, options.logger, options.env);
    const plugin = createPlugin(settings.plugin, executor, { ...settings.pluginOptions, onWarning: (m) => options.logger.warn(m, { grid: settings.grid }) });
    const serveMetrics = config.queue.metrics_port !== undefined;
    const metrics = serveMetrics ? createQueueMetrics(db, settings.grid, { logger: options.logger }) : null;
    const daemon = new QueueDaemon({
      db, settings, plugin, executor, logger: options.logger, closeDb: true, crashAt: options.crashAt, lostGraceMs: options.lostGraceMs, now: options.now,
      ...(metrics ? { onCycle: (r) => metrics.observe(r) } : {}),
    });
    await daemon.init();
    if (metrics) {
      try {
        metricsServer = await startMetricsServer({
          registry: metrics.registry, db, name: 'queue', logger: options.logger, port: config.queue.metrics_port ?? 0, host: config.queue.metrics_host,
        });
      } catch (e) {
        await daemon.close();
        throw e;
      }
      const server = metricsServer;
      const close = daemon.close.bind(daemon);
      daemon.close = async () => {
        await server.close().catch(() => undefined);
        await close();
      };
    }
    return daemon;
  } catch (e) {
    await db.destroy().catch(() => undefined);
    throw e;
  }
}
