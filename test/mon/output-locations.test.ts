/**
 * Issue 14: a job reports its outputs by the local names its task declares; firn-mon derives
 * every location from the dataset config and refuses anything else with -32602 naming the
 * field, storing nothing (the whole call rolls back), counting and recording the refusal.
 */
import { RpcClient, type Db } from '@firn/core';
import { createMonServer, type MonServer } from '@firn/mon';
import { DB_KINDS, createTestDb, type TestDb } from '../helpers/db';
import { CONFIG_WITH_OUTPUT, monConfig, outDat, rpcErrorOf, seedDataset } from './fixtures';

describe.each(DB_KINDS)('firn-mon output records on %s', (kind) => {
  let tdb: TestDb;
  let db: Db;
  let mon: MonServer;
  let client: RpcClient;

  beforeAll(async () => {
    tdb = await createTestDb(kind);
    db = tdb.db;
    mon = await createMonServer({ db, config: monConfig(tdb.url), heartbeatSeconds: 7 });
    client = new RpcClient(await mon.listen());
  });
  afterAll(async () => {
    client?.close();
    await mon?.close();
    await tdb?.drop();
  });

  const sums = { size: 3, md5: 'a'.repeat(32), sha256: 'b'.repeat(64) };

  test('hostile records are refused with -32602 naming the field; nothing is stored; a finish ok without its output ends ERROR', async () => {
    const seeded = await seedDataset(db, 2, { config: CONFIG_WITH_OUTPUT });
    const t = seeded.tasks[0]!;
    const auth = { task_id: t.id, passkey: t.passkey };
    await client.call('pilot.start', auth);
    const good = { local_name: 'out.dat', ...outDat(seeded.datasetId, t.jobIndex), ...sums };
    const hostile: Array<[string, Record<string, unknown>, string]> = [
      ['traversal', { ...good, local_name: '../../etc/passwd' }, '/params/files/0/local_name'],
      ['undeclared name', { ...good, local_name: 'other.dat' }, '/params/files/0/local_name'],
      ['file url elsewhere', { ...good, url: 'file:///etc/shadow' }, '/params/files/0/url'],
      ['capture server', { ...good, url: 'http://127.0.0.1:9/capture' }, '/params/files/0/url'],
      ['temp elsewhere', { ...good, temp_url: 'file:///etc/db-password' }, '/params/files/0/temp_url'],
      ['temp traversal', { ...good, temp_url: `${outDat(seeded.datasetId, t.jobIndex).temp_url}/../../../../../../etc/passwd` }, '/params/files/0/temp_url'],
      ['type changed', { ...good, type: 'job_temp' }, '/params/files/0/type'],
    ];
    for (const [what, f, field] of hostile) {
      for (const method of ['pilot.files', 'pilot.finish'] as const) {
        const params = method === 'pilot.files' ? { ...auth, files: [good, f] } : { ...auth, ok: true, stats: { x: 1 }, files: [good, f] };
        const e = await rpcErrorOf(client, method, params);
        expect({ what, method, code: e.code }).toEqual({ what, method, code: -32602 });
        expect(JSON.stringify(e.data)).toContain(field.replace('/0/', '/1/'));
        // nothing half-applied: not the good file, not the stats, not the outcome
        expect(await db('file').where({ task_id: t.id, kind: 'output' })).toHaveLength(0);
        expect(await db('task_stat').where({ task_id: t.id })).toHaveLength(0);
        expect((await db('task').where({ id: t.id }).first()).status).toBe('PROCESSING');
      }
    }
    // counted (metrics) and recorded (history)
    expect(await (await fetch(`${mon.url}/metrics`)).text()).toMatch(new RegExp(`^firn_mon_updates_refused_total\\{reason="outputs"\\} ${hostile.length * 2}$`, 'm'));
    expect(await db('history').where({ entity: 'task', entity_id: t.id, action: 'refuse', actor: 'mon' })).toHaveLength(hostile.length * 2);

    // a finish ok that never stored its declared output cannot become READYTOCOPY
    await expect(client.call('pilot.finish', { ...auth, ok: true })).resolves.toEqual({ status: 'ERROR' });
    const row = await db('task').where({ id: t.id }).first();
    expect(row.error_summary).toMatch(/out\.dat.*never stored/);
    // a retried finish gets the same answer
    await expect(client.call('pilot.finish', { ...auth, ok: true })).resolves.toEqual({ status: 'ERROR' });
  });

  test('a restarted mon (its config cache empty) takes a finish with outputs at once: the config is read in the finish\'s own transaction', async () => {
    const seeded = await seedDataset(db, 1, { config: CONFIG_WITH_OUTPUT });
    const t = seeded.tasks[0]!;
    await client.call('pilot.start', { task_id: t.id, passkey: t.passkey });
    // another mon on the same database, as after a restart: it has read no dataset config yet.
    // On SQLite (one pooled connection) a config read outside the transaction waited for the
    // connection the transaction held: every finish timed out and starved the whole process.
    const fresh = await createMonServer({ db, config: monConfig(tdb.url), heartbeatSeconds: 7 });
    const c2 = new RpcClient(await fresh.listen(), { timeoutMs: 10_000 });
    try {
      const t0 = Date.now();
      await expect(c2.call('pilot.finish', { task_id: t.id, passkey: t.passkey, ok: true, files: [{ local_name: 'out.dat', ...sums }] }))
        .resolves.toEqual({ status: 'READYTOCOPY' });
      expect(Date.now() - t0).toBeLessThan(5_000);
    } finally {
      c2.close();
      await fresh.close();
    }
  });

  test('the derivation is what is stored: a record with only local_name, or with matching url / temp_url, is accepted', async () => {
    const seeded = await seedDataset(db, 2, { config: CONFIG_WITH_OUTPUT });
    const [a, b] = [seeded.tasks[0]!, seeded.tasks[1]!];
    for (const t of [a, b]) await client.call('pilot.start', { task_id: t.id, passkey: t.passkey });
    await client.call('pilot.files', { task_id: a.id, passkey: a.passkey, files: [{ local_name: 'out.dat', ...sums }] });
    await client.call('pilot.files', { task_id: b.id, passkey: b.passkey, files: [{ local_name: 'out.dat', ...outDat(seeded.datasetId, b.jobIndex), type: 'permanent', ...sums }] });
    for (const t of [a, b]) {
      const rows = await db('file').where({ task_id: t.id, kind: 'output' });
      expect(rows.map((r: Record<string, unknown>) => [r.local_name, r.url, r.temp_url, r.type, r.state])).toEqual([
        ['out.dat', outDat(seeded.datasetId, t.jobIndex).url, outDat(seeded.datasetId, t.jobIndex).temp_url, 'permanent', 'STAGED'],
      ]);
      await expect(client.call('pilot.finish', { task_id: t.id, passkey: t.passkey, ok: true })).resolves.toEqual({ status: 'READYTOCOPY' });
    }
  });

  test('a dataset whose remote lies outside [dh] destinations: its outputs are refused at mon', async () => {
    const outside = { ...CONFIG_WITH_OUTPUT, tasks: [{ ...CONFIG_WITH_OUTPUT.tasks[0]!, data: [{ local: 'out.dat', remote: 'file:///etc/cron.d/x', movement: 'output' }] }] };
    const seeded = await seedDataset(db, 1, { config: outside });
    const t = seeded.tasks[0]!;
    await client.call('pilot.start', { task_id: t.id, passkey: t.passkey });
    const e = await rpcErrorOf(client, 'pilot.files', { task_id: t.id, passkey: t.passkey, files: [{ local_name: 'out.dat', ...sums }] });
    expect(e.code).toBe(-32602);
    expect(JSON.stringify(e.data)).toContain('/params/files/0/url');
    expect(JSON.stringify(e.data)).toContain('not under a configured destination');
    expect(await db('file').where({ task_id: t.id })).toHaveLength(0);
  });
});
