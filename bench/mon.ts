/**
 * bench/mon.ts — firn-mon heartbeat throughput and latency on MariaDB, under a true open loop.
 *
 * Three processes: a real firn-mon (bench/workers/mon-server.ts) writing to a fresh MariaDB
 * database of PROCESSING tasks, or a bare node:http JSON-RPC echo server (the HTTP + JSON
 * baseline); the load generator (bench/workers/mon-generator.ts), a fresh process per phase;
 * and this one, which seeds, orchestrates and reads firn-mon's metrics between phases.
 *
 * Phases (after a warm-up of at least one heartbeat period, so every pilot is connected):
 *   1. echo, closed loop   — FIRN_BENCH_CLOSED_PILOTS (2,000) pilots each sending its next heartbeat
 *                            as soon as the last is answered: this machine's HTTP + JSON ceiling;
 *   2. mon, closed loop    — the same against firn-mon: its most updates/s; ratio = mon ÷ echo;
 *   3. mon, open loop      — FIRN_BENCH_RATE (5,000) heartbeats/s offered by 2,000, 8,000 and 32,000
 *                            pilots (FIRN_BENCH_PILOTS_LIST): arrivals on a fixed schedule whatever
 *                            the answers, in flight up to FIRN_BENCH_MAX_IN_FLIGHT (50,000; reported
 *                            when hit), latency from the SCHEDULED send time (no coordinated
 *                            omission): achieved rate, p50/p99/p999. Target: p99 < 100 ms;
 *   4. mon, open loop      — FIRN_BENCH_SLOW_PILOTS (32,000) pilots heartbeating once every
 *                            FIRN_BENCH_SLOW_PERIOD_S (60 s). Target: held (achieved ≥ 98 % of
 *                            offered, nothing unanswered) with p99 < 250 ms;
 *   5. echo, open loop     — phase 3's rate and most pilots against the echo server: the latency
 *                            floor of the generator and the HTTP path at that scale.
 * firn-mon answers after the update is committed (ack-after-flush), so its latency includes
 * waiting for the next flush ([mon] flush_ms, FIRN_BENCH_FLUSH_MS = 50).
 *
 * Left out: pilots on other hosts (loopback, no network latency or loss); TLS; a connection per
 * pilot beyond FIRN_BENCH_MAX_CONNECTIONS (15,000: a process here may hold at most `ulimit -n`
 * = 20,000 descriptors, firn-mon needs one per connection, so more pilots share the
 * connections — fewer sockets than real pilots would hold); the other calls pilots make
 * (pilot.start, log uploads, pilot.finish); other load on the database (it is shared on this
 * machine: see loadavg). The generator runs on the same 2 cores as firn-mon and MariaDB: its
 * CPU is reported per phase (generator_cpu_percent near 100 means it, not firn-mon, was the limit).
 *
 * Run: `npm run bench -- mon`. Environment: FIRN_BENCH_MYSQL_URL (mysql://root@127.0.0.1:3306),
 * FIRN_BENCH_SECONDS (10, the measured window of each phase), FIRN_BENCH_RATE, FIRN_BENCH_PILOTS_LIST
 * (2000,8000,32000), FIRN_BENCH_CLOSED_PILOTS, FIRN_BENCH_SLOW_PILOTS, FIRN_BENCH_SLOW_PERIOD_S,
 * FIRN_BENCH_MAX_CONNECTIONS, FIRN_BENCH_MAX_IN_FLIGHT, FIRN_BENCH_FLUSH_MS,
 * FIRN_BENCH_CONCURRENT_FLUSHES (2). Writes bench/results/mon.json.
 */
import { fork, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { connect, randomSecret, sha256Hex, type Db } from '@firn/core';
import { generatorMain, type GeneratorJob, type GeneratorResult } from './workers/mon-generator';
import { serverMain, type ServerStart } from './workers/mon-server';

export interface PhaseResult extends GeneratorResult {
  target: 'echo' | 'mon';
  mode: 'closed' | 'open';
  /** CPU used by the server process during the phase, % of one core. */
  server_cpu_percent: number;
  /** firn-mon: flush transactions during the phase, mean updates per flush and mean duration. */
  mean_flush_size?: number;
  mean_flush_ms?: number;
}

export interface MonBenchResult {
  name: 'mon';
  date: string;
  flush_ms: number;
  cpus: number;
  /** 1-minute load average before and after the run: other work on the machine skews the numbers. */
  loadavg: [number, number];
  echo_closed: PhaseResult;
  mon_closed: PhaseResult;
  /** firn-mon updates/s ÷ echo server calls/s, both closed loop. */
  ratio_to_echo: number;
  /** phase 3: one per pilot count, all at FIRN_BENCH_RATE offered */
  mon_open: PhaseResult[];
  /** phase 4: many pilots, one heartbeat per period each */
  mon_slow: PhaseResult;
  /** phase 5 */
  echo_open: PhaseResult;
  targets: {
    open_5000: { offered_per_s: number; p99_ms: number; met: boolean };
    slow_32000: { pilots: number; period_s: number; p99_ms: number; met: boolean };
  };
}

const round = (x: number) => Math.round(x * 100) / 100;
const log = (m: string) => process.stderr.write(`[bench mon] ${m}\n`);

/** The repository root (the directory holding lerna.json) above this file. */
function repoRoot(): string {
  for (let dir = __dirname; ; dir = path.dirname(dir)) {
    if (fs.existsSync(path.join(dir, 'lerna.json'))) return dir;
    if (path.dirname(dir) === dir) return process.cwd();
  }
}

// ------------------------------------------------------------------ child processes

type Role = 'generator' | 'server';
const forkRole = (role: Role): ChildProcess => fork(__filename, [], { env: { ...process.env, FIRN_BENCH_MON_ROLE: role }, stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });

/** Send `msg` to `child` and wait for the first answer carrying `key`. */
function ask<T>(child: ChildProcess, msg: object, key: string): Promise<T> {
  return new Promise((resolve, reject) => {
    const onMessage = (m: Record<string, unknown>) => {
      if (m.error) {
        cleanup();
        reject(new Error(String(m.error)));
      } else if (key in m) {
        cleanup();
        resolve(m[key] as T);
      }
    };
    const onExit = (code: number | null) => {
      cleanup();
      reject(new Error(`child exited with ${code} before answering ${key}`));
    };
    const cleanup = () => {
      child.off('message', onMessage);
      child.off('exit', onExit);
    };
    child.on('message', onMessage);
    child.once('exit', onExit);
    child.send(msg);
  });
}

interface Server {
  kind: 'mon' | 'echo';
  url: string;
  child: ChildProcess;
}

async function startServer(start: ServerStart): Promise<Server> {
  const child = forkRole('server');
  const url = await ask<string>(child, { start }, 'url');
  return { kind: start.kind, url, child };
}

async function stopServer(s: Server | null): Promise<void> {
  if (!s || s.child.exitCode !== null) return;
  await ask(s.child, { close: true }, 'closed').catch(() => s.child.kill());
}

function flushStats(metrics: string): { count: number; sum: number; seconds: number } {
  const count = Number(/^firn_mon_flush_size_count (\d+)/m.exec(metrics)?.[1] ?? 0);
  const sum = Number(/^firn_mon_flush_size_sum (\S+)/m.exec(metrics)?.[1] ?? 0);
  const seconds = Number(/^firn_mon_flush_duration_seconds_sum (\S+)/m.exec(metrics)?.[1] ?? 0);
  return { count, sum, seconds };
}

let phaseNo = 0;

/** One phase: a fresh generator process against `server`; the server's CPU and flushes beside. */
async function phase(server: Server, job: Omit<GeneratorJob, 'url' | 'localAddress'>, label: string): Promise<PhaseResult> {
  // a fresh source address per phase: the last phase's closed sockets (TIME_WAIT) never collide
  const localAddress = `127.0.0.${2 + (phaseNo++ % 250)}`;
  const m0 = server.kind === 'mon' ? flushStats(await ask<string>(server.child, { metrics: true }, 'metrics')) : null;
  const cpu0 = await ask<number>(server.child, { cpu: true }, 'cpu');
  const t0 = performance.now();
  const gen = forkRole('generator');
  const result = await new Promise<GeneratorResult>((resolve, reject) => {
    gen.once('message', (m: { ok: boolean; result?: GeneratorResult; error?: string }) => (m.ok && m.result ? resolve(m.result) : reject(new Error(`load generator failed: ${m.error}`))));
    gen.once('exit', (code) => code !== 0 && reject(new Error(`load generator exited with ${code}`)));
    gen.send({ ...job, url: server.url, localAddress } satisfies GeneratorJob);
  });
  const cpu1 = await ask<number>(server.child, { cpu: true }, 'cpu');
  const ms = performance.now() - t0;
  const out: PhaseResult = { target: server.kind, mode: job.mode, ...result, server_cpu_percent: Math.round(((cpu1 - cpu0) / ms) * 100) };
  if (m0) {
    const m1 = flushStats(await ask<string>(server.child, { metrics: true }, 'metrics'));
    const flushes = Math.max(1, m1.count - m0.count);
    out.mean_flush_size = round((m1.sum - m0.sum) / flushes);
    out.mean_flush_ms = round(((m1.seconds - m0.seconds) * 1000) / flushes);
  }
  log(
    `${label}: ${out.pilots} pilots / ${out.connections} connections${out.offered_per_s ? `, ${out.offered_per_s}/s offered` : ''} → ${out.achieved_per_s}/s, ` +
      `p50 ${out.p50_ms} p99 ${out.p99_ms} p999 ${out.p999_ms} ms, errors ${out.errors_per_s}/s, unanswered ${out.unanswered}` +
      `${out.cap_hit ? `, IN-FLIGHT CAP HIT (${out.skipped_at_cap} not sent)` : ''}; CPU server ${out.server_cpu_percent}% generator ${out.generator_cpu_percent}%`,
  );
  return out;
}

// ------------------------------------------------------------------ seeding

async function seed(db: Db, pilots: number): Promise<Array<{ id: number; passkey: string }>> {
  const t = Date.now();
  const [datasetId] = await db('dataset').insert({ description: 'bench', status: 'PROCESSING', tasks_per_job: 1, jobs_submitted: pilots, config: '{}', config_hash: sha256Hex('{}'), created_at: t, updated_at: t });
  const [taskRelId] = await db('task_rel').insert({ dataset_id: datasetId, task_index: 0, name: 'main', requirements: '{}' });
  const jobs = Array.from({ length: pilots }, (_, j) => ({ dataset_id: datasetId, job_index: j, status: 'PROCESSING', status_changed_at: t }));
  for (let i = 0; i < jobs.length; i += 1000) await db('job').insert(jobs.slice(i, i + 1000));
  const jobRows = (await db('job').select('id', 'job_index').where({ dataset_id: datasetId }).orderBy('job_index')) as Array<{ id: number }>;
  const passkeys = jobRows.map(() => randomSecret());
  const tasks = jobRows.map((j, i) => ({
    dataset_id: datasetId, job_id: j.id, task_rel_id: taskRelId, task_index: 0, name: 'main', status: 'PROCESSING',
    status_changed_at: t, passkey_hash: sha256Hex(passkeys[i]!), host: `wn${i % 100}`, started_at: t,
  }));
  for (let i = 0; i < tasks.length; i += 1000) await db('task').insert(tasks.slice(i, i + 1000));
  const taskRows = (await db('task').select('id', 'job_id').where({ dataset_id: datasetId })) as Array<{ id: number; job_id: number }>;
  const byJob = new Map(taskRows.map((r) => [Number(r.job_id), Number(r.id)]));
  return jobRows.map((j, i) => ({ id: byJob.get(Number(j.id))!, passkey: passkeys[i]! }));
}

// ------------------------------------------------------------------ the benchmark

export async function run(options: { write?: boolean } = {}): Promise<MonBenchResult> {
  const env = process.env;
  const seconds = Number(env.FIRN_BENCH_SECONDS ?? 10);
  const rate = Number(env.FIRN_BENCH_RATE ?? 5000);
  const pilotsList = (env.FIRN_BENCH_PILOTS_LIST ?? '2000,8000,32000').split(',').map(Number);
  const closedPilots = Number(env.FIRN_BENCH_CLOSED_PILOTS ?? 2000);
  const slowPilots = Number(env.FIRN_BENCH_SLOW_PILOTS ?? 32_000);
  const slowPeriodS = Number(env.FIRN_BENCH_SLOW_PERIOD_S ?? 60);
  const maxConnections = Number(env.FIRN_BENCH_MAX_CONNECTIONS ?? 15_000);
  const maxInFlight = Number(env.FIRN_BENCH_MAX_IN_FLIGHT ?? 50_000);
  const flushMs = Number(env.FIRN_BENCH_FLUSH_MS ?? 50);
  const root = (env.FIRN_BENCH_MYSQL_URL ?? 'mysql://root@127.0.0.1:3306').replace(/\/+$/, '');
  const dbName = `firn_bench_mon_${process.pid}`;
  const dbUrl = `${root}/${dbName}`;
  const durationMs = seconds * 1000;
  const maxPilots = Math.max(closedPilots, slowPilots, ...pilotsList);

  const load0 = os.loadavg()[0] ?? 0;
  const db = await connect(dbUrl, { poolMax: 4 });
  let mon: Server | null = null;
  let echo: Server | null = null;
  try {
    const all = await seed(db, maxPilots);
    const conns = (pilots: number) => Math.min(pilots, maxConnections);
    echo = await startServer({ kind: 'echo', maxConnections: maxConnections + 100 });
    mon = await startServer({ kind: 'mon', dbUrl, flushMs, concurrentFlushes: Number(env.FIRN_BENCH_CONCURRENT_FLUSHES ?? 2), maxConnections: maxConnections + 100 });
    const closed = (pilots: number) => ({ tasks: all.slice(0, pilots), mode: 'closed' as const, connections: conns(pilots), warmupMs: 2000, durationMs });
    const open = (pilots: number, r: number) => ({
      tasks: all.slice(0, pilots), mode: 'open' as const, connections: conns(pilots), rate: r, maxInFlight,
      warmupMs: Math.max(2000, (pilots / r) * 1000), durationMs, drainMs: 10_000,
    });

    const echoClosed = await phase(echo, closed(closedPilots), 'echo closed');
    const monClosed = await phase(mon, closed(closedPilots), 'mon closed');
    const monOpen: PhaseResult[] = [];
    for (const p of pilotsList) monOpen.push(await phase(mon, open(p, rate), `mon open ${p}`));
    const slowJob = open(slowPilots, slowPilots / slowPeriodS);
    const monSlow = await phase(mon, { ...slowJob, durationMs: Math.max(durationMs, slowPeriodS * 1000) }, `mon ${slowPilots} pilots every ${slowPeriodS} s`);
    const echoOpen = await phase(echo, open(Math.max(...pilotsList), rate), 'echo open');

    // every heartbeat was written: each pilot's last values are in the database
    const written = (await db('task').count({ n: '*' }).whereNotNull('cpu_seconds').andWhere('status', 'PROCESSING')) as Array<{ n: number | string }>;
    if (Number(written[0]?.n ?? 0) !== maxPilots) throw new Error(`only ${String(written[0]?.n)} of ${maxPilots} tasks have heartbeats written`);

    const held = (p: PhaseResult, p99: number) =>
      p.achieved_per_s >= 0.98 * (p.offered_per_s ?? 0) && p.unanswered === 0 && p.errors_per_s === 0 && !p.cap_hit && p.p99_ms < p99;
    const result: MonBenchResult = {
      name: 'mon',
      date: new Date().toISOString(),
      flush_ms: flushMs,
      cpus: os.cpus().length,
      loadavg: [round(load0), round(os.loadavg()[0] ?? 0)],
      echo_closed: echoClosed,
      mon_closed: monClosed,
      ratio_to_echo: round(monClosed.achieved_per_s / Math.max(1, echoClosed.achieved_per_s)),
      mon_open: monOpen,
      mon_slow: monSlow,
      echo_open: echoOpen,
      targets: {
        open_5000: { offered_per_s: rate, p99_ms: 100, met: rate >= 5000 && monOpen.every((p) => held(p, 100)) },
        slow_32000: { pilots: slowPilots, period_s: slowPeriodS, p99_ms: 250, met: slowPilots >= 32_000 && slowPeriodS <= 60 && held(monSlow, 250) },
      },
    };
    if (options.write !== false) {
      const dir = path.join(repoRoot(), 'bench', 'results');
      fs.mkdirSync(dir, { recursive: true });
      fs.writeFileSync(path.join(dir, 'mon.json'), JSON.stringify(result, null, 2) + '\n');
    }
    return result;
  } finally {
    await stopServer(mon);
    await stopServer(echo);
    await db.raw('DROP DATABASE IF EXISTS ??', [dbName]).catch(() => undefined);
    await db.destroy();
  }
}

const role = process.env.FIRN_BENCH_MON_ROLE;
if (role === 'generator') generatorMain();
else if (role === 'server') serverMain();
else if (require.main === module) {
  run().then(
    (r) => {
      process.stdout.write(JSON.stringify(r, null, 2) + '\n');
      const open = r.mon_open.map((p) => `${p.pilots} pilots: ${p.achieved_per_s}/s, p99 ${p.p99_ms} ms, p999 ${p.p999_ms} ms`).join('; ');
      process.stdout.write(
        `firn-mon: ${r.mon_closed.achieved_per_s} updates/s max (${r.ratio_to_echo}× the echo server's ${r.echo_closed.achieved_per_s}/s); ` +
          `${r.targets.open_5000.offered_per_s}/s offered — ${open} — target p99 < 100 ms ${r.targets.open_5000.met ? 'met' : 'NOT met'}; ` +
          `${r.mon_slow.pilots} pilots every ${r.targets.slow_32000.period_s} s: ${r.mon_slow.achieved_per_s}/s, p99 ${r.mon_slow.p99_ms} ms — target p99 < 250 ms ${r.targets.slow_32000.met ? 'met' : 'NOT met'}\n`,
      );
    },
    (e: unknown) => {
      process.stderr.write(`bench mon failed: ${(e as Error).stack ?? String(e)}\n`);
      process.exit(1);
    },
  );
}
