/**
 * firn-queue: one per grid (site). Each cycle, on a node-cron schedule, never overlapping:
 *
 *   1. heartbeat  — grid.last_seen_at; read the grid's status and capabilities
 *   2. reconcile  — checkJobStatus of our QUEUED/PROCESSING tasks: cancelled or vanished →
 *                   EVICTED, batch-reported failure → ERROR (PROCESSING) / EVICTED (QUEUED),
 *                   with the batch system's reason; evictions/failures counted
 *   3. cleanQ     — cancel batch jobs whose task is no longer active
 *   4. recover    — claims whose lease expired (a daemon died between claim and submit), and
 *                   in the first cycle this instance's own claims an earlier run left unsubmitted
 *                   (task.claimed_by; no need to wait for their lease): adopt the batch job
 *                   carrying the task id if there is one (QUEUEING → QUEUED), else give the
 *                   task back (QUEUEING → WAITING) — never duplicate
 *   5. claim      — the free slots, min(max_queued − queued, max_claim_per_cycle (default
 *                   max_queued)), in rounds of at most max_submit_per_cycle tasks that fit,
 *                   each round submitted (6) before the next is claimed; the rounds go on while
 *                   slots are free and the last round got all it asked for (and stop after a
 *                   failed submit); nothing while the plugin's only worker host (local) is
 *                   black-holed
 *   6. submit     — per group of identical requirements: passkey files (0600), writeConfig,
 *                   submit (one array, excluding this grid's black-holed nodes), QUEUEING →
 *                   QUEUED with the batch ids; a failed submit gives the tasks back
 *                   (WAITING, submit_errors + 1, the tool's message)
 *   7. last_cycle — durations and counts on the grid row
 */
import crypto from 'node:crypto';
import os from 'node:os';
import path from 'node:path';
import cron, { type ScheduledTask } from 'node-cron';
import {
  ACTIVE_STATUSES,
  BATCH_REASON_MAX,
  BatchSystemError,
  TaskStatus,
  blackholedHosts,
  chunk,
  claimTasks,
  coerceError,
  isBlackholed,
  nullLogger,
  parseCapabilities,
  recordHistory,
  transition,
  type ClaimedTask,
  type Db,
  type Executor,
  type GridCapabilities,
  type Logger,
} from '@firn/core';
import {
  BatchState,
  taskIdFromJobName,
  type BatchJobStatus,
  type BatchPlugin,
  type ListedJob,
  type SubmitBatch,
  type SubmitResult,
  type SubmitTask,
} from './plugins/plugin';
import type { QueueSettings } from './queue-settings';
import { SubmitDirLock } from './submit-dir-lock';

export type CrashPoint = 'after-claim' | 'after-submit';
export const CRASH_POINTS: readonly CrashPoint[] = ['after-claim', 'after-submit'];

export interface QueueDaemonOptions {
  db: Db;
  settings: QueueSettings;
  plugin: BatchPlugin;
  executor: Executor;
  logger?: Logger;
  /** Close the database too on close() (when the daemon opened it). */
  closeDb?: boolean;
  /**
   * A QUEUED/PROCESSING task whose batch job finished (COMPLETED) or is unknown to the
   * batch system is declared lost only once it has been in its status this long (ms).
   */
  lostGraceMs?: number;
  /** Test hook (crash-safety tests): SIGKILL this process at that point of the cycle. */
  crashAt?: CrashPoint;
  /**
   * Take the exclusive lock on the submit directory in init() (default true; see
   * submit-dir-lock.ts). Off only for in-process tests that never touch a submit directory.
   */
  lockSubmitDir?: boolean;
  /** Called with every finished cycle's report (metrics). */
  onCycle?: (report: CycleReport) => void;
  now?: () => number;
}

export const PHASES = ['heartbeat', 'reconcile', 'cleanq', 'recover', 'claim', 'submit'] as const;
export type Phase = (typeof PHASES)[number];

export interface CycleReport {
  started_at: number;
  finished_at: number;
  /** ms per phase */
  durations: Partial<Record<Phase | 'total', number>>;
  /** QUEUEING + QUEUED tasks of this grid before claiming, and after submitting. */
  queued_before: number;
  queued_after: number;
  claimed: number;
  /** claimTasks calls (rounds of at most max_submit_per_cycle) this cycle made. */
  claim_rounds: number;
  submitted: number;
  submit_failed: number;
  adopted: number;
  released: number;
  evicted: number;
  failed: number;
  removed: number;
  /** Black-holed nodes of this grid the cycle's submissions excluded. */
  blackholed_hosts: number;
  /** `[queue] max_queued` (task.why reads it to say a grid is full). */
  max_queued?: number;
  /** QUEUED tasks whose batch system's pending reason (task.batch_reason) changed this cycle. */
  batch_reasons?: number;
  /** Why nothing was claimed although there was room (the worker host is black-holed). */
  claim_skipped?: string;
  errors: string[];
}

interface GridRow {
  id: number;
  status: string;
  capabilities: GridCapabilities;
}

/** What reconcile does with one task, given its batch job's status (pure). */
/** A batch job's state/reason saying it exceeded its own memory or time limits (the payload's requirements). */
const HIT_LIMITS = /OUT_OF_MEMORY|\bOOM|TIMEOUT|DEADLINE|memory|time limit|wall ?time|h_rt|h_vmem|mem_free|exit 137\b/i;

export function judgeBatchJob(
  task: { status: TaskStatus; statusChangedAt: number },
  job: Pick<BatchJobStatus, 'state' | 'rawState' | 'reason' | 'exitCode'>,
  now: number,
  lostGraceMs: number,
): { to: typeof TaskStatus.EVICTED | typeof TaskStatus.ERROR; reason: string } | null {
  const detail = [job.rawState, job.reason, job.exitCode !== undefined ? `exit ${job.exitCode}` : undefined]
    .filter((s) => s !== undefined && s !== '')
    .join(', ');
  switch (job.state) {
    case BatchState.QUEUED:
    case BatchState.RUNNING:
    case BatchState.UNOBSERVED: // not confirmed either way: asked again next cycle, never declared lost
      return null;
    case BatchState.CANCELLED:
      return { to: TaskStatus.EVICTED, reason: `batch job cancelled (${detail})` };
    case BatchState.FAILED:
      // A pilot reports a module's failure itself (mon makes the task ERROR), so a running task
      // whose batch job failed lost its pilot: payload only when the job hit the limits its
      // requirements set (memory, time: ERROR, failures + 1, so bump rules apply); otherwise an
      // infrastructure fault (node failure, pilot could not reach mon) — EVICTED, evictions + 1.
      if (task.status !== TaskStatus.PROCESSING) return { to: TaskStatus.EVICTED, reason: `batch job failed before the pilot started: ${detail}` };
      return HIT_LIMITS.test(detail)
        ? { to: TaskStatus.ERROR, reason: `batch system reports failure: ${detail}` }
        : { to: TaskStatus.EVICTED, reason: `batch job failed without the pilot's report: ${detail}` };
    case BatchState.COMPLETED:
    case BatchState.UNKNOWN:
    default:
      if (now - task.statusChangedAt < lostGraceMs) return null;
      return {
        to: TaskStatus.EVICTED,
        reason: job.state === BatchState.COMPLETED
          ? `batch job ended without the pilot finishing (${detail})`
          : 'batch job vanished from the batch system',
      };
  }
}

/** Tasks with identical requirements, in claim order (each group is one batch submission). */
export function groupByRequirements(tasks: readonly ClaimedTask[]): ClaimedTask[][] {
  const groups = new Map<string, ClaimedTask[]>();
  for (const t of tasks) {
    const r = t.requirements;
    const key = JSON.stringify([r.cpu, r.gpu, r.memory, r.disk, r.time, r.site]);
    let g = groups.get(key);
    if (!g) groups.set(key, (g = []));
    g.push(t);
  }
  return [...groups.values()];
}

/** Run fn over items, at most `limit` at a time. */
async function eachLimit<T>(items: readonly T[], limit: number, fn: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  const worker = async () => {
    while (next < items.length) await fn(items[next++] as T);
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
}

/** `CASE id WHEN ? THEN ? … END` for a per-row value in one multi-row UPDATE. */
function caseById(db: Db, values: ReadonlyMap<number, string>) {
  const ids = [...values.keys()];
  return db.raw(`CASE id ${ids.map(() => 'WHEN ? THEN ?').join(' ')} END`, ids.flatMap((id) => [id, values.get(id)!]));
}

const SUMMARY_MAX = 4000;
const clip = (s: string) => (s.length > SUMMARY_MAX ? s.slice(0, SUMMARY_MAX - 1) + '…' : s);
const message = (e: unknown) => {
  const err = coerceError(e);
  const stderr = err instanceof BatchSystemError ? err.stderr.trim() : '';
  return stderr && !err.message.includes(stderr) ? `${err.message}: ${stderr}` : err.message;
};

export class QueueDaemon {
  readonly settings: QueueSettings;
  private readonly db: Db;
  private readonly plugin: BatchPlugin;
  private readonly executor: Executor;
  private readonly logger: Logger;
  private readonly now: () => number;
  private readonly lostGraceMs: number;
  private readonly owner: string;
  /** This daemon instance (`task.claimed_by`): `<host>:<submit_dir>`, unique among live daemons (the lock). */
  readonly instance: string;
  private readonly lock: SubmitDirLock | null;
  /** The first cycle also gives back this instance's claims left by an earlier run (never submitted). */
  private releaseOwnClaims = true;
  private gridId = 0;
  private cron: ScheduledTask | null = null;
  private cycle: Promise<CycleReport> | null = null;
  private stopping = false;
  /** The batch queue as listed by this cycle's cleanQ (reused by recover). */
  private listing: ListedJob[] | null = null;
  /** This grid's black-holed nodes, read by this cycle's claim, excluded by its submissions. */
  private excludeHosts: string[] = [];
  /** The previous cycle's list, to log changes only. */
  private lastExcluded = '';
  private closed: Promise<void> | null = null;

  constructor(private readonly opts: QueueDaemonOptions) {
    this.settings = opts.settings;
    this.db = opts.db;
    this.plugin = opts.plugin;
    this.executor = opts.executor;
    this.logger = (opts.logger ?? nullLogger).scope({ daemon: 'queue', grid: opts.settings.grid });
    this.now = opts.now ?? Date.now;
    this.lostGraceMs = opts.lostGraceMs ?? 10_000;
    this.owner = `queue:${opts.settings.grid}`;
    const instance = `${os.hostname()}:${opts.settings.submitDir}`;
    this.instance = instance.length <= 255 ? instance : `${os.hostname().slice(0, 100)}:sha256:${crypto.createHash('sha256').update(instance).digest('hex')}`;
    this.lock = opts.lockSubmitDir === false ? null : new SubmitDirLock(opts.executor, opts.settings.submitDir);
  }

  /** The grid row's id (after init()). */
  get grid(): number {
    return this.gridId;
  }

  /**
   * Take the submit directory's lock (SubmitDirLockedError naming the holder when another live
   * daemon has it), then find or create this grid's row.
   */
  async init(): Promise<number> {
    if (this.lock && !this.lock.isHeld) {
      await this.lock.acquire();
      this.logger.info('submit directory locked', { file: this.lock.file, instance: this.instance });
    }
    try {
      return await this.initGrid();
    } catch (e) {
      await this.lock?.release().catch(() => undefined);
      throw e;
    }
  }

  /** Find or create this grid's row; config (plugin, capabilities when given) wins over the row. */
  private async initGrid(): Promise<number> {
    const s = this.settings;
    let row = (await this.db('grid').where('name', s.grid).first()) as { id: number; plugin: string; capabilities: string } | undefined;
    if (!row) {
      try {
        await this.db('grid').insert({
          name: s.grid, plugin: s.plugin, capabilities: JSON.stringify(s.capabilities ?? {}), status: 'enabled', created_at: this.now(),
        });
        row = (await this.db('grid').where('name', s.grid).first()) as typeof row;
        await recordHistory(this.db, { entity: 'grid', entityId: Number(row!.id), action: 'create', actor: this.owner, reason: 'first start of firn-queue' });
        this.logger.info('grid created', { plugin: s.plugin, capabilities: s.capabilities ?? {} });
      } catch (e) {
        row = (await this.db('grid').where('name', s.grid).first()) as typeof row; // another daemon won the insert
        if (!row) throw e;
      }
    } else {
      const set: Record<string, string> = {};
      if (row.plugin !== s.plugin) set.plugin = s.plugin;
      if (s.capabilities && JSON.stringify(parseCapabilities(row.capabilities)) !== JSON.stringify(s.capabilities)) {
        set.capabilities = JSON.stringify(s.capabilities);
      }
      if (Object.keys(set).length) {
        await this.db('grid').where('id', row.id).update(set);
        this.logger.info('grid row updated from config', set);
      }
    }
    this.gridId = Number(row!.id);
    return this.gridId;
  }

  /** Run one cycle now (or join the one running: cycles never overlap). */
  runCycle(): Promise<CycleReport> {
    if (this.closed && !this.cycle) return Promise.reject(new Error('firn-queue is closed'));
    if (!this.cycle) {
      this.cycle = this.cycleOnce()
        .then((r) => {
          this.opts.onCycle?.(r);
          return r;
        })
        .finally(() => (this.cycle = null));
    }
    return this.cycle;
  }

  /** Run a cycle now, then on the schedule. */
  start(): void {
    if (this.cron || this.stopping) return;
    const run = () => this.runCycle().catch((e: unknown) => this.logger.error('cycle failed', { error: message(e) }));
    void run();
    const say = (m: string | Error) => this.logger.debug(`node-cron: ${m instanceof Error ? m.message : m}`);
    this.cron = cron.schedule(this.settings.schedule, run, {
      name: `firn-queue:${this.settings.grid}`,
      noOverlap: true, // a tick while a cycle runs is skipped (runCycle would join it anyway)
      logger: { info: say, warn: say, error: say, debug: say },
    });
    this.logger.info('scheduled', { schedule: this.settings.schedule, executor: this.executor.description, plugin: this.plugin.name });
  }

  /**
   * Stop: no new cycles; the running one finishes (claims it has not submitted yet are
   * given back, QUEUEING → WAITING); then the plugin and executor (and db if owned) close.
   */
  close(): Promise<void> {
    this.closed ??= (async () => {
      this.stopping = true;
      if (this.cron) {
        await this.cron.stop();
        await this.cron.destroy();
        this.cron = null;
      }
      if (this.cycle) await this.cycle.catch(() => undefined);
      await this.plugin.close?.();
      await this.lock?.release().catch((e: unknown) => this.logger.warn('cannot remove the submit directory lock', { error: message(e) }));
      await this.executor.close();
      if (this.opts.closeDb) await this.db.destroy();
      this.logger.info('stopped');
    })();
    return this.closed;
  }

  private async cycleOnce(): Promise<CycleReport> {
    const r: CycleReport = {
      started_at: this.now(), finished_at: 0, durations: {}, queued_before: 0, queued_after: 0, claimed: 0, claim_rounds: 0, submitted: 0,
      submit_failed: 0, adopted: 0, released: 0, evicted: 0, failed: 0, removed: 0, blackholed_hosts: 0, errors: [],
    };
    this.listing = null;
    this.excludeHosts = [];
    r.max_queued = this.settings.maxQueued;
    const grid = await this.phase(r, 'heartbeat', () => this.heartbeat());
    if (grid) {
      await this.phase(r, 'reconcile', () => this.reconcile(r));
      await this.phase(r, 'cleanq', () => this.cleanQueue(r));
      await this.phase(r, 'recover', () => this.recoverExpiredClaims(r));
      if (grid.status === 'enabled' && !this.stopping) await this.claimAndSubmit(r, grid);
      r.queued_after = await this.countQueued().catch(() => r.queued_before);
    }
    r.finished_at = this.now();
    r.durations.total = r.finished_at - r.started_at;
    await this.db('grid').where('id', this.gridId).update({ last_seen_at: r.finished_at, last_cycle: JSON.stringify(r) })
      .catch((e: unknown) => this.logger.error('cannot record the cycle on the grid row', { error: message(e) }));
    const level = r.errors.length ? 'warn' : r.claimed || r.evicted || r.failed || r.removed || r.adopted || r.released ? 'info' : 'debug';
    this.logger[level]('cycle', { ...r, started_at: undefined, finished_at: undefined });
    return r;
  }

  /** Time a phase (claim and submit add up over their rounds); an error is logged and recorded, and the cycle goes on. */
  private async phase<T>(r: CycleReport, name: Phase, fn: () => Promise<T>): Promise<T | undefined> {
    const t0 = this.now();
    try {
      return await fn();
    } catch (e) {
      r.errors.push(clip(`${name}: ${message(e)}`));
      this.logger.error(`${name} failed`, { error: message(e) });
      return undefined;
    } finally {
      r.durations[name] = (r.durations[name] ?? 0) + this.now() - t0;
    }
  }

  // 1 ─────────────────────────────────────────────────────────────────────────────────
  private async heartbeat(): Promise<GridRow | null> {
    if (!this.gridId) await this.init();
    await this.db('grid').where('id', this.gridId).update({ last_seen_at: this.now() });
    const row = (await this.db('grid').select('id', 'status', 'capabilities').where('id', this.gridId).first()) as
      | { id: number; status: string; capabilities: string }
      | undefined;
    if (!row) throw new Error(`grid ${this.settings.grid} (id ${this.gridId}) was removed from the database`);
    return { id: Number(row.id), status: row.status, capabilities: parseCapabilities(row.capabilities) };
  }

  // 2 ─────────────────────────────────────────────────────────────────────────────────
  private async reconcile(r: CycleReport): Promise<void> {
    const rows: Array<{ id: number; status: TaskStatus; batch_id: string; status_changed_at: number; batch_reason: string | null }> = await this.db('task')
      .select('id', 'status', 'batch_id', 'status_changed_at', 'batch_reason')
      .where('grid_id', this.gridId)
      .whereIn('status', [TaskStatus.QUEUED, TaskStatus.PROCESSING])
      .whereNotNull('batch_id');
    if (rows.length === 0) return;
    const statuses = await this.plugin.checkJobStatus([...new Set(rows.map((t) => t.batch_id))]);
    const now = this.now();
    r.batch_reasons = await this.recordPendingReasons(rows, statuses);
    // one transition per (from, to, reason): reasons carry no batch id, so groups stay few
    const groups = new Map<string, { from: TaskStatus; to: TaskStatus; reason: string; ids: number[] }>();
    for (const t of rows) {
      const job = statuses.get(t.batch_id) ?? { state: BatchState.UNOBSERVED, rawState: 'not reported' };
      const verdict = judgeBatchJob({ status: t.status, statusChangedAt: Number(t.status_changed_at) }, job, now, this.lostGraceMs);
      if (!verdict) continue;
      const key = JSON.stringify([t.status, verdict.to, verdict.reason]);
      let g = groups.get(key);
      if (!g) groups.set(key, (g = { from: t.status, to: verdict.to, reason: verdict.reason, ids: [] }));
      g.ids.push(Number(t.id));
    }
    for (const g of groups.values()) {
      const evicted = g.to === TaskStatus.EVICTED;
      const changed = await transition(this.db, {
        taskIds: g.ids, from: g.from, to: g.to, by: 'queue', actor: this.owner, reason: g.reason, strict: false,
        set: evicted
          ? { evictions: this.db.raw('evictions + 1'), error_summary: clip(g.reason), lease_until: null }
          : { failures: this.db.raw('failures + 1'), error_summary: clip(g.reason), finished_at: now },
      });
      if (evicted) r.evicted += changed.length;
      else r.failed += changed.length;
      if (changed.length) this.logger.info(evicted ? 'tasks evicted' : 'tasks failed', { tasks: changed, reason: g.reason });
    }
  }

  /**
   * task.batch_reason of QUEUED tasks: what the batch system says of their pending job (Slurm's
   * `%r`, SGE's scheduling info, HTCondor's analysis), NULL when it says nothing. Only changed
   * values are written, one UPDATE per distinct reason (reasons carry no batch id: groups stay few).
   */
  private async recordPendingReasons(
    rows: ReadonlyArray<{ id: number; status: TaskStatus; batch_id: string; batch_reason: string | null }>, statuses: ReadonlyMap<string, BatchJobStatus>,
  ): Promise<number> {
    const byReason = new Map<string | null, number[]>();
    for (const t of rows) {
      if (t.status !== TaskStatus.QUEUED) continue;
      const job = statuses.get(t.batch_id);
      if (!job || job.state !== BatchState.QUEUED) continue;
      const reason = job.reason ? (job.reason.length > BATCH_REASON_MAX ? `${job.reason.slice(0, BATCH_REASON_MAX - 1)}…` : job.reason) : null;
      if (reason === (t.batch_reason ?? null)) continue;
      const ids = byReason.get(reason) ?? [];
      ids.push(Number(t.id));
      byReason.set(reason, ids);
    }
    let n = 0;
    for (const [reason, ids] of byReason) {
      for (const part of chunk(ids, 500)) n += await this.db('task').whereIn('id', part).andWhere('status', TaskStatus.QUEUED).update({ batch_reason: reason });
    }
    return n;
  }

  // 3 ─────────────────────────────────────────────────────────────────────────────────
  /**
   * Cancel batch jobs whose task is no longer active, or is active with another batch job
   * (a claim of the task that came later). The plugin lists only this grid's jobs where the
   * batch system lets it tell them apart (BatchPlugin.listJobs). A job whose task id is not
   * in this database is left alone: it may belong to another Firn instance sharing the batch
   * account, and a pilot of a deleted task ends at pilot.start anyway.
   */
  private async cleanQueue(r: CycleReport): Promise<void> {
    const listed = await this.plugin.listJobs();
    this.listing = listed;
    const ids = [...new Set(listed.map((j) => taskIdFromJobName(j.name)).filter((id): id is number => id !== null))];
    const tasks = new Map<number, { status: TaskStatus; batch_id: string | null }>();
    for (const part of chunk(ids, 1000)) {
      const rows: Array<{ id: number; status: TaskStatus; batch_id: string | null }> = await this.db('task')
        .select('id', 'status', 'batch_id').whereIn('id', part);
      for (const t of rows) tasks.set(Number(t.id), t);
    }
    const seen = new Set(listed.map((j) => j.batchId));
    const removed = await this.plugin.cleanQ((job, taskId) => {
      if (!seen.has(job.batchId)) return true; // appeared after our look-up: decide next cycle
      const t = tasks.get(taskId);
      if (!t) return true;
      if (!ACTIVE_STATUSES.includes(t.status)) return false;
      return t.status === TaskStatus.QUEUEING || t.batch_id === job.batchId;
    });
    r.removed += removed.length;
    if (removed.length) this.logger.info('removed batch jobs of inactive tasks', { jobs: removed.map((j) => `${j.batchId} ${j.name}`) });
  }

  // 4 ─────────────────────────────────────────────────────────────────────────────────
  private async recoverExpiredClaims(r: CycleReport): Promise<void> {
    // At start (the first cycle, before this run claims anything): this instance's own claims
    // left by an earlier run that never recorded a submission — a crash between claim and submit.
    // Only this daemon could have submitted them (the submit directory's lock), so they need not
    // wait for their lease: adopted if the batch job is there, else given back (not a submit error).
    const own: number[] = [];
    if (this.releaseOwnClaims) {
      const rows: Array<{ id: number }> = await this.db('task')
        .select('id')
        .where({ grid_id: this.gridId, status: TaskStatus.QUEUEING, claimed_by: this.instance })
        .whereNull('batch_id');
      own.push(...rows.map((t) => Number(t.id)));
    }
    const ownSet = new Set(own);
    const expired = ((await this.db('task')
      .select('id')
      .where({ grid_id: this.gridId, status: TaskStatus.QUEUEING })
      .andWhere('lease_until', '<', this.now())) as Array<{ id: number }>).map((t) => Number(t.id)).filter((id) => !ownSet.has(id));
    if (own.length === 0 && expired.length === 0) {
      this.releaseOwnClaims = false;
      return;
    }
    // this cycle's listing (taken just before); if the batch system cannot say, the claims wait: never guess
    const jobs = this.listing ?? (await this.plugin.listJobs());
    if (own.length) {
      await this.adoptOrRelease(own, jobs, r, { reason: 'released at start: claimed but never submitted' });
      this.releaseOwnClaims = false;
    }
    if (expired.length) await this.adoptOrRelease(expired, jobs, r, { reason: 'claim lease expired before submission' });
  }

  /**
   * Tasks we claimed but did not see submitted: the batch job carrying the task id (queued
   * or running) is adopted (QUEUEING → QUEUED with its batch id); the others go back to
   * WAITING, counted as a submit error when `submitError` is given.
   */
  private async adoptOrRelease(
    ids: readonly number[],
    jobs: readonly ListedJob[],
    r: CycleReport,
    why: { reason: string; submitError?: string },
  ): Promise<void> {
    const wanted = new Set(ids);
    const found = new Map<number, string>();
    for (const j of jobs) {
      if (j.state !== BatchState.QUEUED && j.state !== BatchState.RUNNING) continue;
      const id = taskIdFromJobName(j.name);
      if (id !== null && wanted.has(id)) found.set(id, j.batchId);
    }
    if (found.size) {
      const adopted = await this.markQueued(found, 'adopted the batch job submitted before a restart');
      r.adopted += adopted.length;
      this.logger.warn('adopted batch jobs found for unfinished claims', { tasks: adopted });
    }
    const rest = ids.filter((id) => !found.has(id));
    const released = await this.release(rest, why.submitError ?? why.reason, why.submitError !== undefined);
    r.released += released.length;
    if (released.length) this.logger.warn('claims given back', { tasks: released, reason: why.submitError ?? why.reason });
  }

  /** QUEUEING → WAITING: passkey revoked, grid and lease cleared (optionally a submit error). */
  private async release(ids: readonly number[], reason: string, submitError: boolean): Promise<number[]> {
    if (ids.length === 0) return [];
    const set: Record<string, unknown> = { grid_id: null, passkey_hash: null, lease_until: null, batch_id: null, claimed_by: null };
    if (submitError) {
      set.submit_errors = this.db.raw('submit_errors + 1');
      set.error_summary = clip(reason);
    }
    return transition(this.db, {
      taskIds: ids, from: TaskStatus.QUEUEING, to: TaskStatus.WAITING, by: 'queue', actor: this.owner, reason: clip(reason), strict: false, set,
    });
  }

  /** QUEUEING → QUEUED with each task's batch id, in one UPDATE per 500 tasks. */
  private async markQueued(batchIds: ReadonlyMap<number, string>, reason: string): Promise<number[]> {
    const changed: number[] = [];
    for (const part of chunk([...batchIds.entries()], 500)) {
      const ids = part.map(([id]) => id);
      changed.push(...(await transition(this.db, {
        taskIds: ids, from: TaskStatus.QUEUEING, to: TaskStatus.QUEUED, by: 'queue', actor: this.owner, reason, strict: false,
        set: { batch_id: caseById(this.db, new Map(part)), lease_until: null, batch_reason: null },
      })));
    }
    return changed;
  }

  // 5 ─────────────────────────────────────────────────────────────────────────────────
  /** QUEUEING + QUEUED tasks of this grid: what max_queued limits. */
  private async countQueued(): Promise<number> {
    const [{ n }] = (await this.db('task')
      .count({ n: '*' })
      .where('grid_id', this.gridId)
      .whereIn('status', [TaskStatus.QUEUEING, TaskStatus.QUEUED])) as [{ n: number | string }];
    return Number(n);
  }

  /**
   * Fill the free slots: rounds of claim (at most max_submit_per_cycle) then submit, while
   * slots are left, the last round got all it asked for (else no more work fits), no submit
   * failed (a broken batch system would otherwise be handed the same tasks again and again)
   * and the daemon is not stopping.
   */
  private async claimAndSubmit(r: CycleReport, grid: GridRow): Promise<void> {
    const free = await this.phase(r, 'claim', async () => {
      r.queued_before = await this.countQueued();
      const slots = Math.min(this.settings.maxQueued - r.queued_before, this.settings.maxClaimPerCycle ?? this.settings.maxQueued);
      if (slots <= 0) return 0;
      return (await this.honourBlackholes(r, this.now())) ? slots : 0;
    });
    let left = free ?? 0;
    while (left > 0 && !this.stopping) {
      const limit = Math.min(left, this.settings.maxSubmitPerCycle);
      const claimed = await this.phase(r, 'claim', () => this.claim(r, grid, limit));
      if (!claimed) return; // the claim failed (recorded)
      left -= claimed.length;
      const failedBefore = r.submit_failed;
      const errorsBefore = r.errors.length;
      if (claimed.length) await this.phase(r, 'submit', () => this.submitClaimed(claimed, r));
      if (claimed.length < limit || r.submit_failed > failedBefore || r.errors.length > errorsBefore) return;
    }
  }

  /** One claim round of at most `limit` tasks. */
  private async claim(r: CycleReport, grid: GridRow, limit: number): Promise<ClaimedTask[]> {
    const claimed = await claimTasks(this.db, {
      gridId: this.gridId, gridName: this.settings.grid, limit, capabilities: grid.capabilities, leaseMs: this.settings.leaseMs, owner: this.owner,
      claimedBy: this.instance, now: this.now(),
    });
    r.claimed += claimed.length;
    r.claim_rounds++;
    if (claimed.length) this.logger.info('claimed', { tasks: claimed.map((t) => t.id) });
    this.crashPoint('after-claim');
    return claimed;
  }

  /**
   * Black holes (firn-dh sets node.blackholed_until): read this grid's black-holed nodes for
   * this cycle's submissions to exclude, and answer false — claim nothing — when the plugin
   * runs every job on one host (local) and that host is black-holed. Checked here, before
   * claimTasks, rather than inside the claim query: it is one indexed read per cycle, the
   * hot claim statement stays as it is, and a node black-holed between this read and the
   * claim is still refused by firn-mon at pilot.start.
   */
  /** When the "this host is black-holed" warning was last logged (null: not black-holed). */
  private holeWarnedAt: number | null = null;

  private async honourBlackholes(r: CycleReport, now: number): Promise<boolean> {
    this.excludeHosts = await blackholedHosts(this.db, now, this.gridId);
    r.blackholed_hosts = this.excludeHosts.length;
    const listed = this.excludeHosts.join(' ');
    if (listed !== this.lastExcluded) {
      this.lastExcluded = listed;
      this.logger.info(listed ? 'black-holed nodes excluded from submissions' : 'no black-holed nodes any more', { hosts: this.excludeHosts });
    }
    const host = this.plugin.workerHost;
    if (host && (await isBlackholed(this.db, host, now))) {
      r.claim_skipped = `this host (${host}) is black-holed`;
      // once when it starts, then at most every 5 minutes (cycles run every few seconds)
      if (this.holeWarnedAt === null || now - this.holeWarnedAt >= 300_000) {
        this.holeWarnedAt = now;
        this.logger.warn('this host is black-holed: claiming nothing until its cool-down ends (firn grid holes / clear-hole)', { host });
      }
      return false;
    }
    if (this.holeWarnedAt !== null) {
      this.holeWarnedAt = null;
      this.logger.info('this host is no longer black-holed: claiming again', { host });
    }
    return true;
  }

  // 6 ─────────────────────────────────────────────────────────────────────────────────
  private async submitClaimed(claimed: ClaimedTask[], r: CycleReport): Promise<void> {
    const groups = groupByRequirements(claimed);
    for (let i = 0; i < groups.length; i++) {
      const group = groups[i]!;
      if (this.stopping) {
        const rest = groups.slice(i).flat().map((t) => t.id);
        r.released += (await this.release(rest, 'firn-queue stopped before submitting', false)).length;
        break;
      }
      await this.submitGroup(group, r);
    }
  }

  private async submitGroup(tasks: ClaimedTask[], r: CycleReport): Promise<void> {
    const ids = tasks.map((t) => t.id);
    const dir = path.posix.join(this.settings.submitDir, `batch-${this.now()}-${crypto.randomBytes(4).toString('hex')}`);
    const batch: SubmitBatch = {
      dir,
      ...(this.excludeHosts.length ? { excludeHosts: [...this.excludeHosts] } : {}),
      tasks: tasks.map((t): SubmitTask => {
        const taskDir = path.posix.join(dir, `task-${t.id}`);
        return {
          taskId: t.id, datasetId: t.datasetId, jobIndex: t.jobIndex, taskName: t.name, requirements: t.requirements,
          taskDir, passkeyFile: path.posix.join(taskDir, 'passkey'),
        };
      }),
    };
    let submitAttempted = false;
    let result: SubmitResult;
    try {
      await this.renewLease(ids);
      const passkeys = new Map(tasks.map((t) => [t.id, t.passkey]));
      await eachLimit(batch.tasks, 4, (st) => this.executor.writeFile(st.passkeyFile, passkeys.get(st.taskId)!, 0o600));
      const script = await this.plugin.writeConfig(batch);
      submitAttempted = true;
      result = await this.plugin.submit(batch, script);
    } catch (e) {
      const why = message(e);
      r.submit_failed += ids.length;
      this.logger.error('submit failed; claims given back', { tasks: ids, error: why });
      // the batch system may have taken the job although the command failed (timeout): look before giving back
      let jobs: ListedJob[] = [];
      if (submitAttempted) {
        try {
          jobs = await this.plugin.listJobs();
        } catch (e2) {
          this.logger.error('cannot list the batch queue after a failed submit; claims wait for their lease', { error: message(e2) });
          return;
        }
      }
      await this.adoptOrRelease(ids, jobs, r, { reason: why, submitError: clip(`submit failed: ${why}`) });
      await this.executor.remove(dir).catch(() => undefined);
      return;
    }
    this.crashPoint('after-submit');
    const queued = await this.markQueued(result.batchIds, 'submitted');
    r.submitted += queued.length;
    await this.plugin.submitted?.().catch((e: unknown) => this.logger.warn('plugin could not start the submitted jobs; the next cycle will', { error: message(e) }));
    const missing = ids.filter((id) => !result.batchIds.has(id));
    if (missing.length) this.logger.warn('submit returned no batch id for some tasks; their lease will settle them', { tasks: missing });
    this.logger.info('submitted', { tasks: queued.length, batch: [...result.batchIds.values()].slice(0, 3).join(' ') });
  }

  /** The owner renews its claim before the slow part (a sweeper takes back only expired claims). */
  private async renewLease(ids: readonly number[]): Promise<void> {
    const until = this.now() + this.settings.leaseMs;
    for (const part of chunk(ids, 1000)) {
      await this.db('task').whereIn('id', part).andWhere({ status: TaskStatus.QUEUEING, grid_id: this.gridId }).update({ lease_until: until });
    }
  }

  private crashPoint(point: CrashPoint): void {
    if (this.opts.crashAt === point) {
      this.logger.warn(`test hook: crashing ${point}`);
      process.kill(process.pid, 'SIGKILL');
    }
  }
}
