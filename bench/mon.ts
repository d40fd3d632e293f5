/**
 * bench/mon.ts — firn-mon heartbeat throughput and latency on MariaDB.
 *
 * 2,000 simulated pilots heartbeat over keep-alive HTTP (one connection each) against a real
 * firn-mon (in this process) writing to MariaDB, and — in the same run, same load generator —
 * against a bare node:http JSON-RPC echo server, to show what the batching, validation and
 * database cost. The load generator runs in a separate process (child_process.fork of this same
 * file) so it does not share the server's event loop.
 *
 * Phases (each `seconds` long after a warm-up):
 *   1. echo, closed loop   — every pilot sends its next heartbeat as soon as the last is answered:
 *                            the ceiling of this machine's HTTP + JSON path;
 *   2. mon, closed loop    — the same against firn-mon: its maximum updates/s; ratio = mon / echo;
 *   3. mon, open loop      — every pilot heartbeats on a fixed period so that together they offer
 *                            `rate` updates/s (default 5,000): achieved updates/s and p50/p99 latency
 *                            at that rate (the target: ≥ 5,000 updates/s with p99 < 100 ms).
 * Latency is measured per call, send → answer; firn-mon answers after the update is committed
 * (ack-after-flush), so its latency includes waiting for the next flush ([mon] flush_ms).
 *
 * Run: `npm run bench` (all benchmarks), or this one alone after `npm run build`, e.g.
 *   npx esbuild bench/mon.ts --bundle --platform=node --packages=external --outfile=bench/dist/mon.js && node bench/dist/mon.js
 * Environment: FIRN_BENCH_MYSQL_URL (default mysql://root@127.0.0.1:3306), FIRN_BENCH_PILOTS (2000),
 * FIRN_BENCH_SECONDS (10), FIRN_BENCH_RATE (5000), FIRN_BENCH_FLUSH_MS (50).
 * Writes bench/results/mon.json.
 */
import { fork, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { connect, createLogger, loadConfig, randomSecret, sha256Hex, type Db } from '@firn/core';
import { createMonServer } from '@firn/mon';

export interface PhaseResult {
  target: 'echo' | 'mon';
  mode: 'closed' | 'open';
  pilots: number;
  seconds: number;
  /** Successful calls per second during the measured window. */
  updates_per_s: number;
  /** Calls answered with an error (e.g. -32029 backpressure) per second. */
  errors_per_s: number;
  p50_ms: number;
  p99_ms: number;
  max_ms: number;
  /** Offered rate (open loop only). */
  offered_per_s?: number;
  /** CPU used by the server process during the phase, % of one core. */
  server_cpu_percent?: number;
}

export interface MonBenchResult {
  name: 'mon';
  date: string;
  pilots: number;
  flush_ms: number;
  cpus: number;
  /** 1-minute load average before and after the run: other work on the machine skews the numbers. */
  loadavg: [number, number];
  echo_closed: PhaseResult;
  mon_closed: PhaseResult;
  mon_open: PhaseResult;
  /** firn-mon updates/s ÷ echo server calls/s, both closed loop. */
  ratio_to_echo: number;
  /** Flush transactions during the open-loop phase: mean updates per flush and mean duration. */
  mean_flush_size: number;
  mean_flush_ms: number;
  target: { updates_per_s: number; p99_ms: number; met: boolean };
}

interface GeneratorJob {
  url: string;
  tasks: Array<{ id: number; passkey: string }>;
  mode: 'closed' | 'open';
  warmupMs: number;
  durationMs: number;
  /** open loop: total offered calls per second */
  rate?: number;
}

// ------------------------------------------------------------------ load generator (child process)

async function generate(job: GeneratorJob): Promise<Omit<PhaseResult, 'target' | 'mode'>> {
  const url = new URL(job.url.replace(/\/+$/, '') + '/rpc');
  const latencies: number[] = [];
  let ok = 0;
  let errors = 0;
  const start = performance.now();
  const measureFrom = start + job.warmupMs;
  const end = measureFrom + job.durationMs;
  const interval = job.rate ? (job.tasks.length / job.rate) * 1000 : 0;

  const post = (agent: http.Agent, body: string): Promise<string> =>
    new Promise((resolve, reject) => {
      const req = http.request(url, { method: 'POST', agent, headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) } }, (res) => {
        let text = '';
        res.setEncoding('utf8');
        res.on('data', (c: string) => (text += c));
        res.on('end', () => resolve(text));
        res.on('error', reject);
      });
      req.on('error', reject);
      req.end(body);
    });

  const pilot = async (task: { id: number; passkey: string }, index: number) => {
    const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
    let n = 0;
    // open loop: spread the pilots' phases evenly over one period
    let next = start + (interval ? (index / job.tasks.length) * interval : 0);
    try {
      for (;;) {
        if (interval) {
          const wait = next - performance.now();
          if (wait > 0) await new Promise((r) => setTimeout(r, wait));
          next += interval;
        }
        const sent = performance.now();
        if (sent >= end) break;
        n++;
        const body = JSON.stringify({
          jsonrpc: '2.0', id: n, method: 'pilot.heartbeat',
          params: { task_id: task.id, passkey: task.passkey, cpu_seconds: n, rss_mb: 100 + (n % 50), wall_seconds: n * 2 },
        });
        let good = false;
        try {
          const text = await post(agent, body);
          good = text.includes('"result"');
        } catch {
          good = false;
        }
        const done = performance.now();
        if (sent >= measureFrom && done <= end) {
          if (good) {
            ok++;
            latencies.push(done - sent);
          } else errors++;
        }
      }
    } finally {
      agent.destroy();
    }
  };

  await Promise.all(job.tasks.map((t, i) => pilot(t, i)));
  latencies.sort((a, b) => a - b);
  const q = (p: number) => (latencies.length ? latencies[Math.min(latencies.length - 1, Math.floor(p * latencies.length))]! : 0);
  const seconds = job.durationMs / 1000;
  return {
    pilots: job.tasks.length,
    seconds,
    updates_per_s: Math.round(ok / seconds),
    errors_per_s: Math.round(errors / seconds),
    p50_ms: round(q(0.5)),
    p99_ms: round(q(0.99)),
    max_ms: round(latencies[latencies.length - 1] ?? 0),
    ...(job.rate ? { offered_per_s: job.rate } : {}),
  };
}

function round(x: number): number {
  return Math.round(x * 100) / 100;
}

if (process.argv.includes('--load-generator')) {
  process.on('message', (job: GeneratorJob) => {
    generate(job).then(
      (r) => process.send!({ ok: true, result: r }, () => process.exit(0)),
      (e: unknown) => process.send!({ ok: false, error: String(e) }, () => process.exit(1)),
    );
  });
}

/** Run one phase in a forked load generator; adds this (the server's) process's CPU use. */
async function runGenerator(job: GeneratorJob): Promise<Omit<PhaseResult, 'target' | 'mode'>> {
  const cpu0 = process.cpuUsage();
  const t0 = performance.now();
  const r = await runGeneratorProcess(job);
  const cpu = process.cpuUsage(cpu0);
  return { ...r, server_cpu_percent: Math.round(((cpu.user + cpu.system) / 1000 / (performance.now() - t0)) * 100) };
}

function runGeneratorProcess(job: GeneratorJob): Promise<Omit<PhaseResult, 'target' | 'mode'>> {
  return new Promise((resolve, reject) => {
    const child: ChildProcess = fork(__filename, ['--load-generator'], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
    child.once('message', (m: { ok: boolean; result?: Omit<PhaseResult, 'target' | 'mode'>; error?: string }) => {
      if (m.ok && m.result) resolve(m.result);
      else reject(new Error(`load generator failed: ${m.error}`));
    });
    child.once('exit', (code) => {
      if (code !== 0) reject(new Error(`load generator exited with ${code}`));
    });
    child.send(job);
  });
}

// ------------------------------------------------------------------ servers (this process)

/** A bare node:http JSON-RPC server answering {ok: true} to every call: the HTTP + JSON baseline. */
function startEchoServer(): Promise<{ url: string; close(): Promise<void> }> {
  const server = http.createServer({ keepAliveTimeout: 65_000 }, (req, res) => {
    let body = '';
    req.setEncoding('utf8');
    req.on('data', (c: string) => (body += c));
    req.on('end', () => {
      let id: unknown = null;
      try {
        id = (JSON.parse(body) as { id?: unknown }).id ?? null;
      } catch {
        /* answer anyway */
      }
      const out = JSON.stringify({ jsonrpc: '2.0', id, result: { ok: true } });
      res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(out) });
      res.end(out);
    });
  });
  return new Promise((resolve) => {
    server.listen(0, '127.0.0.1', () => {
      const port = (server.address() as { port: number }).port;
      resolve({
        url: `http://127.0.0.1:${port}`,
        close: () => new Promise<void>((r) => {
          server.closeAllConnections();
          server.close(() => r());
        }),
      });
    });
  });
}

async function seed(db: Db, pilots: number): Promise<Array<{ id: number; passkey: string }>> {
  const t = Date.now();
  const [datasetId] = await db('dataset').insert({ description: 'bench', status: 'PROCESSING', tasks_per_job: 1, jobs_submitted: pilots, config: '{}', config_hash: sha256Hex('{}'), created_at: t, updated_at: t });
  const [taskRelId] = await db('task_rel').insert({ dataset_id: datasetId, task_index: 0, name: 'main', requirements: '{}' });
  const jobs = Array.from({ length: pilots }, (_, j) => ({ dataset_id: datasetId, job_index: j, status: 'PROCESSING', status_changed_at: t }));
  for (let i = 0; i < jobs.length; i += 500) await db('job').insert(jobs.slice(i, i + 500));
  const jobRows = (await db('job').select('id', 'job_index').where({ dataset_id: datasetId }).orderBy('job_index')) as Array<{ id: number }>;
  const passkeys = jobRows.map(() => randomSecret());
  const tasks = jobRows.map((j, i) => ({
    dataset_id: datasetId, job_id: j.id, task_rel_id: taskRelId, task_index: 0, name: 'main', status: 'PROCESSING',
    status_changed_at: t, passkey_hash: sha256Hex(passkeys[i]!), host: `wn${i % 100}`, started_at: t,
  }));
  for (let i = 0; i < tasks.length; i += 500) await db('task').insert(tasks.slice(i, i + 500));
  const taskRows = (await db('task').select('id', 'job_id').where({ dataset_id: datasetId })) as Array<{ id: number; job_id: number }>;
  const byJob = new Map(taskRows.map((r) => [Number(r.job_id), Number(r.id)]));
  return jobRows.map((j, i) => ({ id: byJob.get(Number(j.id))!, passkey: passkeys[i]! }));
}

/** The repository root (the directory holding lerna.json) above this file, wherever it was compiled to. */
function repoRoot(): string {
  for (let dir = __dirname; ; dir = path.dirname(dir)) {
    if (fs.existsSync(path.join(dir, 'lerna.json'))) return dir;
    if (path.dirname(dir) === dir) return process.cwd();
  }
}

function flushStats(metrics: string): { count: number; sum: number; seconds: number } {
  const count = Number(/^firn_mon_flush_size_count (\d+)/m.exec(metrics)?.[1] ?? 0);
  const sum = Number(/^firn_mon_flush_size_sum (\S+)/m.exec(metrics)?.[1] ?? 0);
  const seconds = Number(/^firn_mon_flush_duration_seconds_sum (\S+)/m.exec(metrics)?.[1] ?? 0);
  return { count, sum, seconds };
}

// ------------------------------------------------------------------ the benchmark

export async function run(options: { pilots?: number; seconds?: number; rate?: number; flushMs?: number; mysqlUrl?: string; write?: boolean } = {}): Promise<MonBenchResult> {
  const pilots = options.pilots ?? Number(process.env.FIRN_BENCH_PILOTS ?? 2000);
  const seconds = options.seconds ?? Number(process.env.FIRN_BENCH_SECONDS ?? 10);
  const rate = options.rate ?? Number(process.env.FIRN_BENCH_RATE ?? 5000);
  const flushMs = options.flushMs ?? Number(process.env.FIRN_BENCH_FLUSH_MS ?? 50);
  const root = (options.mysqlUrl ?? process.env.FIRN_BENCH_MYSQL_URL ?? 'mysql://root@127.0.0.1:3306').replace(/\/+$/, '');
  const dbName = `firn_bench_mon_${process.pid}`;
  const dbUrl = `${root}/${dbName}`;
  const warmupMs = 2000;
  const durationMs = seconds * 1000;

  const load0 = os.loadavg()[0] ?? 0;
  const db = await connect(dbUrl, { poolMax: 10 });
  const echo = await startEchoServer();
  let mon: Awaited<ReturnType<typeof createMonServer>> | null = null;
  try {
    const tasks = await seed(db, pilots);
    const config = loadConfig({ env: {}, overrides: { db: { url: dbUrl }, mon: { host: '127.0.0.1', port: 0, flush_ms: flushMs, web: false } } });
    mon = await createMonServer({ db, config, maxConcurrentFlushes: Number(process.env.FIRN_BENCH_CONCURRENT_FLUSHES ?? 2), logger: createLogger({ level: 'warn', format: 'text', scope: { daemon: 'mon' } }) });
    const monUrl = await mon.listen();

    const echoClosed = await runGenerator({ url: echo.url, tasks, mode: 'closed', warmupMs, durationMs });
    const monClosed = await runGenerator({ url: monUrl, tasks, mode: 'closed', warmupMs, durationMs });
    const before = flushStats(await mon.registry.metrics());
    const monOpen = await runGenerator({ url: monUrl, tasks, mode: 'open', warmupMs, durationMs, rate });
    const after = flushStats(await mon.registry.metrics());

    const result: MonBenchResult = {
      name: 'mon',
      date: new Date().toISOString(),
      pilots,
      flush_ms: flushMs,
      cpus: os.cpus().length,
      loadavg: [round(load0), round(os.loadavg()[0] ?? 0)],
      echo_closed: { target: 'echo', mode: 'closed', ...echoClosed },
      mon_closed: { target: 'mon', mode: 'closed', ...monClosed },
      mon_open: { target: 'mon', mode: 'open', ...monOpen },
      ratio_to_echo: round(monClosed.updates_per_s / Math.max(1, echoClosed.updates_per_s)),
      mean_flush_size: round((after.sum - before.sum) / Math.max(1, after.count - before.count)),
      mean_flush_ms: round(((after.seconds - before.seconds) * 1000) / Math.max(1, after.count - before.count)),
      target: {
        updates_per_s: 5000,
        p99_ms: 100,
        met: Math.max(monClosed.updates_per_s, monOpen.updates_per_s) >= 5000 && monOpen.updates_per_s >= 0.98 * rate && monOpen.p99_ms < 100,
      },
    };
    // every answered heartbeat was written: the last values are in the database
    const written = (await db('task').count({ n: '*' }).whereNotNull('cpu_seconds').andWhere('status', 'PROCESSING')) as Array<{ n: number | string }>;
    if (Number(written[0]?.n ?? 0) !== pilots) throw new Error(`only ${String(written[0]?.n)} of ${pilots} tasks have heartbeats written`);

    if (options.write !== false) {
      const dir = path.join(repoRoot(), 'bench', 'results');
      fs.mkdirSync(dir, { recursive: true });
      fs.writeFileSync(path.join(dir, 'mon.json'), JSON.stringify(result, null, 2) + '\n');
    }
    return result;
  } finally {
    await mon?.close();
    await echo.close();
    await db.raw('DROP DATABASE IF EXISTS ??', [dbName]).catch(() => undefined);
    await db.destroy();
  }
}

if (require.main === module && !process.argv.includes('--load-generator')) {
  run().then(
    (r) => {
      process.stdout.write(JSON.stringify(r, null, 2) + '\n');
      process.stdout.write(
        `firn-mon: ${r.mon_closed.updates_per_s} updates/s max (${r.ratio_to_echo}× the bare echo server's ${r.echo_closed.updates_per_s}/s); ` +
          `at ${r.mon_open.offered_per_s}/s offered: ${r.mon_open.updates_per_s}/s, p50 ${r.mon_open.p50_ms} ms, p99 ${r.mon_open.p99_ms} ms — target ${r.target.met ? 'met' : 'NOT met'}\n`,
      );
    },
    (e: unknown) => {
      process.stderr.write(`bench mon failed: ${(e as Error).stack ?? String(e)}\n`);
      process.exit(1);
    },
  );
}
