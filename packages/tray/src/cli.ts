import path from 'node:path';
import { Command, CommanderError, Option } from 'commander';
import {
  ROLES, coerceError, connect, createLogger, createUser, installProcessGuards, loadConfig, redactDbUrl,
  type FirnConfig, type Role,
} from '@firn/core';
import type { TrayConfig } from './context';
import { startTray } from './server';
import { readSecretLine } from './stdin';

/**
 * firn-tray --config FILE [--check-config]
 * firn-tray user add NAME --role admin|manager|viewer   (password on stdin; at least 8 characters)
 * firn-tray user list
 */
export interface TrayCliIo {
  stdin: NodeJS.ReadableStream & { isTTY?: boolean };
  stdout: NodeJS.WritableStream;
  stderr: NodeJS.WritableStream;
  env: Record<string, string | undefined>;
}

const defaultIo = (): TrayCliIo => ({ stdin: process.stdin, stdout: process.stdout, stderr: process.stderr, env: process.env });

function configFrom(opts: { config?: string }, io: TrayCliIo): FirnConfig {
  const config = loadConfig({ file: opts.config, env: io.env });
  // CA files named in the config file are relative to it, like tls_cert / tls_key
  if (opts.config) {
    const base = path.dirname(path.resolve(opts.config));
    const tray = config.tray as TrayConfig;
    if (tray.fetch_ca && !path.isAbsolute(tray.fetch_ca)) tray.fetch_ca = path.resolve(base, tray.fetch_ca);
    if (tray.ldap_tls_ca && !path.isAbsolute(tray.ldap_tls_ca)) tray.ldap_tls_ca = path.resolve(base, tray.ldap_tls_ca);
  }
  return config;
}

/** Resolves when the process receives SIGTERM or SIGINT. */
function untilSignal(): Promise<NodeJS.Signals> {
  return new Promise((resolve) => {
    const on = (sig: NodeJS.Signals) => {
      process.off('SIGTERM', on);
      process.off('SIGINT', on);
      resolve(sig);
    };
    process.on('SIGTERM', on);
    process.on('SIGINT', on);
  });
}

export function buildProgram(io: TrayCliIo): Command {
  const program = new Command('firn-tray')
    .description('firn-tray: the JSON-RPC API for people — submit and control datasets')
    .option('-c, --config <file>', 'INI config file ([db], [tray], [log]); FIRN_<SECTION>_<KEY> environment variables override it')
    .option('--check-config', 'validate the configuration, print a summary and exit')
    .configureOutput({ writeOut: (s) => io.stdout.write(s), writeErr: (s) => io.stderr.write(s) })
    .exitOverride()
    .action(async (opts: { config?: string; checkConfig?: boolean }) => {
      const config = configFrom(opts, io);
      if (opts.checkConfig) {
        const t = config.tray;
        io.stdout.write(
          `config OK: db ${redactDbUrl(config.db.url)}; tray ${t.tls_cert ? 'https' : 'http'}://${t.host}:${t.port}` +
            `${t.ldap_url ? `; ldap ${t.ldap_url}` : ''}\n`,
        );
        return;
      }
      const logger = createLogger({ level: config.log.level, format: config.log.format, file: config.log.file });
      installProcessGuards(logger); // a stray throw is logged; the daemon keeps serving
      const tray = await startTray({ config, logger });
      io.stderr.write(`firn-tray listening on ${tray.url}\n`);
      const sig = await untilSignal();
      logger.info('shutting down', { signal: sig });
      await tray.close();
    });

  const user = program.command('user').description('manage users in the database');
  user
    .command('add')
    .description('create a user; the password is read from stdin (a pipe, or typed without echo)')
    .argument('<name>', 'user name')
    .addOption(new Option('--role <role>', 'role').choices([...ROLES]).makeOptionMandatory())
    .option('-c, --config <file>', 'INI config file')
    .action(async (name: string, opts: { role: Role }, cmd: Command) => {
      const config = configFrom(cmd.optsWithGlobals() as { config?: string }, io);
      const password = await readSecretLine(io.stdin, io.stderr, `password for ${name}: `);
      const db = await connect(config.db.url, { poolMax: 2 });
      try {
        const created = await createUser(db, { username: name, role: opts.role, password });
        io.stdout.write(`user ${created.username} created with role ${created.role}\n`);
      } finally {
        await db.destroy();
      }
    });
  user
    .command('list')
    .description('list users')
    .option('-c, --config <file>', 'INI config file')
    .action(async (_opts: unknown, cmd: Command) => {
      const config = configFrom(cmd.optsWithGlobals() as { config?: string }, io);
      const db = await connect(config.db.url, { poolMax: 2 });
      try {
        const rows = (await db('user').select('username', 'role', 'source', 'disabled').orderBy('username')) as Array<{ username: string; role: string; source: string; disabled: number | boolean }>;
        for (const r of rows) io.stdout.write(`${r.username}\t${r.role}\t${r.source}${r.disabled ? '\tdisabled' : ''}\n`);
      } finally {
        await db.destroy();
      }
    });
  return program;
}

/** Run the CLI; returns the exit code (0 ok, 1 error — bad config, database, password —, 2 usage). */
export async function main(argv: string[] = process.argv, io: TrayCliIo = defaultIo()): Promise<number> {
  const program = buildProgram(io);
  try {
    await program.parseAsync(argv);
    return 0;
  } catch (e) {
    if (e instanceof CommanderError) {
      // commander printed the message or the help already
      if (e.code === 'commander.helpDisplayed' || e.code === 'commander.version' || (e.code === 'commander.help' && e.exitCode === 0)) return 0;
      return 2;
    }
    io.stderr.write(`firn-tray: ${coerceError(e).message}\n`);
    return 1;
  }
}

/** Entry point of bin/firn-tray. */
export function run(): void {
  main().then(
    (code) => {
      process.exitCode = code;
    },
    (e: unknown) => {
      process.stderr.write(`firn-tray: ${coerceError(e).message}\n`);
      process.exitCode = 1;
    },
  );
}

// Run when this file is the program (node dist/cli.js …) — not when a bundle that merely includes it is.
if (require.main === module && /^cli\.[cm]?js$/.test(path.basename(require.main.filename))) run();
