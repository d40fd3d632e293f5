import {
  FirnError, RateLimitedError, RpcErrorCode, TaskStatus, UnavailableError, ValidationError, chunk, coerceError, isDatabaseUnavailable,
  isMysql, nullLogger, withTransaction,
  type Db, type Logger, type Trx, type ValidationIssue,
} from '@firn/core';
import { forUpdate, passkeyValid, stalePasskeyError, takeWriteLock } from './passkey';

/**
 * The hot path of firn-mon: heartbeats, statistics and logs from many pilots are queued and
 * written together, in ONE transaction per flush:
 *
 *   1. one `SELECT … FOR UPDATE` of every task in the batch — each update's passkey digest is
 *      checked there, under lock, so a stale pilot can never write (no cache to go stale);
 *   2. heartbeats: one multi-row UPDATE per 500 tasks, joining `task` to the new values as a
 *      derived table (MySQL: `UPDATE … JOIN (SELECT … UNION ALL …)`, SQLite: `UPDATE … FROM
 *      (VALUES …)`) — linear in the batch, where a `CASE id WHEN …` per column is quadratic;
 *   3. statistics: one multi-row upsert into `task_stat` per 500 rows;
 *   4. logs: multi-row upserts into `task_log` that append in SQL while a log is under the cap,
 *      and rewrite the tail (computed here, at a UTF-8 boundary) once it would exceed it.
 *
 * A flush runs when the oldest queued update is `flushMs` old, or at once when `triggerSize`
 * updates wait or someone waits for a flush (pilot.finish, shutdown). On MySQL/MariaDB a second
 * flush may run while one commits, over other tasks only, so a task's updates keep their order.
 * `enqueue` resolves only after the update's transaction has committed (ack-after-flush: an OK
 * to the pilot means written), or rejects with -32009 (stale passkey), -32602 (a value no column
 * can hold: checked before it is queued), -32029 (more than `maxPending` updates waiting: back
 * off), -32050 (the database cannot be reached: retry) or -32603 (the database refused it).
 *
 * One bad update never fails the others: a flush that fails for any reason but an outage is
 * split in halves and each half written again (recursively), so only the update(s) the
 * database refuses are answered with the error — a few more transactions for each bad update
 * (about 2·log2(batch)), none for a batch without one.
 */

export const HEARTBEAT_COLUMNS = ['cpu_seconds', 'rss_mb', 'disk_mb', 'wall_seconds', 'gpu_util'] as const;
export type HeartbeatColumn = (typeof HEARTBEAT_COLUMNS)[number];

export type PendingUpdate =
  | { kind: 'heartbeat'; taskId: number; digest: string; values: Partial<Record<HeartbeatColumn, number>> }
  | { kind: 'stats'; taskId: number; digest: string; stats: Record<string, number> }
  | { kind: 'log'; taskId: number; digest: string; name: string; data: string; append: boolean };

/** The database refused this update (not an outage: that is -32050); details are in firn-mon's log. */
export class StorageUnavailableError extends FirnError {
  override readonly code = RpcErrorCode.INTERNAL_ERROR;
}

/** Largest task id (task.id is INT UNSIGNED on MySQL/MariaDB). */
export const MAX_TASK_ID = 4294967295;
/** Largest heartbeat value accepted (seconds, MB or percent: far beyond any real node). */
export const MAX_HEARTBEAT_VALUE = 1e12;
/** Statistics are bounded so that dataset sums of squares stay finite. */
export const MAX_STAT_ABS = 1e150;

/**
 * Check an update before it joins a batch (the schemas check the same for RPC calls; this keeps
 * the batcher safe for any caller): a value that no column can hold would fail the whole flush.
 * Paths are those of the RPC params.
 */
export function updateIssues(u: PendingUpdate): ValidationIssue[] {
  const issues: ValidationIssue[] = [];
  if (!(Number.isSafeInteger(u.taskId) && u.taskId >= 1 && u.taskId <= MAX_TASK_ID)) {
    issues.push({ path: '/params/task_id', message: `must be an integer 1..${MAX_TASK_ID}` });
  }
  if (typeof u.digest !== 'string' || !/^[0-9a-f]{64}$/.test(u.digest)) issues.push({ path: '/params/passkey', message: 'is invalid' });
  if (u.kind === 'heartbeat') {
    for (const [k, v] of Object.entries(u.values)) {
      if (!(HEARTBEAT_COLUMNS as readonly string[]).includes(k)) issues.push({ path: `/params/${k}`, message: 'is not an allowed property' });
      else if (!(typeof v === 'number' && Number.isFinite(v) && v >= 0 && v <= MAX_HEARTBEAT_VALUE)) {
        issues.push({ path: `/params/${k}`, message: `must be a number 0..${MAX_HEARTBEAT_VALUE}` });
      }
    }
  } else if (u.kind === 'stats') {
    for (const [k, v] of Object.entries(u.stats)) {
      const path = `/params/stats/${k.length > 64 ? `${k.slice(0, 64)}…` : k}`;
      if (k.length < 1 || k.length > 190) issues.push({ path, message: 'name must be 1..190 characters' });
      if (!(typeof v === 'number' && Number.isFinite(v) && Math.abs(v) <= MAX_STAT_ABS)) issues.push({ path, message: `must be a number within ±${MAX_STAT_ABS}` });
    }
  } else {
    if (typeof u.name !== 'string' || u.name.length < 1 || u.name.length > 64) issues.push({ path: '/params/name', message: 'must be 1..64 characters' });
    if (typeof u.data !== 'string') issues.push({ path: '/params/data', message: 'must be a string' });
  }
  return issues;
}

export interface FlushInfo {
  updates: number;
  tasks: number;
  /** How long the batch's oldest update had waited when the flush started, ms. */
  waitedMs: number;
  rejected: number;
  seconds: number;
  ok: boolean;
}

export interface WriteBatcherOptions {
  db: Db;
  /** A flush runs at the latest this long after the oldest waiting update arrived (≤ 100). */
  flushMs: number;
  /** Updates waiting (queued + being written) beyond which new ones are refused with -32029. */
  maxPending: number;
  /** Bytes of each task log kept (the tail). */
  logCap: number;
  /** Flush at once when this many updates wait (default min(1000, maxPending / 4)). */
  triggerSize?: number;
  /** Largest number of updates written by one transaction (default 5000). */
  maxBatch?: number;
  /**
   * Flush transactions allowed to run side by side (MySQL/MariaDB only, default 2; SQLite: 1).
   * They never share a task, so each task's updates are still written in arrival order.
   */
  maxConcurrentFlushes?: number;
  logger?: Logger;
  onFlush?: (info: FlushInfo) => void;
  /** Called for every update refused by the passkey check. */
  onStale?: (u: PendingUpdate) => void;
}

interface Entry {
  update: PendingUpdate;
  at: number;
  resolve: () => void;
  reject: (e: Error) => void;
  /** Resolves (never rejects) once the entry is answered either way. */
  settled: Promise<void>;
  settle: () => void;
}

/** Rows per multi-row statement: keeps bindings under SQLite's 32766 and MySQL's 65535. */
const ROWS_PER_STATEMENT = 500;
/** Bytes of log text per multi-row log statement (under MariaDB's default 16 MB max_allowed_packet). */
const LOG_BYTES_PER_STATEMENT = 4 * 1024 * 1024;

export class WriteBatcher {
  private readonly db: Db;
  private readonly mysql: boolean;
  private readonly flushMs: number;
  private readonly maxPending: number;
  private readonly logCap: number;
  private readonly triggerSize: number;
  private readonly maxBatch: number;
  private readonly maxConcurrent: number;
  private readonly logger: Logger;
  private queue: Entry[] = [];
  /** Entries being written, and how many of each task's (a task is in one flush at a time). */
  private inFlight = new Set<Entry>();
  private inFlightTasks = new Map<number, number>();
  private active = 0;
  private closed = false;
  private timer: NodeJS.Timeout | null = null;
  /** Callers waiting for a flush (flush/flushTask/close): flush now rather than at the timer. */
  private urgent = 0;

  constructor(private readonly options: WriteBatcherOptions) {
    if (!(options.flushMs >= 1 && options.flushMs <= 100)) throw new RangeError(`[mon] flush_ms must be 1..100, got ${options.flushMs}`);
    if (!(options.maxPending >= 1)) throw new RangeError(`[mon] max_pending must be a positive integer, got ${options.maxPending}`);
    if (!(options.logCap >= 1)) throw new RangeError(`[mon] log_cap must be a positive integer, got ${options.logCap}`);
    this.db = options.db;
    this.mysql = isMysql(options.db);
    this.flushMs = options.flushMs;
    this.maxPending = options.maxPending;
    this.logCap = options.logCap;
    this.triggerSize = Math.max(1, options.triggerSize ?? Math.min(1000, Math.floor(options.maxPending / 4)));
    this.maxBatch = Math.max(1, options.maxBatch ?? 5000);
    // SQLite has one connection (and one writer): overlapping flushes would only queue on it
    this.maxConcurrent = this.mysql ? Math.max(1, options.maxConcurrentFlushes ?? 2) : 1;
    this.logger = options.logger ?? nullLogger;
  }

  /** Updates waiting: queued plus being written. */
  get pending(): number {
    return this.queue.length + this.inFlight.size;
  }

  /** Queue an update; resolves once it is committed. */
  enqueue(update: PendingUpdate): Promise<void> {
    if (this.closed) return Promise.reject(new UnavailableError('unavailable, retry: firn-mon is shutting down', { retry_after_ms: 5000 }));
    const issues = updateIssues(update);
    if (issues.length) return Promise.reject(new ValidationError(`invalid ${update.kind} update`, issues));
    if (this.pending >= this.maxPending) {
      return Promise.reject(new RateLimitedError(`too many pending updates (${this.maxPending}); retry later`, { retry_after_ms: this.flushMs * 2 }));
    }
    return new Promise<void>((resolve, reject) => {
      let settle!: () => void;
      const settled = new Promise<void>((r) => (settle = r));
      this.queue.push({ update, at: Date.now(), resolve, reject, settled, settle });
      this.schedule();
    });
  }

  /** Wait until every update queued so far is answered (written, or refused). */
  async flush(): Promise<void> {
    await this.waitFor([...this.queue, ...this.inFlight]);
  }

  /** Wait until this task's queued updates are answered (pilot.finish calls it first). */
  async flushTask(taskId: number): Promise<void> {
    await this.waitFor([...this.queue, ...this.inFlight].filter((e) => e.update.taskId === taskId));
  }

  private async waitFor(entries: Entry[]): Promise<void> {
    if (entries.length === 0) return;
    this.urgent++;
    try {
      this.schedule();
      await Promise.all(entries.map((e) => e.settled));
    } finally {
      this.urgent--;
    }
  }

  /** Refuse new updates, write everything queued, and wait for it. */
  async close(): Promise<void> {
    this.closed = true;
    await this.flush();
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
  }

  private schedule(): void {
    while (this.active < this.maxConcurrent && this.queue.length > 0) {
      const age = Date.now() - this.queue[0]!.at;
      const urgent = this.queue.length >= this.triggerSize || this.urgent > 0 || this.closed;
      if (!urgent && age < this.flushMs) {
        if (!this.timer) {
          this.timer = setTimeout(() => {
            this.timer = null;
            this.schedule();
          }, this.flushMs - age);
        }
        return;
      }
      const batch = this.takeBatch();
      if (batch.length === 0) return; // every queued update's task is being written: wait for that flush
      void this.runBatch(batch);
    }
  }

  /**
   * The next batch: queued updates, oldest first, of tasks not in a flush being written — so
   * flushes running side by side touch disjoint tasks and each task's updates land in order.
   */
  private takeBatch(): Entry[] {
    const batch: Entry[] = [];
    const rest: Entry[] = [];
    for (const e of this.queue) {
      if (batch.length < this.maxBatch && !this.inFlightTasks.has(e.update.taskId)) batch.push(e);
      else rest.push(e);
    }
    this.queue = rest;
    for (const e of batch) {
      this.inFlight.add(e);
      this.inFlightTasks.set(e.update.taskId, (this.inFlightTasks.get(e.update.taskId) ?? 0) + 1);
    }
    return batch;
  }

  private async runBatch(batch: Entry[]): Promise<void> {
    this.active++;
    const waitedMs = Date.now() - Math.min(...batch.map((e) => e.at));
    const started = process.hrtime.bigint();
    const answers = new Map<Entry, Error | null>();
    let ok = true;
    try {
      ok = await this.writeIsolating(batch, answers);
    } catch (e) {
      // writeIsolating answers every entry itself; this is only a safety net
      ok = false;
      this.logger.error('flush of pilot updates failed', { updates: batch.length, error: clip(coerceError(e).message) });
    }
    const seconds = Number(process.hrtime.bigint() - started) / 1e9;
    let rejected = 0;
    for (const entry of batch) {
      const answer = answers.has(entry) ? answers.get(entry)! : new StorageUnavailableError('firn-mon could not store the update');
      if (answer === null) {
        entry.resolve();
      } else {
        if (answer instanceof FirnError && answer.code === RpcErrorCode.CONFLICT) {
          rejected++;
          this.options.onStale?.(entry.update);
        }
        entry.reject(answer);
      }
      entry.settle();
      this.inFlight.delete(entry);
      const n = (this.inFlightTasks.get(entry.update.taskId) ?? 1) - 1;
      if (n > 0) this.inFlightTasks.set(entry.update.taskId, n);
      else this.inFlightTasks.delete(entry.update.taskId);
    }
    const tasks = new Set(batch.map((e) => e.update.taskId)).size;
    this.options.onFlush?.({ updates: batch.length, tasks, waitedMs, rejected, seconds, ok });
    this.active--;
    this.schedule();
  }

  /**
   * Write `entries` in one transaction and record each one's answer (null: written). When the
   * transaction fails — and the database is reachable — write each half again on its own, down
   * to the single update the database refuses. Returns false when any write failed.
   */
  private async writeIsolating(entries: Entry[], answers: Map<Entry, Error | null>): Promise<boolean> {
    try {
      const outcomes = await withTransaction(this.db, (trx) => this.write(trx, entries));
      entries.forEach((entry, i) => answers.set(entry, outcomes[i] ? null : stalePasskeyError()));
      return true;
    } catch (e) {
      const failure = coerceError(e);
      if (isDatabaseUnavailable(e)) { // the thrown value itself: coerceError may have wrapped it
        this.logger.warn('flush of pilot updates failed: database unavailable', { updates: entries.length, error: clip(failure.message) });
        const answer = new UnavailableError('unavailable, retry: firn-mon cannot reach its database', { retry_after_ms: 2000 });
        for (const entry of entries) answers.set(entry, answer);
        return false;
      }
      if (entries.length === 1) {
        const u = entries[0]!.update;
        this.logger.error('pilot update refused by the database', { task: u.taskId, kind: u.kind, error: clip(failure.message) });
        answers.set(entries[0]!, new StorageUnavailableError('firn-mon could not store the update'));
        return false;
      }
      const mid = Math.ceil(entries.length / 2);
      const first = await this.writeIsolating(entries.slice(0, mid), answers);
      const second = await this.writeIsolating(entries.slice(mid), answers);
      return first && second;
    }
  }

  /** One flush's writes; returns per entry whether it was accepted (its passkey valid). */
  private async write(trx: Trx, batch: Entry[]): Promise<boolean[]> {
    const ids = [...new Set(batch.map((e) => e.update.taskId))].sort((a, b) => a - b);
    await takeWriteLock(trx);
    const tasks = new Map<number, { id: number; dataset_id: number; status: string; passkey_hash: string | null }>();
    for (const part of chunk(ids, ROWS_PER_STATEMENT)) {
      const rows = (await forUpdate(trx, trx('task').select('id', 'dataset_id', 'status', 'passkey_hash').whereIn('id', part))) as Array<{
        id: number; dataset_id: number; status: string; passkey_hash: string | null;
      }>;
      for (const r of rows) tasks.set(Number(r.id), r);
    }
    const outcomes = batch.map((e) => passkeyValid(tasks.get(e.update.taskId), e.update.digest, [TaskStatus.PROCESSING]));
    await this.apply(trx, batch.filter((_, i) => outcomes[i]).map((e) => e.update), (id) => Number(tasks.get(id)!.dataset_id));
    return outcomes;
  }

  /**
   * Write updates whose passkeys the caller has checked, with the task rows locked, in the
   * caller's transaction (a flush; pilot.finish with its last stats and logs). Heartbeats,
   * statistics and logs as described at the top: a few multi-row statements for all of them.
   */
  async apply(trx: Trx, updates: readonly PendingUpdate[], datasetOf: (taskId: number) => number): Promise<void> {
    const heartbeats = new Map<number, Partial<Record<HeartbeatColumn, number>>>();
    const stats = new Map<string, { task_id: number; dataset_id: number; name: string; value: number }>();
    const logs = new Map<string, { taskId: number; name: string; replace: boolean; text: string }>();
    for (const u of updates) {
      if (u.kind === 'heartbeat') {
        heartbeats.set(u.taskId, { ...heartbeats.get(u.taskId), ...u.values });
      } else if (u.kind === 'stats') {
        const datasetId = datasetOf(u.taskId);
        for (const [name, value] of Object.entries(u.stats)) stats.set(`${u.taskId}\u0000${name}`, { task_id: u.taskId, dataset_id: datasetId, name, value });
      } else {
        const key = `${u.taskId}\u0000${u.name}`;
        const cur = logs.get(key);
        if (!u.append || !cur) logs.set(key, { taskId: u.taskId, name: u.name, replace: !u.append, text: u.data });
        else cur.text += u.data;
      }
    }

    await this.writeHeartbeats(trx, heartbeats);
    for (const part of chunk([...stats.values()], ROWS_PER_STATEMENT)) {
      await trx('task_stat').insert(part).onConflict(['task_id', 'name']).merge(['value']);
    }
    await this.writeLogs(trx, [...logs.values()]);
  }

  private async writeHeartbeats(trx: Trx, heartbeats: Map<number, Partial<Record<HeartbeatColumn, number>>>): Promise<void> {
    if (heartbeats.size === 0) return;
    const t = Date.now(); // last_heartbeat_at: the flush time (the flush time: about flush_ms after the heartbeat arrived)
    for (const part of chunk([...heartbeats.entries()], ROWS_PER_STATEMENT)) {
      const cols = HEARTBEAT_COLUMNS.filter((c) => part.some(([, v]) => v[c] !== undefined));
      // the new values as a derived table joined on id: linear in the batch (a CASE per column is quadratic)
      const bindings: Array<number | null> = part.flatMap(([id, v]) => [id, ...cols.map((c) => v[c] ?? null)]);
      const row = `(${['?', ...cols.map(() => '?')].join(', ')})`;
      if (this.mysql) {
        const rows = part
          .map((_, i) => (i === 0 ? `SELECT ? AS id${cols.map((c) => `, ? AS ${c}`).join('')}` : `SELECT ?${cols.map(() => ', ?').join('')}`))
          .join(' UNION ALL ');
        const sets = [...cols.map((c) => `t.${c} = COALESCE(v.${c}, t.${c})`), 't.last_heartbeat_at = ?'];
        await trx.raw(`UPDATE task t JOIN (${rows}) v ON t.id = v.id SET ${sets.join(', ')} WHERE t.status = ?`, [...bindings, t, TaskStatus.PROCESSING]);
      } else {
        // SQLite names VALUES columns column1, column2, …
        const sets = [...cols.map((c, i) => `${c} = COALESCE(v.column${i + 2}, ${c})`), 'last_heartbeat_at = ?'];
        await trx.raw(
          `UPDATE task SET ${sets.join(', ')} FROM (VALUES ${part.map(() => row).join(', ')}) AS v WHERE task.id = v.column1 AND task.status = ?`,
          [t, ...bindings, TaskStatus.PROCESSING], // SET's placeholder comes before FROM's here
        );
      }
    }
  }

  /**
   * Logs keep their last `logCap` bytes. Appends that keep a log under the cap are done in SQL
   * (CONCAT / ||) without reading it; a log that would overflow is read, cut here at a UTF-8
   * character boundary and rewritten.
   */
  private async writeLogs(trx: Trx, logs: Array<{ taskId: number; name: string; replace: boolean; text: string }>): Promise<void> {
    if (logs.length === 0) return;
    const t = Date.now();
    const cap = this.logCap;
    const replaceRows: Array<{ task_id: number; name: string; data: string }> = [];
    const appendRows: Array<{ task_id: number; name: string; data: string }> = [];
    const appends = logs.filter((l) => {
      if (l.replace || Buffer.byteLength(l.text) >= cap) {
        replaceRows.push({ task_id: l.taskId, name: l.name, data: tailBytes(l.text, cap) });
        return false;
      }
      return true;
    });
    if (appends.length) {
      const lengthExpr = this.mysql ? 'LENGTH(data)' : 'LENGTH(CAST(data AS BLOB))';
      const existing = new Map<string, number>();
      for (const part of chunk([...new Set(appends.map((l) => l.taskId))], ROWS_PER_STATEMENT)) {
        const rows = (await trx('task_log').select('task_id', 'name', trx.raw(`${lengthExpr} AS len`)).whereIn('task_id', part)) as Array<{
          task_id: number; name: string; len: number | null;
        }>;
        for (const r of rows) existing.set(`${r.task_id}\u0000${r.name}`, Number(r.len ?? 0));
      }
      const overflow: typeof appends = [];
      for (const l of appends) {
        const len = existing.get(`${l.taskId}\u0000${l.name}`);
        if (len === undefined || len + Buffer.byteLength(l.text) <= cap) appendRows.push({ task_id: l.taskId, name: l.name, data: l.text });
        else overflow.push(l);
      }
      for (const part of chunk(overflow, ROWS_PER_STATEMENT)) {
        const rows = (await trx('task_log')
          .select('task_id', 'name', 'data')
          .where((q) => {
            for (const l of part) void q.orWhere({ task_id: l.taskId, name: l.name });
          })) as Array<{ task_id: number; name: string; data: string | null }>;
        const data = new Map(rows.map((r) => [`${r.task_id}\u0000${r.name}`, r.data ?? '']));
        for (const l of part) {
          replaceRows.push({ task_id: l.taskId, name: l.name, data: tailBytes((data.get(`${l.taskId}\u0000${l.name}`) ?? '') + l.text, cap) });
        }
      }
    }
    const upsert = async (rows: Array<{ task_id: number; name: string; data: string }>, append: boolean) => {
      for (const part of chunkByBytes(rows, ROWS_PER_STATEMENT, LOG_BYTES_PER_STATEMENT)) {
        const values = part.map(() => '(?, ?, ?, ?)').join(', ');
        const bindings = part.flatMap((r) => [r.task_id, r.name, r.data, t]);
        const sql = this.mysql
          ? `INSERT INTO task_log (task_id, name, data, updated_at) VALUES ${values} ON DUPLICATE KEY UPDATE ` +
            (append ? 'data = CONCAT(COALESCE(data, \'\'), VALUES(data))' : 'data = VALUES(data)') +
            ', updated_at = VALUES(updated_at)'
          : `INSERT INTO task_log (task_id, name, data, updated_at) VALUES ${values} ON CONFLICT (task_id, name) DO UPDATE SET ` +
            (append ? 'data = COALESCE(task_log.data, \'\') || excluded.data' : 'data = excluded.data') +
            ', updated_at = excluded.updated_at';
        await trx.raw(sql, bindings);
      }
    };
    await upsert(appendRows, true);
    await upsert(replaceRows, false);
  }
}

/** Error text as logged: database errors quote the statement and its values, which may be megabytes. */
function clip(s: string): string {
  return s.length > 2048 ? `${s.slice(0, 2047)}…` : s;
}

/** The last `cap` bytes of `s` as UTF-8, starting at a character boundary. */
export function tailBytes(s: string, cap: number): string {
  const buf = Buffer.from(s, 'utf8');
  if (buf.length <= cap) return s;
  let start = buf.length - cap;
  while (start < buf.length && (buf[start]! & 0xc0) === 0x80) start++; // skip continuation bytes
  return buf.subarray(start).toString('utf8');
}

function chunkByBytes<T extends { data: string }>(rows: T[], maxRows: number, maxBytes: number): T[][] {
  const out: T[][] = [];
  let cur: T[] = [];
  let bytes = 0;
  for (const r of rows) {
    const b = Buffer.byteLength(r.data);
    if (cur.length > 0 && (cur.length >= maxRows || bytes + b > maxBytes)) {
      out.push(cur);
      cur = [];
      bytes = 0;
    }
    cur.push(r);
    bytes += b;
  }
  if (cur.length) out.push(cur);
  return out;
}
