import { TaskStatus, transition, type Db } from '@firn/core';
import { DhDaemon } from '@firn/dh';
import { createTestDb, DB_KINDS, type TestDb } from '../helpers/db';
import { dhConfig, insertDataset, taskHistory, taskRow } from './fixtures';

/** What the queue and mon daemons do to a task that runs: claimed, queued, started. */
async function start(db: Db, id: number): Promise<void> {
  await transition(db, { taskIds: [id], from: 'WAITING', to: 'QUEUEING', by: 'queue', actor: 'queue:test', set: { grid_id: null, passkey_hash: 'f'.repeat(64) } });
  await transition(db, { taskIds: [id], from: 'QUEUEING', to: 'QUEUED', by: 'queue', actor: 'queue:test', set: { batch_id: '42' } });
  await transition(db, { taskIds: [id], from: 'QUEUED', to: 'PROCESSING', by: 'mon', actor: 'mon', set: { host: 'wn1', started_at: Date.now() } });
}
/** …and the module fails (mon: ERROR, failures + 1, the error summary). */
async function runAndFail(db: Db, id: number, summary: string): Promise<void> {
  await start(db, id);
  await transition(db, { taskIds: [id], from: 'PROCESSING', to: 'ERROR', by: 'mon', actor: 'mon', reason: summary, set: { failures: db.raw('failures + 1'), error_summary: summary } });
}

describe.each(DB_KINDS)('retry policy on %s', (kind) => {
  let t: TestDb;
  let clock: number;
  let dh: DhDaemon;
  beforeAll(async () => {
    t = await createTestDb(kind);
  });
  afterAll(async () => {
    await t?.drop();
  });
  beforeEach(() => {
    clock = Date.now();
    dh = new DhDaemon({ db: t.db, config: dhConfig(), now: () => clock });
  });
  afterEach(async () => {
    await dh.stop();
  });

  test('fails twice, then succeeds: OK with two failures in history, each retry after its backoff', async () => {
    const f = await insertDataset(t.db, { jobs: 1, retry: { backoff_seconds: 30, backoff_max_seconds: 600 } });
    const id = f.taskIds[0]![0]!;
    for (let attempt = 1; attempt <= 2; attempt++) {
      await runAndFail(t.db, id, `exit code 1 (attempt ${attempt})`);
      // within the backoff: still ERROR, next_retry_at set for the claims / the next decision
      expect(await dh.runCycle('retries')).toMatchObject({ waiting: 1, reset: 0 });
      const waiting = await taskRow(t.db, id);
      expect(waiting.status).toBe('ERROR');
      const notBefore = Number(waiting.next_retry_at);
      // backoff 30 s doubling, jitter at most 20 %
      expect(notBefore - Number(waiting.status_changed_at)).toBeGreaterThanOrEqual(0.8 * 30_000 * 2 ** (attempt - 1));
      expect(notBefore - Number(waiting.status_changed_at)).toBeLessThanOrEqual(30_000 * 2 ** (attempt - 1));
      expect(await dh.runCycle('retries')).toMatchObject({ waiting: 0, reset: 0 }); // not looked at again before then
      clock = notBefore;
      expect(await dh.runCycle('retries')).toMatchObject({ reset: 1 });
      const reset = await taskRow(t.db, id);
      expect(reset).toMatchObject({ status: 'WAITING', passkey_hash: null, batch_id: null, host: null });
      expect(Number(reset.next_retry_at)).toBeLessThanOrEqual(clock);
    }
    await start(t.db, id);
    await transition(t.db, { taskIds: [id], from: 'PROCESSING', to: 'READYTOCOPY', by: 'mon', actor: 'mon' });
    await dh.runCycle('data');
    const done = await taskRow(t.db, id);
    expect(done.status).toBe('OK');
    expect(Number(done.failures)).toBe(2);
    const hist = await taskHistory(t.db, id);
    expect(hist.filter((h) => h.action === 'transition' && h.to_status === 'ERROR').map((h) => h.reason)).toEqual(['exit code 1 (attempt 1)', 'exit code 1 (attempt 2)']);
    expect(hist.filter((h) => h.action === 'retry_wait')).toHaveLength(2);
    const resets = hist.filter((h) => h.from_status === 'ERROR' && h.to_status === 'RESET');
    expect(resets.map((h) => h.reason)).toEqual([
      expect.stringMatching(/^retry after failure 1 \(max_failures 5\), backoff \d+ s$/),
      expect.stringMatching(/^retry after failure 2 \(max_failures 5\), backoff \d+ s$/),
    ]);
    expect(hist.filter((h) => h.from_status === 'RESET').map((h) => h.to_status)).toEqual(['WAITING', 'WAITING']);
  });

  test('always fails: FAILED after max_failures (default 5)', async () => {
    const f = await insertDataset(t.db, { jobs: 1 });
    const id = f.taskIds[0]![0]!;
    for (let i = 1; i <= 5; i++) {
      await runAndFail(t.db, id, 'exit code 2');
      clock += 2 * 3600_000; // past any backoff (cap 3600 s)
      await dh.runCycle('retries');
      expect((await taskRow(t.db, id)).status).toBe(i < 5 ? 'WAITING' : 'FAILED');
    }
    const hist = await taskHistory(t.db, id);
    expect(hist.filter((h) => h.to_status === 'ERROR')).toHaveLength(5);
    expect(hist.filter((h) => h.to_status === 'RESET')).toHaveLength(4);
    expect(hist.at(-1)).toMatchObject({ from_status: 'ERROR', to_status: 'FAILED', actor: 'dh', reason: 'retry policy exhausted: failure 5 (max_failures 5)' });
  });

  test('"memory limit exceeded" is retried with memory × 1.5 each time', async () => {
    const f = await insertDataset(t.db, {
      jobs: 1,
      retry: { backoff_seconds: 0, rules: [{ match: 'memory limit exceeded', action: 'bump', bump: { memory: 1.5 } }, { match: 'segfault', action: 'fail' }] },
    });
    const id = f.taskIds[0]![0]!;
    expect(Number((await taskRow(t.db, id)).req_memory)).toBe(2000);
    await runAndFail(t.db, id, 'pilot: Memory limit exceeded: rss 2100 MB > 2000 MB');
    clock = Date.now() + 1000; // backoff 0: due as soon as the clock passes the failure
    expect(await dh.runCycle('retries')).toMatchObject({ reset: 1, bumped: 1 });
    expect(await taskRow(t.db, id)).toMatchObject({ status: 'WAITING', req_memory: 3000, req_time: 60, req_disk: 10000 });
    await runAndFail(t.db, id, 'memory limit exceeded again');
    clock = Date.now() + 1000;
    await dh.runCycle('retries');
    expect(Number((await taskRow(t.db, id)).req_memory)).toBe(4500);
    const resets = (await taskHistory(t.db, id)).filter((h) => h.to_status === 'RESET');
    expect(resets.map((h) => h.reason)).toEqual([
      expect.stringContaining('requirements bumped: memory 2000 → 3000 MB (×1.5)'),
      expect.stringContaining('requirements bumped: memory 3000 → 4500 MB (×1.5)'),
    ]);
    // a fail rule gives up at once
    await runAndFail(t.db, id, 'Segfault in module x');
    clock = Date.now() + 1000;
    await dh.runCycle('retries');
    expect(await taskRow(t.db, id)).toMatchObject({ status: 'FAILED', req_memory: 4500 });
  });

  test('evictions count against max_evictions; exhausted → FAILED (EVICTED → FAILED)', async () => {
    const f = await insertDataset(t.db, { jobs: 1, retry: { max_evictions: 2, backoff_seconds: 0 } });
    const id = f.taskIds[0]![0]!;
    for (let i = 1; i <= 2; i++) {
      await start(t.db, id);
      await transition(t.db, { taskIds: [id], from: 'PROCESSING', to: 'EVICTED', by: 'queue', actor: 'queue:test', set: { evictions: t.db.raw('evictions + 1'), error_summary: 'vanished from the batch queue' } });
      clock = Date.now() + 1000;
      await dh.runCycle('retries');
      expect((await taskRow(t.db, id)).status).toBe(i < 2 ? 'WAITING' : 'FAILED');
    }
    const last = (await taskHistory(t.db, id)).at(-1);
    expect(last).toMatchObject({ from_status: 'EVICTED', to_status: 'FAILED', reason: 'retry policy exhausted: eviction 2 (max_evictions 2)' });
  });

  test('a reset task whose dependency is not OK waits in IDLE; obsolete datasets are left alone', async () => {
    const f = await insertDataset(t.db, {
      jobs: 1, retry: { backoff_seconds: 0 }, tasks: [{ name: 'gen' }, { name: 'proc', depends: [0] }],
      status: (_j, i) => (i === 0 ? TaskStatus.WAITING : TaskStatus.ERROR),
    });
    await t.db('task').where({ id: f.taskIds[0]![1]! }).update({ failures: 1 });
    const o = await insertDataset(t.db, { jobs: 1, datasetStatus: 'OBSOLETE', retry: { backoff_seconds: 0 }, status: () => TaskStatus.ERROR });
    clock = Date.now() + 1000;
    await dh.runCycle('retries');
    expect((await taskRow(t.db, f.taskIds[0]![1]!)).status).toBe('IDLE');
    expect((await taskRow(t.db, o.taskIds[0]![0]!)).status).toBe('ERROR');
  });

  test('an invalid stored policy falls back to the defaults', async () => {
    const f = await insertDataset(t.db, { jobs: 1, status: () => TaskStatus.ERROR });
    await t.db('dataset').where({ id: f.datasetId }).update({ retry: '{"max_failures": "many"}' });
    await t.db('task').where({ id: f.taskIds[0]![0]! }).update({ failures: 5 });
    await dh.runCycle('retries');
    expect((await taskRow(t.db, f.taskIds[0]![0]!)).status).toBe('FAILED');
  });

  test('a rule that backtracks in JavaScript (a*a*a*a*a*a*b, (a+)+$) decides a 4,096-character summary at once', async () => {
    const rules = [
      { match: 'a*a*a*a*a*a*b', action: 'fail' },
      { match: '(a+)+$', action: 'bump', bump: { memory: 2 } },
    ];
    const f = await insertDataset(t.db, { jobs: 1, retry: { backoff_seconds: 0, rules } });
    const id = f.taskIds[0]![0]!;
    const summary = 'a'.repeat(4095) + '!';
    await runAndFail(t.db, id, summary);
    expect((await taskRow(t.db, id)).error_summary).toHaveLength(4096);
    const t0 = performance.now();
    expect(await dh.runCycle('retries')).toMatchObject({ reset: 0, failed: 0 });
    // no rule matches ('!' ends the summary, no 'b'): an ordinary retry, decided quickly
    clock += 1000;
    expect(await dh.runCycle('retries')).toMatchObject({ reset: 1, bumped: 0 });
    const elapsed = performance.now() - t0;
    expect(elapsed).toBeLessThan(2000); // two whole cycles with database writes; V8's RegExp took 28 s on 72 characters
    // (a+)+ works in dh exactly as it is accepted at submission
    await runAndFail(t.db, id, 'a'.repeat(4096));
    clock += 3600_000;
    expect(await dh.runCycle('retries')).toMatchObject({ reset: 1, bumped: 1 });
    const hist = await taskHistory(t.db, id);
    expect(hist.filter((h) => h.from_status === 'ERROR' && h.to_status === 'RESET').map((h) => h.reason)).toEqual([
      expect.stringMatching(/^retry after failure 1 .*s$/),
      expect.stringMatching(/error matches rule \/\(a\+\)\+\$\/ \(bump\); requirements bumped: memory 2000 → 4000 MB/),
    ]);
  });

  test('a stored rule RE2 cannot compile is kept as never matching, said in the history, not silently dropped', async () => {
    const f = await insertDataset(t.db, { jobs: 1, status: () => TaskStatus.ERROR });
    const id = f.taskIds[0]![0]!;
    // as an older Firn stored it: a back-reference (not RE2), then a rule that does match
    await t.db('dataset').where({ id: f.datasetId }).update({
      retry: JSON.stringify({ max_failures: 3, rules: [{ match: '(oom)\\1', action: 'fail' }, { match: 'oom', action: 'bump', bump: { memory: 2 } }] }),
    });
    await t.db('task').where({ id }).update({ failures: 1, error_summary: 'oomoom', status_changed_at: clock - 3600_000 });
    expect(await dh.runCycle('retries')).toMatchObject({ reset: 1, bumped: 1, failed: 0 });
    const row = await taskRow(t.db, id);
    expect(row.status).toBe('WAITING');
    const hist = await taskHistory(t.db, id);
    const reset = hist.find((h) => h.from_status === 'ERROR' && h.to_status === 'RESET');
    // max_failures 3 from the stored policy still applies (not the defaults), the second rule matched
    expect(reset?.reason).toMatch(/^retry after failure 1 \(max_failures 3\).*error matches rule \/oom\/ \(bump\); rule rules\/0 not tested \(pattern is not valid RE2\)/);
  });
});
