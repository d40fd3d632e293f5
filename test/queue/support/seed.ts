/**
 * Rows for queue tests, inserted directly (multi-row inserts): grids, and datasets with
 * jobs whose tasks form a small DAG. Tasks without dependencies start WAITING, others IDLE.
 */
import { TaskStatus, chunk, transition, type Db, type DbOrTrx } from '@firn/core';

export interface SeedReq {
  cpu?: number;
  gpu?: number;
  memory?: number;
  disk?: number;
  time?: number;
  site?: string | null;
}
export interface SeedTask {
  name: string;
  depends?: string[];
  req?: SeedReq;
}
export interface SeedOptions {
  jobs?: number;
  tasks?: SeedTask[];
  /** Grid ids the dataset is assigned to. */
  grids?: number[];
  priority?: number;
  status?: string;
}
export interface Seeded {
  datasetId: number;
  jobIds: number[];
  /** taskIds[job][taskIndex] */
  taskIds: number[][];
  /** every task id, job-major */
  all: number[];
}

export async function addGrid(db: Db, name: string, capabilities: Record<string, unknown> = {}, plugin = 'local'): Promise<number> {
  await db('grid').insert({ name, plugin, capabilities: JSON.stringify(capabilities), status: 'enabled', created_at: Date.now() });
  const row = (await db('grid').where('name', name).first()) as { id: number };
  return Number(row.id);
}

async function insertId(db: DbOrTrx, table: string, row: Record<string, unknown>): Promise<number> {
  const [id] = (await db(table).insert(row)) as number[];
  return Number(id);
}

export async function seedDataset(db: Db, o: SeedOptions = {}): Promise<Seeded> {
  const tasks = o.tasks ?? [{ name: 'main' }];
  const nJobs = o.jobs ?? 1;
  const t = Date.now();
  return db.transaction(async (trx) => {
    const datasetId = await insertId(trx, 'dataset', {
      description: 'queue test', status: o.status ?? 'PROCESSING', priority: o.priority ?? 0, tasks_per_job: tasks.length,
      config: JSON.stringify({ tasks }), config_hash: 'x'.repeat(64), created_at: t, updated_at: t, jobs_submitted: nJobs,
    });
    const relIds: number[] = [];
    for (const [i, task] of tasks.entries()) {
      relIds.push(await insertId(trx, 'task_rel', { dataset_id: datasetId, task_index: i, name: task.name, requirements: JSON.stringify(task.req ?? {}) }));
    }
    const deps = tasks.flatMap((task, i) =>
      (task.depends ?? []).map((d) => ({ task_rel_id: relIds[i], depends_on_id: relIds[tasks.findIndex((x) => x.name === d)] })),
    );
    if (deps.length) await trx('task_rel_dep').insert(deps);
    for (const g of o.grids ?? []) await trx('dataset_grid').insert({ dataset_id: datasetId, grid_id: g });
    for (const part of chunk(Array.from({ length: nJobs }, (_, j) => j), 500)) {
      await trx('job').insert(part.map((j) => ({ dataset_id: datasetId, job_index: j, status: 'PROCESSING', status_changed_at: t })));
    }
    const jobs: Array<{ id: number; job_index: number }> = await trx('job').select('id', 'job_index').where('dataset_id', datasetId).orderBy('job_index');
    const rows = jobs.flatMap((job) =>
      tasks.map((task, i) => ({
        dataset_id: datasetId, job_id: job.id, task_rel_id: relIds[i], task_index: i, name: task.name,
        status: task.depends?.length ? TaskStatus.IDLE : TaskStatus.WAITING, status_changed_at: t,
        req_cpu: task.req?.cpu ?? 1, req_gpu: task.req?.gpu ?? 0, req_memory: task.req?.memory ?? 2000,
        req_disk: task.req?.disk ?? 10000, req_time: task.req?.time ?? 60, req_site: task.req?.site ?? null,
      })),
    );
    for (const part of chunk(rows, 200)) await trx('task').insert(part);
    const ids: Array<{ id: number; job_id: number; task_index: number }> = await trx('task')
      .select('id', 'job_id', 'task_index').where('dataset_id', datasetId).orderBy(['job_id', 'task_index']);
    const jobIds = jobs.map((j) => Number(j.id));
    const taskIds = jobIds.map((jid) => ids.filter((r) => Number(r.job_id) === jid).map((r) => Number(r.id)));
    return { datasetId, jobIds, taskIds, all: taskIds.flat() };
  });
}

/** Walk tasks from QUEUEING (or QUEUED) all the way to OK through the real transitions. */
export async function finishTasks(db: Db, ids: number[]): Promise<void> {
  const S = TaskStatus;
  const steps: Array<[TaskStatus, TaskStatus, 'queue' | 'mon' | 'dh']> = [
    [S.QUEUEING, S.QUEUED, 'queue'], [S.QUEUED, S.PROCESSING, 'mon'], [S.PROCESSING, S.READYTOCOPY, 'mon'],
    [S.READYTOCOPY, S.COPYING, 'dh'], [S.COPYING, S.COPIED, 'dh'], [S.COPIED, S.OK, 'dh'],
  ];
  for (const [from, to, by] of steps) await transition(db, { taskIds: ids, from, to, by, actor: 'test', strict: false });
}

export async function statusOf(db: Db, ids: number[]): Promise<Record<number, string>> {
  const rows: Array<{ id: number; status: string }> = await db('task').select('id', 'status').whereIn('id', ids);
  return Object.fromEntries(rows.map((r) => [Number(r.id), r.status]));
}

/**
 * A worker node black-holed until `until` (ms), as firn-dh leaves it: the node row with its
 * grid, failures in `recent`, and blackholed_until (inserted, or updated when the host exists).
 */
export async function blackholeNode(db: Db, host: string, gridId: number | null, until: number): Promise<void> {
  const row = { grid_id: gridId, ok_count: 0, fail_count: 5, recent: '', blackholed_until: until, updated_at: Date.now() };
  const n = await db('node').where('hostname', host).update(row);
  if (n === 0) await db('node').insert({ hostname: host, ...row });
}
