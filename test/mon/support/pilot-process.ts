/**
 * The real firn-pilot for mon tests: the bundled packages/pilot/dist/firn-pilot.js run with
 * plain `node` as a child process (its passkey in a 0600 file), and the queue's side of the
 * hand-over — tasks claimed with core's claimTasks (a fresh passkey each, only its sha256
 * stored) and moved QUEUEING → QUEUED as a batch submission would.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { TaskStatus, claimTasks, transition, type ClaimedTask, type Db } from '@firn/core';

export const ROOT = path.resolve(__dirname, '..', '..', '..');
export const PILOT_BUNDLE = path.join(ROOT, 'packages', 'pilot', 'dist', 'firn-pilot.js');

/** The bundle is built by `npm run build` (which `npm test` runs first): say so when it is missing. */
export function assertPilotBundle(): void {
  if (!fs.existsSync(PILOT_BUNDLE)) {
    throw new Error(
      `${path.relative(ROOT, PILOT_BUNDLE)} is missing: these tests run the bundled pilot. ` +
        'Build it with `npm run bundle -w @firn/pilot` (or `npm run build`; `npm test` builds first).',
    );
  }
}

/**
 * Claim every WAITING task of the grid's datasets (up to `limit`) the way firn-queue does, then
 * mark them QUEUED (batch submit succeeded). Returns the claimed tasks (with their passkeys) by job index.
 */
export async function queueTasks(db: Db, grid: { id: number; name: string }, limit: number): Promise<Map<number, ClaimedTask>> {
  const owner = `queue:${grid.name}`;
  const claimed = await claimTasks(db, { gridId: grid.id, gridName: grid.name, limit, capabilities: {}, leaseMs: 10 * 60_000, owner });
  for (const c of claimed) {
    await transition(db, {
      taskIds: [c.id], from: TaskStatus.QUEUEING, to: TaskStatus.QUEUED, by: 'queue', actor: owner, reason: 'submitted', set: { batch_id: `test-${c.id}` },
    });
  }
  return new Map(claimed.map((c) => [c.jobIndex, c]));
}

export interface PilotRun {
  child: ChildProcess;
  pid: number;
  taskId: number;
  /** Resolves when the process has exited. */
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  /** Everything it wrote to stdout and stderr so far. */
  output(): string;
  running(): boolean;
}

export interface SpawnPilotOptions {
  mon: string;
  taskId: number;
  passkey: string;
  /** Where the passkey file and the scratch directory go. */
  dir: string;
  cache?: string;
  env?: Record<string, string>;
}

/** The test's environment without FIRN_* variables (they would configure the pilot). */
function baseEnv(): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) if (!k.startsWith('FIRN_')) env[k] = v;
  return env;
}

/** Start `node firn-pilot.js --mon … --task … --passkey-file …` (heartbeat 1 s, backoff capped at 2 s). */
export function spawnPilot(o: SpawnPilotOptions): PilotRun {
  fs.mkdirSync(o.dir, { recursive: true });
  const passkeyFile = path.join(o.dir, `passkey-${o.taskId}-${crypto.randomBytes(3).toString('hex')}`);
  fs.writeFileSync(passkeyFile, `${o.passkey}\n`, { mode: 0o600 });
  const scratch = path.join(o.dir, `scratch-${o.taskId}`);
  fs.mkdirSync(scratch, { recursive: true });
  const args = [PILOT_BUNDLE, '--mon', o.mon, '--task', String(o.taskId), '--passkey-file', passkeyFile, '--scratch', scratch];
  if (o.cache) args.push('--cache', o.cache);
  const child = spawn(process.execPath, args, {
    cwd: o.dir,
    env: { ...baseEnv(), FIRN_PILOT_HEARTBEAT_SECONDS: '1', FIRN_PILOT_BACKOFF_MAX_SECONDS: '2', ...o.env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const chunks: string[] = [];
  child.stdout?.on('data', (d: Buffer) => chunks.push(d.toString()));
  child.stderr?.on('data', (d: Buffer) => chunks.push(d.toString()));
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => {
    child.once('exit', (code, signal) => resolve({ code, signal }));
  });
  return {
    child,
    pid: child.pid as number,
    taskId: o.taskId,
    exited,
    output: () => chunks.join(''),
    running: () => child.exitCode === null && child.signalCode === null,
  };
}

/** Is a process with this pid alive (a zombie counts as gone)? */
export function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch {
    return false;
  }
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3) !== 'Z';
  } catch {
    return false;
  }
}

/** Wait for the pilot to exit, at most `timeoutMs`; the exit code (null: signalled), with its output for failure messages. */
export async function pilotExit(run: PilotRun, timeoutMs: number): Promise<{ code: number | null; output: string }> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<'timeout'>((resolve) => {
    timer = setTimeout(() => resolve('timeout'), timeoutMs);
  });
  const r = await Promise.race([run.exited, timeout]);
  clearTimeout(timer);
  if (r === 'timeout') throw new Error(`firn-pilot for task ${run.taskId} still running after ${timeoutMs} ms; its output:\n${run.output()}`);
  return { code: r.code, output: run.output() };
}
