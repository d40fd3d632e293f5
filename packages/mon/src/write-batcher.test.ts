import { sha256Hex, type Db } from '@firn/core';
import { createTestDb, type TestDb } from '../../../test/helpers/db';
import { WriteBatcher, tailBytes, type FlushInfo } from './write-batcher';
import { moduleContentBase64 } from './pilot-methods';

describe('tailBytes', () => {
  test('keeps strings under the cap whole and cuts longer ones to their last bytes', () => {
    expect(tailBytes('hello', 5)).toBe('hello');
    expect(tailBytes('hello world', 5)).toBe('world');
  });
  test('never splits a multi-byte character (the result may be shorter than the cap)', () => {
    const s = 'a' + 'é'.repeat(10); // 1 + 20 bytes
    expect(tailBytes(s, 5)).toBe('éé'); // 5 bytes would start inside an é: 4 bytes kept
    expect(tailBytes(s, 6)).toBe('ééé');
    expect(tailBytes('x😀', 3)).toBe(''); // a 4-byte character does not fit in 3
    for (let cap = 1; cap < 25; cap++) {
      const t = tailBytes(s, cap);
      expect(Buffer.byteLength(t)).toBeLessThanOrEqual(cap);
      expect(s.endsWith(t)).toBe(true);
      expect(Buffer.byteLength(t)).toBeGreaterThanOrEqual(Math.min(cap, 21) - 1);
    }
  });
});

describe('moduleContentBase64', () => {
  const text = 'print("hi ✓")\n';
  test('text stored as fetched is encoded', () => {
    expect(moduleContentBase64(text, sha256Hex(text))).toBe(Buffer.from(text).toString('base64'));
  });
  test('content stored base64-encoded already is passed as is', () => {
    const b64 = Buffer.from(text).toString('base64');
    expect(moduleContentBase64(b64, sha256Hex(text))).toBe(b64);
  });
});

describe('WriteBatcher', () => {
  let tdb: TestDb;
  let db: Db;
  let taskId: number;
  const passkey = 'pk';
  beforeAll(async () => {
    tdb = await createTestDb('sqlite');
    db = tdb.db;
    const t = Date.now();
    const [ds] = await db('dataset').insert({ status: 'PROCESSING', tasks_per_job: 1, config: '{}', config_hash: 'x', created_at: t, updated_at: t });
    const [tr] = await db('task_rel').insert({ dataset_id: ds, task_index: 0, name: 'a', requirements: '{}' });
    const [job] = await db('job').insert({ dataset_id: ds, job_index: 0, status: 'PROCESSING', status_changed_at: t });
    [taskId] = (await db('task').insert({
      dataset_id: ds, job_id: job, task_rel_id: tr, task_index: 0, name: 'a', status: 'PROCESSING', status_changed_at: t, passkey_hash: sha256Hex(passkey),
    })) as [number];
  });
  afterAll(async () => tdb.drop());

  test('options are checked up front, naming the config key', () => {
    expect(() => new WriteBatcher({ db, flushMs: 500, maxPending: 10, logCap: 1024 })).toThrow('[mon] flush_ms must be 1..100, got 500');
    expect(() => new WriteBatcher({ db, flushMs: 10, maxPending: 0, logCap: 1024 })).toThrow('[mon] max_pending must be a positive integer, got 0');
  });

  test('updates arriving together are written by one flush, answered after it, in order', async () => {
    const flushes: FlushInfo[] = [];
    const b = new WriteBatcher({ db, flushMs: 30, maxPending: 100, logCap: 1024, onFlush: (f) => flushes.push(f) });
    const digest = sha256Hex(passkey);
    const done = Promise.all([
      b.enqueue({ kind: 'heartbeat', taskId, digest, values: { cpu_seconds: 1, rss_mb: 10 } }),
      b.enqueue({ kind: 'heartbeat', taskId, digest, values: { cpu_seconds: 2 } }),
      b.enqueue({ kind: 'stats', taskId, digest, stats: { a: 1 } }),
      b.enqueue({ kind: 'stats', taskId, digest, stats: { a: 2, b: 3 } }),
      b.enqueue({ kind: 'log', taskId, digest, name: 'x', data: 'one ', append: true }),
      b.enqueue({ kind: 'log', taskId, digest, name: 'x', data: 'two', append: true }),
    ]);
    expect(b.pending).toBe(6);
    await done;
    expect(flushes).toHaveLength(1);
    expect(flushes[0]).toMatchObject({ updates: 6, tasks: 1, rejected: 0, ok: true });
    const row = await db('task').where({ id: taskId }).first();
    expect([Number(row.cpu_seconds), Number(row.rss_mb)]).toEqual([2, 10]);
    const stats = await db('task_stat').where({ task_id: taskId }).orderBy('name');
    expect(stats.map((s: { name: string; value: number }) => [s.name, Number(s.value)])).toEqual([['a', 2], ['b', 3]]);
    expect((await db('task_log').where({ task_id: taskId, name: 'x' }).first()).data).toBe('one two');
    await b.close();
  });

  test('a wrong digest is refused in the flush without touching the others', async () => {
    const b = new WriteBatcher({ db, flushMs: 5, maxPending: 100, logCap: 1024 });
    const good = b.enqueue({ kind: 'heartbeat', taskId, digest: sha256Hex(passkey), values: { disk_mb: 5 } });
    const bad = b.enqueue({ kind: 'heartbeat', taskId, digest: sha256Hex('nope'), values: { disk_mb: 666 } });
    await expect(good).resolves.toBeUndefined();
    await expect(bad).rejects.toMatchObject({ code: -32009 });
    expect(Number((await db('task').where({ id: taskId }).first()).disk_mb)).toBe(5);
    await b.close();
  });

  test('flushTask/flush wait for queued updates; close drains and then refuses', async () => {
    const flushes: FlushInfo[] = [];
    const b = new WriteBatcher({ db, flushMs: 100, maxPending: 100, logCap: 1024, onFlush: (f) => flushes.push(f) });
    await b.flushTask(taskId); // nothing queued: returns at once
    expect(flushes).toHaveLength(0);
    const p = b.enqueue({ kind: 'heartbeat', taskId, digest: sha256Hex(passkey), values: { wall_seconds: 9 } });
    await b.flushTask(taskId);
    expect(flushes).toHaveLength(1);
    expect(flushes[0]!.waitedMs).toBeLessThan(100); // flushed on demand, not at the 100 ms timer
    await p;
    expect(Number((await db('task').where({ id: taskId }).first()).wall_seconds)).toBe(9);
    const q = b.enqueue({ kind: 'heartbeat', taskId, digest: sha256Hex(passkey), values: { wall_seconds: 10 } });
    await b.close();
    await q;
    expect(Number((await db('task').where({ id: taskId }).first()).wall_seconds)).toBe(10);
    await expect(b.enqueue({ kind: 'heartbeat', taskId, digest: sha256Hex(passkey), values: {} })).rejects.toMatchObject({ code: -32050 });
  });

  test('an update no column can hold is refused before it is queued (-32602 naming the field); the batcher carries on', async () => {
    const b = new WriteBatcher({ db, flushMs: 1, maxPending: 100, logCap: 1024 });
    // a NULL log name would violate task_log's NOT NULL and fail the whole transaction
    const bad = b.enqueue({ kind: 'log', taskId, digest: sha256Hex(passkey), name: null as unknown as string, data: 'x', append: false });
    await expect(bad).rejects.toMatchObject({ code: -32602, data: { issues: [{ path: '/params/name' }] } });
    await expect(b.enqueue({ kind: 'heartbeat', taskId: Infinity, digest: sha256Hex(passkey), values: {} })).rejects.toMatchObject({ code: -32602 });
    await expect(b.enqueue({ kind: 'heartbeat', taskId, digest: sha256Hex(passkey), values: { cpu_seconds: Infinity } })).rejects.toMatchObject({
      code: -32602, data: { issues: [{ path: '/params/cpu_seconds' }] },
    });
    await expect(b.enqueue({ kind: 'heartbeat', taskId, digest: sha256Hex(passkey), values: { gpu_util: 1 } })).resolves.toBeUndefined();
    await b.close();
  });
});
