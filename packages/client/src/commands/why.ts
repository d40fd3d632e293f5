import type { Command } from 'commander';
import { countedLine, type GroupWhy, type TaskWhy, type WhyGrid } from '@firn/core';
import { call, output, parseIntArg } from '../context';
import { CliError, ExitCode } from '../exit-codes';
import { time } from '../output';

/** `firn why` targets: DATASET, DATASET.JOB, or tTASK (a task id). */
export function parseWhyTarget(text: string): { task: number } | { dataset: number; job?: number } {
  const t = text.trim();
  const task = /^t(?:ask)?[:/]?(\d+)$/i.exec(t);
  if (task) return { task: Number(task[1]) };
  const m = /^(\d+)(?:\.(\d+))?$/.exec(t);
  if (!m || Number(m[1]) < 1) throw new CliError(`expected DATASET, DATASET.JOB or tTASK (e.g. 12, 12.345, t9876), got ${JSON.stringify(text)}`, ExitCode.USAGE);
  return m[2] === undefined ? { dataset: Number(m[1]) } : { dataset: Number(m[1]), job: Number(m[2]) };
}

function gridLines(grids: readonly WhyGrid[]): string[] {
  if (grids.length === 0) return ['grids: none exist'];
  const caps = (g: WhyGrid) => Object.entries(g.capabilities).map(([k, v]) => `${k} ${String(v)}`).join(', ') || 'no limits declared';
  return [
    grids[0]!.assigned ? 'grids assigned:' : 'grids (none is assigned):',
    ...grids.map((g) => `  ${g.name} (${g.plugin}, ${g.status}): ${caps(g)}; last seen ${g.last_seen_at === null ? 'never' : time(g.last_seen_at)}; ` +
      `${g.queued} queued${g.max_queued === null ? '' : ` of max ${g.max_queued}`}${g.holes.length ? `; black-holed: ${g.holes.map((h) => `${h.node} until ${time(h.until)}`).join(', ')}` : ''}`),
  ];
}

export function renderTaskWhy(w: TaskWhy): string {
  const t = w.task;
  return [
    `task ${t.id} (dataset ${t.dataset_id} job ${t.job_index} ${t.name}): ${t.status}`,
    `why: ${w.reason.message}`,
    ...w.reasons.slice(1).map((r) => `also: ${r.message}`),
    ...gridLines(w.grids),
  ].join('\n');
}

export function renderGroupWhy(w: GroupWhy): string {
  const what = w.job_index === null ? `dataset ${w.dataset_id}` : `job ${w.dataset_id}.${w.job_index}`;
  return [
    `${what} (${w.dataset_status}): ${w.tasks.toLocaleString('en-US')} tasks`,
    ...w.reasons.map((r) => `  ${countedLine(r)}`),
    ...(w.truncated ? ['  (more groups than shown: counts are partial)'] : []),
    ...gridLines(w.grids),
  ].join('\n');
}

export function register(program: Command): void {
  program
    .command('why')
    .description('why tasks are not running: a task (tTASK or --task), a job (DATASET.JOB) or a dataset, across every layer')
    .argument('[target]', 'DATASET, DATASET.JOB or tTASK (task id)')
    .option('--task <id>', 'a task id', parseIntArg('--task', 1))
    .action(async (target: string | undefined, opts: { task?: number }, cmd: Command) => {
      if (opts.task === undefined && target === undefined) throw new CliError('expected DATASET, DATASET.JOB, tTASK or --task ID', ExitCode.USAGE);
      const what = opts.task !== undefined ? { task: opts.task } : parseWhyTarget(target!);
      if ('task' in what) {
        const r = await call<TaskWhy>(cmd, 'task.why', { task_id: what.task });
        output(cmd, r, () => renderTaskWhy(r));
      } else if (what.job !== undefined) {
        const r = await call<GroupWhy>(cmd, 'job.why', { dataset_id: what.dataset, job_index: what.job });
        output(cmd, r, () => renderGroupWhy(r));
      } else {
        const r = await call<GroupWhy>(cmd, 'dataset.why', { dataset_id: what.dataset });
        output(cmd, r, () => renderGroupWhy(r));
      }
    });
}
