import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import knexFactory from 'knex';
import { connect, type Db } from '@firn/core';

/** Root URL of the test MariaDB (no database part). */
export const MYSQL_ROOT_URL = process.env.FIRN_TEST_MYSQL_URL ?? 'mysql://root@127.0.0.1:3306';

export type DbKind = 'sqlite' | 'mariadb';
export const DB_KINDS: DbKind[] = ['sqlite', 'mariadb'];

export interface TestDb {
  kind: DbKind;
  url: string;
  db: Db;
  /** Drop the database / delete the file and close the pool. */
  drop(): Promise<void>;
}

let mysqlChecked: Promise<boolean> | null = null;
/** Is the test MariaDB answering? */
export function mysqlAvailable(): Promise<boolean> {
  mysqlChecked ??= (async () => {
    const u = new URL(MYSQL_ROOT_URL);
    const k = knexFactory({
      client: 'mysql2',
      connection: { host: u.hostname, port: Number(u.port || 3306), user: decodeURIComponent(u.username || 'root'), password: decodeURIComponent(u.password) },
      pool: { min: 0, max: 1 },
    });
    try {
      await k.raw('SELECT 1');
      return true;
    } catch {
      return false;
    } finally {
      await k.destroy();
    }
  })();
  return mysqlChecked;
}

/**
 * A real service the test needs is missing: always an error (so CI fails loudly), unless the
 * developer explicitly allows skipping with FIRN_TEST_ALLOW_MISSING=<name>[,<name>] outside CI.
 */
export function missingService(name: string, how: string): 'skip' {
  const allowed = (process.env.FIRN_TEST_ALLOW_MISSING ?? '').split(',').map((s) => s.trim());
  if (process.env.CI !== 'true' && (allowed.includes(name) || allowed.includes('all'))) {
    console.warn(`!!! ${name} is not available: tests that need it are SKIPPED (FIRN_TEST_ALLOW_MISSING). Start it with ${how}`);
    return 'skip';
  }
  throw new Error(`${name} is not available; start it with ${how} (tests never skip a missing service under CI=true)`);
}

/** A fresh, migrated database of the given kind, private to the caller. */
export async function createTestDb(kind: DbKind, options: { poolMax?: number } = {}): Promise<TestDb> {
  const id = `${process.pid}_${crypto.randomBytes(4).toString('hex')}`;
  if (kind === 'sqlite') {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'firn-test-'));
    const url = `sqlite://${path.join(dir, 'firn.sqlite')}`;
    const db = await connect(url);
    return {
      kind, url, db,
      async drop() {
        await db.destroy();
        fs.rmSync(dir, { recursive: true, force: true });
      },
    };
  }
  if (!(await mysqlAvailable())) missingService('mariadb', 'bash test/services/start-mariadb.sh');
  const url = `${MYSQL_ROOT_URL}/firn_t_${id}`;
  const db = await connect(url, { poolMax: options.poolMax ?? 10 });
  return {
    kind, url, db,
    async drop() {
      await db.raw('DROP DATABASE IF EXISTS ??', [`firn_t_${id}`]);
      await db.destroy();
    },
  };
}

/** A fresh database of `kind` for the enclosing describe block: created before its tests, dropped after them. */
export function useTestDb(kind: DbKind): () => TestDb {
  let t: TestDb | undefined;
  beforeAll(async () => {
    t = await createTestDb(kind);
  });
  afterAll(async () => {
    await t?.drop();
  });
  return () => {
    if (!t) throw new Error('useTestDb: the database is only there inside tests');
    return t;
  };
}

/** Poll `cond` until it returns a truthy value or the timeout passes (never a fixed sleep). */
export async function waitUntil<T>(cond: () => Promise<T> | T, timeoutMs = 30_000, what = 'condition', intervalMs = 50): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const v = await cond();
      if (v) return v;
    } catch (e) {
      last = e;
    }
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${last ? `: ${String(last)}` : ''}`);
    await new Promise((r) => setTimeout(r, intervalMs));
  }
}
