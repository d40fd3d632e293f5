/**
 * `firn-queue --config FILE [--check-config] [--once]`: parse flags, load config, run the
 * daemon until SIGTERM/SIGINT (or one cycle with --once).
 */
import { Command, CommanderError } from 'commander';
import { createLogger, installProcessGuards, loadConfig, redactDbUrl } from '@firn/core';
import { openQueueDaemon } from './daemon-setup';
import { CRASH_POINTS, type CrashPoint } from './queue-daemon';
import { queueSettings } from './queue-settings';

/** Test hook for the crash-safety tests; not a config key (so it is kept out of loadConfig). */
export const CRASH_ENV = 'FIRN_QUEUE_TEST_CRASH';

export async function main(argv: string[] = process.argv, env: NodeJS.ProcessEnv = process.env): Promise<number> {
  const program = new Command('firn-queue')
    .description('Firn queue daemon: keeps one grid\'s batch system fed with tasks')
    .requiredOption('--config <file>', 'daemon configuration (INI)')
    .option('--check-config', 'validate the configuration and exit')
    .option('--once', 'run one cycle and exit')
    .exitOverride()
    .configureOutput({ writeErr: (s) => process.stderr.write(s) });
  try {
    program.parse(argv);
  } catch (e) {
    return e instanceof CommanderError ? (e.exitCode === 0 ? 0 : 2) : 2;
  }
  const flags = program.opts<{ config: string; checkConfig?: boolean; once?: boolean }>();

  const { [CRASH_ENV]: crash, ...configEnv } = env;
  let crashAt: CrashPoint | undefined;
  if (crash) {
    if (!(CRASH_POINTS as readonly string[]).includes(crash)) {
      process.stderr.write(`firn-queue: ${CRASH_ENV} must be one of ${CRASH_POINTS.join(', ')}\n`);
      return 2;
    }
    crashAt = crash as CrashPoint;
  }

  let config;
  let settings;
  try {
    config = loadConfig({ file: flags.config, env: configEnv });
    settings = queueSettings(config);
  } catch (e) {
    process.stderr.write(`firn-queue: ${(e as Error).message}\n`);
    return 1;
  }
  if (flags.checkConfig) {
    process.stdout.write(
      `configuration OK: grid ${settings.grid}, plugin ${settings.plugin}, schedule "${settings.schedule}", ` +
        `max_queued ${settings.maxQueued}, db ${redactDbUrl(config.db.url)}, ` +
        `submit ${settings.ssh ? `ssh://${settings.ssh.user}@${settings.ssh.host}:${settings.ssh.port}` : 'local'}:${settings.submitDir}\n`,
    );
    return 0;
  }

  const logger = createLogger({ level: config.log.level, format: config.log.format, file: config.log.file, scope: { daemon: 'queue', grid: settings.grid } });
  installProcessGuards(logger); // a stray throw is logged; the daemon keeps serving
  let daemon;
  try {
    daemon = await openQueueDaemon(config, { logger, crashAt, env: configEnv });
  } catch (e) {
    logger.error('cannot start', { error: (e as Error).message });
    process.stderr.write(`firn-queue: ${(e as Error).message}\n`);
    return 1;
  }
  if (flags.once) {
    const report = await daemon.runCycle();
    await daemon.close();
    return report.errors.length ? 1 : 0;
  }
  daemon.start();
  await new Promise<void>((resolve) => {
    const stop = (signal: string) => {
      logger.info('stopping', { signal });
      resolve();
    };
    process.once('SIGTERM', () => stop('SIGTERM'));
    process.once('SIGINT', () => stop('SIGINT'));
  });
  await daemon.close();
  return 0;
}

if (require.main === module) {
  main().then(
    (code) => process.exit(code),
    (e: unknown) => {
      process.stderr.write(`firn-queue: ${e instanceof Error ? e.stack : String(e)}\n`);
      process.exit(1);
    },
  );
}
