/**
 * The `/bin/sh` script one batch job runs for one dataset job in `firn run`:
 *
 *   for each task, in dependency order:
 *     progress "start TASK"
 *     <pilot> --unmonitored --config-file DATASET --out JOBDIR/tasks/TASK --task TASK
 *             --job J --dataset D --jobs-total N --site-temp URL [--args JSON] [--scratch DIR]
 *     a failure ends the job:                 result "failed TASK"
 *     each staged output is copied (cp, then compared with cmp) to its destination, so the
 *     next task stages it as an input;        progress "ok TASK"
 *   when all succeeded: the staged copies and job_temp files are removed; result "ok"
 *
 * `JOBDIR/progress` grows one line per step; `JOBDIR/result` appears (atomically) once, at the
 * end. firn run reads both, and each task's `report.json` (stats, outputs with checksums).
 */
import path from 'node:path';
import { shellJoin, shellQuote } from '@firn/queue';
import { joinUrl, localPathOf, type JobPlan } from './plan';

export interface JobScriptOptions {
  job: JobPlan;
  /** The pilot command line, already split into words (e.g. [`/opt/firn/firn-pilot`]). */
  pilot: string[];
  jobDir: string;
  configFile: string;
  dataset: number;
  jobsTotal: number;
  siteTemp: string;
  scratch?: string;
  /** Written into the header comment. */
  source: string;
}

export const PROGRESS_FILE = 'progress';
export const RESULT_FILE = 'result';

export function taskOutDir(jobDir: string, task: string): string {
  return path.join(jobDir, 'tasks', task.replace(/[^A-Za-z0-9._-]/g, '_'));
}

export function renderJobScript(o: JobScriptOptions): string {
  const q = shellQuote;
  const { job } = o;
  const lines = [
    '#!/bin/sh',
    `# firn run: job ${job.index} of ${o.jobsTotal} (dataset ${o.dataset}) of ${o.source.replace(/[\r\n]/g, ' ')}`,
    `# Tasks in dependency order: ${job.tasks.map((t) => t.name).join(' ')}. Written by firn run; do not edit.`,
    '',
    `job_dir=${q(o.jobDir)}`,
    `progress() { printf '%s\\n' "$1" >>"$job_dir/${PROGRESS_FILE}"; }`,
    `result() { printf '%s\\n' "$1" >"$job_dir/${RESULT_FILE}.tmp" && mv -f "$job_dir/${RESULT_FILE}.tmp" "$job_dir/${RESULT_FILE}"; progress "$1"; exit "$2"; }`,
    '# copy a staged output to its destination, and make sure the copy is whole',
    'promote() { mkdir -p "${2%/*}" && cp -f "$1" "$2.firn-tmp" && mv -f "$2.firn-tmp" "$2" && cmp -s "$1" "$2"; }',
    `rm -f "$job_dir/${RESULT_FILE}" "$job_dir/${RESULT_FILE}.tmp"`,
    'progress "begin $(date -u +%Y-%m-%dT%H:%M:%SZ) $(hostname 2>/dev/null)"',
  ];
  const cleanup: string[] = [];
  job.tasks.forEach((t, i) => {
    const args = [
      ...o.pilot,
      '--unmonitored',
      '--config-file', o.configFile,
      '--out', taskOutDir(o.jobDir, t.name),
      '--task', t.name,
      '--job', String(job.index),
      '--dataset', String(o.dataset),
      '--jobs-total', String(o.jobsTotal),
      '--site-temp', o.siteTemp,
      ...(Object.keys(job.args).length ? ['--args', JSON.stringify(job.args)] : []),
      ...(o.scratch ? ['--scratch', o.scratch] : []),
    ];
    lines.push(
      '',
      `# task ${i + 1}/${job.tasks.length}: ${t.name}`,
      `progress ${q(`start ${t.name}`)}`,
      shellJoin(args),
      `rc=$?; [ "$rc" -eq 0 ] || result ${q(`failed ${t.name}`)}" (pilot exit $rc)" 1`,
    );
    for (const p of t.promote) {
      lines.push(`promote ${q(p.from)} ${q(p.to)} || result ${q(`failed ${t.name}: cannot copy output ${p.local} to ${p.to}`)} 1`);
      cleanup.push(`rm -f ${q(p.from)}`);
      if (p.type === 'job_temp') cleanup.push(`rm -f ${q(p.to)}`, `rmdir ${q(path.dirname(p.to))} 2>/dev/null`);
    }
    lines.push(`progress ${q(`ok ${t.name}`)}`);
  });
  lines.push('', '# every task succeeded: staged copies and job_temp files are no longer needed', ...cleanup);
  for (const d of stagedDirs(job, o.siteTemp, o.dataset)) lines.push(`rmdir ${q(d)} 2>/dev/null`);
  lines.push('result ok 0', '');
  return lines.join('\n');
}

/** The directories the staged copies were in, deepest first, up to `<site_temp>/<dataset>/<job>`. */
function stagedDirs(job: JobPlan, siteTemp: string, dataset: number): string[] {
  const top = localPathOf(joinUrl(siteTemp, String(dataset), String(job.index)));
  if (top === null) return [];
  const dirs = new Set<string>();
  for (const t of job.tasks) {
    for (const p of t.promote) {
      for (let d = path.dirname(p.from); d.startsWith(top + path.sep) || d === top; d = path.dirname(d)) {
        dirs.add(d);
        if (d === top) break;
      }
    }
  }
  if (dirs.size) dirs.add(path.dirname(top)); // <site_temp>/<dataset>, once no job uses it any more
  return [...dirs].sort((a, b) => b.length - a.length || a.localeCompare(b));
}
