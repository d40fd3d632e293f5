import { html, queryString, type SafeHtml } from '../html';
import { JOB_STATUSES, type CalendarDay, type RunRow, type RunView } from '../queries';
import { badge, fmtInt } from './format';
import { layout, pager, type ViewContext } from './layout';

function shiftMonth(month: string, by: number): string {
  const [y, m] = month.split('-').map(Number) as [number, number];
  const d = new Date(Date.UTC(y, m - 1 + by, 1));
  return `${d.getUTCFullYear()}-${String(d.getUTCMonth() + 1).padStart(2, '0')}`;
}

function dayClass(d: CalendarDay | undefined): string {
  if (!d) return 'empty';
  const total = JOB_STATUSES.reduce((a, s) => a + d.jobs[s], 0);
  if (total === 0) return 'norun';
  if (d.jobs.FAILED > 0) return 'failed';
  if (d.jobs.OK === total) return 'ok';
  if (d.jobs.SUSPENDED > 0 && d.jobs.PROCESSING === 0) return 'suspended';
  return 'processing';
}

export function calendarPage(ctx: ViewContext, month: string | null, days: Map<string, CalendarDay>, datasetId?: number): SafeHtml {
  let grid: SafeHtml = html`<p class="muted">No runs recorded: the calendar shows offline-processing datasets (runs of data taking).</p>`;
  if (month) {
    const [y, m] = month.split('-').map(Number) as [number, number];
    const first = new Date(Date.UTC(y, m - 1, 1));
    const daysIn = new Date(Date.UTC(y, m, 0)).getUTCDate();
    const lead = (first.getUTCDay() + 6) % 7; // weeks start on Monday
    const cells: SafeHtml[] = [];
    for (let i = 0; i < lead; i++) cells.push(html`<td class="pad"></td>`);
    for (let day = 1; day <= daysIn; day++) {
      const date = `${month}-${String(day).padStart(2, '0')}`;
      const d = days.get(date);
      cells.push(html`<td class="day ${dayClass(d)}" data-date="${date}"><div class="dnum">${d ? html`<a href="/days/${date}">${day}</a>` : day}</div>
        ${d ? html`<div class="dcounts"><span title="runs">${fmtInt(d.runs)} runs</span><br>
          <span class="c-OK" data-count="OK">${fmtInt(d.jobs.OK)} ok</span> · <span class="c-PROCESSING" data-count="PROCESSING">${fmtInt(d.jobs.PROCESSING)} proc</span><br>
          <span class="c-FAILED" data-count="FAILED">${fmtInt(d.jobs.FAILED)} failed</span> · <span class="c-SUSPENDED" data-count="SUSPENDED">${fmtInt(d.jobs.SUSPENDED)} susp</span></div>` : ''}</td>`);
    }
    while (cells.length % 7) cells.push(html`<td class="pad"></td>`);
    const weeks: SafeHtml[] = [];
    for (let i = 0; i < cells.length; i += 7) weeks.push(html`<tr>${cells.slice(i, i + 7)}</tr>`);
    const nav = (to: string, label: string) => html`<a href="/calendar${queryString({ month: to, dataset: datasetId })}">${label}</a>`;
    grid = html`<p class="filters">${nav(shiftMonth(month, -1), '‹ previous month')} · <strong id="month">${month}</strong> · ${nav(shiftMonth(month, 1), 'next month ›')}</p>
<table class="calendar" id="calendar"><thead><tr><th>Mon</th><th>Tue</th><th>Wed</th><th>Thu</th><th>Fri</th><th>Sat</th><th>Sun</th></tr></thead><tbody>${weeks}</tbody></table>`;
  }
  const body = html`<h1>Calendar of data taking${datasetId !== undefined ? html` · dataset <a href="/datasets/${datasetId}">${datasetId}</a>` : ''}</h1>
<p class="muted">Per day of data taking: the runs of offline datasets and their jobs by status.</p>
<form method="get" action="/calendar" class="filters"><label>Month <input type="month" name="month" value="${month ?? ''}"></label>
<label>Dataset <input type="number" name="dataset" min="1" value="${datasetId ?? ''}"></label><button type="submit">Show</button></form>
${grid}`;
  return layout(ctx, { title: 'Calendar', body, crumbs: [['Calendar', null]] });
}

function runTable(runs: RunRow[]): SafeHtml {
  return html`<table class="list" id="runs">
<thead><tr><th>Run</th><th>Dataset</th><th>Status</th><th class="num">Jobs</th>${JOB_STATUSES.map((s) => html`<th class="num">${s}</th>`)}</tr></thead>
<tbody>${runs.length === 0 ? html`<tr><td colspan="${4 + JOB_STATUSES.length}" class="muted">No runs that day.</td></tr>` : ''}
${runs.map((r) => html`<tr data-run="${r.run_number}"><td><a href="/runs/${r.id}">${r.run_number}</a></td><td><a href="/datasets/${r.dataset_id}">${r.dataset_id}</a> <span class="muted">${r.dataset_description}</span></td>
<td>${badge(runStatus(r))}</td><td class="num">${fmtInt(r.total)}</td>${JOB_STATUSES.map((s) => html`<td class="num">${fmtInt(r.jobs[s])}</td>`)}</tr>`)}
</tbody></table>`;
}

/** A run's status from its jobs' (the same rule as a dataset's from its jobs). */
export function runStatus(r: RunRow): string {
  if (r.total === 0) return 'EMPTY';
  if (r.jobs.PROCESSING > 0) return 'PROCESSING';
  if (r.jobs.OK === r.total) return 'OK';
  if (r.jobs.SUSPENDED > 0) return 'SUSPENDED';
  return 'FAILED';
}

export function dayPage(ctx: ViewContext, date: string, runs: RunRow[]): SafeHtml {
  const body = html`<h1>Runs of ${date}</h1>
<p><a href="/calendar${queryString({ month: date.slice(0, 7) })}">${date.slice(0, 7)} in the calendar</a></p>
${runTable(runs)}`;
  return layout(ctx, { title: `Runs of ${date}`, body, crumbs: [['Calendar', `/calendar${queryString({ month: date.slice(0, 7) })}`], [date, null]] });
}

export function runPage(ctx: ViewContext, v: RunView): SafeHtml {
  const r = v.run;
  const body = html`<h1>Run ${r.run_number} ${badge(runStatus(r))}</h1>
<p>Dataset <a href="/datasets/${r.dataset_id}">${r.dataset_id}</a> <span class="muted">${r.dataset_description}</span>, taken on <a href="/days/${r.date}">${r.date}</a>.</p>
${runTable([r])}
<h2>Jobs</h2>
<table class="list" id="run-jobs"><thead><tr><th class="num">Job</th><th>Status</th><th class="num">Input files</th></tr></thead>
<tbody>${v.jobs.rows.map((j) => html`<tr><td class="num"><a href="/datasets/${r.dataset_id}/jobs/${j.job_index}">${j.job_index}</a></td><td>${badge(j.status)}</td><td class="num">${fmtInt(j.inputs)}</td></tr>`)}</tbody></table>
${pager(v.jobs, `/runs/${r.id}`, {})}`;
  return layout(ctx, { title: `Run ${r.run_number}`, body, crumbs: [['Calendar', `/calendar${queryString({ month: r.date.slice(0, 7) })}`], [r.date, `/days/${r.date}`], [`Run ${r.run_number}`, null]] });
}
