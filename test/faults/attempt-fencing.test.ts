/**
 * Fencing at pilot.start (issue 15): two copies of one batch job hold the same passkey; only
 * the first start's attempt nonce may run the task. A second start of the PROCESSING task with
 * another nonce (or none) is refused -32009 with a history row; the same nonce is a retried start
 * and gets the same answer as before. A new attempt (after a reset) starts with its own nonce.
 * On SQLite and MariaDB, through a real firn-mon.
 */
import { RpcClient, type Db } from '@firn/core';
import { createMonServer, type MonServer, type StartResult } from '@firn/mon';
import { DB_KINDS, createTestDb, type TestDb } from '../helpers/db';
import { monConfig, resetAndRequeue, rpcErrorOf, seedDataset } from '../mon/fixtures';

describe.each(DB_KINDS)('pilot.start fencing on %s', (kind) => {
  let tdb: TestDb;
  let db: Db;
  let mon: MonServer;
  let client: RpcClient;

  beforeAll(async () => {
    tdb = await createTestDb(kind);
    db = tdb.db;
    mon = await createMonServer({ db, config: monConfig(tdb.url, {}, {}), heartbeatSeconds: 7 });
    client = new RpcClient(await mon.listen());
  });
  afterAll(async () => {
    client?.close();
    await mon?.close();
    await tdb?.drop();
  });

  test('a second start with another attempt is refused (-32009), the same attempt gets the same answer', async () => {
    const seeded = await seedDataset(db, 2);
    const t = seeded.tasks[0]!;
    const auth = { task_id: t.id, passkey: t.passkey };
    const first = await client.call<StartResult>('pilot.start', { ...auth, host: 'node-a', attempt: 'a'.repeat(32) });
    const row = await db('task').where({ id: t.id }).first();
    expect(row).toMatchObject({ status: 'PROCESSING', host: 'node-a', attempt: 'a'.repeat(32) });

    // another copy of the same batch job (same passkey, its own nonce): refused, nothing changed
    const e = await rpcErrorOf(client, 'pilot.start', { ...auth, host: 'node-b', attempt: 'b'.repeat(32) });
    expect({ code: e.code, message: e.message }).toEqual({ code: -32009, message: `task ${t.id} was already started by another attempt` });
    // a pilot without a nonce cannot take it over either
    expect((await rpcErrorOf(client, 'pilot.start', { ...auth, host: 'node-c' })).code).toBe(-32009);
    expect(await db('task').where({ id: t.id }).first()).toMatchObject({ status: 'PROCESSING', host: 'node-a', attempt: 'a'.repeat(32), started_at: row.started_at });
    const refusals = await db('history').where({ entity: 'task', entity_id: t.id, action: 'refuse' }).pluck('reason');
    expect(refusals).toEqual([
      'pilot.start refused: the task was already started by another attempt',
      'pilot.start refused: the task was already started by another attempt',
    ]);

    // the first pilot retries its start (lost answer): same answer, no second transition
    const again = await client.call<StartResult>('pilot.start', { ...auth, host: 'node-a', attempt: 'a'.repeat(32) });
    expect(again).toEqual(first);
    expect(await db('history').where({ entity_id: t.id, to_status: 'PROCESSING' })).toHaveLength(1);

    // the next attempt (reset, new passkey) starts with its own nonce
    await expect(client.call('pilot.finish', { ...auth, ok: false, error: 'module failed' })).resolves.toEqual({ status: 'ERROR' });
    const passkey = await resetAndRequeue(db, t.id);
    await expect(client.call<StartResult>('pilot.start', { task_id: t.id, passkey, host: 'node-b', attempt: 'c'.repeat(32) })).resolves.toMatchObject({ task: { id: t.id } });
    expect(await db('task').where({ id: t.id }).first()).toMatchObject({ status: 'PROCESSING', host: 'node-b', attempt: 'c'.repeat(32) });
  });

  test('pilots that send no attempt keep the old retry rule; a malformed attempt is -32602', async () => {
    const seeded = await seedDataset(db, 1);
    const t = seeded.tasks[0]!;
    const auth = { task_id: t.id, passkey: t.passkey };
    const a = await client.call<StartResult>('pilot.start', { ...auth, host: 'h1' });
    await expect(client.call<StartResult>('pilot.start', { ...auth, host: 'h1' })).resolves.toEqual(a);
    // once started without a nonce, a pilot with one is another copy
    expect((await rpcErrorOf(client, 'pilot.start', { ...auth, attempt: 'd'.repeat(32) })).code).toBe(-32009);
    expect((await rpcErrorOf(client, 'pilot.start', { ...auth, attempt: 'no spaces allowed' })).code).toBe(-32602);
    expect((await rpcErrorOf(client, 'pilot.start', { ...auth, attempt: 'x'.repeat(65) })).code).toBe(-32602);
  });
});
