/**
 * Planning an unmonitored run (`firn run`): which tasks each job runs in which order, what
 * one batch job per dataset job must ask the batch system for, and where each task's
 * outputs are staged and then copied so that the next task of the job finds them.
 *
 * Pure functions of the dataset config and the run's options (no files, no processes), so
 * the rules are tested directly and `firn run` only writes what they return.
 *
 * Why the copies: the pilot stages every output to `<site_temp>/<dataset>/<job>/<task>/<local>`
 * and reports the destination URL (`remote`, relative ones under site_temp) beside it; in
 * monitored mode firn-dh then moves the file there. Without dh the job script does that
 * move itself (for file:// destinations) right after the producing task, before the next
 * task of the job stages its inputs from the same URLs.
 */
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import {
  expandConfig,
  joinUrl as coreJoinUrl,
  outputLocation,
  resolveRequirements,
  topoOrder,
  type DataEntry,
  type DatasetConfig,
  type ExpressionContext,
  type ResolvedRequirements,
} from '@firn/core';

/** What the batch system is asked for per job (memory and disk MB, time minutes). */
export interface JobRequirements {
  cpu: number;
  gpu: number;
  memory: number;
  disk: number;
  time: number;
}

/** A staged output the job script copies to its destination after the producing task. */
export interface Promotion {
  local: string;
  type: string;
  /** Where the pilot stages it (a path under site_temp). */
  from: string;
  /** Where the dataset says it goes (an absolute path). */
  to: string;
}

/** An output the job script cannot copy (its destination is not a local path). */
export interface Unpromoted {
  local: string;
  url: string;
  why: string;
}

export interface TaskPlan {
  name: string;
  requirements: ResolvedRequirements;
  promote: Promotion[];
  unpromoted: Unpromoted[];
}

export interface JobPlan {
  index: number;
  /** Tasks in dependency order (every task after the ones it depends on). */
  tasks: TaskPlan[];
  requirements: JobRequirements;
  args: Record<string, unknown>;
}

export interface PlanOptions {
  dataset: number;
  /** Job indices to plan (0 … jobs_total − 1 for a whole run). */
  jobs: readonly number[];
  jobsTotal: number;
  /** file:// URL of the site temp area every task of a job stages through. */
  siteTemp: string;
  /** $args for each job (offline processing), by job index; missing = {}. */
  args?: (job: number) => Record<string, unknown>;
  /** GPUs one batch slot of this site offers (0: none; GPU requirements are then not requested). */
  siteGpus: number;
}

export interface RunPlan {
  order: string[];
  jobs: JobPlan[];
  /** Things the user should know (GPU requests dropped, outputs not copied). */
  warnings: string[];
}

/** The pilot's and firn-mon's rule (core's output-locations.ts): segments split on `/`, each percent-encoded; `..` refused. */
export const joinUrl = coreJoinUrl;

/** A file:// URL (or a plain path) as an absolute path; null for other schemes. */
export function localPathOf(url: string): string | null {
  if (/^file:/i.test(url)) return fileURLToPath(url);
  if (/^[a-z][a-z0-9+.-]*:\/\//i.test(url)) return null;
  return path.resolve(url);
}

/** `--site-temp` as a file:// URL: a path or a file:// URL; other schemes are refused. */
export function siteTempUrl(value: string): string {
  const p = localPathOf(value);
  if (p === null) throw new Error(`site temp must be a local directory or a file:// URL (the job scripts copy outputs with cp), got ${JSON.stringify(value)}`);
  return pathToFileURL(p).href.replace(/\/+$/, '');
}

function expandEntry(entry: DataEntry, ctx: ExpressionContext): DataEntry {
  return expandConfig(entry, ctx);
}

/** Where the pilot stages an output and where it should end up (see the file comment). */
function placeOutput(
  entry: DataEntry,
  ctx: ExpressionContext,
  siteTemp: string,
  dataset: number,
  job: number,
  task: string,
): { promote?: Promotion; unpromoted?: Unpromoted } {
  let e: DataEntry;
  try {
    e = expandEntry(entry, ctx);
  } catch (err) {
    return { unpromoted: { local: entry.local, url: entry.remote, why: `cannot be resolved before the job runs (${(err as Error).message})` } };
  }
  if (!e.remote) return {};
  const { url, temp_url: temp } = outputLocation(e, siteTemp, { dataset, job, task });
  const from = localPathOf(temp) as string;
  const to = localPathOf(url);
  if (to === null) return { unpromoted: { local: e.local, url, why: 'the destination is not a local path (left at its staged location)' } };
  if (to === from) return {};
  return { promote: { local: e.local, type: e.type ?? 'permanent', from, to } };
}

/**
 * Plan the jobs: tasks in topological order, per-job requirements, and the copies that make
 * one task's outputs the next task's inputs. Throws (with the JSON path) on a bad task
 * graph or a requirement that does not evaluate to a number.
 */
export function planRun(config: DatasetConfig, o: PlanOptions): RunPlan {
  const ordered = topoOrder(config.tasks);
  const order = ordered.map((t) => t.name);
  const warnings = new Set<string>();
  const steering = (config.steering?.parameters ?? {}) as Record<string, unknown>;
  const jobs = o.jobs.map((index): JobPlan => {
    const args = o.args?.(index) ?? {};
    const base: ExpressionContext = { args, steering, system: { site_temp: o.siteTemp }, dataset: o.dataset, job: index, jobs_total: o.jobsTotal };
    const tasks = ordered.map((t): TaskPlan => {
      const ctx = { ...base, task: t.name };
      const requirements = resolveRequirements(t.requirements, ctx, `/tasks/${config.tasks.indexOf(t)}/requirements`);
      const promote: Promotion[] = [];
      const unpromoted: Unpromoted[] = [];
      for (const entry of t.data ?? []) {
        if (entry.movement !== 'output' && entry.movement !== 'both') continue;
        const r = placeOutput(entry, ctx, o.siteTemp, o.dataset, index, t.name);
        if (r.promote) promote.push(r.promote);
        if (r.unpromoted) {
          unpromoted.push(r.unpromoted);
          warnings.add(`task ${t.name}: output ${r.unpromoted.local} ${r.unpromoted.why}`);
        }
      }
      return { name: t.name, requirements, promote, unpromoted };
    });
    return { index, tasks, requirements: jobRequirements(tasks.map((t) => t.requirements), o.siteGpus, warnings), args };
  });
  return { order, jobs, warnings: [...warnings] };
}

/**
 * One batch job runs every task of a job in turn: the most cpu, memory, disk and GPUs any
 * task needs, and the sum of their times. A GPU is requested only where the site has GPUs
 * (siteGpus); otherwise the GPU tasks run on what the slot offers, with a warning.
 */
export function jobRequirements(tasks: readonly ResolvedRequirements[], siteGpus: number, warnings?: Set<string>): JobRequirements {
  const max = (k: 'cpu' | 'gpu' | 'memory' | 'disk') => Math.max(0, ...tasks.map((t) => t[k]));
  const gpu = max('gpu');
  let granted = gpu;
  if (gpu > 0 && siteGpus <= 0) {
    granted = 0;
    warnings?.add(`a task asks for ${gpu} GPU${gpu === 1 ? '' : 's'} but the site offers none (--gpus): no GPU is requested and it runs without one`);
  } else if (gpu > siteGpus) {
    throw new Error(`a task asks for ${gpu} GPUs but the site offers ${siteGpus} per slot (--gpus)`);
  }
  return {
    cpu: Math.max(1, max('cpu')),
    gpu: granted,
    memory: max('memory'),
    disk: max('disk'),
    time: tasks.reduce((s, t) => s + t.time, 0),
  };
}

/** Jobs with identical requirements, in job order: each group is one batch submission (an array). */
export function groupJobs(jobs: readonly JobPlan[]): JobPlan[][] {
  const groups = new Map<string, JobPlan[]>();
  for (const j of jobs) {
    const r = j.requirements;
    const key = JSON.stringify([r.cpu, r.gpu, r.memory, r.disk, r.time]);
    let g = groups.get(key);
    if (!g) groups.set(key, (g = []));
    g.push(j);
  }
  return [...groups.values()];
}
