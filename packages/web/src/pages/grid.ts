import { html, seg, type SafeHtml } from '../html';
import type { GridNode, GridView } from '../queries';
import { badge, fmtAge, fmtInt, fmtTime } from './format';
import { facts, layout, type ViewContext } from './layout';

function jsonText(v: unknown): string {
  return typeof v === 'string' ? v : JSON.stringify(v);
}

function nodeTable(id: string, nodes: GridNode[], empty: string): SafeHtml {
  return html`<table class="list" id="${id}">
<thead><tr><th>Host</th><th class="num">OK</th><th class="num">Failed</th><th>Recent outcomes</th><th>Black-holed until</th><th>Updated</th></tr></thead>
<tbody>${nodes.length === 0 ? html`<tr><td colspan="6" class="muted">${empty}</td></tr>` : ''}
${nodes.map((n) => html`<tr><td>${n.hostname}</td><td class="num">${fmtInt(n.ok_count)}</td><td class="num">${fmtInt(n.fail_count)}</td><td class="mono">${n.recent}</td><td>${fmtTime(n.blackholed_until)}</td><td>${fmtTime(n.updated_at)}</td></tr>`)}
</tbody></table>`;
}

export function gridPage(ctx: ViewContext, g: GridView): SafeHtml {
  const body = html`
<h1>Grid ${g.name}</h1>
<div class="cards">
  <div class="card"><div class="k">Queueing</div><div class="v" id="grid-queueing" data-live="counts.QUEUEING">${fmtInt(g.counts.QUEUEING)}</div></div>
  <div class="card"><div class="k">Queued</div><div class="v" id="grid-queued" data-live="counts.QUEUED">${fmtInt(g.counts.QUEUED)}</div></div>
  <div class="card"><div class="k">Running</div><div class="v" id="grid-running" data-live="counts.PROCESSING">${fmtInt(g.counts.PROCESSING)}</div></div>
  <div class="card"><div class="k">Black-holed nodes</div><div class="v" id="grid-blackholed">${fmtInt(g.blackholed.length)}</div></div>
</div>
${facts([
  ['Plugin', html`<span id="grid-plugin">${g.plugin}</span>`],
  ['Status', g.status],
  ['Last heartbeat', html`<span id="grid-heartbeat">${fmtTime(g.last_seen_at)}</span> <span class="muted">(${fmtAge(g.last_seen_at, ctx.now)})</span>`],
  ['Capabilities', Object.keys(g.capabilities).length ? Object.entries(g.capabilities).map(([k, v]) => html`<span class="chip">${k}: ${jsonText(v)}</span> `) : html`<span class="muted">none declared</span>`],
  ['Registered', fmtTime(g.created_at)],
])}
${g.last_cycle ? html`<h2>Last queue cycle</h2>${facts(Object.entries(g.last_cycle).map(([k, v]) => [k, jsonText(v)]))}` : ''}
<h2>Datasets on this grid</h2>
<table class="list" id="grid-datasets">
<thead><tr><th>ID</th><th>Description</th><th>Status</th><th class="num">Priority</th><th>Assigned</th><th class="num">Queueing</th><th class="num">Queued</th><th class="num">Running</th></tr></thead>
<tbody>${g.datasets.length === 0 ? html`<tr><td colspan="8" class="muted">No datasets.</td></tr>` : ''}
${g.datasets.map((d) => html`<tr data-dataset="${d.id}"><td><a href="/datasets/${d.id}">${d.id}</a></td><td class="desc">${d.description}</td><td>${badge(d.status)}</td><td class="num">${d.priority}</td><td>${d.assigned ? 'yes' : 'no'}</td><td class="num">${fmtInt(d.queueing)}</td><td class="num">${fmtInt(d.queued)}</td><td class="num">${fmtInt(d.processing)}</td></tr>`)}
</tbody></table>
<h2>Black-holed nodes</h2>
${nodeTable('blackholed-nodes', g.blackholed, 'None: every node is in use.')}
<h2>Nodes with the most failures</h2>
${nodeTable('worst-nodes', g.worst, 'No failures recorded.')}`;
  return layout(ctx, { title: `Grid ${g.name}`, body, crumbs: [['Grids', '/#grids'], [g.name, null]], live: `/api/grids/${seg(g.name)}/summary` });
}
