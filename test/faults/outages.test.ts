/**
 * Outages through all four daemons as processes (local plugin, real pilots), every module run
 * written to a ledger (one line per run, outside scratch), so that a task run twice shows:
 *   (c) a private MariaDB server (its own datadir and port, started by this test) stopped for
 *       20 s while tasks run: 0 failures, 0 evictions, every task OK, each job run exactly
 *       once, statistics exact;
 *   (d) firn-mon stopped (SIGTERM: 503s while it drains, then connection refused) and started
 *       again on the same port while tasks run: the pilots' final reports arrive afterwards,
 *       same outcome.
 */
import fs from 'node:fs';
import path from 'node:path';
import { connect } from '@firn/core';
import type { TestDb } from '../helpers/db';
import { E2eSuite } from '../e2e/harness';
import { PrivateMariaDb, freePort } from '../helpers/private-mariadb';

const JOBS = 12;
/** Each module run: one ledger line, a few seconds of work, two statistics. */
function dataset(ledger: string): Record<string, unknown> {
  return {
    version: 1,
    description: 'faults: outage ledger',
    retry: { max_failures: 1, max_evictions: 1, backoff_seconds: 1, backoff_max_seconds: 2 },
    tasks: [{
      name: 'work',
      requirements: { cpu: 1, memory: 200, time: 5 },
      trays: [{
        name: 't',
        modules: [{
          name: 'm',
          class: 'shell',
          parameters: { command: `echo "run $FIRN_DATASET $FIRN_JOB" >> ${ledger}; sleep 6; echo "events 10" >> "$FIRN_STATS"; echo "job_sum $FIRN_JOB" >> "$FIRN_STATS"` },
        }],
      }],
    }],
  };
}


async function expectPerfectRun(s: E2eSuite, datasetId: number, ledger: string): Promise<void> {
  const st = await s.waitForDataset(datasetId, ['COMPLETE', 'ERRORS'], 240_000);
  expect(st.status).toBe('COMPLETE');
  const tasks = (await s.db.db('task').select('status', 'failures', 'evictions', 'submit_errors').where('dataset_id', datasetId)) as Array<Record<string, unknown>>;
  expect(tasks).toHaveLength(JOBS);
  expect(tasks.map((t) => [t.status, Number(t.failures), Number(t.evictions)])).toEqual(Array(JOBS).fill(['OK', 0, 0]));
  const runs = fs.readFileSync(ledger, 'utf8').trim().split('\n').filter((l) => l.startsWith(`run ${datasetId} `)).sort();
  expect(runs).toEqual(Array.from({ length: JOBS }, (_, j) => `run ${datasetId} ${j}`).sort());
  const stats = (await s.db.db('dataset_stat').select('name', 'n', 'sum').where('dataset_id', datasetId).whereIn('name', ['events', 'job_sum']).orderBy('name')) as Array<{ name: string; n: number; sum: number }>;
  expect(stats.map((r) => [r.name, Number(r.n), Number(r.sum)])).toEqual([
    ['events', JOBS, 10 * JOBS],
    ['job_sum', JOBS, (JOBS * (JOBS - 1)) / 2],
  ]);
  const evictedOrFailed = await s.db.db('history').where({ entity: 'task', dataset_id: datasetId }).whereIn('to_status', ['ERROR', 'EVICTED', 'FAILED']);
  expect(evictedOrFailed).toEqual([]);
}


describe('(c) a database outage of 20 s', () => {
  let server: PrivateMariaDb;
  let s: E2eSuite;
  let ledger: string;
  beforeAll(async () => {
    server = await PrivateMariaDb.create({ database: 'firn_faults', prefix: 'firn-faults-mariadb-', bufferPool: '64M', maxConnections: 200 });
    s = await E2eSuite.create({
      name: 'db-outage',
      queue: { plugin: 'local', extra: { concurrency: 6 } },
      dh: { heartbeat_timeout: 30 },
      db: async (): Promise<TestDb> => {
        const db = await connect(server.url, { poolMax: 10 });
        return { kind: 'mariadb', url: server.url, db, drop: async () => db.destroy() };
      },
    });
    ledger = path.join(s.dir, 'ledger');
    await s.guard(() => s.startAll());
  }, 180_000);
  afterAll(async () => {
    await s?.close();
    await server?.destroy();
  }, 60_000);

  test('stopped mid-run → no failure, no eviction, every task OK once, statistics exact', async () => {
    await s.guard(async () => {
      const { dataset_id } = await s.submit(dataset(ledger), JOBS);
      await s.waitFor(async () => Number(((await s.db.db('task').where({ dataset_id, status: 'PROCESSING' }).count({ n: '*' }).first()) as { n: number }).n) >= 3, 60_000, 'tasks running');
      await server.stop();
      await new Promise((r) => setTimeout(r, 20_000));
      await server.start();
      await expectPerfectRun(s, dataset_id, ledger);
      // the daemons lived through it
      for (const d of ['tray', 'mon', 'dh', 'queue'] as const) expect(s.running(d)).toBe(true);
    });
  }, 300_000);
});

describe('(d) firn-mon stopped and started again on the same port', () => {
  let s: E2eSuite;
  let ledger: string;
  beforeAll(async () => {
    s = await E2eSuite.create({ name: 'mon-restart', queue: { plugin: 'local', extra: { concurrency: 6 } }, mon: { port: await freePort() } });
    ledger = path.join(s.dir, 'ledger');
    await s.guard(() => s.startAll());
  }, 120_000);
  afterAll(async () => {
    await s?.close();
  }, 60_000);

  test('pilots report once it is back: every task OK once, statistics exact', async () => {
    await s.guard(async () => {
      const { dataset_id } = await s.submit(dataset(ledger), JOBS);
      await s.waitFor(async () => Number(((await s.db.db('task').where({ dataset_id, status: 'PROCESSING' }).count({ n: '*' }).first()) as { n: number }).n) >= 3, 60_000, 'tasks running');
      const url = s.monUrl;
      await s.stop('mon');
      // the running modules end while mon is away: their final reports wait in the pilots
      await new Promise((r) => setTimeout(r, 10_000));
      await s.start('mon');
      expect(s.monUrl).toBe(url);
      await expectPerfectRun(s, dataset_id, ledger);
    });
  }, 300_000);
});
