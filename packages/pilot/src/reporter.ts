/**
 * Where a running pilot reports: firn-mon over JSON-RPC (RpcReporter), or a JSON report
 * file in unmonitored mode (FileReporter). The task runner only sees the Reporter interface,
 * so both modes run exactly the same code.
 *
 * RpcReporter delivery rules:
 *  - updates are queued and sent in order by one pump; after an outage the backlog goes out
 *    as JSON-RPC batches;
 *  - every retryable failure (core's `isRetryableRpcFailure`: connection refused/reset/timed
 *    out, HTTP 408/429/502/503/504 with or without a JSON-RPC body, -32029 rate limited or still
 *    queueing, -32050 unavailable, -32603 internal) is retried with capped exponential backoff,
 *    at least as long as the server's Retry-After; updates for as long as it takes (modules keep
 *    running meanwhile), pilot.finish — the final report with the stats, logs and files it
 *    carries — for the retry horizon: `retryHorizonMs`, else twice the heartbeat timeout firn-mon
 *    implies (pilot.start's heartbeat_seconds × 6, i.e. `[dh] heartbeat_timeout`), at least
 *    10 minutes. A database outage or a mon restart shorter than that costs the task nothing;
 *  - -32602 / -32001 / -32003 / -32004 are not retried: the update is dropped (logged), a finish
 *    is rejected;
 *  - heartbeats are coalesced (only the newest unsent one is kept), log updates of one name are
 *    merged; stats, files and finish are never dropped;
 *  - -32009 (stale or invalid passkey) is fatal: the queue is discarded and `onFatal` fires so
 *    the pilot kills its modules and cleans up.
 */
import fs from 'node:fs';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import {
  ConfigError,
  FirnError,
  RpcClient,
  RpcError,
  RpcErrorCode,
  backoffDelay,
  isRetryableRpcFailure,
  coerceError,
  type BackoffOptions,
  type DatasetConfig,
  type Logger,
  type RpcClientOptions,
} from './core-pure';
import type {
  Heartbeat,
  HostResources,
  OutputFile,
  ResourceSummary,
  StartResult,
  Stats,
} from './protocol';

/** Mon refused the passkey (-32009): the task was reset or the passkey is wrong. */
export class StalePasskeyError extends FirnError {}
/** Mon could not be reached for longer than the pilot is willing to wait. */
export class MonUnreachableError extends FirnError {}

export interface Reporter {
  /** Announce the task and receive its configuration; `attempt` is this execution's start nonce (retries send the same). */
  start(host: string, resources?: HostResources, attempt?: string): Promise<StartResult>;
  heartbeat(h: Heartbeat): void;
  stats(stats: Stats): void;
  log(name: string, data: string, append?: boolean): void;
  files(files: OutputFile[]): void;
  /** Send the final outcome after everything queued before it; resolves with mon's answer. */
  finish(ok: boolean, error?: string, resources?: ResourceSummary): Promise<{ status?: string }>;
  /** Wait until everything queued has been delivered (or given up). */
  flush(timeoutMs?: number): Promise<void>;
  /** Called once when the reporter can no longer report (stale passkey). */
  onFatal(cb: (e: Error) => void): void;
  close(): Promise<void>;
}

// ---------------------------------------------------------------------------------------------
// RPC

type OpKind = 'heartbeat' | 'stats' | 'log' | 'files' | 'finish';
interface Op {
  kind: OpKind;
  method: string;
  params: Record<string, unknown>;
  done?: { resolve: (v: unknown) => void; reject: (e: Error) => void };
  /** A finish carrying these waiting updates (sent separately if mon does not take them). */
  carried?: Op[];
  /** A finish whose retry horizon passed: rejected already, never sent again. */
  expired?: boolean;
}

export interface RpcReporterOptions {
  url: string;
  taskId: number;
  passkey: string;
  logger: Logger;
  ca?: string | Buffer;
  insecure?: boolean;
  backoff?: BackoffOptions;
  /** How long pilot.start keeps trying an unreachable mon (default 10 min). */
  startTimeoutMs?: number;
  /**
   * How long pilot.finish keeps trying while mon cannot take it (`--retry-horizon`,
   * FIRN_PILOT_RETRY_HORIZON_SECONDS). Default: 2 × heartbeat_seconds × 6 from pilot.start
   * (twice `[dh] heartbeat_timeout`), at least 10 minutes.
   */
  retryHorizonMs?: number;
  /** @deprecated the old name of retryHorizonMs. */
  finishTimeoutMs?: number;
  /** Most calls in one batch (default 50). */
  maxBatch?: number;
  requestTimeoutMs?: number;
  /**
   * Updates (heartbeat, stats, logs, files) wait up to this long for company, so that what a
   * short module produces travels in one request; pilot.finish sends everything at once.
   * Default 100 ms; 0 sends each update as soon as nothing else is in flight.
   */
  lingerMs?: number;
  /** Keep-alive connections shared with other tasks of a pilot worker (left open by close()). */
  agent?: RpcClientOptions['agent'];
}

const MAX_LOG_MERGE = 256 * 1024;
/** The shortest retry horizon a pilot uses by default, and the longest Retry-After it honours. */
const MIN_HORIZON_MS = 10 * 60_000;
const MAX_RETRY_AFTER_MS = 5 * 60_000;

/** The default retry horizon for a task whose mon asks for heartbeats every `heartbeatSeconds`. */
export function defaultRetryHorizonMs(heartbeatSeconds: unknown): number {
  const hb = typeof heartbeatSeconds === 'number' && Number.isFinite(heartbeatSeconds) && heartbeatSeconds > 0 ? heartbeatSeconds : 0;
  return Math.max(MIN_HORIZON_MS, 2 * 6 * hb * 1000);
}

export class RpcReporter implements Reporter {
  private readonly client: RpcClient;
  private readonly queue: Op[] = [];
  private pumping = false;
  private fatal: Error | null = null;
  private readonly fatalCbs: Array<(e: Error) => void> = [];
  private readonly idleWaiters: Array<() => void> = [];
  private wake: (() => void) | null = null;
  private lingerTimer: NodeJS.Timeout | null = null;
  private closed = false;
  /** mon refused a finish carrying updates (an older mon): send them separately from now on. */
  private noCarry = false;
  private readonly backoff: BackoffOptions;
  private readonly logger: Logger;
  /** From pilot.start's heartbeat_seconds unless the caller set it. */
  private horizonMs: number;
  /** Counters for tests and the pilot's own log. */
  readonly counters = { sent: 0, failures: 0, batches: 0, coalesced: 0 };

  constructor(private readonly opts: RpcReporterOptions) {
    const clientOpts: RpcClientOptions = { timeoutMs: opts.requestTimeoutMs ?? 30_000 };
    if (opts.ca !== undefined) clientOpts.ca = opts.ca;
    if (opts.insecure) clientOpts.insecure = true;
    if (opts.agent) clientOpts.agent = opts.agent;
    this.client = new RpcClient(opts.url, clientOpts);
    this.backoff = opts.backoff ?? { baseMs: 500, maxMs: 30_000, jitter: 0.5 };
    this.logger = opts.logger.scope({ component: 'reporter' });
    this.horizonMs = opts.retryHorizonMs ?? opts.finishTimeoutMs ?? MIN_HORIZON_MS;
  }

  /** How long a finish is kept and retried while mon cannot take it (ms). */
  get retryHorizonMs(): number {
    return this.horizonMs;
  }

  /**
   * Jittered (random, to spread a herd of pilots), capped exponential delay before retry
   * `attempt` (1-based); never shorter than the Retry-After the failure carried (at most 5 min).
   */
  private delay(attempt: number, failure?: unknown): number {
    const d = backoffDelay(attempt, { ...this.backoff, random: Math.random() });
    const after = (failure as { retryAfterMs?: unknown } | null)?.retryAfterMs;
    return typeof after === 'number' && after > d ? Math.min(after, MAX_RETRY_AFTER_MS) : d;
  }

  private params(p: Record<string, unknown>): Record<string, unknown> {
    return { task_id: this.opts.taskId, passkey: this.opts.passkey, ...p };
  }

  private isRetryable(e: unknown): boolean {
    return isRetryableRpcFailure(e);
  }

  private isStale(e: unknown): boolean {
    return e instanceof RpcError && e.code === RpcErrorCode.CONFLICT;
  }

  private setFatal(e: Error) {
    if (this.fatal) return;
    this.fatal = e;
    this.logger.error('mon refused the passkey; stopping', { error: e.message });
    for (const op of this.queue.splice(0)) op.done?.reject(e);
    for (const cb of this.fatalCbs) {
      try {
        cb(e);
      } catch {
        // a callback's failure must not stop the others
      }
    }
    this.notifyIdle();
    this.wake?.();
  }

  private sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const t = setTimeout(() => {
        this.wake = null;
        resolve();
      }, ms);
      this.wake = () => {
        clearTimeout(t);
        this.wake = null;
        resolve();
      };
    });
  }

  async start(host: string, resources?: HostResources, nonce?: string): Promise<StartResult> {
    const deadline = Date.now() + (this.opts.startTimeoutMs ?? 10 * 60_000);
    for (let attempt = 0; ; attempt++) {
      if (this.closed) throw new MonUnreachableError('gave up on pilot.start: the pilot is stopping');
      try {
        const r = await this.client.call<StartResult>('pilot.start', this.params({ host, ...(resources ? { resources } : {}), ...(nonce ? { attempt: nonce } : {}) }));
        this.counters.sent++;
        if (this.opts.retryHorizonMs === undefined && this.opts.finishTimeoutMs === undefined) {
          this.horizonMs = defaultRetryHorizonMs(r?.system?.heartbeat_seconds);
        }
        return r;
      } catch (e) {
        if (this.isStale(e)) {
          const err = new StalePasskeyError(`pilot.start refused: ${(e as Error).message}`);
          this.setFatal(err);
          throw err;
        }
        if (!this.isRetryable(e) || this.closed) throw coerceError(e);
        this.counters.failures++;
        if (Date.now() > deadline) throw new MonUnreachableError(`cannot reach mon for pilot.start: ${(e as Error).message}`);
        const d = this.delay(attempt + 1, e);
        this.logger.warn('pilot.start failed, retrying', { error: (e as Error).message, retry_in_ms: d });
        await this.sleep(d);
      }
    }
  }

  heartbeat(h: Heartbeat): void {
    if (this.fatal) return;
    const pending = this.queue.find((op) => op.kind === 'heartbeat');
    if (pending) {
      pending.params = this.params({ ...h });
      this.counters.coalesced++;
      return;
    }
    this.enqueue({ kind: 'heartbeat', method: 'pilot.heartbeat', params: this.params({ ...h }) });
  }

  stats(stats: Stats): void {
    this.enqueue({ kind: 'stats', method: 'pilot.stats', params: this.params({ stats }) });
  }

  log(name: string, data: string, append = false): void {
    if (this.fatal) return;
    for (let i = this.queue.length - 1; i >= 0; i--) {
      const op = this.queue[i] as Op;
      if (op.kind !== 'log' || op.params.name !== name) continue;
      const prev = String(op.params.data ?? '');
      if (!append) {
        op.params = this.params({ name, data, append: false });
        this.counters.coalesced++;
        return;
      }
      if (prev.length + data.length <= MAX_LOG_MERGE) {
        op.params = this.params({ name, data: prev + data, append: op.params.append });
        this.counters.coalesced++;
        return;
      }
      break;
    }
    this.enqueue({ kind: 'log', method: 'pilot.log', params: this.params({ name, data, append }) });
  }

  files(files: OutputFile[]): void {
    this.enqueue({ kind: 'files', method: 'pilot.files', params: this.params({ files }) });
  }

  finish(ok: boolean, error?: string, resources?: ResourceSummary): Promise<{ status?: string }> {
    if (this.fatal) return Promise.reject(this.fatal);
    return new Promise((resolve, reject) => {
      const timeout = this.horizonMs;
      const timer = setTimeout(() => {
        op.expired = true;
        const i = this.queue.indexOf(op);
        if (i >= 0) this.queue.splice(i, 1);
        reject(new MonUnreachableError(`mon did not accept pilot.finish within ${Math.round(timeout / 1000)} s`));
      }, timeout);
      const params = this.params({ ok, ...(error !== undefined ? { error } : {}), ...(resources ? { resources } : {}) });
      const carried = this.carryIntoFinish(params, resources !== undefined);
      const op: Op = {
        kind: 'finish',
        method: 'pilot.finish',
        params,
        ...(carried.length ? { carried } : {}),
        done: {
          resolve: (v) => {
            clearTimeout(timer);
            resolve((v ?? {}) as { status?: string });
          },
          reject: (e) => {
            clearTimeout(timer);
            reject(e);
          },
        },
      };
      this.enqueue(op);
    });
  }

  /**
   * The updates still waiting to be sent go with pilot.finish: its stats, logs and files in the
   * call (mon writes them in the finish's transaction), a waiting heartbeat dropped when the
   * finish has the final resources. One request and one transaction instead of two. Returns
   * the ops taken out of the queue.
   */
  private carryIntoFinish(params: Record<string, unknown>, hasResources: boolean): Op[] {
    if (this.noCarry) return [];
    const carried: Op[] = [];
    const stats: Stats = {};
    const logs: Array<{ name: string; data: string; append: boolean }> = [];
    const files: OutputFile[] = [];
    this.queue.splice(0, this.queue.length, ...this.queue.filter((op) => {
      if (op.kind === 'finish' || (op.kind === 'heartbeat' && !hasResources)) return true;
      carried.push(op);
      if (op.kind === 'stats') Object.assign(stats, op.params.stats as Stats);
      else if (op.kind === 'log') logs.push({ name: String(op.params.name), data: String(op.params.data), append: op.params.append === true });
      else if (op.kind === 'files') files.push(...(op.params.files as OutputFile[]));
      return false;
    }));
    if (Object.keys(stats).length) params.stats = stats;
    if (logs.length) params.logs = logs;
    if (files.length) params.files = files;
    return carried;
  }

  onFatal(cb: (e: Error) => void): void {
    if (this.fatal) cb(this.fatal);
    else this.fatalCbs.push(cb);
  }

  async flush(timeoutMs = 60_000): Promise<void> {
    if (!this.queue.length && !this.pumping) return;
    this.kick();
    await new Promise<void>((resolve) => {
      const t = setTimeout(resolve, timeoutMs);
      this.idleWaiters.push(() => {
        clearTimeout(t);
        resolve();
      });
    });
  }

  async close(): Promise<void> {
    this.closed = true;
    if (this.lingerTimer) clearTimeout(this.lingerTimer);
    this.lingerTimer = null;
    this.wake?.();
    this.client.close();
  }

  /** Operations not delivered yet (tests, diagnostics). */
  pending(): number {
    return this.queue.length;
  }

  private enqueue(op: Op) {
    if (this.fatal) {
      op.done?.reject(this.fatal);
      return;
    }
    this.queue.push(op);
    if (this.pumping) return;
    const linger = this.opts.lingerMs ?? 100;
    if (op.kind === 'finish' || linger <= 0) {
      this.kick();
    } else if (!this.lingerTimer) {
      this.lingerTimer = setTimeout(() => {
        this.lingerTimer = null;
        if (!this.pumping) void this.pump();
      }, linger);
    }
  }

  /** Send what waits now (no more lingering). */
  private kick() {
    if (this.lingerTimer) clearTimeout(this.lingerTimer);
    this.lingerTimer = null;
    if (!this.pumping && this.queue.length) void this.pump();
  }

  private notifyIdle() {
    for (const w of this.idleWaiters.splice(0)) w();
  }

  /** Take the next request: the head alone, or (backlog) a batch of non-finish ops. */
  private take(): Op[] {
    const head = this.queue[0];
    if (!head) return [];
    if (head.kind === 'finish' || this.queue.length === 1) return this.queue.splice(0, 1);
    let n = 0;
    const max = this.opts.maxBatch ?? 50;
    while (n < this.queue.length && n < max && (this.queue[n] as Op).kind !== 'finish') n++;
    return this.queue.splice(0, n);
  }

  /** Put ops that could not be delivered back at the front, keeping only the newest heartbeat. */
  private requeue(ops: Op[]) {
    const hasNewerHeartbeat = this.queue.some((o) => o.kind === 'heartbeat');
    const back = ops.filter((o) => !o.expired && !(o.kind === 'heartbeat' && hasNewerHeartbeat));
    this.queue.unshift(...back);
  }

  private async pump(): Promise<void> {
    this.pumping = true;
    let attempt = 0;
    try {
      while (this.queue.length && !this.fatal && !this.closed) {
        const ops = this.take();
        let retry: Op[] = [];
        let failure: unknown = null;
        try {
          if (ops.length === 1) {
            const op = ops[0] as Op;
            try {
              const r = await this.client.call(op.method, op.params);
              this.counters.sent++;
              op.done?.resolve(r);
            } catch (e) {
              if (this.isRetryable(e)) {
                retry = [op];
                failure = e;
              } else if (this.isStale(e)) {
                const err = new StalePasskeyError(`${op.method} refused: ${(e as Error).message}`);
                this.setFatal(err);
                op.done?.reject(err);
              } else if (op.carried && e instanceof RpcError && e.code === RpcErrorCode.INVALID_PARAMS) {
                // a mon that does not know stats/logs/files in pilot.finish: send them on their own first
                this.noCarry = true;
                this.logger.warn('mon does not take updates with pilot.finish; sending them separately', { error: e.message });
                const plain = { ...op.params };
                delete plain.stats;
                delete plain.logs;
                delete plain.files;
                const { carried, ...rest } = op;
                this.queue.unshift(...carried, { ...rest, params: plain });
              } else {
                this.logger.error('mon rejected an update; dropping it', { method: op.method, error: (e as Error).message });
                op.done?.reject(coerceError(e));
              }
            }
          } else {
            this.counters.batches++;
            const results = await this.client.batch(ops.map((o) => ({ method: o.method, params: o.params })));
            results.forEach((r, i) => {
              const op = ops[i] as Op;
              if (r instanceof RpcError) {
                if (this.isRetryable(r)) {
                  retry.push(op);
                  failure = r;
                } else if (this.isStale(r)) {
                  this.setFatal(new StalePasskeyError(`${op.method} refused: ${r.message}`));
                } else {
                  this.logger.error('mon rejected an update; dropping it', { method: op.method, error: r.message });
                  op.done?.reject(r);
                }
              } else {
                this.counters.sent++;
                op.done?.resolve(r);
              }
            });
          }
        } catch (e) {
          // the whole request failed to travel
          if (this.isRetryable(e)) {
            retry = ops;
            failure = e;
          } else {
            this.logger.error('mon rejected a batch of updates; dropping it', { calls: ops.length, error: coerceError(e).message });
            for (const op of ops) op.done?.reject(coerceError(e));
          }
        }
        if (this.fatal) break;
        if (retry.length) {
          this.requeue(retry);
          this.counters.failures++;
          const d = this.delay(++attempt, failure);
          this.logger.warn('mon unreachable; buffering updates', { error: coerceError(failure).message, pending: this.queue.length, retry_in_ms: d });
          await this.sleep(d);
        } else {
          if (attempt > 0) this.logger.info('mon reachable again', { pending: this.queue.length });
          attempt = 0;
        }
      }
    } finally {
      this.pumping = false;
      if (!this.queue.length || this.fatal || this.closed) this.notifyIdle();
      else if (!this.closed) void this.pump();
    }
  }
}

// ---------------------------------------------------------------------------------------------
// File (unmonitored mode)

export interface FileReporterOptions {
  configFile: string;
  outDir: string;
  taskName?: string;
  job?: number;
  dataset?: number;
  jobsTotal?: number;
  args?: Record<string, unknown>;
  /** Default: file://<outDir>/outputs */
  siteTemp?: string;
  heartbeatSeconds?: number;
}

/** The report an unmonitored run writes to <out>/report.json. */
export interface RunReport {
  status: 'ok' | 'failed';
  error?: string;
  task: StartResult['task'];
  stats: Stats;
  outputs: OutputFile[];
  resources?: ResourceSummary;
  last_heartbeat?: Heartbeat;
  logs: string[];
  started: string;
  finished: string;
}

export class FileReporter implements Reporter {
  private startResult: StartResult | null = null;
  private readonly collected: { stats: Stats; outputs: OutputFile[]; heartbeat?: Heartbeat; logs: Set<string> } = {
    stats: {},
    outputs: [],
    logs: new Set(),
  };
  private readonly started = new Date();

  constructor(private readonly opts: FileReporterOptions) {}

  get reportPath(): string {
    return path.join(this.opts.outDir, 'report.json');
  }

  async start(): Promise<StartResult> {
    let config: DatasetConfig;
    try {
      config = JSON.parse(await fs.promises.readFile(this.opts.configFile, 'utf8')) as DatasetConfig;
    } catch (e) {
      throw new ConfigError(`cannot read dataset config ${this.opts.configFile}: ${coerceError(e).message}`);
    }
    if (!config || !Array.isArray(config.tasks) || !config.tasks.length) throw new ConfigError(`${this.opts.configFile}: the config has no tasks`);
    const index = this.opts.taskName ? config.tasks.findIndex((t) => t.name === this.opts.taskName) : 0;
    const task = config.tasks[index];
    if (!task) throw new ConfigError(`${this.opts.configFile}: no task named ${JSON.stringify(this.opts.taskName)} (tasks: ${config.tasks.map((t) => t.name).join(', ')})`);
    await fs.promises.mkdir(this.opts.outDir, { recursive: true });
    const job = this.opts.job ?? 0;
    const result: StartResult = {
      task: {
        id: 0,
        name: task.name,
        task_index: index,
        dataset_id: this.opts.dataset ?? 0,
        job_id: job,
        job_index: job,
        jobs_total: this.opts.jobsTotal ?? 1,
        // the task's own requirements are read from the config by the runner
        requirements: {},
      },
      config,
      args: this.opts.args ?? {},
      inputs: [],
      external_modules: [],
      system: {
        site_temp: this.opts.siteTemp ?? pathToFileURL(path.join(path.resolve(this.opts.outDir), 'outputs')).href,
        heartbeat_seconds: this.opts.heartbeatSeconds ?? 60,
      },
    };
    this.startResult = result;
    return result;
  }

  heartbeat(h: Heartbeat): void {
    this.collected.heartbeat = { ...h };
  }
  stats(stats: Stats): void {
    for (const [k, v] of Object.entries(stats)) this.collected.stats[k] = (this.collected.stats[k] ?? 0) + v;
  }
  log(name: string, data: string, append = false): void {
    const dir = path.join(this.opts.outDir, 'logs');
    fs.mkdirSync(dir, { recursive: true });
    const file = path.join(dir, name.replace(/[^A-Za-z0-9._-]/g, '_'));
    if (append) fs.appendFileSync(file, data);
    else fs.writeFileSync(file, data);
    this.collected.logs.add(name);
  }
  files(files: OutputFile[]): void {
    this.collected.outputs.push(...files);
  }
  async finish(ok: boolean, error?: string, resources?: ResourceSummary): Promise<{ status?: string }> {
    if (!this.startResult) throw new FirnError('finish before start');
    const report: RunReport = {
      status: ok ? 'ok' : 'failed',
      ...(error !== undefined ? { error } : {}),
      task: this.startResult.task,
      stats: this.collected.stats,
      outputs: this.collected.outputs,
      ...(resources ? { resources } : {}),
      ...(this.collected.heartbeat ? { last_heartbeat: this.collected.heartbeat } : {}),
      logs: [...this.collected.logs].sort(),
      started: this.started.toISOString(),
      finished: new Date().toISOString(),
    };
    const tmp = `${this.reportPath}.tmp`;
    await fs.promises.writeFile(tmp, JSON.stringify(report, null, 2) + '\n');
    await fs.promises.rename(tmp, this.reportPath);
    return { status: report.status };
  }
  async flush(): Promise<void> {}
  onFatal(): void {}
  async close(): Promise<void> {}
}
