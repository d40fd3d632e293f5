import { html, queryString, type HtmlValue, type SafeHtml } from '../html';
import type { Page } from '../queries';
import type { Flash, Session } from '../session';
import { fmtInt } from './format';

/** What every page is rendered with. */
export interface ViewContext {
  session: Session;
  flash: Flash | null;
  /** Versioned URLs of the static files. */
  assets: { js: string; css: string; chart: string };
  /** Seconds between live updates. */
  pollSeconds: number;
  /** The path and query of this page (for the login form's return). */
  path: string;
  now: number;
  /** Pages are served to visitors who are not logged in ([mon] anonymous_read). */
  anonymousRead?: boolean;
}

export interface PageOptions {
  title: string;
  body: SafeHtml;
  /** Breadcrumbs after "Firn": [label, href] (href null for the current page). */
  crumbs?: Array<[string, string | null]>;
  /** JSON endpoint polled for live counts. */
  live?: string;
  /** Page uses charts (loads chart.js). */
  charts?: boolean;
}

function userBox(ctx: ViewContext): SafeHtml {
  const s = ctx.session;
  if (s.user) {
    return html`<span class="who">${s.user.username} <span class="role">(${s.user.role})</span></span>
      <form method="post" action="/logout" class="inline"><input type="hidden" name="csrf" value="${s.csrf}"><button type="submit" class="link">Log out</button></form>`;
  }
  if (s.trayDown) return html`<span class="warn">firn-tray unreachable: controls unavailable</span>`;
  return html`<a href="/login${queryString({ next: ctx.path })}" id="login-link">Log in</a>`;
}

export function layout(ctx: ViewContext, o: PageOptions): SafeHtml {
  const crumbs = o.crumbs ?? [];
  return html`<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>${o.title} · Firn</title>
<link rel="icon" href="data:,">
<link rel="stylesheet" href="${ctx.assets.css}">
${o.charts ? html`<script src="${ctx.assets.chart}" defer></script>` : ''}
<script src="${ctx.assets.js}" defer></script>
</head>
<body${o.live ? html` data-live-url="${o.live}" data-poll="${ctx.pollSeconds}"` : ''}>
<header class="top">
  <nav><a href="/" class="brand">Firn</a> <a href="/">Datasets</a> <a href="/#grids">Grids</a> <a href="/calendar">Calendar</a></nav>
  <div class="user">${userBox(ctx)}</div>
</header>
<main>
${crumbs.length ? html`<div class="crumbs"><a href="/">Firn</a>${crumbs.map(([label, href]) => (href ? html` › <a href="${href}">${label}</a>` : html` › <span>${label}</span>`))}</div>` : ''}
${ctx.flash ? html`<div class="flash flash-${ctx.flash.kind}" role="status">${ctx.flash.text}</div>` : ''}
${o.body}
</main>
<footer><span id="live-status" class="muted"></span></footer>
</body>
</html>
`;
}

/** Previous / next links and "page x of y" for a paged list; `params` are the other query parameters. */
export function pager(page: Page<unknown>, base: string, params: Record<string, string | number | undefined>, name = 'page'): SafeHtml {
  if (page.pages <= 1) return html`<div class="pager muted">${fmtInt(page.total)} in all</div>`;
  const link = (p: number, label: string) => html`<a href="${base}${queryString({ ...params, [name]: p })}">${label}</a>`;
  return html`<div class="pager">
    ${page.page > 1 ? html`${link(1, '« first')} ${link(page.page - 1, '‹ previous')}` : ''}
    <span>page ${fmtInt(page.page)} of ${fmtInt(page.pages)} (${fmtInt(page.total)} in all)</span>
    ${page.page < page.pages ? html`${link(page.page + 1, 'next ›')} ${link(page.pages, 'last »')}` : ''}
  </div>`;
}

/** A key/value table. */
export function facts(rows: Array<[string, HtmlValue]>): SafeHtml {
  return html`<table class="facts">${rows.map(([k, v]) => html`<tr><th>${k}</th><td>${v}</td></tr>`)}</table>`;
}

/** A hidden CSRF field. */
export function csrfField(ctx: ViewContext): SafeHtml {
  return html`<input type="hidden" name="csrf" value="${ctx.session.csrf}">`;
}

export function errorPage(ctx: ViewContext, status: number, message: string): SafeHtml {
  const title = status === 404 ? 'Not found' : status === 403 ? 'Forbidden' : status === 400 ? 'Bad request' : 'Error';
  return layout(ctx, { title, body: html`<h1>${title}</h1><p class="error-text">${message}</p><p><a href="/">Back to the datasets</a></p>` });
}
