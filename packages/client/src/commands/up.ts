import fs from 'node:fs';
import path from 'node:path';
import type { Command } from 'commander';
import { DataDirLock, DirLockedError, createLogger, installProcessGuards } from '@firn/core';
import { startEmbedded } from '../embedded/suite';
import { CliError, ExitCode } from '../exit-codes';

/**
 * firn up [--data DIR] — the whole suite in one process: firn-tray, firn-mon (with the web
 * monitor), firn-dh and one firn-queue (local plugin) on SQLite. Starting again resumes; a second
 * one on a data directory in use exits 5 naming the first one's pid (core DataDirLock).
 */
export function register(program: Command): void {
  program
    .command('up')
    .description('run tray, mon, dh and a local queue in one process on SQLite (the embedded mode); Ctrl-C stops, starting again resumes')
    .option('--data <dir>', 'data directory: database, submit dirs, site temp storage (default ./firn-data)')
    .option('--config <file>', 'INI file with overrides (same sections as the daemons)')
    .option('--tray-port <port>', 'firn-tray port (default 8580)', (v) => Number(v))
    .option('--mon-port <port>', 'firn-mon port: web monitor and pilots (default 8581)', (v) => Number(v))
    .option('--concurrency <n>', 'local processes at once (default: CPUs)', (v) => Number(v))
    .action(async (opts: { data?: string; config?: string; trayPort?: number; monPort?: number; concurrency?: number }) => {
      for (const [k, v] of [['--tray-port', opts.trayPort], ['--mon-port', opts.monPort]] as const) {
        if (v !== undefined && (!Number.isInteger(v) || v < 0 || v > 65535)) throw new CliError(`${k} must be a port number (0-65535), got ${v}`, ExitCode.USAGE);
      }
      if (opts.concurrency !== undefined && (!Number.isInteger(opts.concurrency) || opts.concurrency < 1)) {
        throw new CliError(`--concurrency must be a positive integer, got ${opts.concurrency}`, ExitCode.USAGE);
      }
      const dataDir = path.resolve(opts.data ?? 'firn-data');
      const logger = createLogger({ level: 'info', format: 'auto' }).scope({ daemon: 'up' });
      // one process serves tray, mon, dh and the queue: a stray throw is logged, the suite keeps serving (as each daemon's CLI does)
      installProcessGuards(logger);
      // one firn up per data directory: a second one would run a second firn-dh and queue on the same database
      fs.mkdirSync(dataDir, { recursive: true, mode: 0o700 });
      const lock = new DataDirLock(dataDir);
      try {
        lock.acquire();
      } catch (e) {
        if (e instanceof DirLockedError) throw new CliError(e.message, ExitCode.CONFLICT);
        throw e;
      }
      let suite;
      try {
        suite = await startEmbedded({
          dataDir, configFile: opts.config, trayPort: opts.trayPort, monPort: opts.monPort, concurrency: opts.concurrency, logger,
          flagsWin: true,
        });
      } catch (e) {
        lock.release();
        throw e;
      }
      const say = (s: string) => process.stdout.write(s);
      say(`firn up: data in ${dataDir}\n  tray (firn CLI): ${suite.trayUrl}\n  web monitor:     ${suite.monUrl}/\n`);
      const defaults = String((suite.config.tray as { default_grids?: unknown }).default_grids ?? '').split(',').map((g) => g.trim()).filter(Boolean);
      if (defaults.length) say(`  grid:            ${defaults.join(', ')} (datasets submitted without --grid are assigned it)\n`);
      if (suite.firstAdmin) {
        say(`\nfirst admin created — shown only this once:\n  username: ${suite.firstAdmin.username}\n  password: ${suite.firstAdmin.password}\n` +
          `log in with: firn login ${suite.trayUrl} --username ${suite.firstAdmin.username}\n\n`);
      }
      say('Ctrl-C to stop (running jobs keep going and report when firn up starts again)\n');
      await new Promise<void>((resolve) => {
        const stop = () => resolve();
        process.once('SIGINT', stop);
        process.once('SIGTERM', stop);
      });
      say('\nstopping…\n');
      await suite.close();
      lock.release();
      say('stopped\n');
    });
}
