import type { Knex } from 'knex';
import { sha256Hex, randomSecret } from './checksums';
import { chunk, isMysql, now as nowMs, type Db, type DbOrTrx, type Trx } from './db';
import { ValidationError, type ValidationIssue } from './errors';
import { DatasetStatus, TaskStatus } from './states';
import { lockSkipLocked, transition } from './transition';

/**
 * What a grid offers one task. Missing cpu / memory / disk / time mean "no limit"; a
 * missing gpu means 0 (a GPU must be declared); `site` is matched, with the grid's name,
 * against a task's `req_site`. memory and disk in MB, time in minutes (as task.req_*).
 */
export interface GridCapabilities {
  cpu?: number;
  gpu?: number;
  memory?: number;
  disk?: number;
  time?: number;
  site?: string;
}

const NUMERIC_CAPABILITIES = ['cpu', 'gpu', 'memory', 'disk', 'time'] as const;

/** Parse and check a grid's capabilities (the `grid.capabilities` column or `[queue] capabilities`). */
export function parseCapabilities(value: string | Record<string, unknown> | null | undefined): GridCapabilities {
  if (value === null || value === undefined || value === '') return {};
  let obj: unknown = value;
  if (typeof value === 'string') {
    try {
      obj = JSON.parse(value);
    } catch (e) {
      throw new ValidationError(`capabilities must be a JSON object: ${(e as Error).message}`);
    }
  }
  if (obj === null || typeof obj !== 'object' || Array.isArray(obj)) throw new ValidationError('capabilities must be a JSON object');
  const o = obj as Record<string, unknown>;
  const issues: ValidationIssue[] = [];
  const out: GridCapabilities = {};
  for (const k of NUMERIC_CAPABILITIES) {
    const v = o[k];
    if (v === undefined || v === null) continue;
    if (typeof v !== 'number' || !Number.isFinite(v) || v < 0) {
      issues.push({ path: `/${k}`, message: `must be a non-negative number, got ${JSON.stringify(v)}` });
    } else out[k] = v;
  }
  if (o.site !== undefined && o.site !== null) {
    if (typeof o.site !== 'string') issues.push({ path: '/site', message: `must be a string, got ${JSON.stringify(o.site)}` });
    else out.site = o.site;
  }
  for (const k of Object.keys(o)) {
    if (!(NUMERIC_CAPABILITIES as readonly string[]).includes(k) && k !== 'site') issues.push({ path: `/${k}`, message: 'is not a known capability (cpu, gpu, memory, disk, time, site)' });
  }
  if (issues.length) throw new ValidationError('invalid grid capabilities', issues);
  return out;
}

export interface ClaimOptions {
  gridId: number;
  /** The grid's name: a task whose req_site names the grid (or its capabilities.site) fits it. */
  gridName: string;
  /** Most tasks to claim. */
  limit: number;
  capabilities: GridCapabilities;
  /** How long the claim is held (ms) before a sweeper may take it back (QUEUEING → WAITING). */
  leaseMs: number;
  /** Who claims, for history: `queue:<grid>`. */
  owner: string;
  /**
   * Which daemon instance holds the claim (`task.claimed_by`, at most 255 characters): firn-queue
   * passes `<host>:<submit_dir>`, unique among live daemons thanks to the submit directory's lock,
   * so a restarted daemon can give back the claims it never submitted without waiting for their lease.
   */
  claimedBy?: string;
  /** Clock (tests). */
  now?: number;
}

export interface ClaimedRequirements {
  cpu: number;
  gpu: number;
  memory: number;
  disk: number;
  time: number;
  site: string | null;
}

export interface ClaimedTask {
  id: number;
  datasetId: number;
  jobId: number;
  jobIndex: number;
  taskIndex: number;
  name: string;
  requirements: ClaimedRequirements;
  /** The task's new passkey, in clear: hand it to the pilot, never log it. Only its sha256 is stored. */
  passkey: string;
  leaseUntil: number;
}

interface TaskRow {
  id: number;
  dataset_id: number;
  job_id: number;
  task_index: number;
  name: string;
  req_cpu: number;
  req_gpu: number;
  req_memory: number;
  req_disk: number;
  req_time: number;
  req_site: string | null;
  job_index: number;
}

const TASK_COLUMNS = ['id', 'dataset_id', 'job_id', 'task_index', 'name', 'req_cpu', 'req_gpu', 'req_memory', 'req_disk', 'req_time', 'req_site'];
/** The index the ordered claim walks: (status, dataset_id), with the primary key (id) after them. */
export const CLAIM_INDEX = 'task_status_dataset_idx';
/** Rows per UPDATE (the passkey CASE carries two placeholders per row). */
const UPDATE_CHUNK = 500;
/**
 * How far from a dataset's oldest WAITING task a claimer may start, in claim batches: 256
 * claimers of one batch each find disjoint stretches, while every claim still comes from
 * the oldest `CLAIM_SPREAD × limit` waiting tasks (near first-in, first-out).
 */
export const CLAIM_SPREAD = 256;
/** Below this many ids between a dataset's oldest and newest waiting task, claims walk in plain id order. */
const SPREAD_MIN_ROWS = 2048;

/**
 * Claim up to `limit` WAITING tasks for a grid, atomically: WAITING → QUEUEING with the
 * grid, a lease and a fresh passkey per task (only its sha256 stored), one history row each.
 *
 * Eligible: WAITING tasks of PROCESSING datasets assigned to the grid (dataset_grid), whose
 * requirements fit the capabilities, whose req_site is null or names the grid / its site,
 * and whose next_retry_at (backoff) has passed; in dataset priority order (highest first),
 * then oldest dataset, then task id.
 *
 * How it stays atomic and fast: the datasets are read first (plain read, nothing locked);
 * then, per dataset in that order until `limit` is reached (one statement when the grid has
 * one dataset with work), one ordered `SELECT … FOR UPDATE SKIP LOCKED LIMIT n` on `task`
 * alone, walking the (status, dataset_id) index in id order — so two claimers never wait on
 * each other and never lock a dataset or job row; then one UPDATE of exactly those ids (per
 * 500) through transition(), all in one READ COMMITTED transaction on MySQL/MariaDB (rows
 * examined but not matching are released at once). On SQLite the transaction first takes
 * the database write lock, so concurrent processes queue on busy_timeout instead of
 * failing with SQLITE_BUSY_SNAPSHOT.
 *
 * Why claimers start at different points (MySQL/MariaDB). When every claimer walked from a
 * dataset's lowest waiting id, claimer k first stepped over the k − 1 batches the others
 * held: SKIP LOCKED still visits (and, in InnoDB, allocates lock structures for) every row
 * it skips, so the work per call grew with the number of claimers — measured on 100,000
 * tasks, 1 / 4 / 8 / 16 claimers gave 4,749 / 5,020 / 4,297 / 2,393 claims/s with the median
 * call at 91 → 3,030 ms, and 64 claimers exhausted a default 128 MB buffer pool with lock
 * heaps and aborted the server. Now each call reads the dataset's lowest and highest
 * waiting id (two index dives on the same index, nothing locked), starts at a random id
 * among the oldest CLAIM_SPREAD batches, walks up, and wraps to the ids below its start
 * only if it found too few. Claimers thus take disjoint stretches and each examines about
 * the rows it takes (bench/claim.ts records rows locked per call); order within a dataset
 * is kept to "among the oldest", and priority order across datasets is unchanged.
 * Alternatives weighed: a plain read then an optimistic `UPDATE … WHERE status = 'WAITING'`
 * (no SKIP LOCKED) blocks on rows another claimer updated but has not committed, and needs
 * a second read to learn which rows it won; hashing claimers to fixed partitions strands
 * the work of a partition whose claimer is gone.
 */
export async function claimTasks(db: Db, opts: ClaimOptions): Promise<ClaimedTask[]> {
  if (!Number.isInteger(opts.limit) || opts.limit < 0) throw new ValidationError(`claim limit must be a non-negative integer, got ${opts.limit}`);
  if (!Number.isFinite(opts.leaseMs) || opts.leaseMs <= 0) throw new ValidationError(`claim leaseMs must be positive, got ${opts.leaseMs}`);
  if (opts.claimedBy !== undefined && (opts.claimedBy === '' || opts.claimedBy.length > 255)) {
    throw new ValidationError(`claim claimedBy must be 1–255 characters, got ${opts.claimedBy.length}`);
  }
  if (opts.limit === 0) return [];
  const mysql = isMysql(db);
  for (let attempt = 1; ; attempt++) {
    try {
      return mysql
        ? await db.transaction((trx) => claimIn(trx, opts, false), { isolationLevel: 'read committed' })
        : await db.transaction((trx) => claimIn(trx, opts, true));
    } catch (e) {
      const code = (e as { code?: string }).code ?? '';
      const retryable = code === 'ER_LOCK_DEADLOCK' || code === 'ER_LOCK_WAIT_TIMEOUT' || code.startsWith('SQLITE_BUSY');
      if (!retryable || attempt >= 5) throw e;
      await new Promise((r) => setTimeout(r, 10 * attempt + Math.random() * 20));
    }
  }
}

/**
 * The ordered claim query of one dataset (without its lock clause): WAITING tasks that fit,
 * oldest first — an equality on (status, dataset_id) so the index gives id order (no sort).
 */
export function claimSelect(
  db: DbOrTrx,
  p: {
    datasetId: number; capabilities: GridCapabilities; sites: readonly string[]; now: number; limit: number;
    /** Walk ids ≥ this (the claim's start point). */
    fromId?: number;
    /** Walk ids < this (the wrap-around below the start point). */
    belowId?: number;
    /** Only these ids, looked up by primary key (the locking read after a plain candidate read). */
    ids?: readonly number[];
    /** Select only `id` (the candidate read). */
    idsOnly?: boolean;
  },
) {
  const caps = p.capabilities;
  // Every claimer must lock through the same index: if one walked (status, dataset_id) and
  // another (dataset_id, status), each would hold secondary-index locks the other's UPDATE
  // needs — deadlocks, and SKIP LOCKED skipping too little. So the index is fixed: the claim
  // index for a walk, the primary key for a look-up of given ids.
  const index = p.ids ? 'PRIMARY' : CLAIM_INDEX;
  const from: Knex.QueryBuilder = isMysql(db) ? db.from(db.raw('?? FORCE INDEX (??)', ['task', index])) : db('task');
  const q = p.idsOnly
    ? from.select('id')
    : from.select(TASK_COLUMNS)
      // a scalar subquery reads job rows without locking them (a locking read's clause covers
      // only its own query block, on MariaDB and MySQL 8): tasks of one job stay claimable
      .select(db.raw('(SELECT job_index FROM job WHERE job.id = task.job_id) AS job_index'));
  q.where('status', TaskStatus.WAITING)
    .andWhere('dataset_id', p.datasetId)
    .andWhere('req_gpu', '<=', caps.gpu ?? 0)
    .andWhere((w) => {
      w.whereNull('req_site');
      if (p.sites.length) w.orWhereIn('req_site', [...p.sites]);
    })
    .andWhere((w) => w.whereNull('next_retry_at').orWhere('next_retry_at', '<=', p.now))
    .orderBy('id', 'asc')
    .limit(p.limit);
  if (p.ids) q.whereIn('id', [...p.ids]);
  if (p.fromId !== undefined) q.andWhere('id', '>=', p.fromId);
  if (p.belowId !== undefined) q.andWhere('id', '<', p.belowId);
  if (caps.cpu !== undefined) q.andWhere('req_cpu', '<=', caps.cpu);
  if (caps.memory !== undefined) q.andWhere('req_memory', '<=', caps.memory);
  if (caps.disk !== undefined) q.andWhere('req_disk', '<=', caps.disk);
  if (caps.time !== undefined) q.andWhere('req_time', '<=', caps.time);
  return q;
}

/**
 * Where a claim of `limit` tasks starts in a dataset (MySQL/MariaDB): a random id among the
 * oldest CLAIM_SPREAD × limit waiting ones, or null (walk from the lowest, strict id order)
 * when the dataset's waiting ids span less than max(4 × limit, SPREAD_MIN_ROWS).
 */
async function spreadStart(trx: Trx, datasetId: number, limit: number, known?: WaitingRange): Promise<number | null> {
  let range = known;
  if (!range) {
    const [rows] = (await trx.raw(
      'SELECT MIN(id) AS lo, MAX(id) AS hi FROM ?? FORCE INDEX (??) WHERE status = ? AND dataset_id = ?',
      ['task', CLAIM_INDEX, TaskStatus.WAITING, datasetId],
    )) as [Array<{ lo: number | null; hi: number | null }>];
    range = { lo: Number(rows[0]?.lo ?? 0), hi: Number(rows[0]?.hi ?? 0) };
  }
  const { lo, hi } = range;
  if (!lo || hi - lo < Math.max(4 * limit, SPREAD_MIN_ROWS)) return null;
  const span = Math.min(hi - lo, limit * CLAIM_SPREAD);
  return lo + Math.floor(Math.random() * span);
}

/** A dataset's lowest and highest WAITING task id (0 when none). */
interface WaitingRange {
  lo: number;
  hi: number;
}

/** Candidates read per task wanted: some may be taken by another claimer between the read and the lock. */
const CANDIDATES_PER_TASK = 2;
/** Read-then-lock rounds per dataset and call before taking what was found. */
const LOCK_ROUNDS = 3;

/**
 * MySQL/MariaDB: up to `limit` tasks of one dataset, locked. A plain (consistent, lock-free)
 * read walks the claim index from the spread start point (wrapping below it) for twice as
 * many candidate ids as wanted; then one locking read takes the candidates still WAITING and
 * fitting, by primary key, `FOR UPDATE SKIP LOCKED`, in id order, LIMIT `limit`. Locks land
 * only on rows the claim takes (the walk over the index, with its delete-marked entries of
 * tasks that just left WAITING, locks nothing — a locking walk allocated lock structures for
 * every one, and 64 concurrent claimers filled InnoDB's lock table). Up to LOCK_ROUNDS rounds
 * when other claimers took candidates first.
 */
async function lockCandidates(
  trx: Trx,
  base: { datasetId: number; capabilities: GridCapabilities; sites: readonly string[]; now: number },
  limit: number,
  range: WaitingRange,
): Promise<TaskRow[]> {
  const got: TaskRow[] = [];
  const seen = new Set<number>();
  for (let round = 0; round < LOCK_ROUNDS && got.length < limit; round++) {
    const want = limit - got.length;
    const start = await spreadStart(trx, base.datasetId, want, round === 0 ? range : undefined);
    const read = async (range: { fromId?: number; belowId?: number }, n: number) =>
      ((await claimSelect(trx, { ...base, ...range, limit: n + seen.size, idsOnly: true })) as Array<{ id: number }>)
        .map((r) => Number(r.id)).filter((id) => !seen.has(id)).slice(0, n);
    const candidates = await read(start !== null ? { fromId: start } : {}, CANDIDATES_PER_TASK * want);
    if (start !== null && candidates.length < CANDIDATES_PER_TASK * want) candidates.push(...(await read({ belowId: start }, CANDIDATES_PER_TASK * want - candidates.length)));
    if (candidates.length === 0) break;
    for (const id of candidates) seen.add(id);
    const locked = (await lockSkipLocked(trx, claimSelect(trx, { ...base, limit: want, ids: candidates }))) as TaskRow[];
    got.push(...locked);
    // every candidate was looked at: whatever was not locked went to someone else
    if (candidates.length < CANDIDATES_PER_TASK * want && locked.length === candidates.length) break;
  }
  return got;
}

async function claimIn(trx: Trx, opts: ClaimOptions, sqlite: boolean): Promise<ClaimedTask[]> {
  const t = opts.now ?? nowMs();
  // SQLite: take the write lock before reading (a deferred transaction that reads and then
  // writes fails with SQLITE_BUSY_SNAPSHOT when another process wrote in between).
  if (sqlite) await trx.raw('UPDATE task SET id = id WHERE 0');

  // Each dataset's lowest and highest waiting id as correlated subqueries: one index dive each
  // per dataset. (An EXISTS here was turned by MariaDB into a semi-join that
  // materialised the dataset ids of every WAITING task: a million index entries read per claim
  // call of a million-task dataset, 500 ms, the claim path's whole cost at scale.)
  // (ORDER BY id LIMIT 1, not MIN/MAX: a correlated MIN(id) read every matching index entry.)
  const bound = (order: 'ASC' | 'DESC', as: string) =>
    trx.raw(`(SELECT w.id FROM task w WHERE w.status = ? AND w.dataset_id = d.id ORDER BY w.id ${order} LIMIT 1) AS ${as}`, [TaskStatus.WAITING]);
  const assigned: Array<{ id: number; lo: number | null; hi: number | null }> = await trx('dataset as d')
    .join('dataset_grid as dg', 'dg.dataset_id', 'd.id')
    .select('d.id', bound('ASC', 'lo'), bound('DESC', 'hi'))
    .where('dg.grid_id', opts.gridId)
    .andWhere('d.status', DatasetStatus.PROCESSING)
    .orderBy([{ column: 'd.priority', order: 'desc' }, { column: 'd.id', order: 'asc' }]);
  const datasets = assigned.filter((d) => d.lo !== null).map((d) => ({ id: Number(d.id), range: { lo: Number(d.lo), hi: Number(d.hi) } }));

  const sites = [...new Set([opts.gridName, opts.capabilities.site].filter((s): s is string => typeof s === 'string' && s !== ''))];
  const rows: TaskRow[] = [];
  for (const { id: datasetId, range } of datasets) {
    const remaining = opts.limit - rows.length;
    if (remaining <= 0) break;
    const base = { datasetId, capabilities: opts.capabilities, sites, now: t };
    if (sqlite) {
      rows.push(...((await claimSelect(trx, { ...base, limit: remaining })) as TaskRow[]));
      continue;
    }
    rows.push(...(await lockCandidates(trx, base, remaining, range)));
  }
  if (rows.length === 0) return [];

  const leaseUntil = t + opts.leaseMs;
  const passkeys = new Map<number, string>(rows.map((r) => [Number(r.id), randomSecret(32)]));
  for (const part of chunk(rows, UPDATE_CHUNK)) {
    const ids = part.map((r) => Number(r.id));
    const hashCase = trx.raw(`CASE id ${ids.map(() => 'WHEN ? THEN ?').join(' ')} END`, ids.flatMap((id) => [id, sha256Hex(passkeys.get(id)!)]));
    await transition(trx, {
      taskIds: ids,
      from: TaskStatus.WAITING,
      to: TaskStatus.QUEUEING,
      by: 'queue',
      actor: opts.owner,
      reason: 'claimed',
      strict: true, // we hold every row: anything else is a bug, and rolls the claim back
      set: { grid_id: opts.gridId, lease_until: leaseUntil, batch_id: null, passkey_hash: hashCase, claimed_by: opts.claimedBy ?? null },
    });
  }

  return rows.map((r) => ({
    id: Number(r.id),
    datasetId: Number(r.dataset_id),
    jobId: Number(r.job_id),
    jobIndex: Number(r.job_index),
    taskIndex: Number(r.task_index),
    name: r.name,
    requirements: {
      cpu: Number(r.req_cpu), gpu: Number(r.req_gpu), memory: Number(r.req_memory),
      disk: Number(r.req_disk), time: Number(r.req_time), site: r.req_site ?? null,
    },
    passkey: passkeys.get(Number(r.id))!,
    leaseUntil,
  }));
}
