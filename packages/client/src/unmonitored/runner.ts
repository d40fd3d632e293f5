/**
 * `firn run` without a database or daemons: plan the jobs, write one script per job, submit
 * them straight to the batch system through the firn-queue plugins (one array per group of
 * jobs with identical requirements), then follow them by polling the plugin and reading the
 * files the job scripts and pilots write.
 */
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { LocalExecutor, checksumFile, type DatasetConfig } from '@firn/core';
import {
  BatchState,
  createPlugin,
  splitCommandLine,
  type BatchJobStatus,
  type BatchPlugin,
  type PluginName,
  type PluginOptions,
  type SubmitBatch,
  type SubmitTask,
} from '@firn/queue';
import { renderJobScript } from './job-script';
import { groupJobs, localPathOf, planRun } from './plan';
import {
  RUN_FORMAT,
  jobDirName,
  readProgress,
  readResult,
  readRunState,
  taskOutcomes,
  writeRunState,
  type RunJob,
  type RunState,
  type TaskOutcome,
} from './run-state';

/** The plugins check that monUrl is a URL; unmonitored jobs never use it. */
const NO_MON = 'http://unmonitored.invalid';

export interface StartRunOptions {
  /** The dataset config file as given (for messages and run.json). */
  source: string;
  config: DatasetConfig;
  out: string;
  jobs: number;
  dataset: number;
  plugin: PluginName;
  /** Plugin options from --config ([queue] partition, account, extra directives, [environment] …). */
  pluginOptions: Partial<PluginOptions>;
  /** The pilot command line on the worker nodes. */
  pilot: string;
  /** file:// URL. */
  siteTemp: string;
  scratch?: string;
  siteGpus: number;
  args?: (job: number) => Record<string, unknown>;
  /** Environment of the batch commands (PATH to sbatch …). */
  env?: Record<string, string | undefined>;
}

export type JobState = 'queued' | 'running' | 'ok' | 'failed' | 'lost';

export interface JobStatus {
  index: number;
  batch_id: string | null;
  state: JobState;
  /** Why it failed or was lost (the job script's result, or the batch system's words). */
  reason?: string;
  batch_state?: string;
  tasks: TaskOutcome[];
}

export interface RunStatus {
  jobs: JobStatus[];
  counts: Record<JobState, number>;
  done: boolean;
  /** The batch system could not be asked this time (the states are from the files only). */
  batchError?: string;
}

export function pluginFor(state: Pick<RunState, 'plugin' | 'plugin_options'>, env?: Record<string, string | undefined>): BatchPlugin {
  return createPlugin(state.plugin, new LocalExecutor(env ?? process.env), state.plugin_options);
}

/** Plan, write the run directory, submit. The returned state has every job's batch id. */
export async function startRun(o: StartRunOptions, plugin?: BatchPlugin): Promise<RunState> {
  const out = path.resolve(o.out);
  const jobs = Array.from({ length: o.jobs }, (_, i) => i);
  const plan = planRun(o.config, { dataset: o.dataset, jobs, jobsTotal: o.jobs, siteTemp: o.siteTemp, siteGpus: o.siteGpus, ...(o.args ? { args: o.args } : {}) });
  const pilotWords = splitCommandLine(o.pilot);
  if (pilotWords.length === 0) throw new Error('the pilot command is empty');

  fs.mkdirSync(out, { recursive: true });
  const configFile = path.join(out, 'dataset.json');
  fs.writeFileSync(configFile, JSON.stringify(o.config, null, 2) + '\n');
  const submitDir = path.join(out, 'batch');
  fs.mkdirSync(submitDir, { recursive: true });
  const sitePath = localPathOf(o.siteTemp);
  if (sitePath) fs.mkdirSync(sitePath, { recursive: true });

  // Job names are firn-<id>: a random base keeps them apart from firn-queue's task ids and other runs.
  const base = 900_000_000_000 + crypto.randomInt(0, 99_999_999) * 1000;
  const runJobs: RunJob[] = plan.jobs.map((j) => {
    const dir = path.join(out, 'jobs', jobDirName(j.index));
    fs.mkdirSync(path.join(dir, 'batch'), { recursive: true });
    const script = renderJobScript({
      job: j, pilot: pilotWords, jobDir: dir, configFile, dataset: o.dataset, jobsTotal: o.jobs, siteTemp: o.siteTemp, source: o.source,
      ...(o.scratch ? { scratch: o.scratch } : {}),
    });
    fs.writeFileSync(path.join(dir, 'run.sh'), script, { mode: 0o755 });
    return { index: j.index, dir, task_id: base + j.index, batch_id: null, requirements: j.requirements };
  });

  const state: RunState = {
    format: RUN_FORMAT,
    created_at: new Date().toISOString(),
    source: o.source,
    config_file: configFile,
    dataset: o.dataset,
    jobs_total: o.jobs,
    order: plan.order,
    plugin: o.plugin,
    plugin_options: {
      ...o.pluginOptions,
      grid: o.pluginOptions.grid ?? 'firn-run',
      monUrl: NO_MON,
      pilotCommand: o.pilot,
      environment: { ...(o.pluginOptions.environment ?? {}) },
      submitDir,
    },
    pilot: o.pilot,
    site_temp: o.siteTemp,
    warnings: plan.warnings,
    submitted_at: null,
    jobs: runJobs,
  };
  writeRunState(out, state);

  const p = plugin ?? pluginFor(state, o.env);
  try {
    const byIndex = new Map(runJobs.map((j) => [j.index, j]));
    let k = 0;
    for (const group of groupJobs(plan.jobs)) {
      const dir = path.join(submitDir, `submit-${k++}`);
      const tasks = group.map((j): SubmitTask => {
        const rj = byIndex.get(j.index) as RunJob;
        const taskDir = path.join(rj.dir, 'batch');
        return {
          taskId: rj.task_id, datasetId: o.dataset, jobIndex: j.index, taskName: 'job', requirements: { ...j.requirements },
          taskDir, passkeyFile: path.join(taskDir, 'no-passkey'), command: ['/bin/sh', path.join(rj.dir, 'run.sh')],
        };
      });
      const batch: SubmitBatch = { dir, tasks };
      const scriptPath = await p.writeConfig(batch);
      const result = await p.submit(batch, scriptPath);
      for (const t of tasks) {
        const rj = byIndex.get(t.jobIndex) as RunJob;
        rj.batch_id = result.batchIds.get(t.taskId) ?? null;
      }
      state.submitted_at = new Date().toISOString();
      writeRunState(out, state);
    }
  } finally {
    if (!plugin) await p.close?.();
  }
  return state;
}

const FINAL = new Set<string>([BatchState.COMPLETED, BatchState.FAILED, BatchState.CANCELLED, BatchState.UNKNOWN]);

/** A job's state from its result file and, while it has none, the batch system's word. */
export function judgeJob(
  result: string | null,
  progress: readonly string[],
  batch: BatchJobStatus | undefined,
  batchId: string | null,
  cancelledAt?: string,
): { state: JobState; reason?: string } {
  if (result === 'ok') return { state: 'ok' };
  if (result !== null) return { state: 'failed', reason: result };
  if (!batchId) return { state: 'lost', reason: 'never submitted' };
  if (!batch) return { state: progress.length ? 'running' : 'queued' };
  if (batch.state === BatchState.RUNNING) return { state: 'running' };
  if (batch.state === BatchState.QUEUED) return { state: progress.length ? 'running' : 'queued' };
  if (FINAL.has(batch.state)) {
    if (cancelledAt) return { state: 'lost', reason: `cancelled (firn run --cancel, ${cancelledAt})` };
    if (batch.state === BatchState.UNKNOWN) return { state: 'lost', reason: 'the batch system no longer knows the job, and it left no result' };
    const detail = [batch.rawState, batch.reason, batch.exitCode !== undefined ? `exit ${batch.exitCode}` : undefined].filter(Boolean).join(', ');
    return { state: 'lost', reason: `the batch job ended without a result (${detail || batch.state})` };
  }
  return { state: 'queued' };
}

/** Ask the batch system, then read the job files (in this order, so a finished job's result is already there). */
export async function pollRun(state: RunState, plugin: BatchPlugin): Promise<RunStatus> {
  const ids = state.jobs.map((j) => j.batch_id).filter((id): id is string => id !== null);
  let batch = new Map<string, BatchJobStatus>();
  let batchError: string | undefined;
  try {
    if (ids.length) batch = await plugin.checkJobStatus(ids);
  } catch (e) {
    batchError = (e as Error).message;
  }
  const jobs = state.jobs.map((j): JobStatus => {
    const b = j.batch_id ? batch.get(j.batch_id) : undefined;
    const verdict = judgeJob(readResult(j.dir), readProgress(j.dir), batchError ? undefined : b, j.batch_id, state.cancelled_at);
    const tasks = taskOutcomes(j.dir, state.order);
    if (verdict.state === 'failed' || verdict.state === 'lost') {
      for (const t of tasks) if (t.status === 'running') Object.assign(t, { status: 'failed', error: verdict.reason });
    }
    return { index: j.index, batch_id: j.batch_id, ...verdict, ...(b ? { batch_state: b.rawState } : {}), tasks };
  });
  const counts: Record<JobState, number> = { queued: 0, running: 0, ok: 0, failed: 0, lost: 0 };
  for (const j of jobs) counts[j.state]++;
  return { jobs, counts, done: counts.queued + counts.running === 0, ...(batchError ? { batchError } : {}) };
}

export interface WaitOptions {
  pollMs: number;
  onPoll?: (s: RunStatus) => void;
  /** Resolves when the user gives up waiting (Ctrl-C); the jobs keep running. */
  interrupted?: Promise<void>;
}

/** Poll until every job is ok, failed or lost (or the wait is interrupted). */
export async function waitRun(state: RunState, plugin: BatchPlugin, o: WaitOptions): Promise<RunStatus & { interrupted: boolean }> {
  let stop = false;
  void o.interrupted?.then(() => (stop = true));
  for (;;) {
    const s = await pollRun(state, plugin);
    o.onPoll?.(s);
    if (s.done || stop) return { ...s, interrupted: !s.done };
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([new Promise((r) => (timer = setTimeout(r, o.pollMs))), o.interrupted ?? new Promise(() => undefined)]);
    clearTimeout(timer);
  }
}

/** Check the outputs of successful tasks against their reported sha256 (where they are local files). */
export async function verifyOutputs(status: RunStatus): Promise<void> {
  for (const j of status.jobs) {
    for (const t of j.tasks) {
      if (t.status !== 'ok') continue;
      for (const o of t.outputs) {
        const where = [o.url, o.temp_url].map((u) => localPathOf(u)).find((p): p is string => p !== null && fs.existsSync(p));
        if (!where) {
          // job_temp files are removed once the job succeeded; remote destinations are not ours to read
          o.verified = (o.type === 'job_temp' && j.state === 'ok') || localPathOf(o.url) === null ? null : false;
          continue;
        }
        const sums = await checksumFile(where);
        o.verified = sums.sha256 === o.sha256 && sums.size === o.size;
      }
    }
  }
}

export interface StatSummary {
  n: number;
  sum: number;
  mean: number;
  min: number;
  max: number;
}

/** Statistics of every successful task, summed by name (n counts the tasks that reported it). */
export function sumStats(status: RunStatus): Record<string, StatSummary> {
  const out: Record<string, StatSummary> = {};
  for (const j of status.jobs) {
    for (const t of j.tasks) {
      if (t.status !== 'ok') continue;
      for (const [name, v] of Object.entries(t.stats)) {
        if (typeof v !== 'number' || !Number.isFinite(v)) continue;
        const s = (out[name] ??= { n: 0, sum: 0, mean: 0, min: v, max: v });
        s.n++;
        s.sum += v;
        s.min = Math.min(s.min, v);
        s.max = Math.max(s.max, v);
      }
    }
  }
  for (const s of Object.values(out)) {
    s.sum = Math.round(s.sum * 1e9) / 1e9;
    s.mean = s.sum / s.n;
  }
  return Object.fromEntries(Object.entries(out).sort(([a], [b]) => a.localeCompare(b)));
}

/** Cancel every job of the run that the batch system still has. */
export async function cancelRun(out: string, state: RunState, plugin: BatchPlugin): Promise<number> {
  const s = await pollRun(state, plugin);
  const ids = s.jobs.filter((j) => (j.state === 'queued' || j.state === 'running') && j.batch_id).map((j) => j.batch_id as string);
  if (ids.length) await plugin.remove(ids);
  state.cancelled_at = new Date().toISOString();
  writeRunState(out, state);
  return ids.length;
}

export { readRunState };
