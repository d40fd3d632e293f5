import { getJob, whyTask, whyTasks, type DbOrTrx, type GroupWhy, type JobDetail, type TaskInfo, type TaskWhy } from '@firn/core';
import { HISTORY_COLUMNS, historyEntry, type HistoryEntry } from './dataset';
import { num, numOrNull } from './common';

export interface TaskLogView {
  name: string;
  /** The log's tail (at most LOG_TAIL characters). */
  tail: string;
  length: number;
  truncated: boolean;
  updated_at: number;
}

export interface FileView {
  id: number;
  task_id: number | null;
  kind: string;
  local_name: string;
  url: string;
  type: string;
  size: number | null;
  md5: string | null;
  sha256: string | null;
  state: string;
  error: string | null;
  updated_at: number;
}

export interface JobTaskView extends TaskInfo {
  stats: Array<{ name: string; value: number }>;
  logs: TaskLogView[];
}

export interface JobView {
  job: JobDetail;
  tasks: JobTaskView[];
  files: FileView[];
  history: HistoryEntry[];
}

/** Characters of each log shown on the job page (the whole log is one link away). */
export const LOG_TAIL = 32 * 1024;
const HISTORY_LIMIT = 500;

/** `/datasets/ID/jobs/INDEX`: the job (core `job.get`), and per task its statistics, logs, files and history. */
export async function jobView(db: DbOrTrx, datasetId: number, jobIndex: number): Promise<JobView> {
  const { job, tasks } = await getJob(db, datasetId, jobIndex);
  const ids = tasks.map((t) => t.id);
  const stats = ids.length ? ((await db('task_stat').select('task_id', 'name', 'value').whereIn('task_id', ids).orderBy('name')) as Array<Record<string, unknown>>) : [];
  const logs = ids.length ? ((await db('task_log').select('task_id', 'name', 'data', 'updated_at').whereIn('task_id', ids).orderBy('name')) as Array<Record<string, unknown>>) : [];
  const files = (await db('file')
    .select('id', 'task_id', 'kind', 'local_name', 'url', 'type', 'size', 'md5', 'sha256', 'state', 'error', 'updated_at')
    .where('job_id', job.id)
    .orderBy('id')
    .limit(5000)) as Array<Record<string, unknown>>;
  const history = (await db('history')
    .select(HISTORY_COLUMNS)
    .where((w) => {
      w.where({ entity: 'job', entity_id: job.id });
      if (ids.length) w.orWhere((o) => o.where('entity', 'task').whereIn('entity_id', ids));
    })
    .orderBy('created_at', 'desc')
    .orderBy('id', 'desc')
    .limit(HISTORY_LIMIT)) as Array<Record<string, unknown>>;
  return {
    job,
    tasks: tasks.map((t) => ({
      ...t,
      stats: stats.filter((s) => Number(s.task_id) === t.id).map((s) => ({ name: String(s.name), value: num(s.value) })),
      logs: logs
        .filter((l) => Number(l.task_id) === t.id)
        .map((l) => {
          const data = String(l.data ?? '');
          return { name: String(l.name), tail: data.length > LOG_TAIL ? data.slice(-LOG_TAIL) : data, length: data.length, truncated: data.length > LOG_TAIL, updated_at: num(l.updated_at) };
        }),
    })),
    files: files.map((f) => ({
      id: num(f.id), task_id: numOrNull(f.task_id), kind: String(f.kind), local_name: String(f.local_name), url: String(f.url), type: String(f.type),
      size: numOrNull(f.size), md5: (f.md5 as string | null) ?? null, sha256: (f.sha256 as string | null) ?? null, state: String(f.state),
      error: (f.error as string | null) ?? null, updated_at: num(f.updated_at),
    })),
    history: history.map(historyEntry),
  };
}

/** One whole log of a task of this job (null when the task is not in the job or has no such log). */
export async function taskLog(db: DbOrTrx, datasetId: number, jobIndex: number, taskId: number, name: string): Promise<string | null> {
  const row = (await db('task_log as l')
    .join('task as t', 't.id', 'l.task_id')
    .join('job as j', 'j.id', 't.job_id')
    .select('l.data')
    .where({ 'j.dataset_id': datasetId, 'j.job_index': jobIndex, 'l.task_id': taskId, 'l.name': name })
    .first()) as { data: string | null } | undefined;
  return row ? (row.data ?? '') : null;
}

/** Most tasks of one job the job page explains one by one (the others are in the job's counts). */
export const JOB_WHY_TASKS = 50;

/** The job page's "why": the job's counted reasons, and each task's (but OK ones), the first JOB_WHY_TASKS. */
export async function jobWhy(db: DbOrTrx, datasetId: number, jobIndex: number, v: { tasks: ReadonlyArray<{ id: number; status: string }> }): Promise<{ job: GroupWhy; tasks: Map<number, TaskWhy> }> {
  const job = await whyTasks(db, datasetId, jobIndex);
  const tasks = new Map<number, TaskWhy>();
  for (const t of v.tasks.filter((x) => x.status !== 'OK').slice(0, JOB_WHY_TASKS)) tasks.set(t.id, await whyTask(db, t.id));
  return { job, tasks };
}
