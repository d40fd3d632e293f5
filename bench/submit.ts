/**
 * Benchmark: dataset.submit of 100,000 jobs × 3 tasks on MariaDB, against a raw multi-row
 * INSERT of the same rows with mysql2 measured in the same run (same schema, same indexes,
 * one transaction each). Target: ≤ 15 s and ratio ≤ 2.
 *
 *   run(): Promise<Record<string, number | string>>   (used by `npm run bench`)
 *   node <compiled submit.js>                          (prints the result, writes bench/results/submit.json)
 *
 * Each measurement runs in its own fresh database (dropped right after), after a warm-up of
 * 1,000 jobs. The machine's load average is recorded with the result: on shared cores the
 * ratio moves with it.
 *
 * Environment: FIRN_BENCH_MYSQL_URL (server root URL, default mysql://root@127.0.0.1:3306),
 * FIRN_BENCH_JOBS (default 100000), FIRN_BENCH_RPC=0 to skip the measurement through RPC.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import mysql from 'mysql2/promise';
import { RpcClient, connect, createUser, loadConfig, now, type Db } from '@firn/core';
import { startTray, submitDataset } from '@firn/tray';

const TASKS = 3;
const CHUNK_ROWS = 5000;

function benchConfig(): Record<string, unknown> {
  const task = (name: string, depends: string[], memory: number) => ({
    name, depends, requirements: { cpu: 1, memory, time: 30 },
    trays: [{ name: 'main', modules: [{ name: 'run', class: 'shell', parameters: { command: `echo ${name} $(job)` } }] }],
  });
  return {
    version: 1,
    description: 'bench: 3-task chain',
    tasks: [task('generate', [], 1000), task('propagate', ['generate'], 2000), task('detect', ['propagate'], 1500)],
  };
}

function dbUrl(root: string, name: string): string {
  return `${root.replace(/\/+$/, '')}/${name}`;
}

/** The same job and task rows dataset.submit writes, with mysql2 alone: the floor to compare with. */
async function rawInsert(root: string, database: string, jobs: number): Promise<number> {
  const u = new URL(root);
  const conn = await mysql.createConnection({
    host: u.hostname, port: Number(u.port || 3306), user: decodeURIComponent(u.username || 'root'),
    password: decodeURIComponent(u.password), database, charset: 'utf8mb4',
  });
  try {
    const t0 = process.hrtime.bigint();
    await conn.beginTransaction();
    const t = now();
    const [ds] = (await conn.query(
      'INSERT INTO dataset (description, type, status, priority, jobs_submitted, tasks_per_job, config, config_hash, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)',
      ['raw', 'simulation', 'PROCESSING', 0, jobs, TASKS, JSON.stringify(benchConfig()), '0'.repeat(64), t, t],
    )) as [{ insertId: number }, unknown];
    const datasetId = ds.insertId;
    const rels: number[] = [];
    for (const [i, name] of ['generate', 'propagate', 'detect'].entries()) {
      const [r] = (await conn.query('INSERT INTO task_rel (dataset_id, task_index, name, requirements) VALUES (?, ?, ?, ?)', [datasetId, i, name, '{}'])) as [{ insertId: number }, unknown];
      rels.push(r.insertId);
    }
    for (let i = 0; i < jobs; i += CHUNK_ROWS) {
      const rows: unknown[][] = [];
      for (let j = i; j < Math.min(jobs, i + CHUNK_ROWS); j++) rows.push([datasetId, j, 'PROCESSING', null, null, t]);
      await conn.query('INSERT INTO job (dataset_id, job_index, status, run_id, args, status_changed_at) VALUES ?', [rows]);
    }
    const [ids] = (await conn.query('SELECT id, job_index FROM job WHERE dataset_id = ?', [datasetId])) as [Array<{ id: number; job_index: number }>, unknown];
    const names = ['generate', 'propagate', 'detect'];
    const memory = [1000, 2000, 1500];
    let rows: unknown[][] = [];
    for (const j of ids) {
      for (let k = 0; k < TASKS; k++) {
        rows.push([datasetId, j.id, rels[k], k, names[k], k === 0 ? 'WAITING' : 'IDLE', t, 1, 0, memory[k], 10000, 30, null]);
        if (rows.length >= CHUNK_ROWS) {
          await conn.query('INSERT INTO task (dataset_id, job_id, task_rel_id, task_index, name, status, status_changed_at, req_cpu, req_gpu, req_memory, req_disk, req_time, req_site) VALUES ?', [rows]);
          rows = [];
        }
      }
    }
    if (rows.length) await conn.query('INSERT INTO task (dataset_id, job_id, task_rel_id, task_index, name, status, status_changed_at, req_cpu, req_gpu, req_memory, req_disk, req_time, req_site) VALUES ?', [rows]);
    await conn.commit();
    return Number(process.hrtime.bigint() - t0) / 1e9;
  } finally {
    await conn.end();
  }
}

async function count(db: Db, datasetId: number): Promise<number> {
  return Number(((await db('task').count({ n: '*' }).where({ dataset_id: datasetId }).first()) as { n: number | string }).n);
}

/** A fresh, migrated database; every measurement gets its own, dropped right after (the 128 MB
 * default InnoDB buffer pool would otherwise make each later run pay for the earlier ones). */
async function freshDb(root: string, name: string): Promise<{ db: Db; drop: () => Promise<void> }> {
  const db = await connect(dbUrl(root, name), { poolMax: 4 });
  return {
    db,
    drop: async () => {
      await db.raw('DROP DATABASE IF EXISTS ??', [name]).catch(() => undefined);
      await db.destroy();
    },
  };
}

export async function run(): Promise<Record<string, number | string>> {
  const root = process.env.FIRN_BENCH_MYSQL_URL ?? 'mysql://root@127.0.0.1:3306';
  const jobs = Number(process.env.FIRN_BENCH_JOBS ?? 100_000);
  const tag = `${process.pid}_${Date.now().toString(36)}`;
  const config = benchConfig();
  const fetch = { maxBytes: 1 << 20, timeoutMs: 10_000 };
  const seconds = (t0: bigint) => Number(process.hrtime.bigint() - t0) / 1e9;

  // 1. the floor: mysql2 alone (after a small warm-up insert)
  const raw = await freshDb(root, `firn_bench_raw_${tag}`);
  let rawSeconds: number;
  try {
    await rawInsert(root, `firn_bench_raw_${tag}`, 1000);
    rawSeconds = await rawInsert(root, `firn_bench_raw_${tag}`, jobs);
  } finally {
    await raw.drop();
  }

  // 2. submitDataset called directly (after a small warm-up submission)
  const direct = await freshDb(root, `firn_bench_submit_${tag}`);
  let submitSeconds: number;
  try {
    const u = await createUser(direct.db, { username: 'bench', role: 'manager', password: 'bench-password' });
    const user = { id: u.id, username: u.username };
    await submitDataset(direct.db, { config, jobs: 1000 }, { user, fetch });
    const t0 = process.hrtime.bigint();
    const r = await submitDataset(direct.db, { config, jobs }, { user, fetch });
    submitSeconds = seconds(t0);
    if ((await count(direct.db, r.dataset_id)) !== jobs * TASKS) throw new Error('dataset.submit wrote the wrong number of tasks');
  } finally {
    await direct.drop();
  }

  // 3. dataset.submit over JSON-RPC (HTTP, loopback) to a firn-tray in this process
  let rpcSeconds = NaN;
  if (process.env.FIRN_BENCH_RPC !== '0') {
    const name = `firn_bench_rpc_${tag}`;
    const viaRpc = await freshDb(root, name);
    try {
      await createUser(viaRpc.db, { username: 'bench', role: 'manager', password: 'bench-password' });
      const tray = await startTray({ config: loadConfig({ overrides: { db: { url: dbUrl(root, name) }, tray: { host: '127.0.0.1', port: 0 } } }), db: viaRpc.db });
      const client = new RpcClient(tray.url, { timeoutMs: 600_000 });
      try {
        client.token = (await client.call<{ token: string }>('auth.login', { username: 'bench', password: 'bench-password' })).token;
        await client.call('dataset.submit', { config, jobs: 1000 });
        const t0 = process.hrtime.bigint();
        const r = await client.call<{ dataset_id: number; tasks: number }>('dataset.submit', { config, jobs });
        rpcSeconds = seconds(t0);
        if ((await count(viaRpc.db, r.dataset_id)) !== jobs * TASKS) throw new Error('dataset.submit over RPC wrote the wrong number of tasks');
      } finally {
        client.close();
        await tray.close();
      }
    } finally {
      await viaRpc.drop();
    }
  }
  const round = (x: number) => Math.round(x * 1000) / 1000;
  return {
    bench: 'submit',
    db: 'mariadb',
    jobs,
    tasks: jobs * TASKS,
    raw_insert_seconds: round(rawSeconds),
    submit_seconds: round(submitSeconds),
    submit_rpc_seconds: round(rpcSeconds),
    ratio: round(submitSeconds / rawSeconds),
    rpc_ratio: round(rpcSeconds / rawSeconds),
    target: '≤ 15 s and ratio ≤ 2',
    load_average: os.loadavg().map((x) => x.toFixed(2)).join(' '),
    date: new Date().toISOString(),
    node: process.version,
  };
}

/** bench/results, found from wherever this file was compiled to. */
function resultsDir(): string {
  for (let dir = __dirname; ; dir = path.dirname(dir)) {
    if (path.basename(dir) === 'bench') return path.join(dir, 'results');
    if (fs.existsSync(path.join(dir, 'bench', 'submit.ts'))) return path.join(dir, 'bench', 'results');
    if (path.dirname(dir) === dir) return path.join(process.cwd(), 'bench', 'results');
  }
}

if (require.main === module) {
  run().then(
    (result) => {
      const dir = resultsDir();
      fs.mkdirSync(dir, { recursive: true });
      fs.writeFileSync(path.join(dir, 'submit.json'), JSON.stringify(result, null, 2) + '\n');
      process.stdout.write(
        `dataset.submit ${result.jobs} jobs × ${TASKS} tasks on MariaDB: ${result.submit_seconds} s ` +
          `(via RPC ${result.submit_rpc_seconds} s); raw mysql2 INSERT ${result.raw_insert_seconds} s; ratio ${result.ratio} (RPC ${result.rpc_ratio})\n`,
      );
    },
    (e: unknown) => {
      process.stderr.write(`bench submit failed: ${(e as Error).stack ?? String(e)}\n`);
      process.exitCode = 1;
    },
  );
}
