/**
 * Retries through all four daemons (local plugin, real pilot): firn-mon records the module
 * failure (PROCESSING → ERROR), firn-dh applies the dataset's retry policy (ERROR → RESET →
 * WAITING, or FAILED), firn-queue runs the task again.
 *   - a module failing on its first two attempts, then succeeding: OK, two failures in history;
 *   - a module that always fails: FAILED after retry.max_failures (3);
 *   - a module over its memory request: killed by the pilot ("memory limit exceeded"), the
 *     rule {match, action: bump, bump: {memory: 1.5}} retries it with req_memory × 1.5 each
 *     time (50 → 75 → 113 → 170 → 255 MB) until it fits.
 */
import fs from 'node:fs';
import path from 'node:path';
import { E2eSuite } from './harness';

let s: E2eSuite;
let attempts: string;

beforeAll(async () => {
  s = await E2eSuite.create({
    name: 'retries',
    queue: { plugin: 'local', extra: { concurrency: 4 } },
    // these failures all happen on this host: never black-hole it in the middle of the test
    dh: { blackhole_window: 64, blackhole_threshold: 64, blackhole_cooldown: 0 },
  });
  attempts = path.join(s.dir, 'attempts');
  fs.mkdirSync(attempts);
  await s.guard(() => s.startAll());
}, 90_000);
afterAll(async () => {
  await s?.close();
}, 60_000);

function dataset(name: string, command: string, retry: Record<string, unknown>, requirements: Record<string, number> = {}): Record<string, unknown> {
  return {
    version: 1,
    description: `e2e retries: ${name}`,
    retry,
    tasks: [{
      name,
      requirements: { cpu: 1, memory: 500, time: 5, ...requirements },
      trays: [{ name: 't', modules: [{ name: 'm', class: 'shell', parameters: { command } }] }],
    }],
  };
}

interface HistoryRow { entity_id: number; from_status: string | null; to_status: string | null; actor: string; reason: string | null; action: string }

async function history(datasetId: number): Promise<HistoryRow[]> {
  return (await s.db.db('history').select('entity_id', 'from_status', 'to_status', 'actor', 'reason', 'action')
    .where({ entity: 'task', dataset_id: datasetId, action: 'transition' }).orderBy('id')) as HistoryRow[];
}

const toStatus = (h: HistoryRow[], taskId: number, status: string) => h.filter((r) => Number(r.entity_id) === taskId && r.to_status === status);

test('fails twice then succeeds → OK with two failures; always fails → FAILED after max_failures 3; memory limit → retried with memory × 1.5', async () => {
  await s.guard(async () => {
    const policy = { max_failures: 3, backoff_seconds: 1, backoff_max_seconds: 2 };
    // counts its attempts in a file outside scratch, keyed by dataset and job
    const flakyCmd = `f=${attempts}/flaky-$FIRN_DATASET-$FIRN_JOB; echo attempt >> "$f"; n=\`wc -l < "$f"\`; ` +
      'if [ "$n" -le 2 ]; then echo "flaky failure on attempt $n" >&2; exit 3; fi; echo "attempts $n" >> "$FIRN_STATS"';
    const flaky = await s.submit(dataset('flaky', flakyCmd, policy), 2);
    const always = await s.submit(dataset('always', `echo attempt >> ${attempts}/always; echo "this never works" >&2; exit 7`, policy), 1);
    const memory = await s.submit(dataset('memory', 'python3 -c "x = bytearray(200 * 1024 * 1024); import time; time.sleep(3)"', {
      max_failures: 5, backoff_seconds: 1, backoff_max_seconds: 2,
      rules: [{ match: 'memory limit exceeded', action: 'bump', bump: { memory: 1.5 } }],
    }, { memory: 50 }), 1);

    const [fs1, fs2, fs3] = await Promise.all([
      s.waitForDataset(flaky.dataset_id, ['COMPLETE'], 120_000),
      s.waitForDataset(always.dataset_id, ['ERRORS'], 120_000),
      s.waitForDataset(memory.dataset_id, ['COMPLETE'], 150_000),
    ]);
    expect(fs1.tasks.OK).toBe(2);
    expect(fs2.tasks.FAILED).toBe(1);
    expect(fs3.tasks.OK).toBe(1);

    // --- fails twice, then OK: exactly two ERROR transitions, each followed by a reset
    const fh = await history(flaky.dataset_id);
    const flakyTasks = (await s.db.db('task').select('id', 'status', 'failures').where('dataset_id', flaky.dataset_id).orderBy('id')) as Array<{ id: number; status: string; failures: number }>;
    expect(flakyTasks.map((t) => [t.status, t.failures])).toEqual([['OK', 2], ['OK', 2]]);
    for (const t of flakyTasks) {
      const errors = toStatus(fh, Number(t.id), 'ERROR');
      expect(errors).toHaveLength(2);
      for (const e of errors) expect([e.from_status, e.reason]).toEqual(['PROCESSING', expect.stringMatching(/exit(ed)? (with )?(code )?3/)]);
      expect(toStatus(fh, Number(t.id), 'RESET').map((r) => [r.from_status, r.actor])).toEqual([['ERROR', 'dh'], ['ERROR', 'dh']]);
      expect(toStatus(fh, Number(t.id), 'PROCESSING')).toHaveLength(3);
      expect(toStatus(fh, Number(t.id), 'OK')).toHaveLength(1);
      expect(toStatus(fh, Number(t.id), 'FAILED')).toHaveLength(0);
    }
    for (const job of [0, 1]) expect(fs.readFileSync(path.join(attempts, `flaky-${flaky.dataset_id}-${job}`), 'utf8')).toBe('attempt\n'.repeat(3));
    const stats = (await s.tray.call<{ stats: Record<string, { n: number; sum: number }> }>('dataset.stats', { dataset_id: flaky.dataset_id })).stats;
    expect(stats.attempts).toMatchObject({ n: 2, sum: 6 }); // only the successful attempts report

    // --- always fails: three ERRORs, two resets, then FAILED by the policy
    const ah = await history(always.dataset_id);
    const [at] = (await s.db.db('task').select('id', 'status', 'failures', 'error_summary').where('dataset_id', always.dataset_id)) as Array<{ id: number; status: string; failures: number; error_summary: string }>;
    expect([at!.status, at!.failures]).toEqual(['FAILED', 3]);
    expect(toStatus(ah, Number(at!.id), 'ERROR')).toHaveLength(3);
    expect(toStatus(ah, Number(at!.id), 'RESET')).toHaveLength(2);
    const failed = toStatus(ah, Number(at!.id), 'FAILED');
    expect(failed).toHaveLength(1);
    expect(failed[0]!.reason).toMatch(/retry policy exhausted: failure 3 \(max_failures 3\)/);
    expect(fs.readFileSync(path.join(attempts, 'always'), 'utf8')).toBe('attempt\n'.repeat(3));
    const jobs = (await s.tray.call<{ jobs: Array<{ status: string }> }>('job.list', { dataset_id: always.dataset_id })).jobs;
    expect(jobs.map((j) => j.status)).toEqual(['FAILED']);

    // --- memory: killed over 50 MB, bumped ×1.5 per retry until it fits
    const mh = await history(memory.dataset_id);
    const [mt] = (await s.db.db('task').select('id', 'status', 'failures', 'req_memory').where('dataset_id', memory.dataset_id)) as Array<{ id: number; status: string; failures: number; req_memory: number }>;
    const memErrors = toStatus(mh, Number(mt!.id), 'ERROR');
    expect(memErrors.length).toBeGreaterThanOrEqual(1);
    for (const e of memErrors) expect(e.reason).toMatch(/memory limit exceeded \(rss \d+ MB > \d+ MB\)/);
    const bumps = toStatus(mh, Number(mt!.id), 'RESET').map((r) => /requirements bumped: memory (\d+) → (\d+) MB \(×1\.5\)/.exec(r.reason ?? '')?.slice(1).map(Number));
    expect(bumps[0]).toEqual([50, 75]); // the first retry: req_memory × 1.5
    expect(bumps).toEqual([[50, 75], [75, 113], [113, 170], [170, 255]].slice(0, bumps.length));
    expect(memErrors[0]!.reason).toMatch(/> 50 MB\)/);
    // 200 MB of Python fits only at 255 MB: four failures, then OK
    expect([mt!.status, mt!.failures, Number(mt!.req_memory)]).toEqual(['OK', 4, 255]);
  });
}, 240_000);
