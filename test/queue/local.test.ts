/**
 * firn-queue with the local plugin (the embedded default), on SQLite and MariaDB: the real
 * config → settings → plugin path, a stand-in pilot, and the CLI.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { openQueueDaemon, type QueueDaemon } from '@firn/queue';
import { TaskStatus, loadConfig, nullLogger, transition } from '@firn/core';
import { createTestDb, DB_KINDS, waitUntil, type TestDb } from '../helpers/db';
import { alive, killRecordedPilots, randomTaskIdBase, recordsByTask, runQueue, spawnQueue, tempDir, writeIni, writeStandInPilot } from './support/harness';
import { blackholeNode, seedDataset, statusOf } from './support/seed';

const MON = 'http://mon.test.invalid:8581';

describe.each(DB_KINDS)('firn-queue, local plugin, %s', (kind) => {
  let t: TestDb;
  let dir: string;
  let records: string;
  let pilot: string;
  const daemons: QueueDaemon[] = [];

  const config = (queue: Record<string, string | number> = {}, environment: Record<string, string> = {}) => ({
    db: { url: t.url },
    queue: { grid: 'laptop', plugin: 'local', submit_dir: path.join(dir, 'submit'), concurrency: 4, capabilities: '{"cpu": 4}', lease_seconds: 5, ...queue },
    system: { pilot },
    mon: { url: MON },
    environment: { FIRN_TEST_RECORD: records, ...environment },
    log: { level: 'warn' },
  });
  const open = async (queue: Record<string, string | number> = {}, environment: Record<string, string> = {}, now?: () => number) => {
    const d = await openQueueDaemon(loadConfig({ overrides: config(queue, environment) }), { logger: nullLogger, lostGraceMs: 0, now });
    daemons.push(d);
    return d;
  };

  beforeEach(async () => {
    t = await createTestDb(kind);
    await randomTaskIdBase(t.db, kind);
    dir = tempDir('firn-queue-local-');
    records = path.join(dir, 'records');
    fs.mkdirSync(records);
    pilot = writeStandInPilot(dir);
  });
  afterEach(async () => {
    for (const d of daemons.splice(0)) await d.close();
    killRecordedPilots(records);
    await t.drop();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  test('WAITING → QUEUED; each job runs the pilot with the mon URL, its task and a 0600 passkey file; a job that ends without the pilot reporting is EVICTED', async () => {
    const d = await open({}, { MY_SETTING: 'a b "c"' });
    const ds = await seedDataset(t.db, { jobs: 3, grids: [d.grid] });
    const r = await d.runCycle();
    expect(r).toMatchObject({ claimed: 3, submitted: 3, errors: [] });
    await waitUntil(() => recordsByTask(records).size === 3, 30_000, 'three pilot records');
    const byTask = recordsByTask(records);
    const rows: Array<{ id: number; passkey_hash: string; batch_id: string; status: string }> = await t.db('task')
      .select('id', 'passkey_hash', 'batch_id', 'status').whereIn('id', ds.all);
    for (const row of rows) {
      const [rec] = byTask.get(Number(row.id))!;
      expect(rec!.args.slice(0, 4)).toEqual(['--mon', MON, '--task', String(row.id)]);
      expect(rec!.args[4]).toBe('--passkey-file');
      expect(rec!.passkeyMode).toBe('600');
      expect(rec!.passkeySha).toBe(row.passkey_hash);
      expect(rec!.env.MY_SETTING).toBe('a b "c"');
      expect(row.batch_id).toBeTruthy();
    }
    // the stand-in exits without ever calling pilot.start: lost
    await waitUntil(async () => {
      await d.runCycle();
      return Object.values(await statusOf(t.db, ds.all)).every((s) => s === TaskStatus.EVICTED);
    }, 30_000, 'tasks EVICTED');
    const row = (await t.db('task').where('id', ds.all[0]).first()) as { evictions: number; error_summary: string };
    expect(row.evictions).toBe(1);
    expect(row.error_summary).toMatch(/ended without the pilot finishing/);
  });

  test('this host black-holed: a cycle claims nothing; after the cool-down it claims and runs the tasks', async () => {
    const t0 = Date.now();
    let clock = t0;
    const d = await open({}, {}, () => clock);
    // what firn-dh leaves after this host (the name the pilot reports) failed too often
    await blackholeNode(t.db, os.hostname(), d.grid, t0 + 10 * 60_000);
    const ds = await seedDataset(t.db, { jobs: 2, grids: [d.grid] });
    const r = await d.runCycle();
    expect(r).toMatchObject({ claimed: 0, submitted: 0, errors: [], claim_skipped: `this host (${os.hostname()}) is black-holed` });
    expect(await statusOf(t.db, ds.all)).toEqual({ [ds.all[0]!]: 'WAITING', [ds.all[1]!]: 'WAITING' });
    expect(await t.db('history').where({ entity: 'task', to_status: 'QUEUEING' })).toHaveLength(0);
    expect(fs.existsSync(path.join(dir, 'submit', '.firn-local'))).toBe(false);
    // still inside the cool-down: still nothing
    clock = t0 + 10 * 60_000 - 1;
    expect((await d.runCycle()).claimed).toBe(0);
    // the cool-down is over
    clock = t0 + 10 * 60_000 + 1;
    const after = await d.runCycle();
    expect(after).toMatchObject({ claimed: 2, submitted: 2, errors: [] });
    expect(after.claim_skipped).toBeUndefined();
    await waitUntil(() => recordsByTask(records).size === 2, 30_000, 'both pilots run on this host');
    expect([...recordsByTask(records).keys()].sort()).toEqual([...ds.all].sort());
  });

  test('cleanQ kills the job of a suspended task', async () => {
    const d = await open({}, { FIRN_TEST_SLEEP: '300' });
    const ds = await seedDataset(t.db, { jobs: 2, grids: [d.grid] });
    await d.runCycle();
    await waitUntil(() => recordsByTask(records).size === 2, 30_000, 'pilots running');
    const [a, b] = ds.all as [number, number];
    await transition(t.db, { taskIds: [a], from: TaskStatus.QUEUED, to: TaskStatus.SUSPENDED, by: 'tray', actor: 'user:alice' });
    const r = await d.runCycle();
    expect(r.removed).toBe(1);
    const rec = recordsByTask(records);
    const [pa, pb] = [rec.get(a)![0]!.pid, rec.get(b)![0]!.pid];
    // the suspended task's job is killed; the other one runs on
    await waitUntil(() => !alive(pa), 20_000, 'the suspended task\'s pilot killed');
    expect(alive(pb)).toBe(true);
    expect(await statusOf(t.db, [a, b])).toEqual({ [a]: 'SUSPENDED', [b]: 'QUEUED' });
    expect((await d.runCycle()).removed).toBe(0);
  });

  test('the CLI: --check-config, --once, and SIGTERM ends a running daemon with exit 0', async () => {
    const file = writeIni(path.join(dir, 'queue.ini'), config({ schedule: '*/1 * * * * *' }));
    const ok = await runQueue(['--config', file, '--check-config']);
    expect(ok.code).toBe(0);
    expect(ok.stdout).toMatch(/configuration OK: grid laptop, plugin local/);

    const bad = writeIni(path.join(dir, 'bad.ini'), { ...config(), queue: { plugin: 'local', max_queued: -3 } });
    const nok = await runQueue(['--config', bad, '--check-config']);
    expect(nok.code).not.toBe(0);
    expect(nok.stderr).toMatch(/\[queue\] max_queued/);

    const badCaps = writeIni(path.join(dir, 'caps.ini'), config({ capabilities: '{"gpu": "lots"}' }));
    expect((await runQueue(['--config', badCaps, '--check-config'])).stderr).toMatch(/capabilities.*\/gpu must be a non-negative number/);

    const ds = await seedDataset(t.db, { jobs: 2, grids: [] });
    const once = await runQueue(['--config', file, '--once']);
    expect(once.code).toBe(0);
    const grid = (await t.db('grid').where('name', 'laptop').first()) as { id: number; last_cycle: string };
    expect(JSON.parse(grid.last_cycle)).toMatchObject({ claimed: 0, errors: [] });
    await t.db('dataset_grid').insert({ dataset_id: ds.datasetId, grid_id: grid.id });

    const child = spawnQueue(['--config', file]);
    await waitUntil(async () => Object.values(await statusOf(t.db, ds.all)).every((s) => s === TaskStatus.QUEUED), 30_000, 'daemon submitted');
    child.kill('SIGTERM');
    const end = await child.done;
    expect(end.code).toBe(0);
    expect(end.stderr).not.toMatch(/Error/);
  });
});
