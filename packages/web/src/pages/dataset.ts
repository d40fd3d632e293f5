import { TASK_STATUSES, type GroupWhy } from '@firn/core';
import { html, jsonForScript, queryString, seg, type SafeHtml } from '../html';
import { DEFAULT_SERIES_RANGE, JOB_STATUSES, SERIES_RANGES, errorGroupFilter, type DatasetView, type JobListRow, type Page, type SeriesRange } from '../queries';
import { badge, fmtAge, fmtInt, fmtNum, fmtTime } from './format';
import { csrfField, facts, layout, pager, type ViewContext } from './layout';
import { whyPanel } from './why';

/** May the signed-in user act on this dataset (the tray decides in the end)? */
export function mayControl(ctx: ViewContext, owner: string | null): boolean {
  const u = ctx.session.user;
  if (!u || !ctx.session.canControl) return false;
  return u.role === 'admin' || (u.role === 'manager' && owner === u.username);
}

function controls(ctx: ViewContext, v: DatasetView): SafeHtml {
  const d = v.dataset;
  const u = ctx.session.user;
  if (!u) return html``;
  if (!mayControl(ctx, d.owner)) {
    return html`<p class="muted" id="no-controls">Signed in as ${u.username} (${u.role}): ${u.role === 'viewer' ? 'viewers cannot change datasets.' : 'only the owner or an admin may change this dataset.'}</p>`;
  }
  const action = (name: string, label: string, confirm: string, cls = '') =>
    html`<form method="post" action="/datasets/${d.id}/${name}" class="inline" data-confirm="${confirm}">${csrfField(ctx)}<button type="submit" class="${cls}" id="btn-${name}">${label}</button></form>`;
  return html`<section class="controls" id="controls"><h2>Control</h2>
  ${action('suspend', 'Suspend', `Suspend dataset ${d.id}? Every task not OK or FAILED is suspended.`)}
  ${action('resume', 'Resume', `Resume dataset ${d.id}?`)}
  ${action('reset', 'Reset failed tasks', `Reset the FAILED, ERROR and SUSPENDED tasks of dataset ${d.id}?`)}
  ${u.role === 'admin' ? action('reset-all', 'Reset everything (incl. OK)', `Reset EVERY task of dataset ${d.id}, including the OK ones? Their work is redone.`, 'danger') : ''}
  <form method="post" action="/datasets/${d.id}/priority" class="inline" id="priority-form">${csrfField(ctx)}
    <label>Priority <input type="number" name="priority" value="${d.priority}" min="-1000000" max="1000000" step="1" required></label>
    <button type="submit" id="btn-priority">Set</button></form>
</section>`;
}

/** % complete, the last hour's rate and the ETA (updated live from the summary's `progress.text`). */
function progressFacts(v: DatasetView): Array<[string, SafeHtml]> {
  const p = v.progress!;
  return [
    ['Complete', html`<span id="progress-percent" data-live="progress.text.percent">${p.text.percent}</span> <span class="muted">(<span data-live="progress.ok">${fmtInt(p.ok)}</span> of <span data-live="progress.total">${fmtInt(p.total)}</span> tasks OK)</span>`],
    ['Rate', html`<span id="progress-rate" data-live="progress.text.rate">${p.text.rate}</span> <span class="muted">(last hour)</span>`],
    ['ETA', html`<span id="progress-eta" data-live="progress.text.eta">${p.text.eta}</span>`],
  ];
}

function countsTable(v: DatasetView): SafeHtml {
  const c = v.counts;
  const pct = (n: number) => (c.total_tasks ? ((100 * n) / c.total_tasks).toFixed(1) : '0.0');
  return html`<table class="counts" id="task-counts">
<thead><tr><th>Task status</th><th class="num">Tasks</th><th class="num">%</th></tr></thead>
<tbody>${TASK_STATUSES.map((s) => html`<tr class="${c.tasks[s] ? '' : 'zero'}"><td>${badge(s)}</td><td class="num" id="tasks-${s}" data-live="tasks.${s}">${fmtInt(c.tasks[s])}</td><td class="num" data-live-pct="tasks.${s}">${pct(c.tasks[s])}</td></tr>`)}</tbody>
<tfoot><tr><th>Total</th><th class="num" id="tasks-total" data-live="total_tasks">${fmtInt(c.total_tasks)}</th><th></th></tr></tfoot>
</table>
<table class="counts" id="job-counts">
<caption class="muted">as of firn-dh's last roll-up</caption>
<thead><tr><th>Job status</th><th class="num">Jobs</th></tr></thead>
<tbody>${JOB_STATUSES.map((s) => html`<tr><td>${badge(s)}</td><td class="num" id="jobs-${s}" data-live="jobs.${s}">${fmtInt(c.jobs[s])}</td></tr>`)}</tbody>
<tfoot><tr><th>Total</th><th class="num" id="jobs-total" data-live="total_jobs">${fmtInt(c.total_jobs)}</th></tr></tfoot>
</table>`;
}

function sitesTable(v: DatasetView): SafeHtml {
  const used = TASK_STATUSES.filter((s) => v.counts.sites.some((x) => x.tasks[s] > 0));
  return html`<table class="list" id="sites">
<thead><tr><th>Site</th><th class="num">Tasks</th>${used.map((s) => html`<th class="num">${s}</th>`)}</tr></thead>
<tbody>${v.counts.sites.length === 0 ? html`<tr><td colspan="2" class="muted">No tasks.</td></tr>` : ''}
${v.counts.sites.map(
  (x) => html`<tr data-site="${x.grid ?? ''}"><td>${x.grid === null ? html`<span class="muted">not claimed yet</span>` : html`<a href="/grids/${seg(x.grid)}">${x.grid}</a>`}</td><td class="num">${fmtInt(x.total)}</td>${used.map((s) => html`<td class="num">${fmtInt(x.tasks[s])}</td>`)}</tr>`,
)}
</tbody></table>`;
}

function statsTableHtml(v: DatasetView): SafeHtml {
  return html`<table class="list" id="stats">
<thead><tr><th>Statistic</th><th class="num">n</th><th class="num">sum</th><th class="num">mean</th><th class="num">stddev</th><th class="num">min</th><th class="num">max</th></tr></thead>
<tbody>${v.stats.length === 0 ? html`<tr><td colspan="7" class="muted">No statistics reported yet.</td></tr>` : ''}
${v.stats.map((s) => html`<tr data-stat="${s.name}"><td>${s.name}</td><td class="num">${fmtInt(s.n)}</td><td class="num">${fmtNum(s.sum)}</td><td class="num">${fmtNum(s.mean)}</td><td class="num">${fmtNum(s.stddev)}</td><td class="num">${fmtNum(s.min)}</td><td class="num">${fmtNum(s.max)}</td></tr>`)}
</tbody></table>`;
}

function errorsTable(v: DatasetView): SafeHtml {
  const jobsOf = (reason: string) => `/datasets/${v.dataset.id}${queryString({ error: errorGroupFilter(reason) })}#jobs`;
  return html`<p class="muted">${fmtInt(v.errors.total)} tasks in ERROR or FAILED, by reason (numbers and ids folded together).</p>
<table class="list" id="errors">
<thead><tr><th class="num">Tasks</th><th>Reason</th><th>Jobs</th></tr></thead>
<tbody>${v.errors.groups.length === 0 ? html`<tr><td colspan="3" class="muted">No errors.</td></tr>` : ''}
${v.errors.groups.map((g) => html`<tr><td class="num">${fmtInt(g.count)}</td><td><details><summary class="mono">${g.reason}</summary><pre class="log">${g.example}</pre></details></td><td><a class="error-jobs" href="${jobsOf(g.reason)}">jobs</a></td></tr>`)}
</tbody></table>`;
}

function jobsTable(v: DatasetView, jobs: Page<JobListRow>, jobStatus: string | undefined, range: SeriesRange, errorText: string | undefined): SafeHtml {
  const id = v.dataset.id;
  const rangeParam = range === DEFAULT_SERIES_RANGE ? undefined : range;
  const filterLink = (s: string | undefined, label: string) =>
    s === jobStatus ? html`<strong>${label}</strong>` : html`<a href="/datasets/${id}${queryString({ job_status: s, error: errorText, range: rangeParam })}#jobs">${label}</a>`;
  return html`<h2 id="jobs">Jobs</h2>
<p class="filters">Show: ${filterLink(undefined, 'all')} ${JOB_STATUSES.map((s) => html` · ${filterLink(s, s)}`)}</p>
<form method="get" action="/datasets/${id}#jobs" class="filters" id="job-filter">
  ${jobStatus ? html`<input type="hidden" name="job_status" value="${jobStatus}">` : ''}${rangeParam ? html`<input type="hidden" name="range" value="${rangeParam}">` : ''}
  <label>Error contains <input type="search" name="error" value="${errorText ?? ''}" maxlength="200"></label> <button type="submit">Filter</button>
  ${errorText ? html`<a href="/datasets/${id}${queryString({ job_status: jobStatus, range: rangeParam })}#jobs" id="clear-error">clear</a>` : ''}
</form>
${errorText ? html`<p class="muted" id="error-filter">Jobs with a task in ERROR or FAILED whose error contains “<span class="mono">${errorText}</span>”: ${fmtInt(jobs.total)}.</p>` : ''}
<table class="list" id="job-list">
<thead><tr><th class="num">Job</th><th>Status</th><th>Since</th><th>Run</th></tr></thead>
<tbody>${jobs.rows.length === 0 ? html`<tr><td colspan="4" class="muted">No jobs.</td></tr>` : ''}
${jobs.rows.map((j) => html`<tr><td class="num"><a href="/datasets/${id}/jobs/${j.job_index}">${j.job_index}</a></td><td>${badge(j.status)}</td><td>${fmtTime(j.status_changed_at)}</td><td>${j.run_id === null ? '' : html`<a href="/runs/${j.run_id}">${j.run_id}</a>`}</td></tr>`)}
</tbody></table>
${pager(jobs, `/datasets/${id}`, { job_status: jobStatus, error: errorText, range: rangeParam }, 'jobs_page')}`;
}

export function datasetPage(ctx: ViewContext, v: DatasetView, jobs: Page<JobListRow>, opts: { jobStatus?: string; errorText?: string; range: SeriesRange; why?: GroupWhy }): SafeHtml {
  const d = v.dataset;
  const seriesUrl = `/api/datasets/${d.id}/series${queryString({ range: opts.range })}`;
  const rangeLinks = (Object.keys(SERIES_RANGES) as SeriesRange[]).map((r) =>
    r === opts.range ? html`<strong>${r}</strong>` : html`<a href="/datasets/${d.id}${queryString({ range: r, job_status: opts.jobStatus })}">${r}</a>`,
  );
  const body = html`
<h1>Dataset ${d.id} <span data-live-status="status">${badge(d.status)}</span></h1>
<p class="description" id="description">${d.description || html`<span class="muted">(no description)</span>`}</p>
<div class="two">
<div>${facts([
    ['Type', d.type],
    ['Priority', html`<span id="priority" data-live="priority">${d.priority}</span>`],
    ['Owner', d.owner ?? html`<span class="muted">—</span>`],
    ['Grids', d.grids.length ? d.grids.map((g, i) => html`${i ? ', ' : ''}<a href="/grids/${seg(g)}">${g}</a>`) : html`<span class="muted">none</span>`],
    ['Jobs × tasks', `${fmtInt(d.jobs_submitted)} × ${d.tasks_per_job}`],
    ['Created', fmtTime(d.created_at)],
    ['Updated', html`${fmtTime(d.updated_at)} <span class="muted">(${fmtAge(d.updated_at, ctx.now)})</span>`],
    ...(v.progress ? progressFacts(v) : []),
    ['Config', html`<a href="/datasets/${d.id}/config" id="config-view">view</a> · <a href="/datasets/${d.id}/config?download=1" id="config-download">download</a>`],
    ['Config hash', html`<span class="mono">${d.config_hash}</span>`],
  ])}
${controls(ctx, v)}
</div>
<div class="count-tables">${countsTable(v)}</div>
</div>
${opts.why ? whyPanel(opts.why) : ''}

<h2>Over time</h2>
<p class="filters">Window: ${rangeLinks.map((l, i) => html`${i ? ' · ' : ''}${l}`)}</p>
<div class="charts">
  <figure><figcaption>Completion (tasks reaching OK, and tasks OK)</figcaption><canvas id="chart-completion" data-chart="completion" data-src="${seriesUrl}"></canvas></figure>
  <figure><figcaption>Tasks by state</figcaption><canvas id="chart-states" data-chart="states" data-src="${seriesUrl}"></canvas></figure>
  <figure><figcaption>Errors and evictions</figcaption><canvas id="chart-errors" data-chart="errors" data-src="${seriesUrl}"></canvas></figure>
  <figure><figcaption>Errors by reason</figcaption><canvas id="chart-reasons" data-chart="reasons" data-json="error-groups"></canvas></figure>
</div>
<script type="application/json" id="error-groups">${jsonForScript(v.errors.groups.map((g) => ({ reason: g.reason, count: g.count })))}</script>

<h2>Errors by reason</h2>
${errorsTable(v)}
<h2>Statistics</h2>
${statsTableHtml(v)}
<h2>Per site</h2>
${sitesTable(v)}
${jobsTable(v, jobs, opts.jobStatus, opts.range, opts.errorText)}
<h2>Recent actions</h2>
<table class="list" id="actions">
<thead><tr><th>When</th><th>Action</th><th>From</th><th>To</th><th>Who</th><th>Why</th></tr></thead>
<tbody>${v.actions.length === 0 ? html`<tr><td colspan="6" class="muted">None.</td></tr>` : ''}
${v.actions.map((a) => html`<tr><td>${fmtTime(a.created_at)}</td><td>${a.action}</td><td>${a.from_status ?? ''}</td><td>${a.to_status ?? ''}</td><td>${a.actor}</td><td>${a.reason ?? ''}</td></tr>`)}
</tbody></table>`;
  return layout(ctx, {
    title: `Dataset ${d.id}`,
    body,
    crumbs: [[`Dataset ${d.id}`, null]],
    live: `/api/datasets/${d.id}/summary`,
    charts: true,
  });
}
