/**
 * /metrics and /healthz of firn-queue and firn-dh, each run as a process (built dist/) on a
 * private MariaDB the test starts and stops: the task gauges equal a COUNT query of the
 * database, and /healthz answers 503 while that database is stopped and 200 once it is back.
 * The bounded query (the N most recent active datasets) is checked in-process on both databases.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { connect, taskCounts, type Db } from '@firn/core';
import { createTestDb, DB_KINDS, waitUntil, type TestDb } from '../helpers/db';
import { insertDataset } from '../dh/fixtures';
import { PrivateMariaDb, freePort } from '../helpers/private-mariadb';

const REPO = path.resolve(__dirname, '../..');



/** `firn_tasks{dataset,grid,status} n` lines of a scrape, as "dataset/grid/status" → n. */
function parseGauge(text: string, name: string, labels: string[]): Map<string, number> {
  const out = new Map<string, number>();
  for (const line of text.split('\n')) {
    if (!line.startsWith(`${name}{`)) continue;
    const m = /^[a-z_]+\{(.*)\} (\S+)$/.exec(line);
    if (!m) continue;
    const l = Object.fromEntries([...m[1]!.matchAll(/(\w+)="([^"]*)"/g)].map((x) => [x[1]!, x[2]!]));
    out.set(labels.map((k) => l[k] ?? '').join('/'), Number(m[2]));
  }
  return out;
}

/** What the database says, grouped the same way (COUNT per dataset, grid name, status over active datasets). */
async function expected(db: Db): Promise<{ tasks: Map<string, number>; grids: Map<string, number> }> {
  const rows = (await db('task as t')
    .join('dataset as d', 'd.id', 't.dataset_id')
    .leftJoin('grid as g', 'g.id', 't.grid_id')
    .whereIn('d.status', ['PROCESSING', 'SUSPENDED'])
    .select('t.dataset_id', 'g.name as grid', 't.status')
    .count({ n: '*' })
    .groupBy('t.dataset_id', 'g.name', 't.status')) as Array<{ dataset_id: number; grid: string | null; status: string; n: number | string }>;
  const tasks = new Map<string, number>();
  const grids = new Map<string, number>();
  for (const r of rows) {
    tasks.set(`${r.dataset_id}/${r.grid ?? ''}/${r.status}`, Number(r.n));
    const k = `${r.grid ?? ''}/${r.status}`;
    grids.set(k, (grids.get(k) ?? 0) + Number(r.n));
  }
  return { tasks, grids };
}

/** GET without keep-alive (no socket outlives the test). */
function get(url: string): Promise<{ status: number; text: string }> {
  return new Promise((resolve, reject) => {
    const req = http.get(url, { agent: false, timeout: 10_000 }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (d: string) => (text += d));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, text }));
      res.on('error', reject);
    });
    req.on('timeout', () => req.destroy(new Error(`GET ${url}: timeout`)));
    req.on('error', reject);
  });
}

/** Datasets and tasks in statuses no daemon cycle moves by itself (the queue's grid is disabled). */
async function seed(db: Db): Promise<void> {
  const t = Date.now();
  await db('grid').insert([
    { name: 'metrics-q', plugin: 'local', capabilities: '{}', status: 'disabled', created_at: t },
    { name: 'other-grid', plugin: 'slurm', capabilities: '{}', status: 'enabled', created_at: t },
  ]);
  const grids = (await db('grid').select('id', 'name')) as Array<{ id: number; name: string }>;
  const gid = (n: string) => Number(grids.find((g) => g.name === n)!.id);
  const statuses = ['WAITING', 'IDLE', 'SUSPENDED', 'FAILED', 'OK'] as const;
  for (let d = 0; d < 3; d++) {
    const f = await insertDataset(db, { jobs: 4 + d, tasks: [{ name: 'a' }, { name: 'b' }], status: (j, i) => (j === 0 && i === 0 ? 'WAITING' : statuses[(j + i + d) % statuses.length]!) });
    const ids = f.taskIds.flat();
    await db('task').whereIn('id', ids.filter((_, i) => i % 3 === 1)).update({ grid_id: gid('metrics-q') });
    await db('task').whereIn('id', ids.filter((_, i) => i % 3 === 2)).update({ grid_id: gid('other-grid') });
  }
  // a finished dataset is not in the gauges
  await insertDataset(db, { jobs: 2, status: () => 'OK', datasetStatus: 'COMPLETE' });
}

describe('firn-queue and firn-dh /metrics and /healthz as processes on a private MariaDB', () => {
  let server: PrivateMariaDb;
  let db: Db;
  let dir: string;
  const procs: ChildProcess[] = [];
  const ports: Record<'queue' | 'dh', number> = { queue: 0, dh: 0 };

  const startDaemon = (name: 'queue' | 'dh', ini: string): ChildProcess => {
    const p = spawn(process.execPath, [path.join(REPO, 'packages', name, 'bin', `firn-${name}`), '--config', ini], {
      env: { PATH: process.env.PATH ?? '', HOME: dir }, stdio: ['ignore', 'ignore', 'pipe'],
    });
    let err = '';
    p.stderr!.on('data', (d: Buffer) => (err = (err + d.toString()).slice(-4000)));
    p.on('exit', (code) => {
      if (code) console.error(`firn-${name} exited ${code}: ${err}`);
    });
    procs.push(p);
    return p;
  };

  beforeAll(async () => {
    for (const pkg of ['queue', 'dh']) {
      if (!fs.existsSync(path.join(REPO, 'packages', pkg, 'dist', 'cli.js'))) throw new Error(`packages/${pkg}/dist is missing: run npx tsc --build`);
    }
    server = await PrivateMariaDb.create({ database: 'firn_metrics', prefix: 'firn-metrics-mariadb-', bufferPool: '32M', maxConnections: 50 });
    db = await connect(server.url, { poolMax: 4 });
    await seed(db);
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'firn-metrics-'));
    ports.queue = await freePort();
    ports.dh = await freePort();
    const common = ['[db]', `url = ${server.url}`, 'pool_max = 4', '[log]', 'level = warn', 'format = json'];
    const queueIni = path.join(dir, 'queue.ini');
    fs.writeFileSync(queueIni, [...common, '[queue]', 'grid = metrics-q', 'plugin = local', 'schedule = */1 * * * * *', `submit_dir = ${path.join(dir, 'submit')}`,
      `metrics_port = ${ports.queue}`, ''].join('\n'));
    const dhIni = path.join(dir, 'dh.ini');
    fs.writeFileSync(dhIni, [...common, '[dh]', 'schedule = */1 * * * * *', `metrics_port = ${ports.dh}`, ''].join('\n'));
    startDaemon('queue', queueIni);
    startDaemon('dh', dhIni);
    for (const name of ['queue', 'dh'] as const) {
      await waitUntil(async () => (await get(`http://127.0.0.1:${ports[name]}/healthz`).catch(() => ({ status: 0 }))).status === 200, 30_000, `firn-${name} /healthz`, 200);
    }
  }, 180_000);

  afterAll(async () => {
    for (const p of procs) {
      if (p.exitCode === null) {
        const exited = new Promise((r) => p.on('exit', r));
        p.kill('SIGTERM');
        let timer: NodeJS.Timeout | undefined;
        await Promise.race([exited, new Promise((r) => (timer = setTimeout(r, 10_000)))]);
        clearTimeout(timer);
        if (p.exitCode === null) p.kill('SIGKILL');
      }
    }
    await db?.destroy();
    await server?.destroy();
    if (dir) fs.rmSync(dir, { recursive: true, force: true });
  }, 60_000);

  test.each(['queue', 'dh'] as const)('firn-%s: firn_tasks and firn_grid_tasks equal the COUNT query', async (name) => {
    let last = '';
    await waitUntil(async () => {
      const m = await get(`http://127.0.0.1:${ports[name]}/metrics`);
      expect(m.status).toBe(200);
      last = m.text;
      const want = await expected(db);
      const tasks = parseGauge(m.text, 'firn_tasks', ['dataset', 'grid', 'status']);
      const grids = parseGauge(m.text, 'firn_grid_tasks', ['grid', 'status']);
      return want.tasks.size > 10 && JSON.stringify([...tasks].sort()) === JSON.stringify([...want.tasks].sort())
        && JSON.stringify([...grids].sort()) === JSON.stringify([...want.grids].sort());
    }, 20_000, `firn-${name} gauges to match the database`, 500).catch((e: unknown) => {
      throw new Error(`${String(e)}\n${last.split('\n').filter((l) => l.startsWith('firn_tasks') || l.startsWith('firn_grid')).join('\n')}`);
    });
    // per-grid series of both grids, the unclaimed tasks under grid=""
    expect(last).toMatch(/^firn_grid_tasks\{grid="metrics-q",status="WAITING"\} \d+$/m);
    expect(last).toMatch(/^firn_grid_tasks\{grid="other-grid",status="FAILED"\} \d+$/m);
    expect(last).toMatch(/^firn_grid_tasks\{grid="",status="WAITING"\} \d+$/m);
    if (name === 'queue') {
      expect(last).toMatch(/^firn_queue_cycles_total\{grid="metrics-q"\} [1-9]/m);
      expect(last).toMatch(/^firn_queue_depth\{grid="metrics-q"\} 0$/m);
      expect(last).toMatch(/^firn_queue_cycle_duration_seconds_count\{grid="metrics-q",phase="total"\} [1-9]/m);
    } else {
      expect(last).toMatch(/^firn_dh_cycle_duration_seconds_count\{cycle="rollup"\} [1-9]/m);
      expect(last).toMatch(/^firn_dh_copies_total 0$/m);
    }
  }, 60_000);

  test('/healthz of both answers 503 while the database is stopped, 200 once it is back', async () => {
    await server.stop();
    try {
      for (const name of ['queue', 'dh'] as const) {
        const t0 = Date.now();
        const h = await get(`http://127.0.0.1:${ports[name]}/healthz`);
        expect(h.status).toBe(503);
        expect(JSON.parse(h.text)).toMatchObject({ status: 'error', daemon: name, database: 'unavailable' });
        expect(Date.now() - t0).toBeLessThan(5_000);
        // /metrics still answers (previous counts kept, the failed read counted)
        const m = await get(`http://127.0.0.1:${ports[name]}/metrics`);
        expect(m.status).toBe(200);
        expect(m.text).toMatch(/^firn_metrics_scrape_errors_total [1-9]/m);
      }
    } finally {
      await server.start();
    }
    for (const name of ['queue', 'dh'] as const) {
      await waitUntil(async () => (await get(`http://127.0.0.1:${ports[name]}/healthz`)).status === 200, 30_000, `firn-${name} healthy again`, 250);
    }
    expect(procs.every((p) => p.exitCode === null)).toBe(true);
  }, 90_000);
});

describe.each(DB_KINDS)('taskCounts on %s: bounded to the most recent active datasets', (kind) => {
  let t: TestDb;
  beforeAll(async () => {
    t = await createTestDb(kind);
  });
  afterAll(async () => {
    await t?.drop();
  });

  test('limit 2 of 4 active datasets: only the two newest, every status counted', async () => {
    const ids: number[] = [];
    for (let i = 0; i < 4; i++) ids.push((await insertDataset(t.db, { jobs: 3, status: (j) => (j === 0 ? 'WAITING' : 'OK') })).datasetId);
    await insertDataset(t.db, { jobs: 1, datasetStatus: 'COMPLETE', status: () => 'OK' });
    const rows = await taskCounts(t.db, 2);
    expect(rows.map((r) => `${r.dataset}/${r.grid}/${r.status}=${r.n}`).sort()).toEqual(
      [`${ids[2]}//OK=2`, `${ids[2]}//WAITING=1`, `${ids[3]}//OK=2`, `${ids[3]}//WAITING=1`].sort(),
    );
  });
});
