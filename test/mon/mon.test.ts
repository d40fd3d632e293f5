import { RpcClient, RpcError, TaskStatus, isMysql, statOfValues, summarizeStat, transition, type Db } from '@firn/core';
import { createMonServer, tailBytes, type MonServer, type StartResult } from '@firn/mon';
import { DB_KINDS, createTestDb, waitUntil, type TestDb } from '../helpers/db';
import { CONFIG_WITH_OUTPUT, EXTERNAL_MODULE_SOURCE, checksums, deliver, monConfig, outDat, resetAndRequeue, rpcErrorOf, seedDataset } from './fixtures';

/**
 * firn-mon in-process on an ephemeral port, against real SQLite and MariaDB, with RpcClient
 * playing the pilot. Tasks are inserted directly (QUEUED with a passkey hash).
 */
describe.each(DB_KINDS)('firn-mon on %s', (kind) => {
  let tdb: TestDb;
  let db: Db;
  let mon: MonServer;
  let client: RpcClient;

  async function startMon(monSection: Record<string, unknown> = {}, extra = {}): Promise<void> {
    mon = await createMonServer({ db, config: monConfig(tdb.url, monSection, extra), heartbeatSeconds: 7 });
    const url = await mon.listen();
    client = new RpcClient(url);
  }

  beforeAll(async () => {
    tdb = await createTestDb(kind);
    db = tdb.db;
  });
  afterAll(async () => {
    await tdb?.drop();
  });
  afterEach(async () => {
    client?.close();
    await mon?.close();
    // nothing left behind: every accepted update was written
    expect(mon.batcher.pending).toBe(0);
  });

  test('a task\'s whole life; dataset statistics exact over several jobs, with one retried job counted once', async () => {
    await startMon();
    const seeded = await seedDataset(db, 4, { config: CONFIG_WITH_OUTPUT });
    // per job: stats it reports in its successful attempt
    const good: Array<Record<string, number>> = [
      { events: 100, energy: 1.5 },
      { events: 250, energy: 2.5 },
      { events: 50, energy: -0.5 },
      { events: 400, energy: 10 },
    ];
    const retried = seeded.tasks[2]!;

    // job 2's first attempt reports (wrong, big) stats, then fails
    const first = await client.call<StartResult>('pilot.start', { task_id: retried.id, passkey: retried.passkey, host: 'node-a' });
    expect(first.task.id).toBe(retried.id);
    await client.call('pilot.stats', { task_id: retried.id, passkey: retried.passkey, stats: { events: 99999, energy: 1e6, only_in_failed_attempt: 1 } });
    const failed = await client.call('pilot.finish', { task_id: retried.id, passkey: retried.passkey, ok: false, error: 'module gen exited with status 3' });
    expect(failed).toEqual({ status: 'ERROR' });
    const afterFail = await db('task').where({ id: retried.id }).first();
    expect(afterFail.status).toBe('ERROR');
    expect(afterFail.error_summary).toBe('module gen exited with status 3');
    expect(Number(afterFail.failures)).toBe(1);
    expect(await db('dataset_stat').where({ dataset_id: seeded.datasetId })).toHaveLength(0);

    // the retry: a new passkey; the old one is dead for every method
    const oldPasskey = retried.passkey;
    retried.passkey = await resetAndRequeue(db, retried.id);
    for (const [method, extra] of [
      ['pilot.start', {}], ['pilot.heartbeat', { cpu_seconds: 1 }], ['pilot.stats', { stats: { events: 1 } }],
      ['pilot.log', { name: 'stdout', data: 'x' }], ['pilot.files', { files: [] }], ['pilot.finish', { ok: true }],
    ] as const) {
      const e = await rpcErrorOf(client, method, { task_id: retried.id, passkey: oldPasskey, ...extra });
      expect({ method, code: e.code, message: e.message }).toEqual({ method, code: -32009, message: 'invalid or stale passkey' });
    }

    // every job runs to a successful finish
    for (const [i, task] of seeded.tasks.entries()) {
      const auth = { task_id: task.id, passkey: task.passkey };
      const started = await client.call<StartResult>('pilot.start', { ...auth, host: `node-${i % 2 ? 'b' : 'a'}`, resources: { cpus: 2, memory_mb: 4000 } });
      expect(started.task).toEqual({
        id: task.id, name: 'generate', task_index: 0, dataset_id: seeded.datasetId, job_id: task.jobId, job_index: task.jobIndex, jobs_total: 4,
        requirements: { cpu: 2, gpu: 0, memory: 3000, disk: 10000, time: 60 },
      });
      expect(started.config).toEqual(CONFIG_WITH_OUTPUT);
      expect(started.args).toEqual({ seed: 1000 + task.jobIndex });
      expect(started.inputs).toEqual([{ url: `file:///data/in-${task.jobIndex}.dat`, local_name: `in-${task.jobIndex}.dat`, md5: 'a'.repeat(32), sha256: 'b'.repeat(64), size: 10 + task.jobIndex }]);
      const src = checksums(EXTERNAL_MODULE_SOURCE);
      expect(started.external_modules).toEqual([{ tray: 'main', module: 'ext', src: 'https://example.org/ext.sh', md5: src.md5, sha256: src.sha256, content_base64: Buffer.from(EXTERNAL_MODULE_SOURCE).toString('base64') }]);
      expect(started.system).toEqual({ site_temp: 'file:///tmp/firn-site-temp', heartbeat_seconds: 7 });

      for (let h = 1; h <= 3; h++) {
        await expect(client.call('pilot.heartbeat', { ...auth, cpu_seconds: h * 10, rss_mb: 100 + h, wall_seconds: h * 12 })).resolves.toEqual({ ok: true });
      }
      await client.call('pilot.heartbeat', { ...auth, disk_mb: 55, gpu_util: 0 });
      const hb = await db('task').where({ id: task.id }).first();
      expect([Number(hb.cpu_seconds), Number(hb.rss_mb), Number(hb.wall_seconds), Number(hb.disk_mb), Number(hb.gpu_util)]).toEqual([30, 103, 36, 55, 0]);
      expect(Number(hb.last_heartbeat_at)).toBeGreaterThanOrEqual(Number(hb.started_at));

      // stats in two calls: a name's later value replaces the earlier one
      await client.call('pilot.stats', { ...auth, stats: { events: -1, energy: good[i]!.energy } });
      await client.call('pilot.stats', { ...auth, stats: { events: good[i]!.events } });
      await client.call('pilot.log', { ...auth, name: 'stdout', data: `job ${i} line 1\n`, append: false });
      await client.call('pilot.log', { ...auth, name: 'stdout', data: `job ${i} line 2\n` });
      await client.call('pilot.log', { ...auth, name: 'stderr', data: 'warning: none\n' });
      const out = checksums(`output of job ${i}`);
      const file = { local_name: 'out.dat', ...outDat(seeded.datasetId, task.jobIndex), type: 'permanent', ...out };
      await client.call('pilot.files', { ...auth, files: [{ ...file, size: 1 }] });
      await client.call('pilot.files', { ...auth, files: [file] }); // idempotent per local_name: replaces
      const done = await client.call('pilot.finish', { ...auth, ok: true, resources: { cpu_seconds: 42.5, wall_seconds: 50 } });
      expect(done).toEqual({ status: 'READYTOCOPY' });

      const row = await db('task').where({ id: task.id }).first();
      expect(row.status).toBe('READYTOCOPY');
      expect(row.host).toBe(`node-${i % 2 ? 'b' : 'a'}`);
      expect(Number(row.cpu_seconds)).toBe(42.5);
      expect(Number(row.wall_seconds)).toBe(50);
      expect(Number(row.finished_at)).toBeGreaterThanOrEqual(Number(row.started_at));
      const stats = await db('task_stat').where({ task_id: task.id }).orderBy('name');
      expect(stats.map((s: { name: string; value: number }) => [s.name, Number(s.value)])).toEqual([['energy', good[i]!.energy], ['events', good[i]!.events]]);
      const files = await db('file').where({ task_id: task.id, kind: 'output' });
      expect(files).toHaveLength(1);
      expect(files[0]).toMatchObject({ local_name: 'out.dat', url: file.url, temp_url: file.temp_url, type: 'permanent', md5: out.md5, sha256: out.sha256, state: 'STAGED' });
      expect(Number(files[0].size)).toBe(out.size);
      const logs = await db('task_log').where({ task_id: task.id }).orderBy('name');
      expect(logs.map((l: { name: string; data: string }) => [l.name, l.data])).toEqual([['stderr', 'warning: none\n'], ['stdout', `job ${i} line 1\njob ${i} line 2\n`]]);
      // after finish the passkey no longer writes
      expect((await rpcErrorOf(client, 'pilot.heartbeat', { ...auth, cpu_seconds: 1 })).code).toBe(-32009);
    }

    // dataset statistics: nothing until the tasks are OK (firn-dh), then exactly the successful
    // attempts, the failed attempt not at all
    expect(await db('dataset_stat').where({ dataset_id: seeded.datasetId })).toHaveLength(0);
    await deliver(db, seeded.tasks.map((t) => t.id));
    const rows = await db('dataset_stat').where({ dataset_id: seeded.datasetId }).orderBy('name');
    expect(rows.map((r: { name: string }) => r.name)).toEqual(['energy', 'events']);
    for (const r of rows) {
      const values = good.map((g) => g[r.name]!);
      const expected = statOfValues(values);
      expect(Number(r.n)).toBe(expected.n);
      expect(Number(r.sum)).toBe(expected.sum);
      expect(Number(r.sum_sq)).toBe(expected.sum_sq);
      expect(Number(r.min)).toBe(expected.min);
      expect(Number(r.max)).toBe(expected.max);
      const summary = summarizeStat(r);
      const mean = values.reduce((a, b) => a + b, 0) / values.length;
      const populationSd = Math.sqrt(values.reduce((a, v) => a + (v - mean) ** 2, 0) / values.length);
      expect(summary.mean).toBeCloseTo(mean, 12);
      expect(summary.stddev).toBeCloseTo(populationSd, 10);
    }
    // events: 100, 250, 50, 400 → n 4, sum 800, mean 200, squared deviations 75000, population stddev sqrt(75000 / 4)
    expect(summarizeStat(rows.find((r: { name: string }) => r.name === 'events'))).toEqual({
      n: 4, sum: 800, sum_sq: 235000, min: 50, max: 400, mean: 200, stddev: Math.sqrt(18750),
    });

    // node outcomes: node-a ran job 0, job 2's failed attempt and job 2's retry
    const nodes = await db('node').orderBy('hostname');
    expect(nodes.map((n: { hostname: string; ok_count: number; fail_count: number; recent: string; grid_id: number }) => [n.hostname, Number(n.ok_count), Number(n.fail_count), n.recent, Number(n.grid_id)])).toEqual([
      ['node-a', 2, 1, 'FOO', seeded.gridId],
      ['node-b', 2, 0, 'OO', seeded.gridId],
    ]);
    // history: every status change by mon recorded
    const hist = await db('history').where({ entity: 'task', entity_id: retried.id, actor: 'mon' }).orderBy('id');
    expect(hist.map((h: { from_status: string; to_status: string }) => `${h.from_status}>${h.to_status}`)).toEqual(['QUEUED>PROCESSING', 'PROCESSING>ERROR', 'QUEUED>PROCESSING', 'PROCESSING>READYTOCOPY']);
  });

  test('an unknown task, a wrong passkey and a stale passkey get the identical error object', async () => {
    await startMon();
    const seeded = await seedDataset(db, 2);
    const [a, b] = seeded.tasks as [typeof seeded.tasks[0], typeof seeded.tasks[0]];
    await client.call('pilot.start', { task_id: a.id, passkey: a.passkey });
    const raw = async (method: string, params: Record<string, unknown>) =>
      ((await client.post({ jsonrpc: '2.0', id: 1, method, params })) as { error?: unknown }).error;
    for (const [method, extra] of [
      ['pilot.start', {}], ['pilot.heartbeat', {}], ['pilot.stats', { stats: {} }], ['pilot.log', { name: 'pilot', data: '' }],
      ['pilot.files', { files: [] }], ['pilot.finish', { ok: false }],
    ] as const) {
      const unknown = await raw(method, { task_id: 987654321, passkey: a.passkey, ...extra });
      const wrong = await raw(method, { task_id: a.id, passkey: b.passkey, ...extra });
      const wrongQueued = await raw(method, { task_id: b.id, passkey: 'not-the-passkey', ...extra });
      expect(unknown).toEqual({ code: -32009, message: 'invalid or stale passkey' });
      expect(wrong).toEqual(unknown);
      expect(wrongQueued).toEqual(unknown);
    }
    // nothing was written by any of them
    expect((await db('task').where({ id: a.id }).first()).status).toBe('PROCESSING');
    expect((await db('task').where({ id: b.id }).first()).status).toBe('QUEUED');
    expect(await db('task_log').whereIn('task_id', [a.id, b.id])).toHaveLength(0);
    expect(await db('task_stat').whereIn('task_id', [a.id, b.id])).toHaveLength(0);
    // a task not handed to a pilot (WAITING) cannot be started even with its passkey
    const waiting = await seedDataset(db, 1, { status: TaskStatus.WAITING });
    const w = waiting.tasks[0]!;
    expect(await raw('pilot.start', { task_id: w.id, passkey: w.passkey })).toEqual({ code: -32009, message: 'invalid or stale passkey' });
  });

  test('a reset while a pilot runs: its queued and later updates are refused, nothing it sends lands', async () => {
    await startMon({ flush_ms: 100 });
    const seeded = await seedDataset(db, 1);
    const t = seeded.tasks[0]!;
    const auth = { task_id: t.id, passkey: t.passkey };
    await client.call('pilot.start', { ...auth, host: 'n1' });
    await client.call('pilot.heartbeat', { ...auth, cpu_seconds: 5 });
    // a person suspends the task while a heartbeat is queued: hold the task row (MariaDB: FOR UPDATE;
    // SQLite: the pool's only connection) so the flush can only read it after the suspension commits
    const trx = await db.transaction();
    if (isMysql(db)) await trx('task').select('id').where({ id: t.id }).forUpdate();
    const pendingBeat = client.call('pilot.heartbeat', { ...auth, cpu_seconds: 6 }).then(() => 'ok', (e: RpcError) => e.code);
    await waitUntil(() => mon.batcher.pending > 0, 5000, 'heartbeat queued');
    await transition(trx, { taskIds: [t.id], from: TaskStatus.PROCESSING, to: TaskStatus.SUSPENDED, by: 'tray', actor: 'user:alice', set: { passkey_hash: null } });
    await trx.commit();
    expect(await pendingBeat).toBe(-32009);
    expect(Number((await db('task').where({ id: t.id }).first()).cpu_seconds)).toBe(5);
    // requeued with a new passkey: the old pilot stays out, the new one can start
    const fresh = await resetAndRequeue(db, t.id, TaskStatus.SUSPENDED);
    expect((await rpcErrorOf(client, 'pilot.start', auth)).code).toBe(-32009);
    await expect(client.call('pilot.start', { task_id: t.id, passkey: fresh })).resolves.toMatchObject({ task: { id: t.id } });
  });

  test('pilot.start and pilot.finish are idempotent for a pilot that lost the answer', async () => {
    await startMon();
    const seeded = await seedDataset(db, 1);
    const t = seeded.tasks[0]!;
    const auth = { task_id: t.id, passkey: t.passkey };
    const a = await client.call<StartResult>('pilot.start', { ...auth, host: 'h1' });
    const startedAt = (await db('task').where({ id: t.id }).first()).started_at;
    await client.call('pilot.stats', { ...auth, stats: { x: 3 } });
    const b = await client.call<StartResult>('pilot.start', { ...auth, host: 'h1' });
    expect(b).toEqual(a);
    const row = await db('task').where({ id: t.id }).first();
    expect(row.started_at).toEqual(startedAt);
    expect(await db('task_stat').where({ task_id: t.id })).toHaveLength(1); // a retried start keeps the attempt's stats
    expect(await db('history').where({ entity_id: t.id, to_status: 'PROCESSING' })).toHaveLength(1);

    await expect(client.call('pilot.finish', { ...auth, ok: true })).resolves.toEqual({ status: 'READYTOCOPY' });
    await expect(client.call('pilot.finish', { ...auth, ok: true })).resolves.toEqual({ status: 'READYTOCOPY' });
    // the retried finish folded nothing twice and counted the node once
    expect(await db('dataset_stat').where({ dataset_id: seeded.datasetId })).toHaveLength(0); // folded at OK, by dh
    await deliver(db, [t.id]);
    const stat = await db('dataset_stat').where({ dataset_id: seeded.datasetId, name: 'x' }).first();
    expect(Number(stat.n)).toBe(1);
    expect(Number((await db('node').where({ hostname: 'h1' }).first()).ok_count)).toBe(1);
    // but the opposite outcome is refused
    expect((await rpcErrorOf(client, 'pilot.finish', { ...auth, ok: false })).code).toBe(-32009);
  });

  test('pilot.start from a black-holed host is refused (-32009): the task stays QUEUED, history says why; other hosts and the same host after its cool-down start', async () => {
    await startMon();
    const seeded = await seedDataset(db, 3);
    const [a, b, c] = seeded.tasks as [typeof seeded.tasks[0], typeof seeded.tasks[0], typeof seeded.tasks[0]];
    const until = Date.now() + 60 * 60_000;
    await db('node').insert({ hostname: 'bh-node-1', grid_id: seeded.gridId, ok_count: 0, fail_count: 4, recent: '', blackholed_until: until, updated_at: Date.now() });
    await db('node').insert({ hostname: 'bh-node-2', grid_id: seeded.gridId, ok_count: 2, fail_count: 4, recent: '', blackholed_until: Date.now() - 1, updated_at: Date.now() });

    const e = await rpcErrorOf(client, 'pilot.start', { task_id: a.id, passkey: a.passkey, host: 'bh-node-1' });
    expect({ code: e.code, message: e.message }).toEqual({ code: -32009, message: `host bh-node-1 is black-holed until ${new Date(until).toISOString()}` });
    const row = await db('task').where({ id: a.id }).first();
    expect(row).toMatchObject({ status: 'QUEUED', host: null, started_at: null });
    const hist = await db('history').where({ entity: 'task', entity_id: a.id }).select('action', 'actor', 'from_status', 'to_status', 'reason');
    expect(hist).toEqual([{ action: 'refuse', actor: 'mon', from_status: null, to_status: null, reason: `pilot.start refused: host bh-node-1 is black-holed until ${new Date(until).toISOString()}` }]);
    // a wrong passkey from that host still gets the one stale-passkey answer (nothing told, nothing written)
    expect((await rpcErrorOf(client, 'pilot.start', { task_id: b.id, passkey: 'wrong', host: 'bh-node-1' })).message).toBe('invalid or stale passkey');
    expect(await db('history').where({ entity: 'task', entity_id: b.id })).toHaveLength(0);

    // another host, and a host whose cool-down is over, start normally
    await expect(client.call('pilot.start', { task_id: b.id, passkey: b.passkey, host: 'good-node' })).resolves.toMatchObject({ task: { id: b.id } });
    await expect(client.call('pilot.start', { task_id: c.id, passkey: c.passkey, host: 'bh-node-2' })).resolves.toMatchObject({ task: { id: c.id } });
    // the refused task starts elsewhere with the same passkey (its batch job was not the last word)
    await expect(client.call('pilot.start', { task_id: a.id, passkey: a.passkey, host: 'good-node' })).resolves.toMatchObject({ task: { id: a.id } });
    expect((await db('task').where({ id: a.id }).first()).status).toBe('PROCESSING');
    // a running task whose host is black-holed meanwhile: a retried start is not refused
    await db('node').where({ hostname: 'good-node' }).delete();
    await db('node').insert({ hostname: 'good-node', grid_id: seeded.gridId, ok_count: 0, fail_count: 9, recent: '', blackholed_until: until, updated_at: Date.now() });
    await expect(client.call('pilot.start', { task_id: b.id, passkey: b.passkey, host: 'good-node' })).resolves.toMatchObject({ task: { id: b.id } });
    await db('node').where({ hostname: 'good-node' }).delete();
    // the black-hole refusal is not counted as a stale passkey: only the wrong passkey is
    expect(await (await fetch(`${mon.url}/metrics`)).text()).toMatch(/^firn_mon_updates_refused_total\{reason="stale"\} 1$/m);
  });

  test('pilot.finish writes the task\'s queued updates first (stats + finish in one JSON-RPC batch)', async () => {
    await startMon({ flush_ms: 100 });
    const seeded = await seedDataset(db, 1);
    const t = seeded.tasks[0]!;
    const auth = { task_id: t.id, passkey: t.passkey };
    await client.call('pilot.start', auth);
    const res = await client.batch([
      { method: 'pilot.heartbeat', params: { ...auth, cpu_seconds: 9 } },
      { method: 'pilot.stats', params: { ...auth, stats: { hits: 7, misses: 2 } } },
      { method: 'pilot.log', params: { ...auth, name: 'pilot', data: 'done\n' } },
      { method: 'pilot.finish', params: { ...auth, ok: true } },
    ]);
    expect(res).toEqual([{ ok: true }, { ok: true }, { ok: true }, { status: 'READYTOCOPY' }]);
    await deliver(db, [t.id]);
    const stats = await db('dataset_stat').where({ dataset_id: seeded.datasetId }).orderBy('name');
    expect(stats.map((s: { name: string; n: number; sum: number }) => [s.name, Number(s.n), Number(s.sum)])).toEqual([['hits', 1, 7], ['misses', 1, 2]]);
    expect((await db('task_log').where({ task_id: t.id, name: 'pilot' }).first()).data).toBe('done\n');
  });

  test('pilot.finish carrying the task\'s last stats, logs and files writes them with the outcome; with a stale passkey nothing of it lands', async () => {
    await startMon();
    const seeded = await seedDataset(db, 2, { config: CONFIG_WITH_OUTPUT });
    const [a, b] = [seeded.tasks[0]!, seeded.tasks[1]!];
    const file = { local_name: 'out.dat', ...outDat(seeded.datasetId, a.jobIndex), type: 'permanent', size: 3, md5: 'A'.repeat(32), sha256: 'b'.repeat(64) };
    for (const t of [a, b]) await client.call('pilot.start', { task_id: t.id, passkey: t.passkey });
    // an earlier update of the same task, then the finish with the rest
    await client.call('pilot.stats', { task_id: a.id, passkey: a.passkey, stats: { early: 1, hits: 100 } });
    await expect(client.call('pilot.finish', {
      task_id: a.id, passkey: a.passkey, ok: true, resources: { cpu_seconds: 2, wall_seconds: 3 },
      stats: { hits: 7, misses: 2 }, logs: [{ name: 'pilot', data: 'done\n', append: false }, { name: 't.m.stdout', data: 'out\n' }], files: [file],
    })).resolves.toEqual({ status: 'READYTOCOPY' });
    const stats = await db('task_stat').where({ task_id: a.id }).orderBy('name');
    expect(stats.map((s: { name: string; value: number }) => [s.name, Number(s.value)])).toEqual([['early', 1], ['hits', 7], ['misses', 2]]);
    expect((await db('task_log').where({ task_id: a.id }).orderBy('name')).map((l: { name: string; data: string }) => [l.name, l.data])).toEqual([['pilot', 'done\n'], ['t.m.stdout', 'out\n']]);
    const files = await db('file').where({ task_id: a.id, kind: 'output' });
    expect(files.map((f: Record<string, unknown>) => [f.local_name, f.state, f.md5, Number(f.size)])).toEqual([['out.dat', 'STAGED', 'a'.repeat(32), 3]]);
    expect(Number((await db('task').where({ id: a.id }).first()).cpu_seconds)).toBe(2);
    // a retried finish (lost answer) writes nothing more
    await expect(client.call('pilot.finish', { task_id: a.id, passkey: a.passkey, ok: true, stats: { hits: 1000 }, files: [file] })).resolves.toEqual({ status: 'READYTOCOPY' });
    expect(Number((await db('task_stat').where({ task_id: a.id, name: 'hits' }).first()).value)).toBe(7);
    expect(await db('file').where({ task_id: a.id, kind: 'output' })).toHaveLength(1);
    // a wrong passkey: refused, and none of what it carried is written
    expect((await rpcErrorOf(client, 'pilot.finish', { task_id: b.id, passkey: 'x'.repeat(20), ok: true, stats: { hits: 5 }, logs: [{ name: 'pilot', data: 'no' }], files: [file] })).code).toBe(-32009);
    expect(await db('task_stat').where({ task_id: b.id })).toHaveLength(0);
    expect(await db('task_log').where({ task_id: b.id })).toHaveLength(0);
    expect(await db('file').where({ task_id: b.id, kind: 'output' })).toHaveLength(0);
    expect((await db('task').where({ id: b.id }).first()).status).toBe('PROCESSING');
    // a bad entry is named with its path
    const bad = await rpcErrorOf(client, 'pilot.finish', { task_id: b.id, passkey: b.passkey, ok: true, logs: [{ name: '', data: 'x' }] });
    expect(bad.code).toBe(-32602);
    expect(JSON.stringify(bad.data)).toContain('/params/logs/0/name');
  });

  test('backpressure: beyond [mon] max_pending updates are refused with -32029, and accepted again once written', async () => {
    await startMon({ max_pending: 5, flush_ms: 100 });
    const seeded = await seedDataset(db, 10);
    for (const t of seeded.tasks) await client.call('pilot.start', { task_id: t.id, passkey: t.passkey });
    const calls = Array.from({ length: 50 }, (_, i) => {
      const t = seeded.tasks[i % 10]!;
      return { method: 'pilot.heartbeat', params: { task_id: t.id, passkey: t.passkey, cpu_seconds: i } };
    });
    const res = await client.batch(calls);
    const accepted = res.filter((r) => !(r instanceof RpcError));
    const refused = res.filter((r): r is RpcError => r instanceof RpcError);
    expect(accepted).toHaveLength(5);
    expect(refused).toHaveLength(45);
    for (const e of refused) expect([e.code, e.message]).toEqual([-32029, 'too many pending updates (5); retry later']);
    // the accepted ones were written: the first five heartbeats (tasks 0..4, cpu 0..4)
    const rows = await db('task').whereIn('id', seeded.tasks.map((t) => t.id)).orderBy('id');
    expect(rows.map((r: { cpu_seconds: number | null }) => (r.cpu_seconds === null ? null : Number(r.cpu_seconds)))).toEqual([0, 1, 2, 3, 4, null, null, null, null, null]);
    expect(mon.batcher.pending).toBe(0);
    const t9 = seeded.tasks[9]!;
    await expect(client.call('pilot.heartbeat', { task_id: t9.id, passkey: t9.passkey, cpu_seconds: 99 })).resolves.toEqual({ ok: true });
    const metrics = await (await fetch(`${mon.url}/metrics`)).text();
    expect(metrics).toMatch(/firn_mon_updates_refused_total\{reason="backpressure"\} 45/);
  });

  test('task logs keep only their tail, capped to [mon] log_cap bytes at a character boundary', async () => {
    await startMon({ log_cap: 1024 });
    const seeded = await seedDataset(db, 1);
    const t = seeded.tasks[0]!;
    const auth = { task_id: t.id, passkey: t.passkey };
    await client.call('pilot.start', auth);
    const log = async () => (await db('task_log').where({ task_id: t.id, name: 'stdout' }).first())?.data as string | undefined;
    let all = '';
    // appends under the cap are concatenated
    for (let i = 0; i < 5; i++) {
      const line = `line ${i} ✓ ${'x'.repeat(50)}\n`;
      all += line;
      await client.call('pilot.log', { ...auth, name: 'stdout', data: line });
    }
    expect(await log()).toBe(all);
    // appends past the cap keep the last 1024 bytes (multi-byte characters never split)
    for (let i = 5; i < 60; i++) {
      const line = `line ${i} ✓ ${'é'.repeat(i % 7)}${'y'.repeat(20)}\n`;
      all += line;
      await client.call('pilot.log', { ...auth, name: 'stdout', data: line });
    }
    const kept = (await log())!;
    expect(kept).toBe(tailBytes(all, 1024));
    expect(Buffer.byteLength(kept)).toBeLessThanOrEqual(1024);
    expect(Buffer.byteLength(kept)).toBeGreaterThan(1020);
    expect(all.endsWith(kept)).toBe(true);
    // one chunk bigger than the cap on its own
    const huge = 'z'.repeat(3000) + 'END';
    await client.call('pilot.log', { ...auth, name: 'stdout', data: huge });
    expect(await log()).toBe(huge.slice(-1024));
    // append: false replaces
    await client.call('pilot.log', { ...auth, name: 'stdout', data: 'fresh\n', append: false });
    expect(await log()).toBe('fresh\n');
    // many appends of one log within a single flush, in order
    const many = Array.from({ length: 40 }, (_, i) => ({ method: 'pilot.log', params: { ...auth, name: 'stdout', data: `${i};`.padEnd(40, '.') } }));
    await client.batch(many);
    expect(await log()).toBe(tailBytes('fresh\n' + many.map((m) => m.params.data).join(''), 1024));
  });

  test('one JSON-RPC batch of heartbeats for many tasks (a whole-node pilot) is written in one flush', async () => {
    await startMon({ flush_ms: 50 });
    const seeded = await seedDataset(db, 120);
    for (const t of seeded.tasks) await client.call('pilot.start', { task_id: t.id, passkey: t.passkey, host: 'bignode' });
    const flushesBefore = flushCount(await (await fetch(`${mon.url}/metrics`)).text());
    const res = await client.batch(seeded.tasks.map((t, i) => ({
      method: 'pilot.heartbeat', params: { task_id: t.id, passkey: t.passkey, cpu_seconds: i + 0.5, rss_mb: 1000 + i, gpu_util: i % 100 },
    })));
    expect(res.every((r) => (r as { ok?: boolean }).ok === true)).toBe(true);
    const flushesAfter = flushCount(await (await fetch(`${mon.url}/metrics`)).text());
    expect(flushesAfter - flushesBefore).toBe(1);
    const rows = await db('task').whereIn('id', seeded.tasks.map((t) => t.id)).orderBy('id');
    expect(rows.map((r: { cpu_seconds: number; rss_mb: number; gpu_util: number }) => [Number(r.cpu_seconds), Number(r.rss_mb), Number(r.gpu_util)])).toEqual(
      seeded.tasks.map((_, i) => [i + 0.5, 1000 + i, i % 100]),
    );
    // one stale member of a batch is refused alone
    const [x, y] = seeded.tasks as [typeof seeded.tasks[0], typeof seeded.tasks[0]];
    const mixed = await client.batch([
      { method: 'pilot.heartbeat', params: { task_id: x.id, passkey: x.passkey, cpu_seconds: 1000 } },
      { method: 'pilot.heartbeat', params: { task_id: y.id, passkey: 'stale', cpu_seconds: 1000 } },
    ]);
    expect(mixed[0]).toEqual({ ok: true });
    expect((mixed[1] as RpcError).code).toBe(-32009);
    expect(Number((await db('task').where({ id: x.id }).first()).cpu_seconds)).toBe(1000);
    expect(Number((await db('task').where({ id: y.id }).first()).cpu_seconds)).toBe(1.5);
  });

  test('params are validated against schemas/rpc/pilot.*.json with the failing path', async () => {
    await startMon();
    const e = await rpcErrorOf(client, 'pilot.heartbeat', { task_id: 1, passkey: 'p', cpu_seconds: -1 });
    expect(e.code).toBe(-32602);
    expect(JSON.stringify(e.data)).toContain('/params/cpu_seconds');
    const f = await rpcErrorOf(client, 'pilot.files', { task_id: 1, passkey: 'p', files: [{ local_name: 'a', url: 'file:///a', size: 1, md5: 'nothex', sha256: 'c'.repeat(64) }] });
    expect(JSON.stringify(f.data)).toContain('/params/files/0/md5');
    const s = await rpcErrorOf(client, 'pilot.stats', { task_id: 1, passkey: 'p', stats: { a: 'NaN' } });
    expect(JSON.stringify(s.data)).toContain('/params/stats/a');
    const big = await rpcErrorOf(client, 'pilot.stats', { task_id: 1, passkey: 'p', stats: { huge: 1e200 } });
    expect([big.code, JSON.stringify(big.data)]).toEqual([-32602, expect.stringContaining('/params/stats/huge')]);
  });

  test('/healthz and /metrics', async () => {
    await startMon();
    const h = (await (await fetch(`${mon.url}/healthz`)).json()) as Record<string, unknown>;
    expect(h).toMatchObject({ status: 'ok', daemon: 'mon', database: 'ok', pending_updates: 0 });
    const seeded = await seedDataset(db, 1);
    const t = seeded.tasks[0]!;
    await client.call('pilot.start', { task_id: t.id, passkey: t.passkey });
    await client.call('pilot.heartbeat', { task_id: t.id, passkey: t.passkey, cpu_seconds: 1 });
    const m = await (await fetch(`${mon.url}/metrics`)).text();
    expect(m).toMatch(/firn_mon_updates_received_total\{method="pilot.heartbeat"\} 1/);
    expect(m).toMatch(/firn_mon_flush_duration_seconds_count [1-9]/);
    expect(m).toMatch(/firn_mon_pending_updates 0/);
  });
});

function flushCount(metrics: string): number {
  const m = /^firn_mon_flush_size_count (\d+)/m.exec(metrics);
  return m ? Number(m[1]) : 0;
}
