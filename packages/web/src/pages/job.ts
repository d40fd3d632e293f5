import { html, seg, type SafeHtml } from '../html';
import type { JobTaskView, JobView } from '../queries';
import { badge, fmtBytes, fmtInt, fmtNum, fmtTime } from './format';
import { csrfField, facts, layout, type ViewContext } from './layout';
import { mayControl } from './dataset';
import { taskWhy, whyPanel } from './why';
import type { GroupWhy, TaskWhy } from '@firn/core';

/** The job page's why: counted for the job, and per task (tasks not OK). */
export interface JobWhy {
  job: GroupWhy;
  tasks: ReadonlyMap<number, TaskWhy>;
}

function resources(t: JobTaskView): SafeHtml {
  const r = t.requirements;
  const u = t.usage;
  const used = [
    u.cpu_seconds !== null ? `cpu ${fmtNum(u.cpu_seconds)} s` : null,
    u.wall_seconds !== null ? `wall ${fmtNum(u.wall_seconds)} s` : null,
    u.rss_mb !== null ? `rss ${fmtNum(u.rss_mb)} MB` : null,
    u.disk_mb !== null ? `disk ${fmtNum(u.disk_mb)} MB` : null,
    u.gpu_util !== null ? `gpu ${fmtNum(u.gpu_util)}` : null,
  ].filter(Boolean);
  return html`<div>requested: ${r.cpu} cpu, ${r.gpu} gpu, ${fmtInt(r.memory)} MB memory, ${fmtInt(r.disk)} MB disk, ${r.time} min${r.site ? html`, site ${r.site}` : ''}</div>
<div class="resources">used: ${used.length ? used.join(', ') : html`<span class="muted">nothing reported</span>`}</div>`;
}

function taskSection(ctx: ViewContext, v: JobView, t: JobTaskView, why?: TaskWhy): SafeHtml {
  const base = `/datasets/${v.job.dataset_id}/jobs/${v.job.job_index}`;
  return html`<section class="task" id="task-${t.task_index}" data-task="${t.name}">
<h3>Task ${t.task_index}: ${t.name} ${badge(t.status)}</h3>
${facts([
    ['Task id', String(t.id)],
    ['Status since', fmtTime(t.status_changed_at)],
    ...(why && why.reason.code !== 'ok' ? [['Why', taskWhy(why)] as [string, SafeHtml]] : []),
    ['Grid', t.grid ? html`<a href="/grids/${seg(t.grid)}">${t.grid}</a>` : html`<span class="muted">—</span>`],
    ['Batch id', t.batch_id ?? ''],
    ['Host', html`<span class="host">${t.host ?? ''}</span>`],
    ['Resources', resources(t)],
    ['Started / finished', html`${fmtTime(t.started_at)} / ${fmtTime(t.finished_at)}`],
    ['Last heartbeat', fmtTime(t.last_heartbeat_at)],
    ['Failures / evictions / submit errors', `${t.failures} / ${t.evictions} / ${t.submit_errors}`],
    ['Next retry', fmtTime(t.next_retry_at)],
    ['Error', t.error_summary ? html`<pre class="log error-summary">${t.error_summary}</pre>` : html`<span class="muted">none</span>`],
  ])}
<h4>Statistics</h4>
${t.stats.length
    ? html`<table class="list task-stats"><thead><tr><th>Name</th><th class="num">Value</th></tr></thead><tbody>${t.stats.map((s) => html`<tr><td>${s.name}</td><td class="num">${fmtNum(s.value)}</td></tr>`)}</tbody></table>`
    : html`<p class="muted">none</p>`}
<h4>Logs</h4>
${t.logs.length
    ? t.logs.map(
        (l) => html`<details class="task-log" data-log="${l.name}"><summary>${l.name} <span class="muted">(${fmtBytes(l.length)}, ${fmtTime(l.updated_at)})</span>
        ${l.truncated ? html` <a href="${base}/tasks/${t.id}/logs/${seg(l.name)}">whole log</a>` : ''}</summary>
        <pre class="log">${l.truncated ? '…' : ''}${l.tail}</pre></details>`,
      )
    : html`<p class="muted">none</p>`}
</section>`;
}

export function jobPage(ctx: ViewContext, v: JobView, owner: string | null, why?: JobWhy): SafeHtml {
  const j = v.job;
  const canReset = mayControl(ctx, owner);
  const body = html`
<h1>Dataset ${j.dataset_id} · job ${j.job_index} ${badge(j.status)}</h1>
${facts([
    ['Dataset', html`<a href="/datasets/${j.dataset_id}">${j.dataset_id}</a>`],
    ['Status since', fmtTime(j.status_changed_at)],
    ['Run', j.run ? html`<a href="/runs/${j.run_id}">run ${j.run.run_number}</a> (<a href="/days/${j.run.date}">${j.run.date}</a>)` : html`<span class="muted">—</span>`],
    ['Arguments', j.args === null ? html`<span class="muted">none</span>` : html`<span class="mono">${JSON.stringify(j.args)}</span>`],
  ])}
${canReset
    ? html`<form method="post" action="/datasets/${j.dataset_id}/jobs/${j.job_index}/reset" class="inline controls" data-confirm="Reset the FAILED, ERROR and SUSPENDED tasks of job ${j.job_index}?">${csrfField(ctx)}<button type="submit" id="btn-job-reset">Reset job</button></form>`
    : ''}
${why ? whyPanel(why.job) : ''}
<h2>Tasks</h2>
<table class="list" id="tasks">
<thead><tr><th class="num">#</th><th>Name</th><th>Status</th><th>Host</th><th>Grid</th><th class="num">CPU s</th><th class="num">Wall s</th><th class="num">RSS MB</th><th class="num">Failures</th></tr></thead>
<tbody>${v.tasks.map((t) => html`<tr data-task="${t.name}"><td class="num"><a href="#task-${t.task_index}">${t.task_index}</a></td><td>${t.name}</td><td>${badge(t.status)}</td><td>${t.host ?? ''}</td><td>${t.grid ?? ''}</td><td class="num">${fmtNum(t.usage.cpu_seconds)}</td><td class="num">${fmtNum(t.usage.wall_seconds)}</td><td class="num">${fmtNum(t.usage.rss_mb)}</td><td class="num">${t.failures}</td></tr>`)}</tbody>
</table>
${v.tasks.map((t) => taskSection(ctx, v, t, why?.tasks.get(t.id)))}
<h2>Files</h2>
<table class="list" id="files">
<thead><tr><th>Kind</th><th>Name</th><th>URL</th><th>Type</th><th class="num">Size</th><th>md5</th><th>sha256</th><th>State</th></tr></thead>
<tbody>${v.files.length === 0 ? html`<tr><td colspan="8" class="muted">No files.</td></tr>` : ''}
${v.files.map((f) => html`<tr data-file="${f.local_name}"><td>${f.kind}</td><td>${f.local_name}</td><td class="mono url">${f.url}</td><td>${f.type}</td><td class="num">${f.size === null ? '' : fmtInt(f.size)}</td><td class="mono">${f.md5 ?? ''}</td><td class="mono hash">${f.sha256 ?? ''}</td><td>${f.state}${f.error ? html` <span class="error-text">${f.error}</span>` : ''}</td></tr>`)}
</tbody></table>
${j.input_files.length ? html`<p class="muted">${fmtInt(j.input_files.length)} input files.</p>` : ''}
<h2>History</h2>
<table class="list" id="history">
<thead><tr><th>When</th><th>What</th><th>From</th><th>To</th><th>Who</th><th>Why</th></tr></thead>
<tbody>${v.history.length === 0 ? html`<tr><td colspan="6" class="muted">None.</td></tr>` : ''}
${v.history.map((h) => {
    const task = h.entity === 'task' ? v.tasks.find((t) => t.id === h.entity_id) : undefined;
    return html`<tr><td>${fmtTime(h.created_at)}</td><td>${task ? `task ${task.name}` : h.entity} ${h.action}</td><td>${h.from_status ?? ''}</td><td>${h.to_status ?? ''}</td><td>${h.actor}</td><td>${h.reason ?? ''}</td></tr>`;
  })}
</tbody></table>`;
  return layout(ctx, {
    title: `Dataset ${j.dataset_id} job ${j.job_index}`,
    body,
    crumbs: [[`Dataset ${j.dataset_id}`, `/datasets/${j.dataset_id}`], [`Job ${j.job_index}`, null]],
  });
}
