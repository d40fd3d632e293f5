import type { Command } from 'commander';
import { ensureDatabase, loadConfig, migrate, migrationStatus, openDb, redactDbUrl } from '@firn/core';
import { contextOf, output } from '../context';

function dbUrl(cmd: Command, opts: { config?: string; db?: string }): string {
  const { io } = contextOf(cmd);
  return opts.db ?? loadConfig({ file: opts.config, env: io.env }).db.url;
}

/** firn db migrate | status */
export function register(program: Command): void {
  const db = program.command('db').description('the database schema (direct database access, no server)');

  db.command('migrate')
    .description('create the database if needed and apply pending migrations (safe while daemons start: knex migration lock)')
    .option('-c, --config <file>', 'INI config with [db] url')
    .option('--db <url>', 'database URL (overrides the config): sqlite:///path or mysql://user:pw@host:port/db')
    .action(async (opts: { config?: string; db?: string }, cmd: Command) => {
      const url = dbUrl(cmd, opts);
      await ensureDatabase(url);
      const knex = openDb(url, { poolMax: 2 });
      try {
        const applied = await migrate(knex);
        const s = await migrationStatus(knex);
        output(cmd, { db: redactDbUrl(url), migrated: applied, applied: s.applied, pending: s.pending }, () =>
          applied.length ? `${redactDbUrl(url)}: applied ${applied.join(', ')}` : `${redactDbUrl(url)}: schema up to date (${s.applied.join(', ')})`);
      } finally {
        await knex.destroy();
      }
    });

  db.command('status')
    .description('applied and pending migrations')
    .option('-c, --config <file>', 'INI config with [db] url')
    .option('--db <url>', 'database URL (overrides the config)')
    .action(async (opts: { config?: string; db?: string }, cmd: Command) => {
      const url = dbUrl(cmd, opts);
      const knex = openDb(url, { poolMax: 1 });
      try {
        const s = await migrationStatus(knex);
        output(cmd, { db: redactDbUrl(url), applied: s.applied, pending: s.pending }, () =>
          `${redactDbUrl(url)}\napplied: ${s.applied.join(', ') || '(none)'}\npending: ${s.pending.join(', ') || '(none)'}`);
      } finally {
        await knex.destroy();
      }
    });
}
