/** What `firn run` prints: a table of jobs, the summed statistics, the outputs with checksums. */
import { num, table } from '../output';
import type { RunState } from './run-state';
import { sumStats, type JobState, type RunStatus, type StatSummary } from './runner';

export interface RunSummary {
  out: string;
  source: string;
  dataset: number;
  plugin: string;
  pilot: string;
  jobs_total: number;
  done: boolean;
  counts: Record<JobState, number>;
  warnings: string[];
  stats: Record<string, StatSummary>;
  jobs: RunStatus['jobs'];
}

export function summarize(out: string, state: RunState, status: RunStatus): RunSummary {
  return {
    out,
    source: state.source,
    dataset: state.dataset,
    plugin: state.plugin,
    pilot: state.pilot,
    jobs_total: state.jobs_total,
    done: status.done,
    counts: status.counts,
    warnings: state.warnings,
    stats: sumStats(status),
    jobs: status.jobs,
  };
}

export function countsLine(counts: Record<JobState, number>): string {
  return (Object.entries(counts) as Array<[JobState, number]>)
    .filter(([, n]) => n > 0)
    .map(([k, n]) => `${n} ${k}`)
    .join(', ');
}

function seconds(x: number | undefined): string {
  return x === undefined ? '' : num(Math.round(x * 100) / 100);
}

/** Plain-text summary for people. */
export function renderSummary(s: RunSummary): string {
  const parts: string[] = [];
  parts.push(
    `firn run: ${s.jobs_total} job${s.jobs_total === 1 ? '' : 's'} of ${s.source} (dataset ${s.dataset}) on ${s.plugin}: ${countsLine(s.counts)}${s.done ? '' : ' (not finished)'}`,
    '',
  );
  const rows = s.jobs.map((j) => {
    const okTasks = j.tasks.filter((t) => t.status === 'ok').length;
    const cpu = j.tasks.reduce((a, t) => a + (t.cpu_seconds ?? 0), 0);
    const wall = j.tasks.reduce((a, t) => a + (t.wall_seconds ?? 0), 0);
    const outputs = j.tasks.flatMap((t) => t.outputs).filter((o) => o.type !== 'job_temp');
    const verified = outputs.filter((o) => o.verified === true).length;
    const bad = outputs.filter((o) => o.verified === false).length;
    const current = j.tasks.find((t) => t.status === 'running')?.name;
    const error = j.reason ?? j.tasks.find((t) => t.error)?.error ?? '';
    return [
      j.index,
      j.state + (current && j.state === 'running' ? ` (${current})` : ''),
      j.batch_id ?? '',
      `${okTasks}/${j.tasks.length}`,
      seconds(cpu),
      seconds(wall),
      outputs.length ? `${outputs.length}${bad ? ` (${bad} BAD CHECKSUM)` : verified === outputs.length ? ' (sha256 ok)' : ''}` : '',
      error.length > 100 ? `${error.slice(0, 99)}…` : error,
    ];
  });
  parts.push(table(['JOB', 'STATUS', 'BATCH ID', 'TASKS', 'CPU S', 'WALL S', 'OUTPUTS', 'ERROR'], rows));
  const stats = Object.entries(s.stats);
  if (stats.length) {
    parts.push('Statistics (summed over successful tasks):', table(['STAT', 'N', 'SUM', 'MEAN', 'MIN', 'MAX'], stats.map(([k, v]) => [k, v.n, num(v.sum), num(v.mean), num(v.min), num(v.max)])));
  }
  const outputs = s.jobs.flatMap((j) => j.tasks.flatMap((t) => t.outputs.filter((o) => o.type !== 'job_temp').map((o) => ({ job: j.index, task: t.name, ...o }))));
  if (outputs.length) {
    const shown = outputs.slice(0, 20);
    parts.push(
      'Outputs:',
      table(['JOB', 'TASK', 'FILE', 'SIZE', 'SHA256', 'CHECK'], shown.map((o) => [o.job, o.task, o.url.replace(/^file:\/\//, ''), o.size, o.sha256.slice(0, 16) + '…', o.verified === true ? 'ok' : o.verified === false ? 'MISMATCH' : '-'])),
    );
    if (outputs.length > shown.length) parts.push(`… and ${outputs.length - shown.length} more (firn --json run --status ${s.out})\n`);
  }
  for (const w of s.warnings) parts.push(`warning: ${w}\n`);
  parts.push(`Run directory: ${s.out} (reports: jobs/<job>/tasks/<task>/report.json)\n`);
  return parts.join('\n');
}
