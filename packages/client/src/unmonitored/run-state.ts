/**
 * What an unmonitored run keeps in its output directory, and reading it back:
 *
 *   <out>/run.json                    the run: config, plugin and its options, jobs and batch ids
 *   <out>/dataset.json                the dataset config every pilot reads (--config-file)
 *   <out>/jobs/<JJJJJJ>/run.sh        the job script (see job-script.ts)
 *   <out>/jobs/<JJJJJJ>/progress      one line per step, written by the job script
 *   <out>/jobs/<JJJJJJ>/result        `ok` or `failed TASK …`, written once at the end
 *   <out>/jobs/<JJJJJJ>/tasks/<TASK>/report.json   the pilot's report (stats, outputs, checksums)
 *   <out>/jobs/<JJJJJJ>/batch/        the batch system's files (stdout, stderr, exit_code)
 *   <out>/batch/                      submit scripts (and the local plugin's registry)
 *   <out>/site-temp/                  default site temp: staged files and relative destinations
 */
import fs from 'node:fs';
import path from 'node:path';
import type { PluginName, PluginOptions } from '@firn/queue';
import type { JobRequirements } from './plan';
import { PROGRESS_FILE, RESULT_FILE, taskOutDir } from './job-script';

export const RUN_FILE = 'run.json';
export const RUN_FORMAT = 1;

export interface RunJob {
  index: number;
  dir: string;
  /** Id given to the plugin (job name firn-<id> in the batch system). */
  task_id: number;
  batch_id: string | null;
  requirements: JobRequirements;
}

export interface RunState {
  format: typeof RUN_FORMAT;
  created_at: string;
  /** The dataset config as given on the command line. */
  source: string;
  config_file: string;
  dataset: number;
  jobs_total: number;
  /** Task names in the order every job runs them. */
  order: string[];
  plugin: PluginName;
  plugin_options: PluginOptions;
  pilot: string;
  site_temp: string;
  warnings: string[];
  submitted_at: string | null;
  /** When `firn run --cancel` removed the run's batch jobs. */
  cancelled_at?: string;
  jobs: RunJob[];
}

export function jobDirName(index: number): string {
  return String(index).padStart(6, '0');
}

export function readRunState(out: string): RunState {
  const file = path.join(out, RUN_FILE);
  let data: unknown;
  try {
    data = JSON.parse(fs.readFileSync(file, 'utf8'));
  } catch (e) {
    throw new Error(`${out} does not hold a firn run (${file}: ${(e as Error).message})`);
  }
  const s = data as RunState;
  if (!s || s.format !== RUN_FORMAT || !Array.isArray(s.jobs)) throw new Error(`${file} is not a run file of this version of firn`);
  return s;
}

export function writeRunState(out: string, state: RunState): void {
  const file = path.join(out, RUN_FILE);
  fs.writeFileSync(`${file}.tmp`, JSON.stringify(state, null, 2) + '\n');
  fs.renameSync(`${file}.tmp`, file);
}

/** One output as the pilot reported it, and what firn run found at its destination. */
export interface OutputInfo {
  local_name: string;
  type: string;
  url: string;
  temp_url: string;
  size: number;
  md5: string;
  sha256: string;
  /** true: the file at url has this sha256; false: it differs or is missing; null: not checked (not local, or job_temp removed). */
  verified: boolean | null;
}

export interface TaskOutcome {
  name: string;
  status: 'ok' | 'failed' | 'running' | 'not run';
  error?: string;
  stats: Record<string, number>;
  outputs: OutputInfo[];
  cpu_seconds?: number;
  wall_seconds?: number;
}

interface PilotReport {
  status: 'ok' | 'failed';
  error?: string;
  stats?: Record<string, number>;
  outputs?: Array<Omit<OutputInfo, 'verified'>>;
  resources?: { cpu_seconds?: number; wall_seconds?: number };
}

function readText(file: string): string | null {
  try {
    return fs.readFileSync(file, 'utf8');
  } catch {
    return null;
  }
}

export function readResult(jobDir: string): string | null {
  const t = readText(path.join(jobDir, RESULT_FILE));
  return t === null ? null : t.trim();
}

export function readProgress(jobDir: string): string[] {
  return (readText(path.join(jobDir, PROGRESS_FILE)) ?? '').split('\n').filter(Boolean);
}

export function readReport(jobDir: string, task: string): PilotReport | null {
  const t = readText(path.join(taskOutDir(jobDir, task), 'report.json'));
  if (t === null) return null;
  try {
    return JSON.parse(t) as PilotReport;
  } catch {
    return null;
  }
}

/** The tasks of one job as far as they got: from the progress lines and the reports. */
export function taskOutcomes(jobDir: string, order: readonly string[]): TaskOutcome[] {
  const progress = readProgress(jobDir);
  const started = new Set(progress.filter((l) => l.startsWith('start ')).map((l) => l.slice('start '.length)));
  return order.map((name): TaskOutcome => {
    const report = started.has(name) ? readReport(jobDir, name) : null;
    if (!report) return { name, status: started.has(name) ? 'running' : 'not run', stats: {}, outputs: [] };
    return {
      name,
      status: report.status === 'ok' ? 'ok' : 'failed',
      ...(report.error ? { error: report.error } : {}),
      stats: report.status === 'ok' ? { ...(report.stats ?? {}) } : {},
      outputs: (report.outputs ?? []).map((o) => ({ ...o, verified: null })),
      ...(report.resources?.cpu_seconds !== undefined ? { cpu_seconds: report.resources.cpu_seconds } : {}),
      ...(report.resources?.wall_seconds !== undefined ? { wall_seconds: report.resources.wall_seconds } : {}),
    };
  });
}
