import { DatasetStatus } from '@firn/core';
import { html, seg, type SafeHtml } from '../html';
import type { DatasetFilter, DatasetListRow, GridListRow, Page } from '../queries';
import { badge, fmtAge, fmtInt, fmtTime } from './format';
import { layout, pager, type ViewContext } from './layout';

function progress(r: DatasetListRow): SafeHtml {
  const total = Object.values(r.jobs).reduce((a, b) => a + b, 0);
  const pct = (n: number) => (total ? (100 * n) / total : 0);
  return html`<div class="bar" title="${fmtInt(r.jobs.OK)} OK, ${fmtInt(r.jobs.PROCESSING)} processing, ${fmtInt(r.jobs.FAILED)} failed, ${fmtInt(r.jobs.SUSPENDED)} suspended of ${fmtInt(total)} jobs">
    <span class="seg-OK" data-w="${pct(r.jobs.OK).toFixed(2)}"></span><span class="seg-FAILED" data-w="${pct(r.jobs.FAILED).toFixed(2)}"></span><span class="seg-SUSPENDED" data-w="${pct(r.jobs.SUSPENDED).toFixed(2)}"></span>
  </div>`;
}

function select(name: string, label: string, value: string | undefined, options: string[]): SafeHtml {
  return html`<label>${label} <select name="${name}"><option value="">any</option>${options.map((o) => html`<option value="${o}"${o === value ? html` selected` : ''}>${o}</option>`)}</select></label>`;
}

export function generalPage(
  ctx: ViewContext,
  filter: DatasetFilter,
  datasets: Page<DatasetListRow>,
  choices: { owners: string[]; grids: string[] },
  grids: GridListRow[],
): SafeHtml {
  const params = { status: filter.status, type: filter.type, grid: filter.grid, owner: filter.owner, q: filter.search };
  const body = html`
<h1>Datasets</h1>
<form method="get" action="/" class="filters" id="filters">
  ${select('status', 'Status', filter.status, Object.values(DatasetStatus))}
  ${select('type', 'Type', filter.type, ['simulation', 'offline'])}
  ${select('grid', 'Grid', filter.grid, choices.grids)}
  ${select('owner', 'Owner', filter.owner, choices.owners)}
  <label>Search <input type="search" name="q" value="${filter.search ?? ''}" placeholder="id or description"></label>
  <button type="submit">Filter</button> <a href="/">clear</a>
</form>
<table class="list" id="datasets">
<thead><tr><th>ID</th><th>Description</th><th>Type</th><th>Status</th><th>Priority</th><th>Owner</th><th>Grids</th><th class="num">Jobs</th><th class="num">OK</th><th class="num">Failed</th><th>Progress</th><th>Created</th></tr></thead>
<tbody>
${datasets.rows.length === 0 ? html`<tr><td colspan="12" class="muted">No datasets match.</td></tr>` : ''}
${datasets.rows.map(
  (r) => html`<tr data-dataset="${r.id}">
  <td><a href="/datasets/${r.id}">${r.id}</a></td>
  <td class="desc"><a href="/datasets/${r.id}">${r.description || html`<span class="muted">(no description)</span>`}</a></td>
  <td>${r.type}</td><td>${badge(r.status)}</td><td class="num">${r.priority}</td><td>${r.owner ?? html`<span class="muted">—</span>`}</td>
  <td>${r.grids.map((g, i) => html`${i ? ', ' : ''}<a href="/grids/${seg(g)}">${g}</a>`)}</td>
  <td class="num">${fmtInt(r.jobs_submitted)}</td><td class="num">${fmtInt(r.jobs.OK)}</td><td class="num">${fmtInt(r.jobs.FAILED)}</td>
  <td>${progress(r)}</td><td>${fmtTime(r.created_at)}</td>
</tr>`,
)}
</tbody>
</table>
${pager(datasets, '/', params)}

<h2 id="grids">Grids</h2>
<table class="list" id="grid-list">
<thead><tr><th>Name</th><th>Plugin</th><th>Status</th><th>Last heartbeat</th><th class="num">Queueing</th><th class="num">Queued</th><th class="num">Processing</th><th class="num">Black-holed nodes</th></tr></thead>
<tbody>
${grids.length === 0 ? html`<tr><td colspan="8" class="muted">No grids yet.</td></tr>` : ''}
${grids.map(
  (g) => html`<tr><td><a href="/grids/${seg(g.name)}">${g.name}</a></td><td>${g.plugin}</td><td>${g.status}</td>
  <td title="${g.last_seen_at ? new Date(g.last_seen_at).toISOString() : ''}">${fmtAge(g.last_seen_at, ctx.now)}</td>
  <td class="num">${fmtInt(g.queueing)}</td><td class="num">${fmtInt(g.queued)}</td><td class="num">${fmtInt(g.processing)}</td><td class="num">${fmtInt(g.blackholed)}</td></tr>`,
)}
</tbody>
</table>`;
  return layout(ctx, { title: 'Datasets', body });
}

