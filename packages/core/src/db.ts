import fs from 'node:fs';
import path from 'node:path';
import knexFactory, { type Knex } from 'knex';
import { ConfigError } from './errors';
import * as m0001 from './migrations/0001_initial';
import * as m0002 from './migrations/0002_web_indexes';
import * as m0003 from './migrations/0003_history_flow_index';
import * as m0004 from './migrations/0004_task_flow';
import * as m0005 from './migrations/0005_task_attempt';
import * as m0006 from './migrations/0006_transition_token_unindexed';
import * as m0007 from './migrations/0007_task_batch_reason';

export type Db = Knex;
export type Trx = Knex.Transaction;
export type DbOrTrx = Knex | Knex.Transaction;

/** Migrations in order; numbered, forward-only. Add new ones at the end. */
const MIGRATIONS: ReadonlyArray<[string, { up(k: Knex): Promise<void> }]> = [
  ['0001_initial', m0001],
  ['0002_web_indexes', m0002],
  ['0003_history_flow_index', m0003],
  ['0004_task_flow', m0004],
  ['0005_task_attempt', m0005],
  ['0006_transition_token_unindexed', m0006],
  ['0007_task_batch_reason', m0007],
];

const migrationSource: Knex.MigrationSource<string> = {
  getMigrations: async () => MIGRATIONS.map(([name]) => name),
  getMigrationName: (name) => name,
  getMigration: async (name) => {
    const found = MIGRATIONS.find(([n]) => n === name);
    if (!found) throw new Error(`unknown migration ${name}`);
    return { up: found[1].up, down: async () => { throw new Error('migrations are forward-only'); } };
  },
};

export interface ParsedDbUrl {
  kind: 'sqlite' | 'mysql';
  /** sqlite: file path or ':memory:' */
  filename?: string;
  host?: string;
  port?: number;
  user?: string;
  password?: string;
  database?: string;
  params?: Record<string, string>;
}

/** Parse `sqlite:///abs/path.sqlite`, `sqlite://rel/path.sqlite`, `sqlite::memory:` or `mysql://user:pw@host:port/db`. */
export function parseDbUrl(url: string): ParsedDbUrl {
  if (url === 'sqlite::memory:' || url === 'sqlite://:memory:') return { kind: 'sqlite', filename: ':memory:' };
  if (url.startsWith('sqlite://')) {
    const rest = url.slice('sqlite://'.length);
    if (!rest) throw new ConfigError('[db] url: sqlite URL has no path (use sqlite:///abs/path/firn.sqlite)');
    return { kind: 'sqlite', filename: decodeURIComponent(rest) };
  }
  if (url.startsWith('mysql://') || url.startsWith('mariadb://')) {
    let u: URL;
    try {
      u = new URL(url.replace(/^mariadb:/, 'mysql:'));
    } catch {
      throw new ConfigError(`[db] url: not a valid URL`);
    }
    const database = decodeURIComponent(u.pathname.replace(/^\//, ''));
    const params: Record<string, string> = {};
    u.searchParams.forEach((v, k) => (params[k] = v));
    return {
      kind: 'mysql',
      host: u.hostname || '127.0.0.1',
      port: u.port ? Number(u.port) : 3306,
      user: decodeURIComponent(u.username || 'root'),
      password: decodeURIComponent(u.password || ''),
      database: database || undefined,
      params,
    };
  }
  throw new ConfigError(`[db] url must start with sqlite:// or mysql://, got ${JSON.stringify(url.split(':')[0] + ':…')}`);
}

/** The URL with any password replaced, for logs and messages. */
export function redactDbUrl(url: string): string {
  return url.replace(/(\/\/[^:/@]*:)[^@]*@/, '$1***@');
}

/** How long an SQLite statement waits for another process's write lock. */
const SQLITE_BUSY_TIMEOUT_MS = 15_000;
/** The same while migrating, where the retry loop of migrate() does the waiting. */
const MIGRATION_BUSY_TIMEOUT_MS = 100;

export interface OpenDbOptions {
  /** Pool size for MySQL (default 10). */
  poolMax?: number;
}

/**
 * Make sure a new SQLite database is private before better-sqlite3 opens it: missing directories are
 * created 0700 and a missing file 0600 (SQLite gives its -wal and -shm files the database file's
 * mode). The database holds password and token hashes, passkey hashes and every log; with the usual
 * umask 022 better-sqlite3 would create it 0644. Existing files and directories are left as the
 * operator set them (e.g. group-readable for a read-only firn-web account).
 */
function createPrivateSqliteFile(filename: string): void {
  fs.mkdirSync(path.dirname(path.resolve(filename)), { recursive: true, mode: 0o700 });
  try {
    fs.closeSync(fs.openSync(filename, fs.constants.O_CREAT | fs.constants.O_EXCL | fs.constants.O_WRONLY, 0o600));
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
  }
}

/** Open a knex instance for the URL (does not migrate). */
export function openDb(url: string, options: OpenDbOptions = {}): Db {
  const p = parseDbUrl(url);
  if (p.kind === 'sqlite') {
    const filename = p.filename!;
    if (filename !== ':memory:') createPrivateSqliteFile(filename);
    return knexFactory({
      client: 'better-sqlite3',
      connection: { filename },
      useNullAsDefault: true,
      // One connection: better-sqlite3 is synchronous, and a single writer avoids SQLITE_BUSY
      // between transactions of the same process. Other processes wait on busy_timeout.
      pool: {
        min: 1,
        max: 1,
        afterCreate: (conn: { pragma(s: string): unknown }, done: (err: Error | null, c: unknown) => void) => {
          try {
            conn.pragma('journal_mode = WAL');
            conn.pragma(`busy_timeout = ${SQLITE_BUSY_TIMEOUT_MS}`);
            conn.pragma('synchronous = NORMAL');
            conn.pragma('foreign_keys = ON');
            done(null, conn);
          } catch (e) {
            done(e as Error, conn);
          }
        },
      },
    });
  }
  if (!p.database) throw new ConfigError('[db] url: a mysql URL must name the database (mysql://user:pw@host:port/DB)');
  return knexFactory({
    client: 'mysql2',
    connection: {
      host: p.host,
      port: p.port,
      user: p.user,
      password: p.password,
      database: p.database,
      charset: 'utf8mb4',
      supportBigNumbers: true,
      bigNumberStrings: false,
      timezone: 'Z',
      ...(p.params?.ssl === 'true' ? { ssl: {} } : {}),
    },
    pool: { min: 0, max: options.poolMax ?? 10 },
  });
}

export function isMysql(db: DbOrTrx): boolean {
  return db.client.config.client === 'mysql2';
}

/** Create the MySQL database named in the URL if it does not exist (no-op for SQLite). */
export async function ensureDatabase(url: string): Promise<void> {
  const p = parseDbUrl(url);
  if (p.kind !== 'mysql') return;
  const admin = knexFactory({
    client: 'mysql2',
    connection: { host: p.host, port: p.port, user: p.user, password: p.password },
    pool: { min: 0, max: 1 },
  });
  try {
    // Least-privilege accounts have no CREATE privilege: only create what is missing.
    const rows = (await admin('information_schema.SCHEMATA').select('SCHEMA_NAME').where('SCHEMA_NAME', p.database!)) as unknown[];
    if (rows.length === 0) await admin.raw('CREATE DATABASE IF NOT EXISTS ?? CHARACTER SET utf8mb4 COLLATE utf8mb4_bin', [p.database!]);
  } finally {
    await admin.destroy();
  }
}

/**
 * Create knex's bookkeeping tables ourselves, idempotently, with the lock row at a fixed
 * key, before anything of knex's looks at them. knex creates them with a check-then-insert
 * (`SELECT * FROM knex_migrations_lock`, then an auto-numbered insert when empty), so two
 * processes on a fresh database could insert two lock rows; knex then takes the lock with
 * `UPDATE … SET is_locked = 1 WHERE is_locked = 0` and insists on exactly one changed row,
 * so with two rows nobody can ever take it and every migrator waits for a lock no one holds.
 * Extra unlocked rows left by that race (before this was fixed) are removed.
 */
async function ensureMigrationTables(db: Db): Promise<void> {
  if (isMysql(db)) {
    await db.raw('CREATE TABLE IF NOT EXISTS `knex_migrations` (`id` int unsigned NOT NULL AUTO_INCREMENT PRIMARY KEY, `name` varchar(255), `batch` int, `migration_time` timestamp NULL DEFAULT NULL) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin');
    await db.raw('CREATE TABLE IF NOT EXISTS `knex_migrations_lock` (`index` int unsigned NOT NULL AUTO_INCREMENT PRIMARY KEY, `is_locked` int) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin');
    await db.raw('INSERT IGNORE INTO `knex_migrations_lock` (`index`, `is_locked`) VALUES (1, 0)');
  } else {
    await db.raw('CREATE TABLE IF NOT EXISTS `knex_migrations` (`id` integer NOT NULL PRIMARY KEY AUTOINCREMENT, `name` varchar(255), `batch` integer, `migration_time` datetime)');
    await db.raw('CREATE TABLE IF NOT EXISTS `knex_migrations_lock` (`index` integer NOT NULL PRIMARY KEY AUTOINCREMENT, `is_locked` integer)');
    await db.raw('INSERT OR IGNORE INTO `knex_migrations_lock` (`index`, `is_locked`) VALUES (1, 0)');
  }
  await db('knex_migrations_lock').whereNot('index', 1).andWhere('is_locked', 0).del();
}

/**
 * Apply pending migrations under knex's migration lock (two daemons starting together are
 * safe: the one that does not get the lock waits for the other's migrations, then finds
 * nothing pending).
 *
 * On SQLite the lock attempt is made with a short busy timeout and retried here: better-sqlite3
 * is synchronous, so a statement waiting out the 15 s busy timeout would block the whole
 * process — including a second migrator in the same process (`firn up`, tests), which holds
 * the lock and could not finish until the wait was over.
 */
export async function migrate(db: Db, timeoutMs = 60_000): Promise<string[]> {
  if (isMysql(db)) return migrateUnderLock(db, timeoutMs);
  await db.raw(`PRAGMA busy_timeout = ${MIGRATION_BUSY_TIMEOUT_MS}`);
  try {
    return await migrateUnderLock(db, timeoutMs);
  } finally {
    await db.raw(`PRAGMA busy_timeout = ${SQLITE_BUSY_TIMEOUT_MS}`);
  }
}

async function migrateUnderLock(db: Db, timeoutMs: number): Promise<string[]> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      await ensureMigrationTables(db);
      break;
    } catch (e) {
      if (Date.now() > deadline) throw e;
      await new Promise((r) => setTimeout(r, 50 + Math.random() * 100)); // SQLite busy while another process creates them
    }
  }
  for (let attempt = 1; ; attempt++) {
    try {
      const [, applied] = (await db.migrate.latest({ migrationSource, tableName: 'knex_migrations' })) as [number, string[]];
      return applied;
    } catch (e) {
      // Another process holds the migration lock (or SQLite is busy creating it): wait for it
      // to finish, then look again — its migrations will then be applied.
      const err = e as { name?: string; code?: string; message?: string };
      const locked = err.name === 'MigrationLocked' || err.code === 'SQLITE_BUSY' || /database is locked|ER_LOCK_DEADLOCK|ER_TABLE_EXISTS|already exists/.test(err.message ?? '');
      if (!locked || Date.now() > deadline) throw e;
      await new Promise((r) => setTimeout(r, Math.min(1000, 25 * attempt) + Math.random() * 50));
    }
  }
}

export interface MigrationStatus {
  applied: string[];
  pending: string[];
}

/**
 * Applied and pending migrations, read from `knex_migrations` only. This never creates or
 * writes anything (knex's `migrate.list` would create its bookkeeping tables with a
 * check-then-insert of the lock row: see ensureMigrationTables), so a read-only account can
 * call it and two processes calling it on a fresh database cannot corrupt the lock.
 */
export async function migrationStatus(db: Db): Promise<MigrationStatus> {
  const known = MIGRATIONS.map(([name]) => name);
  if (!(await db.schema.hasTable('knex_migrations'))) return { applied: [], pending: known };
  const rows = (await db('knex_migrations').select('name').orderBy('id')) as Array<{ name: string }>;
  const applied = rows.map((r) => r.name);
  const done = new Set(applied);
  return { applied, pending: known.filter((n) => !done.has(n)) };
}

/** Open and migrate (creating the MySQL database if needed). */
export async function connect(url: string, options: OpenDbOptions = {}): Promise<Db> {
  await ensureDatabase(url);
  const db = openDb(url, options);
  try {
    // Accounts without DDL rights can start on a migrated database: migrate only when needed.
    const pending = await migrationStatus(db).then((st) => st.pending.length, () => 1);
    if (pending > 0) await migrate(db);
  } catch (e) {
    await db.destroy();
    throw e;
  }
  return db;
}

/** All tables of the schema, in creation order. */
export const TABLES = [
  'user', 'token', 'grid', 'dataset', 'steering_parameter', 'metaproject', 'task_rel', 'task_rel_dep', 'tray',
  'module', 'cparameter', 'dataset_grid', 'run', 'job', 'task', 'file', 'task_stat', 'dataset_stat', 'task_log',
  'node', 'history', 'task_flow', 'task_flow_state',
] as const;

export const now = (): number => Date.now();

/** Split an array into chunks (for multi-row statements under the engines' placeholder limits). */
export function chunk<T>(items: readonly T[], size: number): T[][] {
  const out: T[][] = [];
  for (let i = 0; i < items.length; i += size) out.push(items.slice(i, i + size));
  return out;
}

/** Retry a transaction body on MySQL deadlocks / lock wait timeouts (the loser of a race). */
export async function withTransaction<T>(db: Db, fn: (trx: Trx) => Promise<T>, attempts = 5): Promise<T> {
  for (let i = 1; ; i++) {
    try {
      return await db.transaction(fn);
    } catch (e) {
      const code = (e as { code?: string }).code;
      const retryable = code === 'ER_LOCK_DEADLOCK' || code === 'ER_LOCK_WAIT_TIMEOUT' || code === 'SQLITE_BUSY';
      if (!retryable || i >= attempts) throw e;
      await new Promise((r) => setTimeout(r, 10 * i + Math.random() * 20));
    }
  }
}
