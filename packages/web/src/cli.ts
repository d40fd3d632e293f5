import fs from 'node:fs';
import { Command } from 'commander';
import { ConfigError, createLogger, loadConfig, redactDbUrl, serverUrl, type FirnConfig } from '@firn/core';
import { trayUrlOf } from './web-routes';
import { startWeb, type RunningWeb } from './web-server';

/**
 * `firn-web --config FILE [--check-config] [--host H] [--port P]`: the web monitor alone, reading
 * `[db] url` (a read-only account is enough), `[mon] host`/`[mon] port` (overridable here, so that it
 * can run beside firn-mon), `[mon] tray_url` and `[log]`. Stops on SIGTERM/SIGINT.
 */
export async function main(argv: string[] = process.argv, env: NodeJS.ProcessEnv = process.env): Promise<number> {
  const program = new Command()
    .name('firn-web')
    .description('Firn web monitor on its own server (firn-mon also serves it when [mon] web is true)')
    .option('--config <file>', 'INI configuration file ([db], [mon], [tray], [log])')
    .option('--check-config', 'validate the configuration and exit')
    .option('--host <host>', 'listen address (default [mon] host)')
    .option('--port <port>', 'listen port (default [mon] port)')
    .exitOverride();
  try {
    program.parse(argv);
  } catch (e) {
    return (e as { exitCode?: number }).exitCode ?? 2;
  }
  const opts = program.opts<{ config?: string; checkConfig?: boolean; host?: string; port?: string }>();
  let config: FirnConfig;
  let port: number | undefined;
  try {
    config = loadConfig({ file: opts.config, env });
    if (opts.port !== undefined) {
      port = Number(opts.port);
      if (!Number.isInteger(port) || port < 0 || port > 65535) throw new ConfigError(`--port must be an integer 0..65535, got ${JSON.stringify(opts.port)}`);
    }
    for (const f of [config.mon.tls_cert, config.mon.tls_key]) {
      if (f && !fs.existsSync(f)) throw new ConfigError(`[mon] TLS file ${f} does not exist`);
    }
  } catch (e) {
    process.stderr.write(`firn-web: ${(e as Error).message}\n`);
    return 2;
  }
  const host = opts.host ?? config.mon.host;
  if (opts.checkConfig) {
    process.stdout.write(
      `firn-web: configuration OK (db ${redactDbUrl(config.db.url)}, listening on ${serverUrl({ host, port: port ?? config.mon.port, tls_cert: config.mon.tls_cert })}, tray ${trayUrlOf({ config })})\n`,
    );
    return 0;
  }
  const logger = createLogger({ level: config.log.level, format: config.log.format, file: config.log.file, scope: { daemon: 'web' } });
  let running: RunningWeb;
  try {
    running = await startWeb({ config, logger, host, port });
  } catch (e) {
    logger.error('firn-web failed to start', { error: (e as Error).message });
    return 1;
  }
  process.stdout.write(`firn-web listening on ${running.url}\n`);
  return new Promise<number>((resolve) => {
    let stopping = false;
    const stop = (signal: string) => {
      if (stopping) return resolve(1);
      stopping = true;
      logger.info('stopping', { signal });
      running.close().then(() => resolve(0), () => resolve(1));
    };
    process.on('SIGTERM', () => stop('SIGTERM'));
    process.on('SIGINT', () => stop('SIGINT'));
  });
}

/** Entry point of bin/firn-web. */
export function run(): void {
  main().then(
    (code) => setImmediate(() => process.exit(code)),
    (e: unknown) => {
      process.stderr.write(`firn-web: ${(e as Error).stack ?? String(e)}\n`);
      process.exit(1);
    },
  );
}
