/**
 * Where a task's outputs go: the one derivation firn-mon (what it stores for firn-dh), the
 * pilot (where it stages) and `firn run` (what its job scripts copy) share. Pure: it imports
 * only the expression language and errors, so the pilot's bundle can take it.
 *
 * For each `data[]` entry of the task with movement output | both, expanded with the task's
 * expression context (`outputContext`):
 *   - temp_url = `<site_temp>/<dataset>/<job index>/<task name>/<local>` (each segment
 *     percent-encoded; `..` refused), or the destination when the site has no site temp;
 *   - url = `remote` when it is a URL, else `remote` under site temp; the staging location
 *     when the entry has no remote;
 *   - type = the entry's type (default permanent).
 * `local` must be a relative path that stays inside the task's scratch directory.
 */
import { FirnError } from './errors';
import { expandConfig, type ExpressionContext } from './expression-parser';
import type { DataEntry, DataLifetime, DatasetConfig, TaskConfig } from './dataset-config';

/** An output's location cannot be derived (the message says why). */
export class OutputLocationError extends FirnError {}

/** Join a base URL and path parts, encoding each part's segments; `..` is refused. */
export function joinUrl(base: string, ...parts: Array<string | number>): string {
  const segs = parts.flatMap((p) => String(p).split('/')).filter((s) => s !== '' && s !== '.');
  if (segs.some((s) => s === '..')) throw new OutputLocationError(`refusing ".." in a staged path: ${parts.join('/')}`);
  return `${base.replace(/\/+$/, '')}/${segs.map(encodeURIComponent).join('/')}`;
}

/** Is this `remote` a URL (else a path relative to site temp)? */
export function isUrl(remote: string): boolean {
  return /^[a-z][a-z0-9+.-]*:/i.test(remote);
}

/** Where a data entry's `remote` lives: a URL as-is, a relative path under site temp. */
export function resolveRemote(remote: string, siteTemp: string | undefined): string {
  if (isUrl(remote)) return remote;
  if (!siteTemp) throw new OutputLocationError(`data remote ${JSON.stringify(remote)} is relative but the site has no [system] site_temp`);
  return joinUrl(siteTemp, remote);
}

/** Where a task stages an output at site temp. */
export function stagingUrl(siteTemp: string, dataset: number, job: number, task: string, local: string): string {
  return joinUrl(siteTemp, String(dataset), String(job), task, local);
}

/** Refuse a `local` that is empty, absolute, climbs out with `..` or holds a control character. */
export function checkLocalName(local: string): void {
  if (typeof local !== 'string' || local === '') throw new OutputLocationError('empty local name');
  if (/[\u0000-\u001f\u007f]/.test(local)) throw new OutputLocationError(`control character in local name ${JSON.stringify(local)}`);
  if (local.startsWith('/') || local.includes('\\')) throw new OutputLocationError(`local name ${JSON.stringify(local)} must be a relative path`);
  if (local.split('/').some((s) => s === '..')) throw new OutputLocationError(`local name ${JSON.stringify(local)} leaves the scratch directory`);
}

export interface OutputLocation {
  local: string;
  url: string;
  temp_url: string;
  type: DataLifetime;
}

export interface TaskCoordinates {
  dataset: number;
  /** The job's index in its dataset. */
  job: number;
  task: string;
}

/** Where one (expanded) output entry is staged and delivered. */
export function outputLocation(entry: DataEntry, siteTemp: string | undefined, at: TaskCoordinates): OutputLocation {
  checkLocalName(entry.local);
  const url = entry.remote ? resolveRemote(entry.remote, siteTemp) : undefined;
  const temp = siteTemp ? stagingUrl(siteTemp, at.dataset, at.job, at.task, entry.local) : url;
  if (!temp) throw new OutputLocationError(`output ${entry.local} has no remote and the site has no site_temp`);
  return { local: entry.local, url: url ?? temp, temp_url: temp, type: entry.type ?? 'permanent' };
}

/** A task's config in its dataset's: by name, else (no name) by index. */
export function findTaskConfig(config: DatasetConfig, name: string, index: number): TaskConfig | undefined {
  const tasks = Array.isArray(config?.tasks) ? config.tasks : [];
  return tasks.find((x) => x.name === name) ?? (name ? undefined : tasks[index]);
}

export interface OutputContextOptions {
  config: DatasetConfig;
  args: Record<string, unknown>;
  at: TaskCoordinates;
  jobsTotal: number;
  /** What `$system(…)` knows; site_temp is added when given. */
  system?: Record<string, unknown>;
  siteTemp?: string | undefined;
}

/** The expression context a task's config is expanded with (the pilot's, minus what only the worker knows). */
export function outputContext(o: OutputContextOptions): ExpressionContext {
  return {
    args: o.args,
    steering: (o.config.steering?.parameters ?? {}) as Record<string, unknown>,
    system: { ...(o.system ?? {}), ...(o.siteTemp ? { site_temp: o.siteTemp } : {}) },
    dataset: o.at.dataset,
    job: o.at.job,
    task: o.at.task,
    jobs_total: o.jobsTotal,
    iter: 0,
  };
}

/** The outcome for one declared output: its location, or why it has none. */
export type DeclaredOutput = { index: number; location: OutputLocation } | { index: number; error: string };

/**
 * Every output a task declares, by local name (expanded with `ctx`). `index` is the entry's
 * position in the task's `data[]`. An entry whose expressions or location cannot be resolved
 * is reported with its error under its unexpanded `local`.
 */
export function declaredOutputs(task: TaskConfig, ctx: ExpressionContext, siteTemp: string | undefined): Map<string, DeclaredOutput> {
  const out = new Map<string, DeclaredOutput>();
  for (const [index, raw] of (Array.isArray(task.data) ? task.data : []).entries()) {
    if (raw?.movement !== 'output' && raw?.movement !== 'both') continue;
    let entry: DataEntry;
    try {
      entry = expandConfig(raw, ctx);
    } catch (e) {
      out.set(String(raw.local), { index, error: `data[${index}] cannot be expanded: ${(e as Error).message}` });
      continue;
    }
    try {
      out.set(entry.local, { index, location: outputLocation(entry, siteTemp, { dataset: ctx.dataset, job: ctx.job, task: ctx.task ?? '' }) });
    } catch (e) {
      out.set(String(entry.local), { index, error: (e as Error).message });
    }
  }
  return out;
}
