/**
 * `firn-dh --config FILE [--check-config] [--once]`: load and check the configuration,
 * open (and migrate) the database, run the data-handling daemon until SIGTERM / SIGINT —
 * or every cycle once with --once.
 */
import { Command } from 'commander';
import {
  StorageRoots, coerceError, connect, createLogger, installProcessGuards, loadConfig, redactDbUrl, startMetricsServer, type FirnConfig, type MetricsServer,
} from '@firn/core';
import { DhDaemon, checkDhConfig } from './dh-daemon';
import { createDhMetrics } from './dh-metrics';

export interface CliIo {
  env: Record<string, string | undefined>;
  out: (line: string) => void;
  err: (line: string) => void;
}

const defaultIo: CliIo = {
  env: process.env,
  out: (l) => process.stdout.write(l + '\n'),
  err: (l) => process.stderr.write(l + '\n'),
};

/** Returns the exit code (the daemon mode returns once it has been stopped by a signal). */
export async function main(argv: string[] = process.argv, io: CliIo = defaultIo): Promise<number> {
  const program = new Command('firn-dh')
    .description('Firn data handling: move and verify outputs, retry tasks, roll up status, clean up')
    .option('--config <file>', 'INI configuration file')
    .option('--check-config', 'validate the configuration and exit')
    .option('--once', 'run every cycle once and exit')
    .exitOverride()
    .configureOutput({ writeOut: (s) => io.out(s.trimEnd()), writeErr: (s) => io.err(s.trimEnd()) });
  try {
    program.parse(argv);
  } catch (e) {
    const code = (e as { exitCode?: number }).exitCode;
    return typeof code === 'number' ? code : 2;
  }
  const opts = program.opts<{ config?: string; checkConfig?: boolean; once?: boolean }>();

  let cfg: FirnConfig;
  let roots: StorageRoots;
  try {
    cfg = loadConfig({ ...(opts.config ? { file: opts.config } : {}), env: io.env });
    checkDhConfig(cfg.dh);
    roots = StorageRoots.fromConfig(cfg);
  } catch (e) {
    io.err(`firn-dh: ${coerceError(e).message}`);
    return 2;
  }
  if (opts.checkConfig) {
    io.out(`firn-dh: configuration OK (db ${redactDbUrl(cfg.db.url)}, schedule "${cfg.dh.schedule}")`);
    return 0;
  }

  const logger = createLogger({ level: cfg.log.level, format: cfg.log.format, ...(cfg.log.file ? { file: cfg.log.file } : {}) });
  installProcessGuards(logger); // a stray throw is logged; the daemon keeps serving
  const db = await connect(cfg.db.url, { poolMax: cfg.db.pool_max });
  // /metrics and /healthz on [dh] metrics_port (off when unset)
  const metrics = cfg.dh.metrics_port !== undefined ? createDhMetrics(db, { logger }) : null;
  const daemon = new DhDaemon({ db, config: cfg.dh, logger, roots, ...(metrics ? { onCycle: (ev) => metrics.observe(ev) } : {}) });
  let metricsServer: MetricsServer | null = null;
  try {
    if (metrics) {
      metricsServer = await startMetricsServer({ registry: metrics.registry, db, name: 'dh', logger, port: cfg.dh.metrics_port ?? 0, host: cfg.dh.metrics_host });
    }
    if (opts.once) {
      await daemon.runOnce();
      return 0;
    }
    await new Promise<void>((resolve) => {
      const onSignal = (sig: NodeJS.Signals) => {
        logger.info('signal received: finishing the running cycles', { signal: sig, daemon: 'dh' });
        process.off('SIGTERM', onSignal);
        process.off('SIGINT', onSignal);
        resolve();
      };
      process.on('SIGTERM', onSignal);
      process.on('SIGINT', onSignal);
      daemon.start();
    });
    return 0;
  } catch (e) {
    io.err(`firn-dh: ${coerceError(e).message}`);
    return 1;
  } finally {
    await metricsServer?.close().catch(() => undefined);
    await daemon.stop();
    await db.destroy();
  }
}
