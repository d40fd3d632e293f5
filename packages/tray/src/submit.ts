import fs from 'node:fs';
import {
  ConflictError, DatasetStatus, ExpressionError, JobStatus, TaskStatus, ValidationError, actorOf,
  chunk, coerceError, configHash, defaultRequirements, evaluate, unsatisfiableRequirements, getDatasetConfig, hasExpressions, isUrl, resolveRemote, resolveRetryPolicy, isMysql, now, recordHistory, validateDatasetConfig, withTransaction,
  type AuthUser, type DatasetConfig, type Db, type DbOrTrx, type Requirements as RequirementSpec, type Logger, type RpcContext, type StorageRoots, type Trx, type ValidationIssue,
} from '@firn/core';
import { caller, controllableDataset, type Methods, type TrayContext } from './context';
import { assertLive } from './datasets';
import { fetchModule, type FetchBudget, type FetchOptions, type FetchedModule } from './external-modules';

/**
 * dataset.submit and dataset.add_jobs: the hot path that creates jobs × tasks.
 *
 * Everything a submission writes goes in ONE transaction: the dataset row (config kept whole,
 * with its hash), its relational form (steering_parameter, metaproject, task_rel + task_rel_dep,
 * tray, module, cparameter), dataset_grid, then the jobs and tasks as multi-row INSERTs in
 * chunks (below the engines' placeholder limits), job ids read back by (dataset_id, job_index)
 * range. Tasks with no dependencies start WAITING, the others IDLE. Creation is not a
 * transition: the initial status is inserted directly and ONE history row (action `submit`)
 * records the submission — not one per task.
 *
 * Requirements: plain numbers go straight into the task's req_* columns. A requirement that is
 * an expression (`"$eval(2*$steering(mem))"`) is evaluated at submission for each job (with
 * $(dataset), $(job), $(jobs_total), $steering and, for offline jobs, $args) — so the queue can
 * match requirements with plain SQL. It must evaluate to a number then: `$system(...)` (known
 * only on the worker) is refused with -32602 naming the path.
 */

type ReqSpec = RequirementSpec;
type DatasetCfg = DatasetConfig;

/** Resolved requirements of one task of one job (the req_* columns). */
export interface Requirements { cpu: number; gpu: number; memory: number; disk: number; time: number; site: string | null }

const REQ_KEYS = ['cpu', 'gpu', 'memory', 'disk', 'time'] as const;

/** One task of the dataset's DAG, with what is needed to create its rows for any job. */
interface TaskPlan {
  index: number;
  name: string;
  hasDeps: boolean;
  spec: ReqSpec;
  /** Same for every job (no expressions), or null: evaluate per job. */
  constant: Requirements | null;
  relId: number;
}

function configPath(...parts: Array<string | number>): string {
  return `/params/config/${parts.join('/')}`;
}

/** Turn one requirement value into its column value; `where` names the JSON path for errors. */
function requirementValue(key: (typeof REQ_KEYS)[number], raw: number | string | undefined, evalText: (s: string) => string, where: string): number {
  if (raw === undefined) return defaultRequirements[key];
  let n: number;
  if (typeof raw === 'number') n = raw;
  else {
    const text = evalText(raw).trim();
    n = text === '' ? NaN : Number(text);
    if (!Number.isFinite(n)) throw new ValidationError('invalid requirement', [{ path: where, message: `must evaluate to a number, got ${JSON.stringify(text.slice(0, 80))}` }]);
  }
  if (key === 'cpu' || key === 'gpu') {
    if (!Number.isInteger(n) || n < (key === 'cpu' ? 1 : 0)) {
      throw new ValidationError('invalid requirement', [{ path: where, message: `must be an integer ≥ ${key === 'cpu' ? 1 : 0}, got ${n}` }]);
    }
    return n;
  }
  if (n < 0 || (n === 0 && key !== 'disk') || n > 2_000_000_000) {
    throw new ValidationError('invalid requirement', [{ path: where, message: `must be ${key === 'disk' ? '≥ 0' : '> 0'} and at most 2e9, got ${n}` }]);
  }
  return Math.ceil(n); // MB and minutes are whole numbers in the columns
}

function resolveRequirements(spec: ReqSpec, taskIndex: number, evalText: ((s: string) => string) | null): Requirements {
  const ev = evalText ?? ((s: string) => s);
  const out = { site: null } as Requirements;
  for (const k of REQ_KEYS) out[k] = requirementValue(k, spec[k], ev, configPath('tasks', taskIndex, 'requirements', k));
  if (spec.site !== undefined) {
    const site = ev(spec.site);
    if (site.length === 0 || site.length > 190) {
      throw new ValidationError('invalid requirement', [{ path: configPath('tasks', taskIndex, 'requirements', 'site'), message: 'must be 1 to 190 characters' }]);
    }
    out.site = site;
  }
  return out;
}

function isConstant(spec: ReqSpec): boolean {
  return REQ_KEYS.every((k) => typeof spec[k] !== 'string') && (spec.site === undefined || !spec.site.includes('$'));
}

interface ExprEnv {
  datasetId: number;
  jobsTotal: number;
  steering: Record<string, unknown>;
}

/** Evaluate a requirement expression for one job; ExpressionErrors become -32602 naming the task. */
function jobEvaluator(env: ExprEnv, job: number, args: Record<string, unknown> | undefined, task: TaskPlan): (s: string) => string {
  return (s: string) => {
    try {
      return evaluate(s, { dataset: env.datasetId, job, jobs_total: env.jobsTotal, steering: env.steering, args: args ?? {}, task: task.name });
    } catch (e) {
      if (e instanceof ExpressionError) {
        throw new ValidationError('invalid requirement', [{ path: configPath('tasks', task.index, 'requirements'), message: `job ${job}: ${e.message}` }]);
      }
      throw e;
    }
  };
}

// ---------------------------------------------------------------- bulk inserts

/**
 * Rows per multi-row INSERT. SQLite allows 32,766 bound parameters per statement. On MySQL the
 * rows go as one nested-array binding (`VALUES ?`, escaped by mysql2 — the driver's own bulk
 * form, no placeholder per value to scan) and the limit is max_allowed_packet (16 MB by default
 * on MariaDB): 5,000 rows of ids and short names are a few hundred KB.
 */
export function rowsPerInsert(db: DbOrTrx, columns: number): number {
  return isMysql(db) ? 5000 : Math.max(1, Math.floor(32_000 / columns));
}

/** One multi-row INSERT; every value is a binding. */
function insertStatement(trx: Trx, table: string, columns: readonly string[], rows: readonly unknown[][]): Promise<unknown> {
  const head = `INSERT INTO ${table} (${columns.join(', ')}) VALUES `;
  if (isMysql(trx)) return trx.raw(`${head}?`, [rows] as never[]);
  const one = `(${columns.map(() => '?').join(', ')})`;
  const bindings: unknown[] = new Array(rows.length * columns.length);
  let k = 0;
  for (const r of rows) for (const v of r) bindings[k++] = v;
  return trx.raw(head + new Array(rows.length).fill(one).join(', '), bindings as never[]);
}

/**
 * INSERT INTO table (columns) VALUES (…), (…) — in chunks, all values bound. While one chunk
 * is on its way to the server the next one is built (one connection: statements stay in order).
 */
export async function insertRows(trx: Trx, table: string, columns: readonly string[], rows: Iterable<unknown[]>, perStatement?: number): Promise<number> {
  const size = perStatement ?? rowsPerInsert(trx, columns.length);
  let pending: Promise<unknown> | null = null;
  let part: unknown[][] = [];
  let n = 0;
  try {
    for (const r of rows) {
      part.push(r);
      n++;
      if (part.length >= size) {
        if (pending) await pending;
        pending = insertStatement(trx, table, columns, part);
        part = [];
      }
    }
  } catch (e) {
    // a row could not be made (e.g. a requirement expression failed): let the statement in flight settle first
    if (pending) await pending.catch(() => undefined);
    throw e;
  }
  if (pending) await pending;
  if (part.length) await insertStatement(trx, table, columns, part);
  return n;
}

/** Jobs created per round of (insert jobs, read their ids back, insert their tasks). */
export const JOB_BATCH = 50_000;

const JOB_COLUMNS = ['dataset_id', 'job_index', 'status', 'run_id', 'args', 'status_changed_at'] as const;
const TASK_COLUMNS = [
  'dataset_id', 'job_id', 'task_rel_id', 'task_index', 'name', 'status', 'status_changed_at',
  'req_cpu', 'req_gpu', 'req_memory', 'req_disk', 'req_time', 'req_site',
] as const;

export interface NewJob {
  index: number;
  args?: Record<string, unknown>;
  runId?: number | null;
}

/**
 * Insert jobs and their tasks (the hot path): jobs in multi-row INSERTs, their ids read back by
 * job_index range, then every task row in multi-row INSERTs. Task rows are generated lazily, so
 * a million tasks never sit in memory at once. Returns job_index → job id.
 */
export async function createJobsAndTasks(trx: Trx, env: ExprEnv, plans: readonly TaskPlan[], jobs: readonly NewJob[]): Promise<Map<number, number>> {
  if (jobs.length === 0) return new Map();
  const t = now();
  await insertRows(trx, 'job', JOB_COLUMNS, (function* () {
    for (const j of jobs) yield [env.datasetId, j.index, JobStatus.PROCESSING, j.runId ?? null, j.args === undefined ? null : JSON.stringify(j.args), t];
  })());
  let lo = Infinity, hi = -Infinity;
  for (const j of jobs) {
    if (j.index < lo) lo = j.index;
    if (j.index > hi) hi = j.index;
  }
  const idRows = (await trx('job').select('id', 'job_index').where('dataset_id', env.datasetId).andWhere('job_index', '>=', lo).andWhere('job_index', '<=', hi)) as Array<{ id: number; job_index: number }>;
  const ids = new Map<number, number>();
  for (const r of idRows) ids.set(Number(r.job_index), Number(r.id));

  await insertRows(trx, 'task', TASK_COLUMNS, (function* () {
    for (const job of jobs) {
      const jobId = ids.get(job.index);
      if (jobId === undefined) throw new Error(`job ${job.index} of dataset ${env.datasetId} was not found after insert`);
      for (const p of plans) {
        const r = p.constant ?? resolveRequirements(p.spec, p.index, jobEvaluator(env, job.index, job.args, p));
        yield [env.datasetId, jobId, p.relId, p.index, p.name, p.hasDeps ? TaskStatus.IDLE : TaskStatus.WAITING, t, r.cpu, r.gpu, r.memory, r.disk, r.time, r.site];
      }
    }
  })());
  return ids;
}

// ---------------------------------------------------------------- dataset.submit

export interface SubmitParams {
  config: unknown;
  jobs?: number;
  type?: 'simulation' | 'offline';
  grids?: string[];
  priority?: number;
  description?: string;
  /** Refuse (-32602, naming the requirement's path) instead of warning when no grid can run a task. */
  strict?: boolean;
}

export interface SubmitOptions {
  /** The person submitting (owner, and `user:<name>` in history). */
  user: Pick<AuthUser, 'id' | 'username'>;
  fetch: FetchOptions;
  logger?: Logger;
  /** Jobs per round of inserts (default JOB_BATCH). */
  jobBatch?: number;
  /** Where outputs may be delivered (firn-tray passes `[dh] destinations` + `[system] site_temp`); unset: not checked. */
  roots?: StorageRoots;
  /** Grids assigned when the params name none (`[tray] default_grids`; firn up: its local grid). */
  defaultGrids?: readonly string[];
}

/** Something a submission accepted but that will keep (some of) its tasks from running. */
export interface SubmitWarning {
  /** JSON path of what it is about (`/params/config/tasks/1/requirements/gpu`, `/params/grids`). */
  path: string;
  message: string;
}

export interface SubmitResult {
  dataset_id: number;
  jobs: number;
  tasks: number;
  /** The grids the dataset was assigned (those given, or the defaults). */
  grids: string[];
  warnings: SubmitWarning[];
}

/** `[tray] default_grids` (comma-separated) as a list. */
export function defaultGridsOf(tray: object): string[] {
  const v = (tray as { default_grids?: unknown }).default_grids;
  return typeof v === 'string' ? v.split(',').map((g) => g.trim()).filter(Boolean) : [];
}

/**
 * Tasks no grid can run: with grids assigned, those whose requirements (job 0's, for
 * expressions) none of them satisfies; with none, those no grid at all satisfies, and the
 * missing assignment itself. Warnings, or -32602 naming the path under `strict`.
 */
async function runnability(
  trx: Trx, plans: ReadonlyArray<{ index: number; name: string; requirements: Requirements }>, gridIds: readonly number[], strict: boolean,
): Promise<SubmitWarning[]> {
  const warnings: SubmitWarning[] = [];
  if (gridIds.length === 0) {
    const grids = Number(((await trx('grid').count({ n: '*' })) as Array<{ n: number | string }>)[0]?.n ?? 0);
    warnings.push({
      path: '/params/grids',
      message: grids === 0
        ? 'no grid exists: nothing runs until one is added (grid.add) and assigned (dataset.add_grid)'
        : 'no grid is assigned: nothing runs until one is (dataset.add_grid, or firn submit --grid)',
    });
  }
  for (const p of await unsatisfiableRequirements(trx, plans.map((x) => ({ index: x.index, name: x.name, requirements: x.requirements })), gridIds)) {
    warnings.push({ path: p.path, message: p.message });
  }
  if (strict && warnings.length) throw new ValidationError('no grid can run this dataset (strict)', warnings);
  return warnings;
}

function isDuplicate(e: unknown): boolean {
  const code = (e as { code?: string }).code ?? '';
  return code === 'ER_DUP_ENTRY' || code.startsWith('SQLITE_CONSTRAINT');
}

/**
 * Fetch every external module (once per URL), before the transaction opens. The bytes of
 * one submission are capped together (`[tray] fetch_max_total_bytes`), counted as stored:
 * a URL used by three modules is stored three times (module.src_content), so it counts three
 * times — the sum bounds both the tray's memory and what the transaction writes.
 */
async function fetchExternalModules(cfg: DatasetCfg, options: FetchOptions): Promise<Map<string, FetchedModule>> {
  const fetched = new Map<string, FetchedModule>();
  const budget: FetchBudget = { used: 0 };
  const uses: Array<{ url: string; where: string }> = [];
  cfg.tasks.forEach((task, ti) =>
    task.trays.forEach((tray, yi) =>
      tray.modules.forEach((m, mi) => {
        if (m.src !== undefined) uses.push({ url: m.src, where: configPath('tasks', ti, 'trays', yi, 'modules', mi, 'src') });
      }),
    ),
  );
  for (const { url, where } of uses) {
    const known = fetched.get(url);
    if (!known) {
      fetched.set(url, await fetchModule(url, options, where, budget));
      continue;
    }
    budget.used += known.size;
    const cap = options.maxTotalBytes;
    if (cap !== undefined && budget.used > cap) {
      throw new ValidationError('external module could not be fetched', [
        { path: where, message: `would bring this submission's external modules over the ${cap} bytes allowed together ([tray] fetch_max_total_bytes; a module used again is stored again)` },
      ]);
    }
  }
  return fetched;
}

/**
 * Refuse a dataset whose output `remote`s (data[] movement output | both) fall outside the
 * storage roots (storage-roots.ts), naming each one's path. A remote is evaluated as far as it
 * can be at submission — steering and site temp known, `$(dataset)` / `$(job)` as 0, `$args`
 * left alone — and one that still holds an expression is left to firn-mon, which checks every
 * task's derived locations (the authority; this is early feedback). Relative remotes resolve
 * under site temp and are always inside.
 */
function checkOutputDestinations(cfg: DatasetCfg, roots: StorageRoots, jobsTotal: number): void {
  const issues: ValidationIssue[] = [];
  const steering = (cfg.steering?.parameters ?? {}) as Record<string, unknown>;
  const siteTemp = roots.siteTempUrl;
  cfg.tasks.forEach((task, ti) =>
    (task.data ?? []).forEach((d, di) => {
      if (d.movement !== 'output' && d.movement !== 'both') return;
      let remote: string;
      try {
        remote = evaluate(d.remote, { steering, system: siteTemp ? { site_temp: siteTemp } : {}, dataset: 0, job: 0, task: task.name, jobs_total: jobsTotal, iter: 0 }, { keepUnresolved: true });
      } catch {
        return; // expression errors are reported where the config is validated, or at run time
      }
      if (remote === '' || hasExpressions(remote)) return;
      let url = remote;
      if (!isUrl(remote)) {
        if (!siteTemp) return; // firn-mon refuses it (no site temp to resolve it under)
        try {
          url = resolveRemote(remote, siteTemp);
        } catch (e) {
          issues.push({ path: configPath('tasks', ti, 'data', di, 'remote'), message: coerceError(e).message });
          return;
        }
      }
      const why = roots.destinationRefusal(url);
      if (why) issues.push({ path: configPath('tasks', ti, 'data', di, 'remote'), message: why });
    }),
  );
  if (issues.length) throw new ValidationError('output destination outside the storage roots', issues);
}

/** Validate and create a dataset; the function behind dataset.submit (and the benchmark). */
export async function submitDataset(db: Db, params: SubmitParams, options: SubmitOptions): Promise<SubmitResult> {
  const validation = validateDatasetConfig(params.config);
  if (!validation.ok) {
    const issues: ValidationIssue[] = validation.issues.map((i) => ({ path: `/params/config${i.path === '/' ? '' : i.path}`, message: i.message }));
    throw new ValidationError('invalid dataset config', issues);
  }
  const cfg: DatasetCfg = validation.config;
  const type = params.type ?? cfg.type ?? (params.jobs === 0 ? 'offline' : 'simulation');
  const jobsTotal = params.jobs ?? (type === 'offline' ? 0 : 1);
  if (type === 'offline' && jobsTotal !== 0) {
    throw new ValidationError('invalid params', [{ path: '/params/jobs', message: `must be 0 for an offline dataset (jobs come from dataset.add_jobs), got ${jobsTotal}` }]);
  }
  if (type === 'simulation' && jobsTotal === 0) {
    throw new ValidationError('invalid params', [{ path: '/params/jobs', message: 'must be at least 1 for a simulation dataset (use type offline for zero jobs)' }]);
  }
  const description = (params.description ?? cfg.description ?? '').slice(0, 1024);
  const steering = { ...(cfg.steering?.parameters ?? {}) };

  // relational checks the tables need
  const longNames: ValidationIssue[] = [];
  cfg.tasks.forEach((task, ti) =>
    task.trays.forEach((tray, yi) =>
      tray.modules.forEach((m, mi) => {
        if (m.class.length > 190) longNames.push({ path: configPath('tasks', ti, 'trays', yi, 'modules', mi, 'class'), message: 'must be at most 190 characters' });
        if (m.src !== undefined && m.src.length > 2048) longNames.push({ path: configPath('tasks', ti, 'trays', yi, 'modules', mi, 'src'), message: 'must be at most 2048 characters' });
        for (const name of Object.keys(m.parameters ?? {})) {
          if (name.length > 190) longNames.push({ path: configPath('tasks', ti, 'trays', yi, 'modules', mi, 'parameters', name.slice(0, 40) + '…'), message: 'parameter names must be at most 190 characters' });
        }
      }),
    ),
  );
  if (longNames.length) throw new ValidationError('invalid dataset config', longNames);

  // constant requirements are checked now (before any row is written)
  const plans: TaskPlan[] = cfg.tasks.map((task, index) => {
    const spec = task.requirements ?? {};
    const constant = isConstant(spec) ? resolveRequirements(spec, index, null) : null;
    return { index, name: task.name, hasDeps: (task.depends ?? []).length > 0, spec, constant, relId: 0 };
  });

  if (options.roots) checkOutputDestinations(cfg, options.roots, jobsTotal);
  const modules = await fetchExternalModules(cfg, options.fetch);
  const actor = actorOf(options.user);
  const hash = configHash(params.config);
  const configText = JSON.stringify(params.config);

  const result = await withTransaction(db, async (trx: Trx) => {
    const gridIds: number[] = [];
    const gridNames: string[] = [];
    for (const [i, name] of (params.grids ?? []).entries()) {
      const g = (await trx('grid').select('id').where({ name }).first()) as { id: number } | undefined;
      if (!g) throw new ValidationError('invalid params', [{ path: `/params/grids/${i}`, message: `no grid named ${JSON.stringify(name)} (grid.list shows them)` }]);
      gridIds.push(Number(g.id));
      gridNames.push(name);
    }
    if (params.grids === undefined) {
      for (const name of options.defaultGrids ?? []) {
        const g = (await trx('grid').select('id').where({ name }).first()) as { id: number } | undefined;
        if (g && !gridIds.includes(Number(g.id))) {
          gridIds.push(Number(g.id));
          gridNames.push(name);
        }
      }
    }
    const t = now();
    const [inserted] = (await trx('dataset').insert({
      description, type, status: DatasetStatus.PROCESSING, priority: params.priority ?? 0, owner_id: options.user.id,
      jobs_submitted: jobsTotal, tasks_per_job: cfg.tasks.length, config: configText, config_hash: hash,
      retry: JSON.stringify(resolveRetryPolicy(cfg.retry)), created_at: t, updated_at: t,
    })) as number[];
    const datasetId = Number(inserted);
    const env: ExprEnv = { datasetId, jobsTotal, steering };

    // requirements that are expressions: evaluate for job 0 now, so an error is found before bulk work
    const firstJob = plans.map((p) => ({
      index: p.index, name: p.name,
      requirements: p.constant ?? (jobsTotal > 0 ? resolveRequirements(p.spec, p.index, jobEvaluator(env, 0, undefined, p)) : resolveRequirements({}, p.index, null)),
    }));
    const warnings = await runnability(trx, firstJob, gridIds, params.strict === true);

    await insertRows(trx, 'steering_parameter', ['dataset_id', 'name', 'type', 'value'],
      Object.entries(steering).map(([name, v]) => [datasetId, name, typeof v, String(v)]));
    await insertRows(trx, 'metaproject', ['dataset_id', 'name', 'url', 'md5', 'sha256'],
      (cfg.steering?.metaprojects ?? []).map((m) => [datasetId, m.name, m.url, m.checksum?.md5 ?? null, m.checksum?.sha256 ?? null]));

    await insertRows(trx, 'task_rel', ['dataset_id', 'task_index', 'name', 'requirements'],
      cfg.tasks.map((task, i) => [datasetId, i, task.name, JSON.stringify(task.requirements ?? {})]));
    const rels = (await trx('task_rel').select('id', 'task_index', 'name').where({ dataset_id: datasetId })) as Array<{ id: number; task_index: number; name: string }>;
    const relByName = new Map(rels.map((r) => [r.name, Number(r.id)]));
    for (const p of plans) p.relId = relByName.get(p.name)!;
    await insertRows(trx, 'task_rel_dep', ['task_rel_id', 'depends_on_id'],
      cfg.tasks.flatMap((task) => (task.depends ?? []).map((d) => [relByName.get(task.name)!, relByName.get(d)!])));

    await insertRows(trx, 'tray', ['dataset_id', 'task_rel_id', 'tray_index', 'name', 'iterations', 'metaproject'],
      cfg.tasks.flatMap((task) => task.trays.map((tray, yi) => [datasetId, relByName.get(task.name)!, yi, tray.name, tray.iterations ?? 1, tray.metaproject ?? null])));
    const trayRows = (await trx('tray').select('id', 'task_rel_id', 'tray_index').where({ dataset_id: datasetId })) as Array<{ id: number; task_rel_id: number; tray_index: number }>;
    const trayId = new Map(trayRows.map((r) => [`${Number(r.task_rel_id)}/${Number(r.tray_index)}`, Number(r.id)]));
    const moduleRows: unknown[][] = [];
    const paramsOf = new Map<string, Record<string, unknown>>();
    for (const task of cfg.tasks) {
      const relId = relByName.get(task.name)!;
      task.trays.forEach((tray, yi) => {
        const tid = trayId.get(`${relId}/${yi}`)!;
        tray.modules.forEach((m, mi) => {
          const f = m.src !== undefined ? modules.get(m.src) : undefined;
          moduleRows.push([datasetId, tid, mi, m.name, m.class, m.src ?? null, f?.sha256 ?? null, f?.md5 ?? null, f?.content ?? null]);
          if (m.parameters && Object.keys(m.parameters).length) paramsOf.set(`${tid}/${mi}`, m.parameters);
        });
      });
    }
    // a module with fetched content is one statement of its own (up to fetch_max_bytes each, under
    // MySQL's max_allowed_packet); the built-in ones go 50 to a statement
    const moduleColumns = ['dataset_id', 'tray_id', 'module_index', 'name', 'class', 'src', 'src_sha256', 'src_md5', 'src_content'];
    await insertRows(trx, 'module', moduleColumns, moduleRows.filter((r) => r[8] === null), 50);
    await insertRows(trx, 'module', moduleColumns, moduleRows.filter((r) => r[8] !== null), 1);
    if (paramsOf.size) {
      const modRows = (await trx('module').select('id', 'tray_id', 'module_index').where({ dataset_id: datasetId })) as Array<{ id: number; tray_id: number; module_index: number }>;
      const cparams: unknown[][] = [];
      for (const r of modRows) {
        const ps = paramsOf.get(`${Number(r.tray_id)}/${Number(r.module_index)}`);
        if (ps) for (const [name, value] of Object.entries(ps)) cparams.push([datasetId, Number(r.id), name, JSON.stringify(value)]);
      }
      await insertRows(trx, 'cparameter', ['dataset_id', 'module_id', 'name', 'value'], cparams);
    }
    if (gridIds.length) await insertRows(trx, 'dataset_grid', ['dataset_id', 'grid_id'], gridIds.map((g) => [datasetId, g]));

    // in batches of jobs, so that a million-job dataset never holds all its rows or ids in memory
    const perBatch = options.jobBatch ?? JOB_BATCH;
    for (let start = 0; start < jobsTotal; start += perBatch) {
      const batch: NewJob[] = Array.from({ length: Math.min(perBatch, jobsTotal - start) }, (_, i) => ({ index: start + i }));
      await createJobsAndTasks(trx, env, plans, batch);
    }

    await recordHistory(trx, {
      entity: 'dataset', entityId: datasetId, datasetId, action: 'submit', to: DatasetStatus.PROCESSING, actor,
      reason: `${jobsTotal} jobs × ${plans.length} tasks (${type})`,
    });
    return { dataset_id: datasetId, jobs: jobsTotal, tasks: jobsTotal * plans.length, grids: gridNames, warnings };
  });
  options.logger?.info('dataset submitted', { dataset: result.dataset_id, jobs: result.jobs, tasks: result.tasks, by: options.user.username });
  return result;
}

// ---------------------------------------------------------------- dataset.add_jobs

export interface AddJobsParams {
  dataset_id: number;
  jobs: Array<{
    args?: Record<string, string | number | boolean>;
    files?: Array<{ url: string; local?: string; md5: string; sha256?: string; size?: number }>;
    run?: { number: number; date: string };
  }>;
}

function localNameOf(url: string): string {
  let p = url;
  try {
    p = new URL(url).pathname;
  } catch {
    /* a plain path */
  }
  const base = p.split('/').filter(Boolean).pop() ?? 'input';
  return decodeURIComponent(base).slice(0, 1024) || 'input';
}

/** Add jobs (offline processing) with their input files and runs, in one transaction. */
export async function addJobs(ctx: TrayContext, user: AuthUser, p: AddJobsParams): Promise<{ dataset_id: number; first_job_index: number; jobs: number; tasks: number; files: number }> {
  const actor = actorOf(user);
  const dates = new Map<number, string>();
  p.jobs.forEach((j, i) => {
    if (!j.run) return;
    const seen = dates.get(j.run.number);
    if (seen !== undefined && seen !== j.run.date) {
      throw new ValidationError('invalid params', [{ path: `/params/jobs/${i}/run/date`, message: `run ${j.run.number} was given date ${seen} earlier in this call` }]);
    }
    dates.set(j.run.number, j.run.date);
  });
  return withTransaction(ctx.db, async (trx) => {
    const ds = await controllableDataset(trx, user, p.dataset_id);
    assertLive(ds);
    const { config } = await getDatasetConfig(trx, p.dataset_id);
    const cfg = config as DatasetCfg;
    const rels = (await trx('task_rel').select('id', 'task_index', 'name', 'requirements').where({ dataset_id: p.dataset_id }).orderBy('task_index')) as Array<{
      id: number; task_index: number; name: string; requirements: string;
    }>;
    const depRows = (await trx('task_rel_dep as d').join('task_rel as r', 'r.id', 'd.task_rel_id').where('r.dataset_id', p.dataset_id).distinct('d.task_rel_id')) as Array<{ task_rel_id: number }>;
    const withDeps = new Set(depRows.map((r) => Number(r.task_rel_id)));
    const plans: TaskPlan[] = rels.map((r) => {
      const spec = JSON.parse(r.requirements) as ReqSpec;
      const index = Number(r.task_index);
      return { index, name: r.name, hasDeps: withDeps.has(Number(r.id)), spec, constant: isConstant(spec) ? resolveRequirements(spec, index, null) : null, relId: Number(r.id) };
    });

    // runs: reuse the dataset's, create the missing ones
    const runIds = new Map<number, number>();
    if (dates.size) {
      const numbers = [...dates.keys()];
      for (const part of chunk(numbers, 500)) {
        const rows = (await trx('run').select('id', 'run_number').where('dataset_id', p.dataset_id).whereIn('run_number', part)) as Array<{ id: number; run_number: number }>;
        for (const r of rows) runIds.set(Number(r.run_number), Number(r.id));
      }
      const missing = numbers.filter((n) => !runIds.has(n));
      await insertRows(trx, 'run', ['dataset_id', 'run_number', 'date', 'created_at'], missing.map((n) => [p.dataset_id, n, dates.get(n)!, now()]));
      for (const part of chunk(missing, 500)) {
        const rows = (await trx('run').select('id', 'run_number').where('dataset_id', p.dataset_id).whereIn('run_number', part)) as Array<{ id: number; run_number: number }>;
        for (const r of rows) runIds.set(Number(r.run_number), Number(r.id));
      }
    }

    const last = (await trx('job').max({ m: 'job_index' }).where({ dataset_id: p.dataset_id }).first()) as { m: number | null } | undefined;
    const first = last?.m === null || last?.m === undefined ? 0 : Number(last.m) + 1;
    const jobs: NewJob[] = p.jobs.map((j, i) => ({ index: first + i, args: j.args ?? {}, runId: j.run ? runIds.get(j.run.number)! : null }));
    const jobsTotal = first + jobs.length;
    const env: ExprEnv = { datasetId: p.dataset_id, jobsTotal, steering: { ...(cfg.steering?.parameters ?? {}) } };
    let ids: Map<number, number>;
    try {
      ids = await createJobsAndTasks(trx, env, plans, jobs);
    } catch (e) {
      if (isDuplicate(e)) throw new ConflictError('another add_jobs for this dataset ran at the same time: try again');
      throw e;
    }
    const t = now();
    const fileRows: unknown[][] = [];
    p.jobs.forEach((j, i) => {
      const jobId = ids.get(first + i)!;
      for (const f of j.files ?? []) {
        fileRows.push([p.dataset_id, jobId, 'input', f.local ?? localNameOf(f.url), f.url, 'permanent', f.size ?? null, f.md5.toLowerCase(), f.sha256?.toLowerCase() ?? null, 'INPUT', t, t]);
      }
    });
    await insertRows(trx, 'file', ['dataset_id', 'job_id', 'kind', 'local_name', 'url', 'type', 'size', 'md5', 'sha256', 'state', 'created_at', 'updated_at'], fileRows);
    await trx('dataset').where({ id: p.dataset_id }).update({ jobs_submitted: jobsTotal, updated_at: t, ...(ds.status === DatasetStatus.COMPLETE ? { status: DatasetStatus.PROCESSING } : {}) });
    await recordHistory(trx, {
      entity: 'dataset', entityId: p.dataset_id, datasetId: p.dataset_id, action: 'add_jobs', actor,
      reason: `jobs ${first}–${jobsTotal - 1} (${jobs.length} jobs × ${plans.length} tasks, ${fileRows.length} input files)`,
    });
    ctx.logger.info('jobs added', { dataset: p.dataset_id, jobs: jobs.length, files: fileRows.length, by: user.username });
    return { dataset_id: p.dataset_id, first_job_index: first, jobs: jobs.length, tasks: jobs.length * plans.length, files: fileRows.length };
  });
}

/** Fetch options from the [tray] section. */
export function fetchOptionsOf(ctx: TrayContext): FetchOptions {
  return {
    maxBytes: ctx.tray.fetch_max_bytes,
    maxTotalBytes: ctx.tray.fetch_max_total_bytes,
    allowPrivate: ctx.tray.fetch_allow_private,
    timeoutMs: ctx.tray.fetch_timeout * 1000,
    ca: ctx.tray.fetch_ca ? fs.readFileSync(ctx.tray.fetch_ca) : undefined,
    logger: ctx.logger,
  };
}

export function submitMethods(ctx: TrayContext): Methods {
  return {
    'dataset.submit': {
      handler: async (p: SubmitParams, rpc: RpcContext) => {
        const user = await caller(ctx, rpc, 'manager');
        return submitDataset(ctx.db, p, {
          user, fetch: fetchOptionsOf(ctx), logger: ctx.logger, defaultGrids: defaultGridsOf(ctx.tray), ...(ctx.tray.roots ? { roots: ctx.tray.roots } : {}),
        });
      },
    },
    'dataset.add_jobs': {
      handler: async (p: AddJobsParams, rpc: RpcContext) => {
        const user = await caller(ctx, rpc, 'manager');
        return addJobs(ctx, user, p);
      },
    },
  };
}

