import type { GroupWhy, TaskWhy } from '@firn/core';
import { html, type SafeHtml } from '../html';
import { badge, fmtInt } from './format';

/**
 * "Why isn't it running?" panels: the reasons of core's why.ts (the same words `firn why` and
 * task.why / job.why / dataset.why give), counted for a dataset or job, one line per task.
 * Every value is escaped by `html`.
 */
export function whyPanel(w: GroupWhy, id = 'why'): SafeHtml {
  const rows = w.reasons.filter((r) => r.code !== 'ok');
  return html`<section class="why" id="${id}">
<h2>Why isn't it running?</h2>
${rows.length === 0
    ? html`<p class="muted">Every task is OK.</p>`
    : html`<table class="list why-reasons"><thead><tr><th class="num">Tasks</th><th>Status</th><th>Why</th></tr></thead>
<tbody>${rows.map((r) => html`<tr data-why="${r.code}"><td class="num">${fmtInt(r.count)}</td><td>${badge(r.status)}</td><td class="why-message">${r.message}</td></tr>`)}</tbody></table>`}
${w.truncated ? html`<p class="muted">More groups than shown: the counts are partial.</p>` : ''}
${w.grids.length
    ? html`<p class="muted why-grids">${w.grids[0]!.assigned ? 'Grids' : 'No grid is assigned; grids'}: ${w.grids.map((g, i) => html`${i ? '; ' : ''}${g.name} (${g.status}, ${Object.entries(g.capabilities).map(([k, v]) => `${k} ${String(v)}`).join(', ') || 'no limits'})`)}</p>`
    : html`<p class="muted why-grids">No grid exists.</p>`}
</section>`;
}

/** One task's blocking reason, and the others that hold. */
export function taskWhy(w: TaskWhy): SafeHtml {
  return html`<div class="why-task" data-why="${w.reason.code}"><span class="why-message">${w.reason.message}</span>${w.reasons.length > 1
    ? html`<ul class="why-more">${w.reasons.slice(1).map((r) => html`<li data-why="${r.code}">${r.message}</li>`)}</ul>`
    : ''}</div>`;
}
