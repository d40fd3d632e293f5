import crypto from 'node:crypto';
import {
  ConflictError, RateLimitedError, StorageRoots, TaskStatus, ValidationError, chunk, coerceError, declaredOutputs, findTaskConfig, isMysql, now,
  outputContext, recordHistory, sha256Hex, transition, withTransaction,
  type DatasetConfig, type Db, type DeclaredOutput, type Logger, type RpcMethod, type Trx, type ValidationIssue,
} from '@firn/core';
import { ImmutableCache } from './immutable-cache';
import { forUpdate, passkeyDigest, passkeyValid, stalePasskeyError, takeWriteLock } from './passkey';
import { HEARTBEAT_COLUMNS, type HeartbeatColumn, type PendingUpdate, type WriteBatcher } from './write-batcher';

/**
 * The pilot.* JSON-RPC methods of ARCHITECTURE.md (params validated against
 * schemas/rpc/pilot.*.json before a handler runs). Every call carries task_id + passkey; an
 * unknown task, a wrong passkey and a stale one all get -32009 "invalid or stale passkey".
 *
 * heartbeat / stats / log go through the WriteBatcher (one transaction per flush, answered after
 * the commit); start / files / finish run their own transaction.
 *
 * Statistics rule: `pilot.stats` writes `task_stat` (a name's value replaces the earlier one);
 * firn-dh folds the task's rows into `dataset_stat` when the task reaches OK (core's
 * dataset-stats.ts), never mon: a task whose copy fails and is retried counts once, when it is
 * OK. `pilot.start` of a new attempt (QUEUED → PROCESSING) deletes the rows an earlier attempt left.
 *
 * Output locations are the server's (core's output-locations.ts): a pilot reports its outputs by
 * the local names its task declares (data[] with movement output | both); mon derives each
 * one's destination (url), staging location (temp_url) and type from the dataset config and
 * stores those. A record naming anything else — an undeclared name, a url / temp_url / type
 * that differs from the derivation, a location outside site temp and `[dh] destinations` — is
 * refused with -32602 naming the field (`/files/0/local_name`), logged, counted (metrics reason
 * `outputs`) and recorded in history (action `refuse`); the whole call is rolled back. A
 * `pilot.finish ok` of a task some declared output of which was never stored ends the task
 * ERROR (failures + 1) instead of READYTOCOPY: a refused output never yields an OK task.
 *
 * Black holes: `pilot.start` from a host whose node row is black-holed (node.blackholed_until
 * in the future, set by firn-dh) is refused with -32009 "host … is black-holed" and a history
 * row (action `refuse`); the task stays QUEUED — mon may not evict — and the pilot exits
 * (a -32009 at start is fatal to it), so the batch job ends without a pilot and firn-queue's
 * reconcile makes the task EVICTED, which the retry policy resets. A retried start of a task
 * already PROCESSING is not refused (it runs there already).
 */

// ------------------------------------------------------------------- params and results

export interface PilotAuth {
  task_id: number;
  passkey: string;
}
export interface StartParams extends PilotAuth {
  host?: string;
  /** The pilot's random start nonce (one per execution): fences a second copy of one attempt. */
  attempt?: string;
  resources?: { cpus?: number; memory_mb?: number; gpus?: number };
}
export type HeartbeatParams = PilotAuth & Partial<Record<HeartbeatColumn, number>>;
export interface StatsParams extends PilotAuth {
  stats: Record<string, number>;
}
export interface LogParams extends PilotAuth {
  name: string;
  data: string;
  append?: boolean;
}
export interface OutputFile {
  local_name: string;
  /** Optional since the server derives it; when sent it must equal the derivation. */
  url?: string;
  temp_url?: string | null;
  type?: 'permanent' | 'job_temp' | 'dataset_temp';
  size: number;
  md5: string;
  sha256: string;
}
export interface FilesParams extends PilotAuth {
  files: OutputFile[];
}
export interface FinishParams extends PilotAuth {
  ok: boolean;
  error?: string;
  resources?: Partial<Record<HeartbeatColumn, number>>;
  /** The task's last statistics, logs and output files, written with the outcome (optional). */
  stats?: Record<string, number>;
  logs?: Array<{ name: string; data: string; append?: boolean }>;
  files?: OutputFile[];
}

export interface StartResult {
  task: {
    id: number;
    name: string;
    task_index: number;
    dataset_id: number;
    job_id: number;
    job_index: number;
    jobs_total: number;
    requirements: { cpu: number; gpu: number; memory: number; disk: number; time: number };
  };
  /** The dataset's whole stored config (JSON). */
  config: unknown;
  /** The job's args (JSON), or {}. */
  args: unknown;
  inputs: Array<{ url: string; local_name: string; md5: string | null; sha256: string | null; size: number | null }>;
  external_modules: Array<{ tray: string; module: string; src: string | null; md5: string | null; sha256: string | null; content_base64: string }>;
  system: { site_temp?: string; heartbeat_seconds: number };
}

export interface PilotMethodsOptions {
  db: Db;
  batcher: WriteBatcher;
  /** `[system] site_temp`, told to pilots. */
  siteTemp?: string;
  /** Where outputs may be staged and delivered (default: site temp only, `[dh] destinations` unset). */
  roots?: StorageRoots;
  /** How often pilots should heartbeat. */
  heartbeatSeconds: number;
  logger: Logger;
  /** Counts calls received and refused (metrics). */
  onReceived?: (method: string) => void;
  onRefused?: (reason: 'stale' | 'backpressure' | 'outputs') => void;
}

/** Longest error summary kept (characters; the column is TEXT). */
const ERROR_SUMMARY_MAX = 16000;
/** Outcomes kept in node.recent. */
const NODE_RECENT = 64;
/** Statuses a finished-ok / finished-failed task may be in when a pilot retries pilot.finish. */
const AFTER_OK: readonly TaskStatus[] = [TaskStatus.READYTOCOPY, TaskStatus.COPYING, TaskStatus.COPIED, TaskStatus.OK];
const AFTER_FAIL: readonly TaskStatus[] = [TaskStatus.ERROR];

interface TaskRow {
  id: number;
  dataset_id: number;
  job_id: number;
  task_rel_id: number;
  task_index: number;
  name: string;
  status: string;
  passkey_hash: string | null;
  grid_id: number | null;
  host: string | null;
  req_cpu: number;
  req_gpu: number;
  req_memory: number;
  req_disk: number;
  req_time: number;
  started_at: number | string | null;
}

const TASK_COLUMNS = [
  'id', 'dataset_id', 'job_id', 'task_rel_id', 'task_index', 'name', 'status', 'passkey_hash', 'grid_id', 'host',
  'req_cpu', 'req_gpu', 'req_memory', 'req_disk', 'req_time', 'started_at',
];

/** Datasets' configs and tasks' external modules kept by one firn-mon (entries, ms). */
const STATIC_CACHE_ENTRIES = 256;
const STATIC_CACHE_MS = 10 * 60_000;

/** Lock and read the task, and check the passkey against it; -32009 when it does not fit. */
async function lockTask(trx: Trx, taskId: number, digest: string, statuses: readonly TaskStatus[]): Promise<TaskRow> {
  await takeWriteLock(trx);
  const row = (await forUpdate(trx, trx('task').select(TASK_COLUMNS).where({ id: taskId })).first()) as TaskRow | undefined;
  if (!passkeyValid(row, digest, statuses)) throw stalePasskeyError();
  return row!;
}

function pickResources(src: Partial<Record<HeartbeatColumn, number>> | undefined): Partial<Record<HeartbeatColumn, number>> {
  const out: Partial<Record<HeartbeatColumn, number>> = {};
  for (const c of HEARTBEAT_COLUMNS) if (src?.[c] !== undefined) out[c] = src[c];
  return out;
}

function parseJson(text: string | null | undefined, fallback: unknown): unknown {
  if (text === null || text === undefined || text === '') return fallback;
  try {
    return JSON.parse(text) as unknown;
  } catch {
    return fallback;
  }
}

/**
 * An external module's cached copy as base64. `module.src_content` holds the fetched text; if it
 * was stored base64-encoded already (its decoded bytes match src_sha256) it is passed as is.
 */
export function moduleContentBase64(content: string, sha256: string | null): string {
  if (sha256) {
    const lower = sha256.toLowerCase();
    if (sha256Hex(content) === lower) return Buffer.from(content, 'utf8').toString('base64');
    if (/^[A-Za-z0-9+/]*={0,2}$/.test(content) && sha256HexBuffer(Buffer.from(content, 'base64')) === lower) return content;
  }
  return Buffer.from(content, 'utf8').toString('base64');
}

function sha256HexBuffer(b: Buffer): string {
  return crypto.createHash('sha256').update(b).digest('hex');
}

export function createPilotMethods(o: PilotMethodsOptions): Record<string, RpcMethod> {
  const { db, batcher } = o;
  const mysql = isMysql(db);
  const roots = o.roots ?? new StorageRoots({ siteTemp: o.siteTemp });
  const received = (m: string) => o.onReceived?.(m);

  /** Enqueue a batched update, counting refusals for the metrics. */
  const batched = async (p: Promise<void>): Promise<{ ok: true }> => {
    try {
      await p;
      return { ok: true };
    } catch (e) {
      const code = (e as { code?: number }).code;
      if (code === -32009) o.onRefused?.('stale');
      else if (code === -32029) o.onRefused?.('backpressure');
      throw e;
    }
  };

  /** Refusals of start/files/finish count as stale too. */
  const guarded = async <T>(fn: () => Promise<T>): Promise<T> => {
    try {
      return await fn();
    } catch (e) {
      if ((e as { code?: number }).code === -32009) o.onRefused?.('stale');
      throw e;
    }
  };

  /**
   * What a dataset's pilots all get and never changes once it is submitted (its config, each
   * task's external modules as base64): read once, kept for a while (bounded), not per start.
   */
  const configs = new ImmutableCache<unknown>(STATIC_CACHE_ENTRIES, STATIC_CACHE_MS);
  const modulesByTask = new ImmutableCache<StartResult['external_modules']>(STATIC_CACHE_ENTRIES, STATIC_CACHE_MS);

  // `q`: the caller's transaction when there is one — on SQLite the pool has one connection, and
  // a read through `db` inside a transaction would wait for it forever (pilot.finish after a
  // restart of mon, its cache empty, starved every other caller)
  const datasetConfig = (datasetId: number, q: Db | Trx = db) =>
    configs.get(String(datasetId), async () => {
      const row = (await q('dataset').select('config').where({ id: datasetId }).first()) as { config: string | null } | undefined;
      // an unknown dataset is not cached (its start will have failed anyway)
      return { value: parseJson(row?.config, {}), keep: row !== undefined };
    });

  const externalModules = (taskRelId: number) =>
    modulesByTask.get(String(taskRelId), async () => {
      const rows = (await db('module as m')
        .join('tray as t', 't.id', 'm.tray_id')
        .select('t.name as tray', 'm.name as module', 'm.src', 'm.src_md5', 'm.src_sha256', 'm.src_content')
        .where('t.task_rel_id', taskRelId)
        .whereNotNull('m.src_content')
        .orderBy([{ column: 't.tray_index' }, { column: 'm.module_index' }])) as Array<{
        tray: string; module: string; src: string | null; src_md5: string | null; src_sha256: string | null; src_content: string;
      }>;
      const value = rows.map((m) => ({
        tray: m.tray, module: m.module, src: m.src, md5: m.src_md5, sha256: m.src_sha256, content_base64: moduleContentBase64(m.src_content, m.src_sha256),
      }));
      return { value, keep: true };
    });

  async function startPayload(task: TaskRow): Promise<StartResult> {
    // the job, its dataset's job count (add_jobs changes it) and its input files: one query
    const [jobRows, config, modules] = await Promise.all([
      db('job as j')
        .join('dataset as d', 'd.id', 'j.dataset_id')
        .leftJoin('file as f', function () {
          this.on('f.job_id', '=', 'j.id').andOnVal('f.kind', '=', 'input').andOn((q) => {
            q.onNull('f.task_id').orOnVal('f.task_id', '=', task.id);
          });
        })
        .select('j.job_index', 'j.args', 'd.jobs_submitted', 'f.id as file_id', 'f.url', 'f.local_name', 'f.md5', 'f.sha256', 'f.size')
        .where('j.id', task.job_id)
        .orderBy('f.id') as Promise<Array<{
          job_index: number; args: string | null; jobs_submitted: number; file_id: number | null;
          url: string | null; local_name: string | null; md5: string | null; sha256: string | null; size: number | string | null;
        }>>,
      datasetConfig(task.dataset_id),
      externalModules(task.task_rel_id),
    ]);
    const job = jobRows[0];
    return {
      task: {
        id: Number(task.id),
        name: task.name,
        task_index: Number(task.task_index),
        dataset_id: Number(task.dataset_id),
        job_id: Number(task.job_id),
        job_index: Number(job?.job_index ?? 0),
        jobs_total: Number(job?.jobs_submitted ?? 0),
        requirements: {
          cpu: Number(task.req_cpu), gpu: Number(task.req_gpu), memory: Number(task.req_memory), disk: Number(task.req_disk), time: Number(task.req_time),
        },
      },
      config,
      args: parseJson(job?.args, {}) ?? {},
      inputs: jobRows
        .filter((f) => f.file_id !== null)
        .map((f) => ({ url: f.url!, local_name: f.local_name!, md5: f.md5, sha256: f.sha256, size: f.size === null ? null : Number(f.size) })),
      external_modules: modules,
      system: { ...(o.siteTemp ? { site_temp: o.siteTemp } : {}), heartbeat_seconds: o.heartbeatSeconds },
    };
  }

  /** pilot.start's work: the start payload, or why the host is refused (recorded in history). */
  const startTask = async (p: StartParams): Promise<StartResult | { refused: string }> => {
    received('pilot.start');
    const digest = passkeyDigest(p.passkey);
    const task = await withTransaction(db, async (trx): Promise<TaskRow | { refused: string; attempt?: true }> => {
      const row = await lockTask(trx, p.task_id, digest, [TaskStatus.QUEUEING, TaskStatus.QUEUED, TaskStatus.PROCESSING]);
      if (row.status === TaskStatus.PROCESSING) {
        // Fencing: a retried start of the pilot that started the task (same attempt nonce) gets
        // the same answer, no writes; any other start (another copy of the batch job, holding the
        // same passkey) is refused, so one attempt runs once. Without a nonce on either side
        // (pilots before migration 0005) a second start is a retry, as it was.
        const first = (await trx('task').first('attempt').where({ id: row.id })) as { attempt: string | null } | undefined;
        const stored = first?.attempt ?? null;
        if (stored === (p.attempt ?? null)) return row;
        await recordHistory(trx, {
          entity: 'task', entityId: row.id, datasetId: row.dataset_id, action: 'refuse', actor: 'mon',
          reason: 'pilot.start refused: the task was already started by another attempt',
        });
        return { refused: `task ${row.id} was already started by another attempt`, attempt: true };
      }
      // The batch job started before its site recorded the submission (QUEUEING → QUEUED
      // follows the submit command): the passkey is right, so "not yet", never "stale".
      if (row.status === TaskStatus.QUEUEING) throw new RateLimitedError(`task ${row.id} is still being queued by its site; retry pilot.start`);
      const t = now();
      const host = p.host ?? null;
      if (host) {
        const node = (await trx('node').first('blackholed_until').where('hostname', host).andWhere('blackholed_until', '>', t)) as
          | { blackholed_until: number | string }
          | undefined;
        if (node) {
          const refused = `host ${host} is black-holed until ${new Date(Number(node.blackholed_until)).toISOString()}`;
          await recordHistory(trx, {
            entity: 'task', entityId: row.id, datasetId: row.dataset_id, action: 'refuse', actor: 'mon', reason: `pilot.start refused: ${refused}`,
          });
          return { refused };
        }
      }
      await transition(trx, {
        taskIds: [row.id], from: TaskStatus.QUEUED, to: TaskStatus.PROCESSING, by: 'mon', actor: 'mon',
        reason: host ? `pilot started on ${host}` : 'pilot started',
        set: {
          host, started_at: t, last_heartbeat_at: t, finished_at: null, attempt: p.attempt ?? null,
          cpu_seconds: null, rss_mb: null, disk_mb: null, wall_seconds: null, gpu_util: null,
        },
      });
      // a new attempt: statistics an earlier attempt left behind do not belong to it (only an
      // attempt that started can have written any: pilot.stats needs PROCESSING)
      if (row.started_at != null) await trx('task_stat').where({ task_id: row.id }).delete();
      return { ...row, status: TaskStatus.PROCESSING, host };
    });
    if ('refused' in task) {
      if (task.attempt) o.logger.warn('pilot.start refused: the task runs in another attempt', { task: p.task_id, host: p.host });
      else o.logger.warn('pilot.start refused: black-holed host', { task: p.task_id, host: p.host });
      return { refused: task.refused };
    }
    // per-task events are in `history`; at info level they would be most of mon's log (and CPU)
    o.logger.debug('pilot started', { task: task.id, host: task.host ?? undefined });
    return startPayload(task);
  };

  const start: RpcMethod<StartParams, StartResult> = {
    handler: async (p) => {
      const started = await guarded(() => startTask(p));
      // outside guarded: a black-hole refusal is not a stale passkey in the metrics
      if ('refused' in started) throw new ConflictError(started.refused);
      return started;
    },
  };

  const heartbeat: RpcMethod<HeartbeatParams, { ok: true }> = {
    handler: (p) => {
      received('pilot.heartbeat');
      return batched(batcher.enqueue({ kind: 'heartbeat', taskId: p.task_id, digest: passkeyDigest(p.passkey), values: pickResources(p) }));
    },
  };

  const stats: RpcMethod<StatsParams, { ok: true }> = {
    handler: (p) => {
      received('pilot.stats');
      return batched(batcher.enqueue({ kind: 'stats', taskId: p.task_id, digest: passkeyDigest(p.passkey), stats: p.stats }));
    },
  };

  const log: RpcMethod<LogParams, { ok: true }> = {
    handler: (p) => {
      received('pilot.log');
      return batched(batcher.enqueue({ kind: 'log', taskId: p.task_id, digest: passkeyDigest(p.passkey), name: p.name, data: p.data, append: p.append ?? true }));
    },
  };

  /** The outputs a task declares, with their locations as the server derives them. */
  async function taskOutputs(trx: Trx, task: TaskRow): Promise<Map<string, DeclaredOutput>> {
    const config = (await datasetConfig(task.dataset_id, trx)) as DatasetConfig;
    const taskConfig = findTaskConfig(config, task.name, Number(task.task_index));
    if (!taskConfig || !(taskConfig.data ?? []).some((d) => d?.movement === 'output' || d?.movement === 'both')) return new Map();
    const job = (await trx('job as j').join('dataset as d', 'd.id', 'j.dataset_id')
      .select('j.job_index', 'j.args', 'd.jobs_submitted').where('j.id', task.job_id).first()) as
      | { job_index: number; args: string | null; jobs_submitted: number } | undefined;
    const args = parseJson(job?.args, {});
    const ctx = outputContext({
      config,
      args: (args && typeof args === 'object' ? args : {}) as Record<string, unknown>,
      at: { dataset: Number(task.dataset_id), job: Number(job?.job_index ?? 0), task: task.name },
      jobsTotal: Number(job?.jobs_submitted ?? 0),
      system: { heartbeat_seconds: o.heartbeatSeconds, ...(task.host ? { hostname: task.host } : {}) },
      siteTemp: o.siteTemp,
    });
    return declaredOutputs(taskConfig, ctx, o.siteTemp);
  }

  /**
   * Output files of a task, as mon derives them (one row per local_name: the last one wins; a
   * repeated name replaces the row). Throws ValidationError (-32602) naming every bad field.
   */
  async function writeOutputFiles(trx: Trx, task: TaskRow, files: readonly OutputFile[]): Promise<void> {
    if (files.length === 0) return;
    const declared = await taskOutputs(trx, task);
    const issues: ValidationIssue[] = [];
    const byName = new Map<string, { f: OutputFile; url: string; temp_url: string; type: string }>();
    files.forEach((f, i) => {
      const at = `/params/files/${i}`;
      const d = declared.get(f.local_name);
      if (!d) {
        const names = [...declared.keys()];
        issues.push({ path: `${at}/local_name`, message: `${JSON.stringify(f.local_name)} is not an output task ${task.name} declares (${names.length ? names.map((n) => JSON.stringify(n)).join(', ') : 'none'})` });
        return;
      }
      if ('error' in d) {
        issues.push({ path: `${at}/local_name`, message: `output ${JSON.stringify(f.local_name)} has no location: ${d.error}` });
        return;
      }
      const l = d.location;
      if (f.url !== undefined && f.url !== l.url) issues.push({ path: `${at}/url`, message: 'differs from the destination the dataset config gives' });
      if (f.temp_url !== undefined && f.temp_url !== null && f.temp_url !== l.temp_url) issues.push({ path: `${at}/temp_url`, message: 'differs from the staging location the dataset config gives' });
      if (f.type !== undefined && f.type !== l.type) issues.push({ path: `${at}/type`, message: `differs from the dataset config's type ${l.type}` });
      const destWhy = roots.destinationRefusal(l.url);
      if (destWhy) issues.push({ path: `${at}/url`, message: destWhy });
      const tempWhy = l.temp_url === l.url ? null : roots.stagingRefusal(l.temp_url);
      if (tempWhy) issues.push({ path: `${at}/temp_url`, message: tempWhy });
      byName.set(f.local_name, { f, url: l.url, temp_url: l.temp_url, type: l.type });
    });
    if (issues.length) throw new ValidationError('output files refused', issues);
    const t = now();
    for (const names of chunk([...byName.keys()], 500)) {
      await trx('file').where({ task_id: task.id, kind: 'output' }).whereIn('local_name', names).delete();
    }
    const rows = [...byName.values()].map(({ f, url, temp_url, type }) => ({
      dataset_id: task.dataset_id, job_id: task.job_id, task_id: task.id, kind: 'output',
      local_name: f.local_name, url, temp_url, type,
      size: f.size, md5: f.md5.toLowerCase(), sha256: f.sha256.toLowerCase(), state: 'STAGED', error: null,
      created_at: t, updated_at: t,
    }));
    for (const part of chunk(rows, 200)) await trx('file').insert(part);
  }

  /** Why a finished-ok task cannot be READYTOCOPY (a declared output never stored), or null. */
  async function missingOutputs(trx: Trx, task: TaskRow): Promise<string | null> {
    const declared = await taskOutputs(trx, task);
    if (declared.size === 0) return null;
    const stored = new Set(((await trx('file').select('local_name').where({ task_id: task.id, kind: 'output' })) as Array<{ local_name: string }>).map((r) => r.local_name));
    const missing = [...declared.keys()].filter((n) => !stored.has(n));
    if (missing.length === 0) return null;
    return `output${missing.length === 1 ? '' : 's'} ${missing.slice(0, 10).map((n) => JSON.stringify(n)).join(', ')} never stored (not reported, or refused by mon)`;
  }

  /** Run a pilot.files / pilot.finish write; a refused output record is logged, counted and kept in history. */
  async function refusingOutputs<T>(taskId: number, fn: () => Promise<T>): Promise<T> {
    try {
      return await fn();
    } catch (e) {
      if (e instanceof ValidationError) {
        o.onRefused?.('outputs');
        o.logger.warn('output files refused', { task: taskId, issues: e.issues.slice(0, 20) });
        // the call itself was rolled back; the refusal is kept on its own (best effort)
        await withTransaction(db, async (trx) => {
          const row = (await trx('task').select('dataset_id').where({ id: taskId }).first()) as { dataset_id: number } | undefined;
          if (!row) return;
          await recordHistory(trx, {
            entity: 'task', entityId: taskId, datasetId: Number(row.dataset_id), action: 'refuse', actor: 'mon',
            reason: e.message.slice(0, 1000),
          });
        }).catch((err: unknown) => o.logger.warn('could not record the refusal', { task: taskId, error: coerceError(err).message }));
      }
      throw e;
    }
  }

  const files: RpcMethod<FilesParams, { ok: true }> = {
    handler: (p) => guarded(async () => {
      received('pilot.files');
      const digest = passkeyDigest(p.passkey);
      await refusingOutputs(p.task_id, () => withTransaction(db, async (trx) => {
        const task = await lockTask(trx, p.task_id, digest, [TaskStatus.PROCESSING]);
        await writeOutputFiles(trx, task, p.files);
      }));
      return { ok: true as const };
    }),
  };

  const finish: RpcMethod<FinishParams, { status: TaskStatus }> = {
    handler: (p) => guarded(async () => {
      received('pilot.finish');
      const digest = passkeyDigest(p.passkey);
      // everything this task sent before finishing is written first (its stats are folded below)
      await batcher.flushTask(p.task_id);
      const status = await refusingOutputs(p.task_id, () => withTransaction(db, async (trx): Promise<TaskStatus> => {
        // (a finish ok whose outputs were missing ended ERROR: its retry gets that answer too)
        const after = p.ok ? [...AFTER_OK, TaskStatus.ERROR] : AFTER_FAIL;
        const task = await lockTask(trx, p.task_id, digest, [TaskStatus.PROCESSING, ...after]);
        // a retried finish (its answer was lost) whose outcome was already recorded: same answer
        if (task.status !== TaskStatus.PROCESSING) return task.status as TaskStatus;
        // what came with the call: written first, in this transaction (the passkey was checked above)
        if (p.files?.length) await writeOutputFiles(trx, task, p.files);
        const carried: PendingUpdate[] = [
          ...(p.stats && Object.keys(p.stats).length ? [{ kind: 'stats' as const, taskId: task.id, digest, stats: p.stats }] : []),
          ...(p.logs ?? []).map((l) => ({ kind: 'log' as const, taskId: task.id, digest, name: l.name, data: l.data, append: l.append ?? true })),
        ];
        if (carried.length) await batcher.apply(trx, carried, () => Number(task.dataset_id));
        const t = now();
        const resources = pickResources(p.resources);
        const missing = p.ok ? await missingOutputs(trx, task) : null;
        const ok = p.ok && !missing;
        if (ok) {
          await transition(trx, {
            taskIds: [task.id], from: TaskStatus.PROCESSING, to: TaskStatus.READYTOCOPY, by: 'mon', actor: 'mon',
            reason: 'pilot finished ok', set: { ...resources, finished_at: t, last_heartbeat_at: t },
          });
        } else {
          const fallback = missing ?? 'pilot reported failure';
          const summary = (!p.ok && p.error && p.error.trim() ? p.error : fallback).slice(0, ERROR_SUMMARY_MAX);
          await transition(trx, {
            taskIds: [task.id], from: TaskStatus.PROCESSING, to: TaskStatus.ERROR, by: 'mon', actor: 'mon',
            reason: summary.slice(0, 1000),
            set: { ...resources, finished_at: t, last_heartbeat_at: t, error_summary: summary, failures: trx.raw('failures + 1') },
          });
        }
        if (task.host) await recordNodeOutcome(trx, task.host, task.grid_id, ok, mysql);
        return ok ? TaskStatus.READYTOCOPY : TaskStatus.ERROR;
      }));
      if (p.ok) o.logger.debug('pilot finished', { task: p.task_id, ok: true, status });
      else o.logger.info('pilot finished: task failed', { task: p.task_id, ok: false, status });
      return { status };
    }),
  };

  return {
    'pilot.start': start,
    'pilot.heartbeat': heartbeat,
    'pilot.stats': stats,
    'pilot.log': log,
    'pilot.files': files,
    'pilot.finish': finish,
  };
}

/** Count the outcome for the worker node (black-hole detection reads ok/fail counts and `recent`). */
export async function recordNodeOutcome(trx: Trx, hostname: string, gridId: number | null, ok: boolean, mysql: boolean): Promise<void> {
  const t = now();
  const mark = ok ? 'O' : 'F';
  const bindings = [hostname, gridId, ok ? 1 : 0, ok ? 0 : 1, mark, t];
  const sql = mysql
    ? `INSERT INTO node (hostname, grid_id, ok_count, fail_count, recent, updated_at) VALUES (?, ?, ?, ?, ?, ?)
       ON DUPLICATE KEY UPDATE ok_count = ok_count + VALUES(ok_count), fail_count = fail_count + VALUES(fail_count),
       recent = RIGHT(CONCAT(recent, VALUES(recent)), ${NODE_RECENT}), grid_id = COALESCE(VALUES(grid_id), grid_id), updated_at = VALUES(updated_at)`
    : `INSERT INTO node (hostname, grid_id, ok_count, fail_count, recent, updated_at) VALUES (?, ?, ?, ?, ?, ?)
       ON CONFLICT (hostname) DO UPDATE SET ok_count = node.ok_count + excluded.ok_count, fail_count = node.fail_count + excluded.fail_count,
       recent = substr(node.recent || excluded.recent, -${NODE_RECENT}), grid_id = COALESCE(excluded.grid_id, node.grid_id), updated_at = excluded.updated_at`;
  await trx.raw(sql, bindings);
}
