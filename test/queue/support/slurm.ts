/** What Slurm itself says about our jobs (the batch system's own listing, not the plugin's). */
import { spawnSync } from 'node:child_process';

export interface SlurmJob {
  /** `1234` or `1234_5` */
  id: string;
  /** the job id to scancel (array elements: the element id) */
  jobId: string;
  name: string;
  state: string;
  /** the task this job runs (from the Firn job name + array index), or null */
  taskId: number | null;
}

/** `user`: whose jobs (default: ours). */
export function squeue(user?: string): SlurmJob[] {
  const who = user ? ['-u', user] : ['--me'];
  const r = spawnSync('squeue', [...who, '-h', '-r', '-t', 'all', '-o', '%i|%A|%T|%j'], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`squeue failed: ${r.stderr}`);
  return r.stdout.split('\n').filter(Boolean).map((line) => {
    const [id = '', jobId = '', state = '', ...rest] = line.split('|');
    const name = rest.join('|');
    const array = /^firn-a(\d+)$/.exec(name);
    const element = /_(\d+)$/.exec(id);
    const single = /^firn-(\d+)$/.exec(name);
    const taskId = array && element ? Number(array[1]) + Number(element[1]) : single ? Number(single[1]) : null;
    return { id, jobId, name, state, taskId };
  });
}

export const LIVE_SLURM = new Set(['PENDING', 'RUNNING', 'CONFIGURING', 'COMPLETING', 'SUSPENDED', 'REQUEUED', 'RESIZING']);

/** Live Slurm jobs per task id, for the given task ids. */
export function liveSlurmJobs(taskIds: readonly number[], user?: string): Map<number, SlurmJob[]> {
  const wanted = new Set(taskIds);
  const out = new Map<number, SlurmJob[]>();
  for (const j of squeue(user)) {
    if (j.taskId === null || !wanted.has(j.taskId) || !LIVE_SLURM.has(j.state)) continue;
    out.set(j.taskId, [...(out.get(j.taskId) ?? []), j]);
  }
  return out;
}

/** Cancel every live job of these tasks. */
export function scancelTasks(taskIds: readonly number[], user?: string): void {
  const ids = [...liveSlurmJobs(taskIds, user).values()].flat().map((j) => j.jobId);
  if (ids.length) spawnSync('scancel', [...new Set(ids)], { encoding: 'utf8' });
}
