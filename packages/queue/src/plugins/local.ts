/**
 * Local plugin: runs pilots as detached child processes of this host (the embedded default
 * of `firn up`). It does not use the Executor: processes and their files are local.
 *
 * - Every task becomes a job `local-<taskId>-<8 hex>` (stable, unique even if a task is
 *   resubmitted). Its record is `<submitDir>/.firn-local/<id>.json` (task, script, dirs).
 * - At most `options.concurrency` jobs run at once (default: the number of CPUs); the others
 *   wait as QUEUED and are started by the next submit / checkJobStatus / listJobs call, or
 *   when a running child exits.
 * - A started job has a pid file `<batch.dir>/<id>.pid` holding the pid and its start time
 *   (from /proc, so a reused pid is not mistaken for our job). The process is the leader of
 *   its own process group (detached), so remove() signals the whole pilot tree, and it
 *   outlives a daemon restart: a new LocalPlugin on the same submitDir sees and can kill it.
 * - Status: pid alive → RUNNING; else `<taskDir>/exit_code` (written by the script) → 0
 *   COMPLETED / other FAILED; removed by us → CANCELLED; otherwise UNKNOWN.
 * - The files are the record a restarted daemon reads; while it runs, the plugin keeps the
 *   same facts in memory (jobs it submitted, started, saw end or cancelled), so a status
 *   check or a pump costs no file system calls for those jobs. Only jobs found on disk
 *   (an earlier daemon's) are judged from their files; the registry directory is rescanned
 *   every RESCAN_MS.
 * - Children get a minimal environment (PATH, HOME, USER, LANG, …) plus the configured
 *   [environment] exported by the script: the daemon's own variables (which may hold
 *   secrets) are not inherited.
 * Requirements (cpu, memory, time) are not enforced locally.
 * - Long-lived pilots (`pilotReuse` > 1 and the pilot is Firn's `firn-pilot`): instead of
 *   `/bin/sh submit.sh` per task, a task is handed to an idle `firn-pilot --worker` of a
 *   PilotPool (local-pool.ts), which runs it exactly as the script would run the pilot and
 *   writes the same stdout, stderr and exit_code files. Its pid file then names the worker
 *   (third field `worker`), so a job is over once its exit_code exists even though the worker
 *   lives on; remove() asks the worker to stop the task, and signals the worker's group only
 *   when the task is not ours (an earlier daemon's worker, which runs nothing else) or does
 *   not stop within the grace period. A task with its own command (firn run) always runs
 *   through the script.
 * - Black holes: every job runs on this host, so `workerHost` is `os.hostname()` (what the
 *   pilot reports) and the daemon claims nothing while it is black-holed;
 *   `SubmitBatch.excludeHosts` has nothing to choose from and is ignored.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import fsSync, { readFileSync } from 'node:fs';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { ConfigError, ValidationError, type Executor } from '@firn/core';
import { cleanQueue } from './batch-command';
import { PilotPool } from './local-pool';
import {
  BatchState,
  jobNameFor,
  type BatchJobStatus,
  type BatchPlugin,
  type ListedJob,
  type PluginOptions,
  type SubmitBatch,
  type SubmitResult,
} from './plugin';
import { checkTasks, renderPilotScript, renderTaskMap, resolveOptions, type ResolvedOptions } from './submit-script';

interface LocalJob {
  id: string;
  taskId: number;
  script: string;
  batchDir: string;
  taskDir: string;
  submittedAt: number;
  seq: number;
  /** Why the job could not be started (script or directory gone, spawn failed): it is FAILED. */
  startError?: string;
  /** The task's passkey file, when it may run in a pilot worker (no command of its own). */
  passkeyFile?: string;
}

/**
 * A job's pid file: the process that runs it; `worker` when that is a pilot worker; `starting`
 * while the daemon that created the file exclusively (its own pid then) is starting the job.
 */
interface PidRecord {
  pid: number;
  start: string;
  worker: boolean;
  starting?: boolean;
}

/** A job this process started: its pid record, whether it ended, and (pilot workers) its exit code. */
interface StartedJob extends PidRecord {
  ended: boolean;
  code?: number;
}

const JOB_ID = /^local-\d+-[0-9a-f]+$/;
/** `local-<taskId>-<8 hex registry tag><8 hex random>`: the tag says which submit directory's job it is. */
const TAGGED_JOB_ID = /^local-\d+-([0-9a-f]{8})[0-9a-f]{8}$/;

/** Is the configured pilot Firn's own (the bundle or the single executable), which knows --worker? */
export function isFirnPilot(words: readonly string[]): boolean {
  return words.some((w) => /(^|\/)firn-pilot(\.c?js)?$/.test(w));
}

const ENV_PASSED = ['PATH', 'HOME', 'USER', 'LOGNAME', 'LANG', 'LC_ALL', 'TZ', 'TMPDIR', 'SHELL'];
/** Records of finished jobs are kept this long for checkJobStatus, then pruned. */
const RETAIN_MS = 7 * 24 * 3600 * 1000;
/** How often the registry directory is read again (records written by someone else, pruning). */
const RESCAN_MS = 60_000;
/** A submitted job waits at most this long for submitted() before it may start anyway. */
const HELD_MAX_MS = 60_000;
/** SIGTERM first; SIGKILL this much later if the process group is still there. */
const KILL_GRACE_MS = 10_000;

// The local plugin's own small files (records, pid files, scripts) are read and written with
// synchronous calls: each asynchronous one is a hand-off to libuv's thread pool and back, which
// costs more CPU than the call itself (measured: most of firn-queue's CPU per local task).
async function readText(file: string): Promise<string | null> {
  try {
    return readFileSync(file, 'utf8');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw e;
  }
}

/** Linux process start time (clock ticks since boot, /proc/<pid>/stat field 22) and state; null elsewhere or when gone. */
function procStat(pid: number): { start: string; state: string } | null {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const rest = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return { state: rest[0] ?? '', start: rest[19] ?? '' };
  } catch {
    return null;
  }
}

function isAlive(pid: number, start: string): boolean {
  if (!Number.isInteger(pid) || pid <= 0) return false;
  try {
    process.kill(pid, 0);
  } catch {
    return false; // ESRCH: gone; EPERM: someone else's process now
  }
  const stat = procStat(pid);
  if (stat === null) return process.platform !== 'linux';
  if (stat.state === 'Z' || stat.state === 'X') return false;
  return start === '' || start === '-' || stat.start === start;
}

function killGroup(pid: number, signal: NodeJS.Signals): void {
  try {
    process.kill(-pid, signal);
  } catch {
    try {
      process.kill(pid, signal);
    } catch {
      /* already gone */
    }
  }
}

export class LocalPlugin implements BatchPlugin {
  readonly name = 'local';
  /** Every pilot runs here and reports this name (firn-pilot sends `os.hostname()`). */
  readonly workerHost = os.hostname();
  private readonly options: ResolvedOptions;
  private readonly registry: string;
  /** 8 hex digits of sha256(host:registry), in every job id this registry issues. */
  private readonly tag: string;
  private readonly concurrency: number;
  private queueChain: Promise<void> = Promise.resolve();
  private readonly children = new Map<string, ChildProcess>();
  /** Every job on record, in submission order. */
  private readonly records = new Map<string, LocalJob>();
  /** Jobs submitted by this process: no file of theirs exists that we did not write. */
  private readonly fresh = new Set<string>();
  /** Jobs this process started, and what it knows of their end. */
  private readonly started = new Map<string, StartedJob>();
  /** Jobs this process removed (the `.cancelled` file is written too). */
  private readonly cancelled = new Set<string>();
  /**
   * Final states (exited, failed to start, cancelled, vanished): such a job never runs again,
   * so pump(), listJobs() and status checks answer from here without touching its files.
   */
  private readonly finished = new Map<string, BatchJobStatus>();
  /**
   * Ids of the records not finished yet, in record order: what a pump looks at. Records are
   * kept for days, and a pump runs whenever a task ends — walking every record each time made
   * a pump O(records) and a production O(tasks²).
   */
  private readonly open = new Set<string>();
  private scannedAt = -Infinity;
  private seq = 0;
  private closed = false;
  /**
   * Jobs submitted but not yet confirmed by submitted() (startAfterSubmitted): not started
   * before, nor after HELD_MAX_MS (the daemon failed to record them; its recovery decides).
   */
  private readonly held = new Map<string, number>();
  /** Long-lived pilots, or null: a pilot process per task. */
  private readonly pool: PilotPool | null;

  /** The executor is not used: the local plugin runs processes and files on this host. */
  constructor(_executor: Executor | null, options: PluginOptions) {
    this.options = resolveOptions(options, 'local');
    if (!options.submitDir || !path.isAbsolute(options.submitDir)) {
      throw new ConfigError(`local plugin: submitDir must be an absolute directory ([queue] submit_dir), got ${JSON.stringify(options.submitDir)}`);
    }
    this.registry = path.join(options.submitDir, '.firn-local');
    this.tag = createHash('sha256').update(`${os.hostname()}:${this.registry}`).digest('hex').slice(0, 8);
    this.concurrency = options.concurrency ?? Math.max(1, os.availableParallelism?.() ?? os.cpus().length);
    const reuse = options.pilotReuse ?? 1;
    if (!Number.isInteger(reuse) || reuse < 1) throw new ConfigError(`local plugin: pilotReuse must be a positive integer, got ${reuse}`);
    const idle = options.pilotIdleSeconds ?? 30;
    if (!(idle > 0)) throw new ConfigError(`local plugin: pilotIdleSeconds must be a positive number, got ${idle}`);
    this.pool =
      reuse > 1 && isFirnPilot(this.options.pilotWords)
        ? new PilotPool({
            words: this.options.pilotWords,
            env: this.childEnv(),
            cwd: options.submitDir,
            logFile: path.join(this.registry, 'pilot-workers.log'),
            size: this.concurrency,
            reuse,
            idleMs: idle * 1000,
            onDone: (jobId, code) => this.ended(jobId, code),
            onExit: (jobId) => (jobId ? this.ended(jobId, null) : undefined),
            ...(options.onWarning ? { onWarning: options.onWarning } : {}),
          })
        : null;
  }

  /** Pilot workers alive (tests, diagnostics); 0 without a pool. */
  get workerCount(): number {
    return this.pool?.count ?? 0;
  }

  /** Why pilot workers are off although configured, or null. */
  get workerProblem(): string | null {
    return this.pool?.disabled ?? null;
  }

  /** What every pilot gets: a minimal environment plus [environment] (the script exports the latter itself). */
  private childEnv(withConfigured = true): Record<string, string> {
    const env: Record<string, string> = {};
    for (const k of ENV_PASSED) {
      const v = process.env[k];
      if (v !== undefined) env[k] = v;
    }
    if (withConfigured) {
      env.PATH ??= '/usr/local/bin:/usr/bin:/bin';
      Object.assign(env, this.options.environment);
    }
    return env;
  }

  /** A job of ours ended: `code` from a pilot worker, null when its process exited (read exit_code then). */
  private ended(jobId: string, code: number | null): void {
    const s = this.started.get(jobId);
    if (s && !s.ended) {
      s.ended = true;
      if (code !== null) s.code = code;
    }
    if (!this.closed) void this.pump().catch(() => undefined);
  }

  async writeConfig(batch: SubmitBatch): Promise<string> {
    checkTasks(batch.tasks);
    if (!path.isAbsolute(batch.dir)) throw new ValidationError(`batch directory must be absolute, got ${JSON.stringify(batch.dir)}`);
    const script = renderPilotScript({
      options: this.options,
      tasks: batch.tasks,
      directives: [],
      comments: ['Run by the local plugin as: /bin/sh submit.sh TASK_ID'],
      selector: { kind: 'argument' },
      taskFiles: true,
    });
    fsSync.mkdirSync(batch.dir, { recursive: true, mode: 0o700 });
    for (const t of batch.tasks) fsSync.mkdirSync(t.taskDir, { recursive: true, mode: 0o700 });
    const scriptPath = path.join(batch.dir, 'submit.sh');
    fsSync.writeFileSync(scriptPath, script, { mode: 0o700 });
    fsSync.chmodSync(scriptPath, 0o700);
    const rows = batch.tasks.map((t) => ({ taskId: t.taskId, batchName: 'local', index: null, taskDir: t.taskDir }));
    fsSync.writeFileSync(path.join(batch.dir, 'tasks.txt'), renderTaskMap(rows), { mode: 0o600 });
    return scriptPath;
  }

  async submit(batch: SubmitBatch, scriptPath: string): Promise<SubmitResult> {
    checkTasks(batch.tasks);
    fsSync.mkdirSync(this.registry, { recursive: true, mode: 0o700 });
    const batchIds = new Map<number, string>();
    for (const t of batch.tasks) {
      const job: LocalJob = {
        id: `local-${t.taskId}-${this.tag}${randomBytes(4).toString('hex')}`,
        taskId: t.taskId,
        script: scriptPath,
        batchDir: batch.dir,
        taskDir: t.taskDir,
        submittedAt: Date.now(),
        seq: this.seq++,
        ...(t.command === undefined ? { passkeyFile: t.passkeyFile } : {}),
      };
      fsSync.writeFileSync(this.recordPath(job.id), JSON.stringify(job) + '\n', { mode: 0o600 });
      this.remember(job);
      this.fresh.add(job.id);
      batchIds.set(t.taskId, job.id);
      if (this.options.startAfterSubmitted) this.held.set(job.id, Date.now());
    }
    if (!this.options.startAfterSubmitted) await this.pump();
    return { batchIds };
  }

  async submitted(): Promise<void> {
    this.held.clear();
    await this.pump();
  }

  async checkJobStatus(batchIds: string[]): Promise<Map<string, BatchJobStatus>> {
    await this.pump();
    const out = new Map<string, BatchJobStatus>();
    for (const id of new Set(batchIds)) {
      const job = await this.find(id);
      if (job) out.set(id, await this.stateOf(job));
      else if (this.foreign(id)) {
        // another submit directory's (another submit host's) job: only its own daemon can judge it
        out.set(id, { batchId: id, state: BatchState.UNOBSERVED, rawState: 'elsewhere', reason: 'a job of another submit directory' });
      } else out.set(id, { batchId: id, state: BatchState.UNKNOWN, rawState: 'unknown', reason: 'no record in this submit directory' });
    }
    return out;
  }

  async remove(batchIds: string[]): Promise<void> {
    for (const id of new Set(batchIds)) {
      const job = await this.find(id);
      if (!job || this.finished.has(id)) continue;
      await fs.writeFile(this.cancelPath(job), `${new Date().toISOString()}\n`);
      this.cancelled.add(id);
      const pid = await this.pidOf(job);
      if (pid?.worker) {
        if (this.started.get(id)?.ended || (await readText(path.join(job.taskDir, 'exit_code'))) !== null) continue; // over: the worker runs something else now
        if (this.pool?.cancel(job.id)) {
          const pool = this.pool;
          const timer = setTimeout(() => {
            if (pool.runs(job.id)) pool.kill(job.id);
          }, KILL_GRACE_MS);
          timer.unref();
          continue;
        }
        // an earlier daemon's worker: it runs this task and nothing after it, so it may be signalled
      }
      if (pid && isAlive(pid.pid, pid.start)) {
        killGroup(pid.pid, 'SIGTERM');
        const timer = setTimeout(() => {
          if (isAlive(pid.pid, pid.start)) killGroup(pid.pid, 'SIGKILL');
        }, KILL_GRACE_MS);
        timer.unref();
      }
    }
    await this.pump();
  }

  async listJobs(): Promise<ListedJob[]> {
    await this.pump();
    const out: ListedJob[] = [];
    for (const job of await this.openJobs()) {
      const s = await this.stateOf(job);
      if (s.state === BatchState.QUEUED || s.state === BatchState.RUNNING) out.push({ batchId: job.id, name: jobNameFor(job.taskId), state: s.state });
    }
    return out;
  }

  cleanQ(keep: (job: ListedJob, taskId: number) => boolean): Promise<ListedJob[]> {
    return cleanQueue(this, keep);
  }

  /**
   * Stop reacting to child exits. Running pilots are left alone: they outlive the daemon by
   * design (idle pilot workers exit now, busy ones after their task).
   */
  async close(): Promise<void> {
    this.closed = true;
    this.pool?.close();
    for (const child of this.children.values()) child.removeAllListeners('exit');
    this.children.clear();
    await this.queueChain;
  }

  /** A tagged job id of another registry (ids without a tag, from before tags, are ours). */
  private foreign(id: string): boolean {
    const m = TAGGED_JOB_ID.exec(id);
    return m !== null && m[1] !== this.tag;
  }

  private recordPath(id: string): string {
    if (!JOB_ID.test(id)) throw new ValidationError(`not a local job id: ${JSON.stringify(id)}`);
    return path.join(this.registry, `${id}.json`);
  }
  private pidPath(job: LocalJob): string {
    return path.join(job.batchDir, `${job.id}.pid`);
  }
  private cancelPath(job: LocalJob): string {
    return path.join(job.batchDir, `${job.id}.cancelled`);
  }

  private async readRecord(id: string): Promise<LocalJob | null> {
    if (!JOB_ID.test(id)) return null;
    const text = await readText(this.recordPath(id));
    if (text === null) return null;
    try {
      return JSON.parse(text) as LocalJob;
    } catch {
      return null;
    }
  }

  /** A job by id: from memory, else from its record file (written by an earlier daemon). */
  private async find(id: string): Promise<LocalJob | null> {
    const known = this.records.get(id);
    if (known) return known;
    const job = await this.readRecord(id);
    if (job) this.remember(job);
    return job;
  }

  /** Every job on record; the directory is read again every RESCAN_MS (and old finished records pruned). */
  private async jobs(): Promise<LocalJob[]> {
    await this.rescanIfDue();
    return [...this.records.values()];
  }

  /** Read the registry directory again once RESCAN_MS have passed (and prune old finished records). */
  private async rescanIfDue(): Promise<void> {
    const now = Date.now();
    if (now - this.scannedAt >= RESCAN_MS) {
      this.scannedAt = now;
      let names: string[] = [];
      try {
        names = await fs.readdir(this.registry);
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
      }
      const onDisk = new Set<string>();
      for (const n of names) {
        if (!n.endsWith('.json')) continue;
        const id = n.slice(0, -'.json'.length);
        onDisk.add(id);
        if (!this.records.has(id)) {
          const job = await this.readRecord(id);
          if (job) this.remember(job);
        }
      }
      for (const [id, job] of this.records) {
        if (!onDisk.has(id)) this.forget(id);
        else if (this.finished.has(id) && now - job.submittedAt > RETAIN_MS) {
          await fs.rm(this.recordPath(id), { force: true });
          await fs.rm(this.pidPath(job), { force: true });
          await fs.rm(this.cancelPath(job), { force: true });
          this.forget(id);
        }
      }
      const ordered = [...this.records.values()].sort((a, b) => a.submittedAt - b.submittedAt || a.seq - b.seq);
      this.records.clear();
      this.open.clear();
      for (const j of ordered) this.remember(j);
    }
  }

  /** Keep a record in memory (and among the open ones unless it is known to be finished). */
  private remember(job: LocalJob): void {
    this.records.set(job.id, job);
    if (!this.finished.has(job.id)) this.open.add(job.id);
  }

  /** The records not finished yet, in record order (the registry is rescanned when due). */
  private async openJobs(): Promise<LocalJob[]> {
    await this.rescanIfDue();
    const out: LocalJob[] = [];
    for (const id of this.open) {
      const job = this.records.get(id);
      if (job && !this.finished.has(id)) out.push(job);
      else this.open.delete(id);
    }
    return out;
  }

  private forget(id: string): void {
    this.records.delete(id);
    this.open.delete(id);
    this.fresh.delete(id);
    this.started.delete(id);
    this.cancelled.delete(id);
    this.finished.delete(id);
    this.held.delete(id);
  }

  private async pidOf(job: LocalJob): Promise<PidRecord | null> {
    const mine = this.started.get(job.id);
    if (mine) return mine;
    if (this.fresh.has(job.id)) return null; // submitted here and not started: no pid file
    const text = await readText(this.pidPath(job));
    if (text === null) return null;
    const [pid = '', start = '', kind = ''] = text.trim().split(/\s+/);
    return { pid: Number(pid), start, worker: kind === 'worker', ...(kind === 'starting' ? { starting: true } : {}) };
  }

  private async exitCodeOf(job: LocalJob): Promise<number> {
    const s = this.started.get(job.id);
    if (s?.code !== undefined) return s.code;
    const text = await readText(path.join(job.taskDir, 'exit_code'));
    return text === null ? NaN : Number.parseInt(text.trim(), 10);
  }

  private async stateOf(job: LocalJob): Promise<BatchJobStatus> {
    const final = this.finished.get(job.id);
    if (final) return final;
    const s = await this.judge(job);
    if (s.state !== BatchState.QUEUED && s.state !== BatchState.RUNNING && s.rawState !== 'cancelling') {
      this.finished.set(job.id, s);
      this.open.delete(job.id);
    }
    return s;
  }

  private async judge(job: LocalJob): Promise<BatchJobStatus> {
    const base = { batchId: job.id, name: jobNameFor(job.taskId) };
    if (job.startError) return { ...base, state: BatchState.FAILED, rawState: 'not started', reason: job.startError };
    const cancelled = this.cancelled.has(job.id) || (!this.fresh.has(job.id) && (await readText(this.cancelPath(job))) !== null);
    const pid = await this.pidOf(job);
    if (!pid) {
      return cancelled ? { ...base, state: BatchState.CANCELLED, rawState: 'cancelled', reason: 'removed before it started' } : { ...base, state: BatchState.QUEUED, rawState: 'waiting' };
    }
    if (pid.starting) {
      // another daemon created the pid file and is starting the job; if it died doing so, the
      // job may or may not have started: vanished (the task is evicted and retried, never run twice)
      if (isAlive(pid.pid, pid.start)) return { ...base, state: BatchState.QUEUED, rawState: 'starting' };
      return cancelled
        ? { ...base, state: BatchState.CANCELLED, rawState: 'cancelled', reason: 'removed' }
        : { ...base, state: BatchState.UNKNOWN, rawState: 'vanished', reason: 'the daemon starting it died' };
    }
    const mine = this.started.get(job.id);
    let alive: boolean;
    if (mine) alive = !mine.ended;
    else {
      // a worker lives on after the task: the task is over once its exit_code exists
      const workerDone = pid.worker && (await readText(path.join(job.taskDir, 'exit_code'))) !== null;
      alive = !workerDone && isAlive(pid.pid, pid.start);
    }
    if (cancelled) return { ...base, state: BatchState.CANCELLED, rawState: alive ? 'cancelling' : 'cancelled', reason: 'removed' };
    if (alive) return { ...base, state: BatchState.RUNNING, rawState: 'running' };
    const code = await this.exitCodeOf(job);
    if (Number.isNaN(code)) return { ...base, state: BatchState.UNKNOWN, rawState: 'vanished', reason: 'process gone without an exit code' };
    if (code === 0) return { ...base, state: BatchState.COMPLETED, rawState: 'exited', exitCode: 0 };
    return { ...base, state: BatchState.FAILED, rawState: 'exited', exitCode: code, reason: `exit code ${code}` };
  }

  /** Start waiting jobs while fewer than `concurrency` run. Serialised. */
  private pump(): Promise<void> {
    if (this.closed) return this.queueChain;
    const next = this.queueChain.then(() => this.pumpOnce());
    this.queueChain = next.catch(() => undefined);
    return next;
  }

  private async pumpOnce(): Promise<void> {
    const waiting: LocalJob[] = [];
    let running = 0;
    const now = Date.now();
    for (const job of await this.jobs()) {
      if (this.finished.has(job.id)) continue;
      const s = await this.stateOf(job);
      if (s.state === BatchState.RUNNING || s.rawState === 'cancelling') running++;
      else if (s.state === BatchState.QUEUED) waiting.push(job);
    }
    for (const job of waiting) {
      if (running >= this.concurrency || this.closed) break;
      const heldSince = this.held.get(job.id);
      if (heldSince !== undefined) {
        if (now - heldSince < HELD_MAX_MS) continue;
        this.held.delete(job.id);
      }
      try {
        const got = await this.start(job);
        if (got === 'busy') break;
        running++; // started here, or (taken) by another process that created its pid file first
      } catch (e) {
        const why = `could not start: ${e instanceof Error ? e.message : String(e)}`;
        const failed = { ...job, startError: why };
        await fs.writeFile(this.recordPath(job.id), JSON.stringify(failed) + '\n', { mode: 0o600 });
        this.remember(failed);
      }
    }
  }

  /**
   * Create the job's pid file exclusively (O_EXCL) before anything starts it: of two daemons or
   * pumps reaching the same job, only the one that created the file starts it. It first names
   * this process (`<pid> <start> starting`); the job's process replaces that once it runs.
   */
  private claimPidFile(job: LocalJob): boolean {
    let fd: number;
    try {
      fd = fsSync.openSync(this.pidPath(job), 'wx', 0o600);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'EEXIST') return false;
      throw e;
    }
    try {
      fsSync.writeSync(fd, `${process.pid} ${procStat(process.pid)?.start || '-'} starting\n`);
    } finally {
      fsSync.closeSync(fd);
    }
    return true;
  }

  /**
   * Start a job: 'busy' when every pilot worker is busy (it stays queued until one is done),
   * 'taken' when another process created its pid file first (it is not started here).
   */
  private async start(job: LocalJob): Promise<'started' | 'busy' | 'taken'> {
    fsSync.accessSync(job.script); // throws ENOENT with the path when the batch dir was cleaned up
    if (!fsSync.statSync(job.taskDir).isDirectory()) throw new Error(`${job.taskDir} is not a directory`);
    if (!this.claimPidFile(job)) {
      this.fresh.delete(job.id); // its pid file is someone else's now: read it from now on
      return 'taken';
    }
    try {
      fsSync.rmSync(path.join(job.taskDir, 'exit_code'), { force: true });
      if (this.pool && job.passkeyFile) {
        const o = this.options;
        const argv = ['--mon', o.monUrl, '--task', String(job.taskId), '--passkey-file', job.passkeyFile, ...(o.scratch ? ['--scratch', o.scratch] : [])];
        const got = await this.pool.run(job.id, job.taskDir, argv, async (pid, start) => {
          fsSync.writeFileSync(this.pidPath(job), `${pid} ${start} worker\n`);
          this.started.set(job.id, { pid, start, worker: true, ended: false });
        });
        if (got === 'busy') {
          fsSync.rmSync(this.pidPath(job), { force: true });
          return 'busy';
        }
        if (got !== 'disabled') return 'started';
      }
      const env = this.childEnv(false);
      const child = spawn('/bin/sh', [job.script, String(job.taskId)], { cwd: job.taskDir, detached: true, stdio: 'ignore', env });
      child.on('error', () => undefined); // reported through the missing pid below
      if (child.pid === undefined) throw new Error('spawning /bin/sh failed');
      const stat = procStat(child.pid);
      fsSync.writeFileSync(this.pidPath(job), `${child.pid} ${stat?.start || '-'}\n`);
      this.started.set(job.id, { pid: child.pid, start: stat?.start || '-', worker: false, ended: false });
      this.children.set(job.id, child);
      child.on('exit', () => {
        this.children.delete(job.id);
        this.ended(job.id, null);
      });
      child.unref();
      return 'started';
    } catch (e) {
      if (!this.started.has(job.id)) fsSync.rmSync(this.pidPath(job), { force: true }); // nothing runs it: not started
      throw e;
    }
  }
}
