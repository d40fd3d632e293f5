import fs from 'node:fs';
import { Command } from 'commander';
import { ConfigError, createLogger, installProcessGuards, loadConfig, redactDbUrl, serverUrl, type FirnConfig } from '@firn/core';
import { startMon } from './mon-server';

/**
 * `firn-mon --config FILE [--check-config]`: parse flags, load the configuration
 * (defaults < INI < FIRN_<SECTION>_<KEY>), run the daemon until SIGTERM/SIGINT, then drain:
 * answer calls in flight, write every queued update, close the database pool.
 */
export async function main(argv: string[] = process.argv, env: NodeJS.ProcessEnv = process.env): Promise<number> {
  const program = new Command()
    .name('firn-mon')
    .description('Firn monitoring daemon: the JSON-RPC API for pilots, /healthz, /metrics and the web monitor')
    .option('--config <file>', 'INI configuration file ([db], [mon], [system], [log], …)')
    .option('--check-config', 'validate the configuration and exit')
    .exitOverride();
  try {
    program.parse(argv);
  } catch (e) {
    const code = (e as { exitCode?: number }).exitCode;
    return code ?? 2;
  }
  const opts = program.opts<{ config?: string; checkConfig?: boolean }>();

  let config: FirnConfig;
  try {
    config = loadConfig({ file: opts.config, env });
    for (const f of [config.mon.tls_cert, config.mon.tls_key]) {
      if (f && !fs.existsSync(f)) throw new ConfigError(`[mon] TLS file ${f} does not exist`);
    }
  } catch (e) {
    process.stderr.write(`firn-mon: ${(e as Error).message}\n`);
    return 2;
  }
  if (opts.checkConfig) {
    process.stdout.write(
      `firn-mon: configuration OK (db ${redactDbUrl(config.db.url)}; listen ${config.mon.host}:${config.mon.port} ` +
        `${config.mon.tls_cert ? 'https' : 'http'}; pilots report to ${serverUrl(config.mon)}; flush_ms ${config.mon.flush_ms}, ` +
        `max_pending ${config.mon.max_pending}, log_cap ${config.mon.log_cap}, web ${config.mon.web})\n`,
    );
    return 0;
  }

  const logger = createLogger({ level: config.log.level, format: config.log.format, file: config.log.file, scope: { daemon: 'mon' } });
  installProcessGuards(logger); // a stray throw is logged; the daemon keeps serving
  let running;
  try {
    running = await startMon({ config, logger });
  } catch (e) {
    logger.error('firn-mon failed to start', { error: (e as Error).message });
    return 1;
  }
  const mon = running;
  return new Promise<number>((resolve) => {
    let stopping = false;
    const stop = (signal: string) => {
      if (stopping) {
        logger.warn('second signal: exiting without draining', { signal });
        resolve(1);
        return;
      }
      stopping = true;
      logger.info('stopping: draining pilot updates', { signal, pending: mon.server.batcher.pending });
      mon.close().then(
        () => {
          logger.info('firn-mon stopped');
          resolve(0);
        },
        (e: unknown) => {
          logger.error('error while stopping', { error: (e as Error).message });
          resolve(1);
        },
      );
    };
    process.on('SIGTERM', () => stop('SIGTERM'));
    process.on('SIGINT', () => stop('SIGINT'));
  });
}

/** Entry point of bin/firn-mon. */
export function run(): void {
  main().then(
    (code) => {
      // let the logger's stream drain before leaving
      setImmediate(() => process.exit(code));
    },
    (e: unknown) => {
      process.stderr.write(`firn-mon: ${(e as Error).stack ?? String(e)}\n`);
      process.exit(1);
    },
  );
}
