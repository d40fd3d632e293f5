import { RpcClient, createUser, foldTaskStats, type Db } from '@firn/core';
import { startTray, type Tray } from '@firn/tray';
import { DB_KINDS, createTestDb, type TestDb } from '../helpers/db';
import { trayConfig } from './helpers';

/**
 * An admin's reset of OK tasks (job.reset / dataset.reset with include_ok) takes their
 * statistics out of dataset_stat in the reset's transaction, so a task reset and run again
 * counts once — through the real RPC, on SQLite and MariaDB. A task "reaching OK" is what
 * firn-mon and firn-dh do to the rows: the attempt's task_stat rows (an earlier attempt's
 * deleted first, as pilot.start does), then OK and core's foldTaskStats in one transaction.
 */

const shell = {
  version: 1,
  tasks: [{ name: 'main', trays: [{ name: 't', modules: [{ name: 'm', class: 'shell', parameters: { command: 'true' } }] }] }],
};

async function reachOk(db: Db, task: { id: number; dataset_id: number }, value: number): Promise<void> {
  await db.transaction(async (trx) => {
    await trx('task_stat').where({ task_id: task.id }).delete();
    await trx('task_stat').insert([{ task_id: task.id, dataset_id: task.dataset_id, name: 'energy', value }, { task_id: task.id, dataset_id: task.dataset_id, name: 'runs', value: 1 }]);
    await trx('task').where({ id: task.id }).update({ status: 'OK' });
    await foldTaskStats(trx, [task.id]);
  });
}

describe.each(DB_KINDS)('reset of OK tasks and dataset statistics on %s', (kind) => {
  let t: TestDb;
  let tray: Tray;
  let admin: RpcClient;

  beforeAll(async () => {
    t = await createTestDb(kind);
    await createUser(t.db, { username: 'root1', role: 'admin', password: 'root1-password' });
    tray = await startTray({ config: trayConfig(t.url), db: t.db });
    const anon = new RpcClient(tray.url);
    const { token } = await anon.call<{ token: string }>('auth.login', { username: 'root1', password: 'root1-password' });
    anon.close();
    admin = new RpcClient(tray.url, { token });
    await admin.call('grid.add', { name: 'site-a', plugin: 'local' });
  });
  afterAll(async () => {
    admin?.close();
    await tray?.close();
    await t?.drop();
  });

  const stats = async (id: number) =>
    ((await t.db('dataset_stat').select('name', 'n', 'sum', 'min', 'max').where({ dataset_id: id }).orderBy('name')) as Array<Record<string, number | string>>)
      .map((r) => [r.name, Number(r.n), Number(r.sum), Number(r.min), Number(r.max)]);

  test('job.reset include_ok subtracts the job\'s statistics; the rerun counts once; dataset.reset include_ok empties them', async () => {
    const { dataset_id: id } = await admin.call<{ dataset_id: number }>('dataset.submit', { config: shell, jobs: 3, grids: ['site-a'] });
    const tasks = (await t.db('task as t').join('job as j', 'j.id', 't.job_id').select('t.id', 't.dataset_id', 'j.job_index').where('t.dataset_id', id).orderBy('j.job_index')) as Array<{ id: number; dataset_id: number; job_index: number }>;
    for (const [i, task] of tasks.entries()) await reachOk(t.db, { id: Number(task.id), dataset_id: id }, 10 * (i + 1));
    expect(await stats(id)).toEqual([['energy', 3, 60, 10, 30], ['runs', 3, 3, 1, 1]]);

    // job 2 (energy 30, the maximum) reset by an admin: out of the sums, and out of max
    await expect(admin.call('job.reset', { dataset_id: id, job_index: 2, include_ok: true })).resolves.toMatchObject({ changed: 1 });
    expect((await t.db('task').where({ id: tasks[2]!.id }).first()).status).toBe('WAITING');
    expect(await stats(id)).toEqual([['energy', 2, 30, 10, 20], ['runs', 2, 2, 1, 1]]);
    // it runs again (another value) and reaches OK: counted once
    await reachOk(t.db, { id: Number(tasks[2]!.id), dataset_id: id }, 25);
    expect(await stats(id)).toEqual([['energy', 3, 55, 10, 25], ['runs', 3, 3, 1, 1]]);

    // every OK task reset: nothing left to count, the rows go
    await expect(admin.call('dataset.reset', { dataset_id: id, include_ok: true })).resolves.toMatchObject({ changed: 3 });
    expect(await stats(id)).toEqual([]);
    for (const [i, task] of tasks.entries()) await reachOk(t.db, { id: Number(task.id), dataset_id: id }, i + 1);
    expect(await stats(id)).toEqual([['energy', 3, 6, 1, 3], ['runs', 3, 3, 1, 1]]);
  });
});
