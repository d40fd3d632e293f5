import { TABLES, migrationStatus, type Db } from './db';

/**
 * The MySQL/MariaDB DDL of a migrated database, as `deploy/sql/mysql.sql` holds it:
 * `SHOW CREATE TABLE` of every table in creation order (AUTO_INCREMENT counters removed)
 * plus the rows migrations insert (task_flow_state's one row) and knex's migration
 * bookkeeping, so daemons started on a database built from this file see it as migrated.
 */
export async function mysqlDdl(db: Db): Promise<string> {
  const lines: string[] = [
    '-- Firn schema for MySQL 8 / MariaDB 10.6+ — GENERATED from packages/core/src/migrations by',
    '-- `npm run gen:sql`; do not edit by hand (a test checks it matches the migrations).',
    '-- Create the database first: CREATE DATABASE firn CHARACTER SET utf8mb4 COLLATE utf8mb4_bin;',
    'SET FOREIGN_KEY_CHECKS = 0;',
    '',
  ];
  for (const table of [...TABLES, 'knex_migrations', 'knex_migrations_lock']) {
    const [rows] = (await db.raw('SHOW CREATE TABLE ??', [table])) as [Array<Record<string, string>>];
    const create = rows[0]?.['Create Table'];
    if (!create) throw new Error(`no table ${table}`);
    lines.push(`${create.replace(/ AUTO_INCREMENT=\d+/, '')};`, '');
  }
  lines.push('INSERT INTO `task_flow_state` (`id`, `history_id`, `seen_id`, `seen_at`) VALUES (1, 0, 0, 0);');
  const { applied } = await migrationStatus(db);
  for (const name of applied) {
    lines.push(`INSERT INTO \`knex_migrations\` (\`name\`, \`batch\`, \`migration_time\`) VALUES ('${name.replace(/'/g, "''")}', 1, CURRENT_TIMESTAMP);`);
  }
  lines.push("INSERT INTO `knex_migrations_lock` (`index`, `is_locked`) VALUES (1, 0);", 'SET FOREIGN_KEY_CHECKS = 1;', '');
  return lines.join('\n');
}
