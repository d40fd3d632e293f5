/**
 * firn-dh: what it does each cycle, in one place. On every tick of [dh] schedule each of
 * these cycles runs unless its previous run is still going (cycles never overlap
 * themselves; a long copy does not hold up retries or the roll-up), each bounded by
 * [dh] batch_size:
 *
 *   lost        PROCESSING tasks silent for [dh] heartbeat_timeout → EVICTED   (lost-tasks.ts)
 *               — only once dh has had heartbeat_timeout of working database access since it
 *               started or since the database came back (EvidenceClock)
 *   data        READYTOCOPY → COPYING → COPIED → OK: outputs copied + verified   (data-mover.ts)
 *   retries     ERROR / EVICTED → RESET → WAITING, or FAILED, by retry policy    (retries.ts)
 *   rollup      job and dataset status; completion hook                          (rollup.ts)
 *   gc          site-temp leftovers after [dh] retention_days                    (gc.ts)
 *   blackholes  nodes failing too often excluded for a cool-down                 (blackholes.ts)
 *
 * The first data cycle after start takes up every COPYING task a killed dh left behind.
 * `stop()` (SIGTERM) lets running cycles finish, takes no new work and closes connections.
 */
import cron from 'node-cron';
import { ConfigError, StorageRoots, coerceError, nullLogger, type Db, type DhSection, type Logger } from '@firn/core';
import { detectBlackholes, type Blackholed } from './blackholes';
import { DataMover, type DataCycleResult } from './data-mover';
import { collectGarbage, type GcResult } from './gc';
import { EvidenceClock, evictLostTasks } from './lost-tasks';
import { applyRetryPolicy, type RetryCycleResult } from './retries';
import { rollUp, type RollupResult } from './rollup';
import { Transfers } from './transfer';

export const CYCLES = ['lost', 'data', 'retries', 'rollup', 'gc', 'blackholes'] as const;
export type CycleName = (typeof CYCLES)[number];

export interface CycleResults {
  lost: number[];
  data: DataCycleResult;
  retries: RetryCycleResult;
  rollup: RollupResult;
  gc: GcResult;
  blackholes: Blackholed[];
}

export interface DhDaemonOptions {
  db: Db;
  /** The [dh] section (defaults applied by loadConfig). */
  config: DhSection;
  logger?: Logger;
  /** Clock (tests pass a fake one). */
  now?: () => number;
  /** Transfers to use (default: built from the config; closed by stop()). */
  transfers?: Transfers;
  /** Site temp and the destination roots (default: `[dh] destinations`, no site temp). */
  roots?: StorageRoots;
  /** Base delay between transfer retries, ms (default 1000). */
  transferRetryDelayMs?: number;
  /** Tasks whose outputs are moved at once (default 4). */
  transferConcurrency?: number;
  /** Called when a cycle ends: its result, or the error it failed with (metrics: dh-metrics.ts). */
  onCycle?: (event: CycleEvent) => void;
}

/** One finished cycle, as onCycle sees it. */
export type CycleEvent = { [C in CycleName]: { name: C; seconds: number; result?: CycleResults[C]; error?: Error } }[CycleName];

/** Reject a [dh] section the daemon cannot run with (beyond what the schema checks). */
export function checkDhConfig(c: DhSection): void {
  if (!cron.validate(c.schedule)) throw new ConfigError(`[dh] schedule is not a valid cron expression: ${JSON.stringify(c.schedule)}`);
  if (c.blackhole_threshold > c.blackhole_window) {
    throw new ConfigError(`[dh] blackhole_threshold (${c.blackhole_threshold}) must not exceed blackhole_window (${c.blackhole_window})`);
  }
  if (c.blackhole_window > 64) throw new ConfigError(`[dh] blackhole_window must be at most 64 (outcomes kept per node), got ${c.blackhole_window}`);
}

/** Black-hole scans look back this far before the previous scan (commits that landed late). */
const BLACKHOLE_OVERLAP_MS = 60_000;

export class DhDaemon {
  private readonly db: Db;
  private readonly cfg: DhSection;
  private readonly logger: Logger;
  private readonly now: () => number;
  private readonly transfers: Transfers;
  private readonly roots: StorageRoots;
  private readonly mover: DataMover;
  private readonly running = new Map<CycleName, Promise<unknown>>();
  private task: ReturnType<typeof cron.schedule> | null = null;
  private stopping = false;
  private resumeAll = true;
  private blackholeSince = 0;
  private readonly spared = new Map<string, string>();
  /** Whether silence can count as a lost heartbeat: dh's own database access has worked since … */
  private readonly evidence: EvidenceClock;
  private readonly onCycle: DhDaemonOptions['onCycle'];

  constructor(o: DhDaemonOptions) {
    checkDhConfig(o.config);
    this.db = o.db;
    this.cfg = o.config;
    this.logger = (o.logger ?? nullLogger).scope({ daemon: 'dh' });
    this.now = o.now ?? Date.now;
    this.evidence = new EvidenceClock(this.now());
    this.onCycle = o.onCycle;
    this.transfers = o.transfers ?? new Transfers({
      retries: o.config.transfer_retries,
      retryDelayMs: o.transferRetryDelayMs ?? 1000,
      sftp: { ...(o.config.ssh_key ? { privateKeyPath: o.config.ssh_key } : {}), ...(o.config.ssh_known_hosts ? { knownHostsFile: o.config.ssh_known_hosts } : {}), ...(o.config.ssh_accept_unknown_hosts ? { acceptUnknownHosts: true } : {}) },
      logger: this.logger,
    });
    this.roots = o.roots ?? new StorageRoots({ destinations: o.config.destinations });
    this.mover = new DataMover({
      db: this.db,
      transfers: this.transfers,
      roots: this.roots,
      logger: this.logger,
      batchSize: o.config.batch_size,
      concurrency: o.transferConcurrency ?? 4,
      // a copy not renewed for heartbeat_timeout belongs to a dh that is gone
      leaseMs: o.config.heartbeat_timeout * 1000,
      stopping: () => this.stopping,
      now: this.now,
    });
  }

  /** Run one cycle now; if it is already running, wait for that run instead. */
  runCycle<C extends CycleName>(name: C): Promise<CycleResults[C]> {
    const busy = this.running.get(name);
    if (busy) return busy as Promise<CycleResults[C]>;
    const t0 = process.hrtime.bigint();
    const seconds = () => Number(process.hrtime.bigint() - t0) / 1e9;
    const p = this.cycle(name)
      .then((result) => {
        this.report({ name, seconds: seconds(), result } as CycleEvent);
        return result;
      })
      .catch((e: unknown) => {
        // a failing cycle means dh cannot trust what it reads about heartbeats until it works again
        this.evidence.failed();
        this.report({ name, seconds: seconds(), error: coerceError(e) } as CycleEvent);
        throw e;
      })
      .finally(() => this.running.delete(name));
    this.running.set(name, p);
    return p as Promise<CycleResults[C]>;
  }

  private report(event: CycleEvent): void {
    try {
      this.onCycle?.(event);
    } catch (e) {
      this.logger.warn('cycle observer failed', { error: coerceError(e).message });
    }
  }

  private async cycle(name: CycleName): Promise<CycleResults[CycleName]> {
    const c = this.cfg;
    const now = this.now();
    switch (name) {
      case 'lost': {
        // one cheap read proves the database answers before anything is judged
        await this.db.raw('SELECT 1');
        if (this.evidence.ok(now, (c.heartbeat_timeout * 1000) / 3)) {
          this.logger.info('database access (re)established: no task is evicted for a lost heartbeat before a full heartbeat_timeout has passed', {
            heartbeat_timeout: c.heartbeat_timeout,
          });
        }
        return evictLostTasks(this.db, this.logger, now, c.heartbeat_timeout, c.batch_size, this.evidence.healthySince());
      }
      case 'data': {
        const resumeAll = this.resumeAll;
        const r = await this.mover.run(now, resumeAll);
        this.resumeAll = false;
        if (r.claimed || r.resumed) this.logger.info('data cycle', { ...r });
        return r;
      }
      case 'retries':
        return applyRetryPolicy(this.db, this.logger, now, c.batch_size);
      case 'rollup':
        return rollUp(this.db, this.logger, now, { batchSize: c.batch_size, ...(c.completion_hook ? { completionHook: c.completion_hook } : {}) });
      case 'gc':
        return collectGarbage(this.db, this.logger, this.transfers, this.roots, now, c.retention_days, c.batch_size);
      case 'blackholes': {
        const r = await detectBlackholes(this.db, this.logger, now, Math.max(0, this.blackholeSince - BLACKHOLE_OVERLAP_MS), {
          window: c.blackhole_window, threshold: c.blackhole_threshold, cooldownS: c.blackhole_cooldown, batchSize: c.batch_size, spared: this.spared,
        });
        if (this.spared.size > 10_000) this.spared.clear();
        this.blackholeSince = r.next;
        return r.blackholed;
      }
    }
  }

  /** Every cycle once, in order (`firn-dh --once`, tests). Errors propagate. */
  async runOnce(): Promise<CycleResults> {
    const out: Partial<CycleResults> = {};
    for (const name of CYCLES) (out as Record<CycleName, unknown>)[name] = await this.runCycle(name);
    return out as CycleResults;
  }

  /** A schedule tick: start every cycle that is not running; a failing cycle is logged, not fatal. */
  tick(): void {
    if (this.stopping) return;
    for (const name of CYCLES) {
      if (this.running.has(name)) continue;
      this.runCycle(name).catch((e) => this.logger.error('cycle failed', { cycle: name, error: coerceError(e).message }));
    }
  }

  /** Run on [dh] schedule until stop(). The first tick comes at once. */
  start(): void {
    if (this.task) return;
    this.task = cron.schedule(this.cfg.schedule, () => this.tick(), { name: 'firn-dh', noOverlap: false });
    this.logger.info('firn-dh started', { schedule: this.cfg.schedule, batch_size: this.cfg.batch_size });
    this.tick();
  }

  /** Take no new work, let running cycles finish, close connections. The database stays open (the caller's). */
  async stop(): Promise<void> {
    this.stopping = true;
    if (this.task) {
      await this.task.stop();
      await this.task.destroy();
      this.task = null;
    }
    await Promise.allSettled([...this.running.values()]);
    await this.transfers.close();
    this.logger.info('firn-dh stopped');
  }
}
