import fs from 'node:fs';
import path from 'node:path';
import {
  IllegalTransitionError, LostRaceError, TABLES, TaskStatus, connect, ensureDatabase, migrationStatus, mysqlDdl, openDb, transition,
  type Db,
} from '@firn/core';
import { createTestDb, DB_KINDS, type TestDb } from '../helpers/db';

/** Insert a minimal dataset with `jobs` jobs of one task each, all in `status`. */
async function seed(db: Db, jobs: number, status: TaskStatus = TaskStatus.WAITING): Promise<number[]> {
  const t = Date.now();
  const [datasetId] = await db('dataset').insert({ status: 'PROCESSING', tasks_per_job: 1, config: '{}', config_hash: 'x', created_at: t, updated_at: t });
  const [relId] = await db('task_rel').insert({ dataset_id: datasetId, task_index: 0, name: 'main', requirements: '{}' });
  await db.batchInsert('job', Array.from({ length: jobs }, (_, i) => ({ dataset_id: datasetId, job_index: i, status: 'PROCESSING', status_changed_at: t })), 400);
  const jobRows: Array<{ id: number }> = await db('job').select('id').where('dataset_id', datasetId).orderBy('job_index');
  await db.batchInsert('task', jobRows.map((j) => ({ dataset_id: datasetId, job_id: j.id, task_rel_id: relId, task_index: 0, name: 'main', status, status_changed_at: t })), 400);
  const rows: Array<{ id: number }> = await db('task').select('id').where('dataset_id', datasetId).orderBy('id');
  return rows.map((r) => Number(r.id));
}

describe.each(DB_KINDS)('database on %s', (kind) => {
  let t: TestDb;
  beforeAll(async () => {
    t = await createTestDb(kind);
  });
  afterAll(async () => {
    await t?.drop();
  });

  test('migrations create every table and are recorded', async () => {
    for (const table of TABLES) expect(await t.db.schema.hasTable(table)).toBe(true);
    const status = await migrationStatus(t.db);
    expect(status.pending).toEqual([]);
    expect(status.applied).toContain('0001_initial');
  });

  test('migrating again is a no-op (two daemons starting together)', async () => {
    const before = (await migrationStatus(t.db)).applied;
    const again = await Promise.all([connect(t.url), connect(t.url)]);
    for (const db of again) await db.destroy();
    expect((await migrationStatus(t.db)).applied).toEqual(before);
  });

  test('two daemons migrating a fresh database at once both start, migrations applied once', async () => {
    const fresh = t.kind === 'sqlite' ? t.url.replace(/firn\.sqlite$/, 'fresh.sqlite') : `${t.url}_fresh`;
    const dbs = await Promise.all([connect(fresh), connect(fresh)]);
    try {
      const st = await migrationStatus(dbs[0]!);
      expect(st.pending).toEqual([]);
      expect(st.applied).toEqual((await migrationStatus(t.db)).applied);
      const rows = await dbs[0]!('knex_migrations').select('name');
      expect(rows.map((r: { name: string }) => r.name).sort()).toEqual([...st.applied].sort()); // no double entries
    } finally {
      if (t.kind === 'mariadb') await dbs[0]!.raw('DROP DATABASE IF EXISTS ??', [fresh.split('/').pop()!]);
      for (const db of dbs) await db.destroy();
    }
  });

  test('reading the migration state of a fresh database creates nothing; a doubled lock row left by the old race is repaired', async () => {
    const fresh = t.kind === 'sqlite' ? t.url.replace(/firn\.sqlite$/, 'fresh2.sqlite') : `${t.url}_fresh2`;
    await ensureDatabase(fresh);
    const db = openDb(fresh);
    try {
      // knex's own migrate.list creates its tables with a check-then-insert of the lock row:
      // two processes doing it at once left two lock rows, and then nobody could take the lock.
      expect(await migrationStatus(db)).toEqual({ applied: [], pending: (await migrationStatus(t.db)).applied });
      expect(await db.schema.hasTable('knex_migrations_lock')).toBe(false);
      await db.schema.createTable('knex_migrations_lock', (tb) => {
        tb.increments('index').primary();
        tb.integer('is_locked');
      });
      await db('knex_migrations_lock').insert([{ is_locked: 0 }, { is_locked: 0 }]);
      const dbs = await Promise.all([connect(fresh), connect(fresh)]);
      for (const d of dbs) await d.destroy();
      expect((await db('knex_migrations_lock').select('index', 'is_locked')).map((r: { index: number; is_locked: number }) => [Number(r.index), Number(r.is_locked)])).toEqual([[1, 0]]);
      expect((await migrationStatus(db)).pending).toEqual([]);
    } finally {
      if (t.kind === 'mariadb') await db.raw('DROP DATABASE IF EXISTS ??', [fresh.split('/').pop()!]);
      await db.destroy();
    }
  });

  test('a legal transition updates the row and writes exactly one history row', async () => {
    const [id] = await seed(t.db, 1);
    const changed = await transition(t.db, { taskIds: [id!], from: 'WAITING', to: 'QUEUEING', by: 'queue', actor: 'queue:g1', reason: 'claimed', set: { lease_until: 123 } });
    expect(changed).toEqual([id]);
    const row = await t.db('task').where('id', id).first();
    expect(row.status).toBe('QUEUEING');
    expect(Number(row.lease_until)).toBe(123);
    const hist = await t.db('history').where({ entity: 'task', entity_id: id });
    expect(hist).toHaveLength(1);
    expect(hist[0]).toMatchObject({ from_status: 'WAITING', to_status: 'QUEUEING', actor: 'queue:g1', reason: 'claimed', action: 'transition' });
  });

  test('an illegal transition is refused and changes nothing', async () => {
    const [id] = await seed(t.db, 1);
    await expect(transition(t.db, { taskIds: [id!], from: 'WAITING', to: 'OK', by: 'dh', actor: 'dh' })).rejects.toBeInstanceOf(IllegalTransitionError);
    await expect(transition(t.db, { taskIds: [id!], from: 'WAITING', to: 'QUEUEING', by: 'mon', actor: 'mon' })).rejects.toBeInstanceOf(IllegalTransitionError);
    await expect(transition(t.db, { taskIds: [id!], from: 'OK', to: 'RESET', by: 'tray', actor: 'user:m', isAdmin: false })).rejects.toBeInstanceOf(IllegalTransitionError);
    expect((await t.db('task').where('id', id).first()).status).toBe('WAITING');
    expect(await t.db('history').where({ entity: 'task', entity_id: id })).toHaveLength(0);
  });

  test('a stale expectation is a lost race, rolled back whole', async () => {
    const [id] = await seed(t.db, 1, TaskStatus.QUEUED);
    await expect(transition(t.db, { taskIds: [id!], from: 'WAITING', to: 'QUEUEING', by: 'queue', actor: 'q' })).rejects.toBeInstanceOf(LostRaceError);
    expect((await t.db('task').where('id', id).first()).status).toBe('QUEUED');
    expect(await t.db('history').where({ entity: 'task', entity_id: id })).toHaveLength(0);
  });

  test('bulk, non-strict: only the tasks still in `from` move, one history row each', async () => {
    const ids = await seed(t.db, 1200);
    await t.db('task').whereIn('id', ids.slice(0, 200)).update({ status: 'QUEUED' });
    const changed = await transition(t.db, { taskIds: ids, from: 'WAITING', to: 'SUSPENDED', by: 'tray', actor: 'user:a', strict: false });
    expect(changed.sort((a, b) => a - b)).toEqual(ids.slice(200));
    const n = await t.db('history').whereIn('entity_id', ids).andWhere({ entity: 'task', to_status: 'SUSPENDED' }).count({ n: '*' });
    expect(Number(n[0]!.n)).toBe(1000);
  });
});

describe('races on MariaDB', () => {
  let t: TestDb;
  beforeAll(async () => {
    t = await createTestDb('mariadb');
  });
  afterAll(async () => {
    await t?.drop();
  });

  test('two connections race the same transition: exactly one wins, exactly one history row', async () => {
    for (let round = 0; round < 20; round++) {
      const [id] = await seed(t.db, 1);
      const a = openDb(t.url, { poolMax: 1 });
      const b = openDb(t.url, { poolMax: 1 });
      try {
        const results = await Promise.allSettled([
          transition(a, { taskIds: [id!], from: 'WAITING', to: 'QUEUEING', by: 'queue', actor: 'queue:a' }),
          transition(b, { taskIds: [id!], from: 'WAITING', to: 'QUEUEING', by: 'queue', actor: 'queue:b' }),
        ]);
        const won = results.filter((r) => r.status === 'fulfilled');
        const lost = results.filter((r) => r.status === 'rejected');
        expect(won).toHaveLength(1);
        expect(lost).toHaveLength(1);
        expect((lost[0] as PromiseRejectedResult).reason).toBeInstanceOf(LostRaceError);
        const hist = await t.db('history').where({ entity: 'task', entity_id: id });
        expect(hist).toHaveLength(1);
      } finally {
        await a.destroy();
        await b.destroy();
      }
    }
  });
});

describe('one schema on both engines', () => {
  let s: TestDb;
  let m: TestDb;
  beforeAll(async () => {
    s = await createTestDb('sqlite');
    m = await createTestDb('mariadb');
  });
  afterAll(async () => {
    await s?.drop();
    await m?.drop();
  });

  async function indexes(t: TestDb, table: string): Promise<string[]> {
    if (t.kind === 'sqlite') {
      const rows: Array<{ name: string; origin: string }> = await t.db.raw(`PRAGMA index_list(\`${table}\`)`);
      return rows.filter((r) => r.origin !== 'pk').map((r) => r.name).sort();
    }
    const [rows] = (await t.db.raw('SHOW INDEX FROM ??', [table])) as [Array<{ Key_name: string; Column_name: string }>];
    // MySQL adds an index for each foreign key; compare only the ones migrations name
    return [...new Set(rows.map((r) => r.Key_name))].filter((k) => k !== 'PRIMARY' && !k.endsWith('_foreign')).sort();
  }

  test.each(TABLES)('table %s has the same columns and named indexes', async (table) => {
    const sc = Object.keys(await s.db(table).columnInfo()).sort();
    const mc = Object.keys(await m.db(table).columnInfo()).sort();
    expect(mc).toEqual(sc);
    const named = (xs: string[]) => xs.filter((x) => !x.startsWith('sqlite_autoindex'));
    // unique() without a name gets engine-specific names; every index we name must exist on both
    const si = named(await indexes(s, table)).filter((x) => x.endsWith('_idx') || x.endsWith('_uq'));
    const mi = (await indexes(m, table)).filter((x) => x.endsWith('_idx') || x.endsWith('_uq'));
    expect(mi).toEqual(si);
  });

  test('deploy/sql/mysql.sql is what the migrations generate', async () => {
    const file = path.join(__dirname, '..', '..', 'deploy', 'sql', 'mysql.sql');
    const expected = await mysqlDdl(m.db);
    expect(fs.existsSync(file)).toBe(true);
    expect(fs.readFileSync(file, 'utf8')).toBe(expected);
  });

  test('a database built from deploy/sql/mysql.sql is complete and counts as migrated', async () => {
    const name = `firn_ddl_check_${process.pid}`;
    const sql = fs.readFileSync(path.join(__dirname, '..', '..', 'deploy', 'sql', 'mysql.sql'), 'utf8');
    await m.db.raw('CREATE DATABASE ?? CHARACTER SET utf8mb4 COLLATE utf8mb4_bin', [name]);
    const url = m.url.replace(/\/[^/]+$/, `/${name}`);
    const db = openDb(url);
    try {
      for (const stmt of sql.split(/;\n/).map((x) => x.replace(/^--.*$/gm, '').trim()).filter(Boolean)) await db.raw(stmt);
      expect((await migrationStatus(db)).pending).toEqual([]);
      for (const table of TABLES) expect(await db.schema.hasTable(table)).toBe(true);
    } finally {
      await db.raw('DROP DATABASE IF EXISTS ??', [name]);
      await db.destroy();
    }
  });
});
