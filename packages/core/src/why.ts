/**
 * "Why isn't my task running?" — one answer across every layer Firn sees: the task graph
 * (dependencies), the dataset (suspended), the grid assignment and capabilities, the grid's
 * state and its queue daemon (disabled, silent, `max_queued` reached), the site's worker
 * nodes (black holes), the retry policy (backoff) and the batch system itself (its pending
 * reason, task.batch_reason, recorded by firn-queue each cycle). `task.why`, `job.why`,
 * `dataset.why`, `firn why` and the web monitor all call this module.
 *
 * A single task gets every reason that holds, the blocking one first. A job or dataset gets
 * the same reasons counted: one grouped statement over its tasks (by status, name,
 * requirements, backoff, grid and batch reason — a million tasks are a few dozen groups),
 * then the grids' state read once; never a loop over tasks.
 *
 * The requirement fit is `requirementMisfits`, the rule claimTasks (claim.ts) applies in SQL:
 * gpu is compared with the grid's gpu or 0, cpu/memory/disk/time only where the grid declares
 * them, and a task's site must name the grid or its `site` capability.
 */
import { parseCapabilities, type ClaimedRequirements, type GridCapabilities } from './claim';
import { now as nowMs, type DbOrTrx } from './db';
import { NotFoundError } from './errors';
import { listBlackholes, type BlackHole } from './nodes';
import { DatasetStatus, TaskStatus } from './states';

export { BATCH_REASON_MAX } from './migrations/0007_task_batch_reason';

/** What keeps a task from running (or where it is), as stored in every answer's `code`. */
export const WhyCode = {
  OK: 'ok',
  FAILED: 'failed',
  TASK_SUSPENDED: 'task_suspended',
  DATASET_SUSPENDED: 'dataset_suspended',
  DEPENDENCIES: 'dependencies',
  NO_GRID: 'no_grid',
  NO_FIT: 'no_fit',
  GRID_DISABLED: 'grid_disabled',
  QUEUE_SILENT: 'queue_silent',
  BLACKHOLE: 'blackhole',
  MAX_QUEUED: 'max_queued',
  BACKOFF: 'backoff',
  SUBMIT_FAILED: 'submit_failed',
  READY: 'ready',
  CLAIMED: 'claimed',
  BATCH_QUEUED: 'batch_queued',
  RUNNING: 'running',
  COPYING: 'copying',
  RETRY: 'retry',
} as const;
export type WhyCode = (typeof WhyCode)[keyof typeof WhyCode];

/** Reasons that hold whatever happens to a task's dependencies: told of IDLE tasks too. */
const NEVER: readonly WhyCode[] = [WhyCode.NO_GRID, WhyCode.NO_FIT];

/** A grid's queue daemon that has not written its row for this long (ms) is called silent. */
export const QUEUE_SILENT_MS = 5 * 60_000;
/** Most (status, requirements, …) groups one job/dataset answer reads; beyond: `truncated`. */
export const WHY_GROUPS_MAX = 10_000;

/** A task's current requirements (task.req_*), as a claim reads them. */
export type TaskRequirements = ClaimedRequirements;

export type RequirementName = 'cpu' | 'gpu' | 'memory' | 'disk' | 'time' | 'site';

/** One requirement a grid does not satisfy: what the task wants, what the grid offers. */
export interface Misfit {
  requirement: RequirementName;
  wanted: number | string;
  /** The grid's capability (gpu: 0 when undeclared; site: the names the grid answers to). */
  offered: number | string;
}

const NUMERIC: ReadonlyArray<Exclude<RequirementName, 'site'>> = ['cpu', 'gpu', 'memory', 'disk', 'time'];
const UNIT: Record<RequirementName, string> = { cpu: '', gpu: '', memory: ' MB', disk: ' MB', time: ' min', site: '' };

/** The requirements a grid does not satisfy (empty: it may claim the task). Pure; claim.ts's rule. */
export function requirementMisfits(req: TaskRequirements, grid: { name: string; capabilities: GridCapabilities }): Misfit[] {
  const caps = grid.capabilities;
  const out: Misfit[] = [];
  for (const k of NUMERIC) {
    const offered = k === 'gpu' ? (caps.gpu ?? 0) : caps[k];
    if (offered !== undefined && req[k] > offered) out.push({ requirement: k, wanted: req[k], offered });
  }
  if (req.site !== null && req.site !== '' && req.site !== grid.name && req.site !== caps.site) {
    out.push({ requirement: 'site', wanted: req.site, offered: caps.site && caps.site !== grid.name ? `${grid.name} or ${caps.site}` : grid.name });
  }
  return out;
}

function want(m: Misfit): string {
  return m.requirement === 'site' ? `site ${m.wanted}` : `${m.requirement} ≥ ${m.wanted}${UNIT[m.requirement]}`;
}
function offer(m: Misfit): string {
  return m.requirement === 'site' ? `site ${m.offered}` : `${m.requirement} ${m.offered}${UNIT[m.requirement]}`;
}

/** "no grid offers gpu ≥ 1 (local: gpu 0)" for the grids given and their misfits. */
export function noFitMessage(misfits: ReadonlyArray<{ grid: string; misfits: readonly Misfit[] }>, scope = 'grid'): string {
  const wanted = [...new Set(misfits.flatMap((g) => g.misfits.map(want)))];
  const per = misfits.map((g) => `${g.grid}: ${g.misfits.map(offer).join(', ')}`);
  return `no ${scope} offers ${wanted.join(', ')} (${per.join('; ')})`;
}

/** What a job/dataset/task answer says about each grid it considered. */
export interface WhyGrid {
  name: string;
  plugin: string;
  status: string;
  capabilities: GridCapabilities;
  last_seen_at: number | null;
  /** QUEUEING + QUEUED tasks of the grid now (what max_queued limits). */
  queued: number;
  /** `[queue] max_queued` as its daemon last recorded it (grid.last_cycle), null when not recorded. */
  max_queued: number | null;
  /** Black-holed worker nodes of the grid now. */
  holes: BlackHole[];
  /** Worker nodes of the grid on record (node rows). */
  nodes: number;
  /** Is it assigned to the dataset (false: listed because none is). */
  assigned: boolean;
}

export interface WhyReason {
  code: WhyCode;
  /** In words, with its data (times as ISO 8601 UTC). */
  message: string;
  data: Record<string, unknown>;
}

export interface TaskWhy {
  task: { id: number; dataset_id: number; job_index: number; task_index: number; name: string; status: TaskStatus; status_changed_at: number };
  /** The blocking reason (or where the task is). */
  reason: WhyReason;
  /** Every reason that holds, the blocking one first. */
  reasons: WhyReason[];
  grids: WhyGrid[];
}

export interface CountedReason extends WhyReason {
  /** The task status these tasks are in. */
  status: TaskStatus;
  count: number;
}

export interface GroupWhy {
  dataset_id: number;
  job_index: number | null;
  dataset_status: string;
  tasks: number;
  /** One line per (status, reason), most tasks first. */
  reasons: CountedReason[];
  grids: WhyGrid[];
  /** More groups than WHY_GROUPS_MAX: the counts cover the groups read only. */
  truncated: boolean;
}

export interface WhyOptions {
  now?: number;
  silentMs?: number;
}

const iso = (t: number | null | undefined): string => (t === null || t === undefined ? 'never' : new Date(t).toISOString());
const num = (v: unknown): number => Number(v ?? 0);
const numOrNull = (v: unknown): number | null => (v === null || v === undefined ? null : Number(v));

// ---------------------------------------------------------------- grids

interface GridState extends WhyGrid {
  id: number;
}

function lastCycleMaxQueued(text: string | null): number | null {
  if (!text || text.length > 1_000_000) return null;
  try {
    const v = (JSON.parse(text) as { max_queued?: unknown }).max_queued;
    return typeof v === 'number' && Number.isFinite(v) ? v : null;
  } catch {
    return null;
  }
}

/** The grids assigned to the dataset, or every grid (assigned: false) when none is. */
async function loadGrids(db: DbOrTrx, datasetId: number, now: number): Promise<GridState[]> {
  const cols = ['g.id', 'g.name', 'g.plugin', 'g.status', 'g.capabilities', 'g.last_seen_at', 'g.last_cycle'];
  type Row = { id: number; name: string; plugin: string; status: string; capabilities: string; last_seen_at: number | string | null; last_cycle: string | null };
  let rows: Row[] = await db('grid as g').join('dataset_grid as dg', 'dg.grid_id', 'g.id').where('dg.dataset_id', datasetId).select(cols).orderBy('g.name');
  const assigned = rows.length > 0;
  if (!assigned) rows = await db('grid as g').select(cols).orderBy('g.name').limit(1000);
  if (rows.length === 0) return [];
  const ids = rows.map((r) => Number(r.id));
  const queued: Array<{ grid_id: number; n: number | string }> = await db('task')
    .select('grid_id').count({ n: '*' }).whereIn('grid_id', ids).whereIn('status', [TaskStatus.QUEUEING, TaskStatus.QUEUED]).groupBy('grid_id');
  const nodes: Array<{ grid_id: number; n: number | string }> = await db('node').select('grid_id').count({ n: '*' }).whereIn('grid_id', ids).groupBy('grid_id');
  const { holes } = await listBlackholes(db, now, ids);
  const queuedOf = new Map(queued.map((q) => [Number(q.grid_id), num(q.n)]));
  const nodesOf = new Map(nodes.map((q) => [Number(q.grid_id), num(q.n)]));
  return rows.map((r) => {
    let capabilities: GridCapabilities = {};
    try {
      capabilities = parseCapabilities(r.capabilities);
    } catch {
      capabilities = {}; // firn-queue refuses such a grid's row too; it claims nothing
    }
    return {
      id: Number(r.id), name: r.name, plugin: r.plugin, status: r.status, capabilities, last_seen_at: numOrNull(r.last_seen_at),
      queued: queuedOf.get(Number(r.id)) ?? 0, max_queued: lastCycleMaxQueued(r.last_cycle),
      holes: holes.filter((h) => h.grid === r.name), nodes: nodesOf.get(Number(r.id)) ?? 0, assigned,
    };
  });
}

function publicGrid(g: GridState): WhyGrid {
  const { id: _id, ...rest } = g;
  return rest;
}

/** Why a grid that fits the task does not claim it now; null when nothing stops it. */
function gridBlocker(g: GridState, now: number, silentMs: number): WhyReason | null {
  if (g.status !== 'enabled') return { code: WhyCode.GRID_DISABLED, message: `grid ${g.name} is ${g.status}`, data: { grid: g.name, status: g.status } };
  if (g.last_seen_at === null || now - g.last_seen_at > silentMs) {
    return {
      code: WhyCode.QUEUE_SILENT,
      message: g.last_seen_at === null ? `grid ${g.name}'s queue daemon has never run` : `grid ${g.name}'s queue daemon silent since ${iso(g.last_seen_at)}`,
      data: { grid: g.name, last_seen_at: g.last_seen_at },
    };
  }
  // the local plugin has one worker host: while it is black-holed the daemon claims nothing;
  // a batch grid excludes its black-holed nodes and claims on, unless every node it knows is one
  if (g.holes.length > 0 && (g.plugin === 'local' || g.holes.length >= g.nodes)) {
    const list = g.holes.slice(0, 5).map((h) => `${h.node} until ${iso(h.until)}${h.reason ? ` (${h.reason})` : ''}`).join('; ');
    return {
      code: WhyCode.BLACKHOLE,
      message: `grid ${g.name}'s ${g.holes.length === 1 ? 'only usable node is' : 'nodes are'} black-holed: ${list}${g.holes.length > 5 ? `; and ${g.holes.length - 5} more` : ''}`,
      data: { grid: g.name, holes: g.holes.slice(0, 20).map((h) => ({ node: h.node, until: h.until, since: h.since, reason: h.reason })) },
    };
  }
  if (g.max_queued !== null && g.queued >= g.max_queued) {
    return {
      code: WhyCode.MAX_QUEUED,
      message: `grid ${g.name} has max_queued reached (${g.queued} queued of ${g.max_queued})`,
      data: { grid: g.name, queued: g.queued, max_queued: g.max_queued },
    };
  }
  return null;
}

/** The grid-side reasons a WAITING task with these requirements is not claimed (empty: a grid will claim it). */
function gridReasons(req: TaskRequirements, grids: readonly GridState[], datasetId: number, now: number, silentMs: number): WhyReason[] {
  const assigned = grids.filter((g) => g.assigned);
  if (assigned.length === 0) {
    const fitting = grids.filter((g) => requirementMisfits(req, g).length === 0).map((g) => g.name);
    return [{
      code: WhyCode.NO_GRID,
      message: `no grid is assigned to dataset ${datasetId} (dataset.add_grid, or firn submit --grid)${fitting.length ? `; grids that fit: ${fitting.slice(0, 10).join(', ')}` : grids.length ? '; and no grid fits its requirements' : ''}`,
      data: { fitting: fitting.slice(0, 100) },
    }];
  }
  const misfits = assigned.map((g) => ({ grid: g.name, misfits: requirementMisfits(req, g) }));
  const fit = assigned.filter((_, i) => misfits[i]!.misfits.length === 0);
  if (fit.length === 0) {
    return [{
      code: WhyCode.NO_FIT,
      message: noFitMessage(misfits, 'assigned grid'),
      data: { requirements: req, grids: misfits },
    }];
  }
  const blockers = fit.map((g) => gridBlocker(g, now, silentMs));
  if (blockers.some((b) => b === null)) return [];
  const bs = blockers as WhyReason[];
  const rank: WhyCode[] = [WhyCode.GRID_DISABLED, WhyCode.QUEUE_SILENT, WhyCode.BLACKHOLE, WhyCode.MAX_QUEUED];
  bs.sort((a, b) => rank.indexOf(b.code) - rank.indexOf(a.code));
  return bs;
}

function readyReason(req: TaskRequirements, grids: readonly GridState[], now: number, silentMs: number): WhyReason {
  const ready = grids.filter((g) => g.assigned && requirementMisfits(req, g).length === 0 && gridBlocker(g, now, silentMs) === null).map((g) => g.name);
  return {
    code: WhyCode.READY,
    message: `nothing blocks it: waiting to be claimed by ${ready.join(', ')} at its next cycle (higher-priority datasets go first)`,
    data: { grids: ready },
  };
}

// ---------------------------------------------------------------- one task

interface TaskRow {
  id: number; dataset_id: number; job_id: number; job_index: number; task_rel_id: number; task_index: number; name: string; status: TaskStatus;
  status_changed_at: number | string; req_cpu: number; req_gpu: number; req_memory: number; req_disk: number; req_time: number; req_site: string | null;
  grid: string | null; batch_id: string | null; batch_reason: string | null; lease_until: number | string | null; next_retry_at: number | string | null;
  host: string | null; started_at: number | string | null; last_heartbeat_at: number | string | null; error_summary: string | null;
  failures: number; evictions: number; submit_errors: number; dataset_status: string;
}

function requirementsOf(r: { req_cpu: unknown; req_gpu: unknown; req_memory: unknown; req_disk: unknown; req_time: unknown; req_site: string | null }): TaskRequirements {
  return { cpu: num(r.req_cpu), gpu: num(r.req_gpu), memory: num(r.req_memory), disk: num(r.req_disk), time: num(r.req_time), site: r.req_site ?? null };
}

const clipText = (s: string | null, n = 300): string => (s === null ? '' : s.length > n ? `${s.slice(0, n)}…` : s);

/** `task.why`: why this task is not running (or where it is). NotFoundError for an unknown task. */
export async function whyTask(db: DbOrTrx, taskId: number, opts: WhyOptions = {}): Promise<TaskWhy> {
  const now = opts.now ?? nowMs();
  const silentMs = opts.silentMs ?? QUEUE_SILENT_MS;
  const row = (await db('task as t')
    .join('job as j', 'j.id', 't.job_id')
    .join('dataset as d', 'd.id', 't.dataset_id')
    .leftJoin('grid as g', 'g.id', 't.grid_id')
    .select(
      't.id', 't.dataset_id', 't.job_id', 'j.job_index', 't.task_rel_id', 't.task_index', 't.name', 't.status', 't.status_changed_at',
      't.req_cpu', 't.req_gpu', 't.req_memory', 't.req_disk', 't.req_time', 't.req_site', 'g.name as grid', 't.batch_id', 't.batch_reason',
      't.lease_until', 't.next_retry_at', 't.host', 't.started_at', 't.last_heartbeat_at', 't.error_summary', 't.failures', 't.evictions', 't.submit_errors',
      'd.status as dataset_status',
    )
    .where('t.id', taskId)
    .first()) as TaskRow | undefined;
  if (!row) throw new NotFoundError(`no task ${taskId}`);
  const req = requirementsOf(row);
  const grids = await loadGrids(db, Number(row.dataset_id), now);
  const reasons: WhyReason[] = [];
  const datasetStopped = row.dataset_status !== DatasetStatus.PROCESSING;
  const stopped: WhyReason = {
    code: WhyCode.DATASET_SUSPENDED,
    message: `dataset ${row.dataset_id} is ${row.dataset_status}: nothing of it is claimed until it is resumed`,
    data: { dataset_id: Number(row.dataset_id), status: row.dataset_status },
  };
  const at = (v: unknown) => numOrNull(v);
  switch (row.status) {
    case TaskStatus.OK:
      reasons.push({ code: WhyCode.OK, message: 'finished OK', data: {} });
      break;
    case TaskStatus.FAILED:
      reasons.push({ code: WhyCode.FAILED, message: `failed for good after ${row.failures} failures and ${row.evictions} evictions: ${clipText(row.error_summary) || 'no error recorded'} (job.reset retries it)`, data: { failures: row.failures, evictions: row.evictions, error_summary: row.error_summary } });
      break;
    case TaskStatus.SUSPENDED:
      reasons.push({ code: WhyCode.TASK_SUSPENDED, message: 'suspended by a person (job.resume or dataset.resume)', data: {} });
      break;
    case TaskStatus.IDLE: {
      const deps: Array<{ id: number; name: string; status: string }> = await db('task_rel_dep as r')
        .join('task as t', function () { this.on('t.task_rel_id', '=', 'r.depends_on_id').andOn('t.job_id', '=', db.raw('?', [row.job_id])); })
        .select('t.id', 't.name', 't.status')
        .where('r.task_rel_id', row.task_rel_id)
        .whereNot('t.status', TaskStatus.OK)
        .orderBy('t.task_index');
      reasons.push({
        code: WhyCode.DEPENDENCIES,
        message: deps.length
          ? `waiting for its dependencies: ${deps.map((d) => `${d.name} (task ${d.id}) is ${d.status}`).join(', ')}`
          : 'its dependencies are OK: it becomes WAITING at the next dependency check',
        data: { dependencies: deps.map((d) => ({ task_id: Number(d.id), name: d.name, status: d.status })) },
      });
      if (datasetStopped) reasons.push(stopped);
      // what will stop it once its dependencies are OK, when no grid can ever run it
      reasons.push(...gridReasons(req, grids, Number(row.dataset_id), now, silentMs).filter((r) => NEVER.includes(r.code)));
      break;
    }
    case TaskStatus.WAITING: {
      if (datasetStopped) reasons.push(stopped);
      reasons.push(...gridReasons(req, grids, Number(row.dataset_id), now, silentMs));
      const retry = at(row.next_retry_at);
      if (retry !== null && retry > now) reasons.push({ code: WhyCode.BACKOFF, message: `in retry backoff until ${iso(retry)} (after ${row.failures} failures, ${row.evictions} evictions)`, data: { next_retry_at: retry } });
      if (num(row.submit_errors) > 0) {
        reasons.push({
          code: WhyCode.SUBMIT_FAILED,
          message: `its batch submission failed ${num(row.submit_errors)} time(s), last: ${clipText(row.error_summary) || 'no message recorded'}`,
          data: { submit_errors: num(row.submit_errors), error_summary: row.error_summary },
        });
      }
      if (reasons.length === 0) reasons.push(readyReason(req, grids, now, silentMs));
      break;
    }
    case TaskStatus.QUEUEING:
      reasons.push({ code: WhyCode.CLAIMED, message: `claimed by grid ${row.grid ?? '?'} since ${iso(at(row.status_changed_at))}, being submitted (lease until ${iso(at(row.lease_until))})`, data: { grid: row.grid, since: at(row.status_changed_at), lease_until: at(row.lease_until) } });
      break;
    case TaskStatus.QUEUED:
      reasons.push({
        code: WhyCode.BATCH_QUEUED,
        message: `waiting in grid ${row.grid ?? '?'}'s batch queue as ${row.batch_id ?? '?'} since ${iso(at(row.status_changed_at))}${row.batch_reason ? `; the batch system says: ${row.batch_reason}` : ''}`,
        data: { grid: row.grid, batch_id: row.batch_id, batch_reason: row.batch_reason, since: at(row.status_changed_at) },
      });
      break;
    case TaskStatus.PROCESSING:
      reasons.push({
        code: WhyCode.RUNNING,
        message: `running: pilot started on host ${row.host ?? '?'} at ${iso(at(row.started_at))}, last heartbeat ${iso(at(row.last_heartbeat_at))}`,
        data: { grid: row.grid, batch_id: row.batch_id, host: row.host, started_at: at(row.started_at), last_heartbeat_at: at(row.last_heartbeat_at) },
      });
      break;
    case TaskStatus.READYTOCOPY:
    case TaskStatus.COPYING:
    case TaskStatus.COPIED:
      reasons.push({ code: WhyCode.COPYING, message: `${row.status === TaskStatus.READYTOCOPY ? 'outputs staged, waiting for firn-dh' : row.status === TaskStatus.COPYING ? 'copying outputs' : 'outputs copied, cleaning up'} since ${iso(at(row.status_changed_at))}`, data: { since: at(row.status_changed_at) } });
      break;
    default:
      reasons.push({ code: WhyCode.RETRY, message: `${row.status}: the retry policy decides next (${row.failures} failures, ${row.evictions} evictions)${row.error_summary ? `: ${clipText(row.error_summary)}` : ''}`, data: { error_summary: row.error_summary } });
      if (datasetStopped) reasons.push(stopped);
  }
  return {
    task: {
      id: Number(row.id), dataset_id: Number(row.dataset_id), job_index: Number(row.job_index), task_index: Number(row.task_index),
      name: row.name, status: row.status, status_changed_at: num(row.status_changed_at),
    },
    reason: reasons[0]!,
    reasons,
    grids: grids.map(publicGrid),
  };
}

// ---------------------------------------------------------------- a job, a dataset

interface GroupRow {
  status: TaskStatus; name: string; task_rel_id: number; req_cpu: number; req_gpu: number; req_memory: number; req_disk: number; req_time: number;
  req_site: string | null; backoff: number | string; submit_failed: number | string; grid: string | null; batch_reason: string | null;
  n: number | string; retry_max: number | string | null; since: number | string | null;
}

/** The tasks of a dataset (or one job of it) grouped by what decides their reason: one statement. */
async function taskGroups(db: DbOrTrx, datasetId: number, jobId: number | null, now: number): Promise<GroupRow[]> {
  const backoff = db.raw('CASE WHEN t.status = ? AND t.next_retry_at > ? THEN 1 ELSE 0 END', [TaskStatus.WAITING, now]);
  const batchReason = db.raw('CASE WHEN t.status = ? THEN t.batch_reason ELSE NULL END', [TaskStatus.QUEUED]);
  const submitFailed = db.raw('CASE WHEN t.status = ? AND t.submit_errors > 0 THEN 1 ELSE 0 END', [TaskStatus.WAITING]);
  const q = db('task as t')
    .leftJoin('grid as g', 'g.id', 't.grid_id')
    .select('t.status', 't.name', 't.task_rel_id', 't.req_cpu', 't.req_gpu', 't.req_memory', 't.req_disk', 't.req_time', 't.req_site', 'g.name as grid')
    .select(db.raw('? AS backoff', [backoff]), db.raw('? AS batch_reason', [batchReason]), db.raw('? AS submit_failed', [submitFailed]))
    .count({ n: '*' })
    .max({ retry_max: 't.next_retry_at' })
    .min({ since: 't.status_changed_at' })
    .where('t.dataset_id', datasetId)
    .groupBy('t.status', 't.name', 't.task_rel_id', 't.req_cpu', 't.req_gpu', 't.req_memory', 't.req_disk', 't.req_time', 't.req_site', 'g.name', backoff, batchReason, submitFailed)
    .limit(WHY_GROUPS_MAX + 1);
  if (jobId !== null) q.andWhere('t.job_id', jobId);
  return (await q) as GroupRow[];
}

/**
 * `job.why` (jobIndex given) and `dataset.why`: the reasons of `whyTask`, counted. NotFoundError
 * for an unknown dataset or job.
 */
export async function whyTasks(db: DbOrTrx, datasetId: number, jobIndex: number | null, opts: WhyOptions = {}): Promise<GroupWhy> {
  const now = opts.now ?? nowMs();
  const silentMs = opts.silentMs ?? QUEUE_SILENT_MS;
  const ds = (await db('dataset').select('id', 'status').where({ id: datasetId }).first()) as { id: number; status: string } | undefined;
  if (!ds) throw new NotFoundError(`no dataset ${datasetId}`);
  let jobId: number | null = null;
  if (jobIndex !== null) {
    const job = (await db('job').select('id').where({ dataset_id: datasetId, job_index: jobIndex }).first()) as { id: number } | undefined;
    if (!job) throw new NotFoundError(`no job ${jobIndex} in dataset ${datasetId}`);
    jobId = Number(job.id);
  }
  const rows = await taskGroups(db, datasetId, jobId, now);
  const truncated = rows.length > WHY_GROUPS_MAX;
  const groups = rows.slice(0, WHY_GROUPS_MAX);
  const grids = await loadGrids(db, datasetId, now);
  const stopped = ds.status !== DatasetStatus.PROCESSING;
  // dependency edges by task_rel, and how many tasks of each task_rel are not OK (from the groups)
  const edges: Array<{ task_rel_id: number; depends_on_id: number }> = await db('task_rel_dep as r')
    .join('task_rel as tr', 'tr.id', 'r.task_rel_id').select('r.task_rel_id', 'r.depends_on_id').where('tr.dataset_id', datasetId);
  const notOk = new Map<number, { name: string; n: number }>();
  for (const g of groups) {
    if (g.status === TaskStatus.OK) continue;
    const e = notOk.get(Number(g.task_rel_id)) ?? { name: g.name, n: 0 };
    e.n += num(g.n);
    notOk.set(Number(g.task_rel_id), e);
  }

  // groups share requirements: the grid-side verdict once per requirement set
  const verdicts = new Map<string, { reasons: WhyReason[]; ready: () => WhyReason }>();
  const verdictOf = (req: TaskRequirements) => {
    const key = JSON.stringify(req);
    let v = verdicts.get(key);
    if (!v) {
      let ready: WhyReason | undefined;
      v = { reasons: gridReasons(req, grids, datasetId, now, silentMs), ready: () => (ready ??= readyReason(req, grids, now, silentMs)) };
      verdicts.set(key, v);
    }
    return v;
  };
  const out = new Map<string, CountedReason & { since?: number; until?: number }>();
  const add = (status: TaskStatus, n: number, r: WhyReason, times: { since?: number | null; until?: number | null } = {}) => {
    const key = `${status}\u0000${r.code}\u0000${r.message}`;
    const e = out.get(key) ?? { ...r, status, count: 0 };
    e.count += n;
    if (times.since != null) e.since = Math.min(e.since ?? Infinity, times.since);
    if (times.until != null) e.until = Math.max(e.until ?? -Infinity, times.until);
    out.set(key, e);
  };
  for (const g of groups) {
    const n = num(g.n);
    const since = numOrNull(g.since);
    const req = requirementsOf(g);
    switch (g.status) {
      case TaskStatus.OK: add(g.status, n, { code: WhyCode.OK, message: 'finished OK', data: {} }); break;
      case TaskStatus.FAILED: add(g.status, n, { code: WhyCode.FAILED, message: 'failed for good (job.reset retries them)', data: {} }); break;
      case TaskStatus.SUSPENDED: add(g.status, n, { code: WhyCode.TASK_SUSPENDED, message: 'suspended by a person', data: {} }); break;
      case TaskStatus.IDLE: {
        const never = verdictOf(req).reasons.find((r) => NEVER.includes(r.code));
        const deps = edges.filter((e) => Number(e.task_rel_id) === Number(g.task_rel_id)).map((e) => notOk.get(Number(e.depends_on_id))).filter((d): d is { name: string; n: number } => d !== undefined);
        add(g.status, n, {
          code: WhyCode.DEPENDENCIES,
          message: `${g.name}: waiting for dependencies${deps.length ? ` (${deps.map((d) => `${d.name}: ${d.n} not OK`).join(', ')})` : ''}${never ? `; then: ${never.message}` : ''}`,
          data: { task: g.name, dependencies: deps.map((d) => ({ name: d.name, not_ok: d.n })), ...(never ? { then: { code: never.code, message: never.message } } : {}) },
        });
        break;
      }
      case TaskStatus.WAITING: {
        const first = stopped
          ? { code: WhyCode.DATASET_SUSPENDED, message: `dataset ${datasetId} is ${ds.status}`, data: { status: ds.status } }
          : verdictOf(req).reasons[0];
        if (first) add(g.status, n, first);
        else if (num(g.backoff) === 1) add(g.status, n, { code: WhyCode.BACKOFF, message: 'in retry backoff', data: {} }, { until: numOrNull(g.retry_max) });
        else if (num(g.submit_failed) === 1) add(g.status, n, { code: WhyCode.SUBMIT_FAILED, message: 'their batch submission failed (firn why tTASK shows the message)', data: {} });
        else add(g.status, n, verdictOf(req).ready());
        break;
      }
      case TaskStatus.QUEUEING: add(g.status, n, { code: WhyCode.CLAIMED, message: `claimed by grid ${g.grid ?? '?'}, being submitted`, data: { grid: g.grid } }, { since }); break;
      case TaskStatus.QUEUED:
        add(g.status, n, {
          code: WhyCode.BATCH_QUEUED,
          message: `in grid ${g.grid ?? '?'}'s batch queue${g.batch_reason ? `; the batch system says: ${g.batch_reason}` : ''}`,
          data: { grid: g.grid, batch_reason: g.batch_reason },
        }, { since });
        break;
      case TaskStatus.PROCESSING: add(g.status, n, { code: WhyCode.RUNNING, message: `running on grid ${g.grid ?? '?'}`, data: { grid: g.grid } }, { since }); break;
      case TaskStatus.READYTOCOPY:
      case TaskStatus.COPYING:
      case TaskStatus.COPIED:
        add(g.status, n, { code: WhyCode.COPYING, message: g.status === TaskStatus.READYTOCOPY ? 'outputs staged, waiting for firn-dh' : 'outputs being copied', data: {} }, { since });
        break;
      default: add(g.status, n, { code: WhyCode.RETRY, message: 'the retry policy decides next', data: {} });
    }
  }
  const reasons = [...out.values()].map(({ since, until, ...r }) => {
    const extra = [since !== undefined ? `oldest since ${iso(since)}` : null, until !== undefined ? `until ${iso(until)} at the latest` : null].filter(Boolean).join(', ');
    return { ...r, message: extra ? `${r.message} (${extra})` : r.message, data: { ...r.data, ...(since !== undefined ? { since } : {}), ...(until !== undefined ? { until } : {}) } };
  });
  reasons.sort((a, b) => b.count - a.count || a.status.localeCompare(b.status));
  return {
    dataset_id: datasetId,
    job_index: jobIndex,
    dataset_status: ds.status,
    tasks: reasons.reduce((s, r) => s + r.count, 0),
    reasons,
    grids: grids.map(publicGrid),
    truncated,
  };
}

/** "11,000 WAITING: no grid offers gpu ≥ 1 (local: gpu 0)" — one line of a counted answer. */
export function countedLine(r: CountedReason): string {
  return `${r.count.toLocaleString('en-US')} ${r.status}: ${r.message}`;
}

/**
 * Submission-time check: per task requirement set, the grids (assigned, or every grid when
 * none is) that cannot run it. Returns one problem per task whose requirements no grid
 * satisfies, naming the first unsatisfied requirement's config path.
 */
export async function unsatisfiableRequirements(
  db: DbOrTrx,
  tasks: ReadonlyArray<{ index: number; name: string; requirements: TaskRequirements }>,
  gridIds: readonly number[],
): Promise<Array<{ task: string; index: number; requirement: RequirementName; path: string; message: string }>> {
  const q = db('grid').select('id', 'name', 'capabilities').orderBy('name').limit(1000);
  if (gridIds.length) q.whereIn('id', [...gridIds]);
  const rows: Array<{ id: number; name: string; capabilities: string }> = await q;
  const grids = rows.map((r) => {
    let capabilities: GridCapabilities = {};
    try {
      capabilities = parseCapabilities(r.capabilities);
    } catch {
      capabilities = {};
    }
    return { name: r.name, capabilities };
  });
  const out: Array<{ task: string; index: number; requirement: RequirementName; path: string; message: string }> = [];
  for (const t of tasks) {
    if (grids.length === 0) continue; // no grid at all: reported once by the caller
    const misfits = grids.map((g) => ({ grid: g.name, misfits: requirementMisfits(t.requirements, g) }));
    if (misfits.some((m) => m.misfits.length === 0)) continue;
    const requirement = misfits[0]!.misfits[0]!.requirement;
    out.push({
      task: t.name, index: t.index, requirement, path: `/params/config/tasks/${t.index}/requirements/${requirement}`,
      message: `task ${t.name}: ${noFitMessage(misfits, gridIds.length ? 'assigned grid' : 'grid')}`,
    });
  }
  return out;
}
