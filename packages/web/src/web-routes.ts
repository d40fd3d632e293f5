import fs from 'node:fs';
import tls from 'node:tls';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import {
  ConfigError, NotFoundError, RpcError, RpcErrorCode, ValidationError, coerceError, datasetProgress, getDataset, getDatasetOwner, nullLogger, serverUrl, whyTasks,
  type Db, type FirnConfig, type Logger, type MonSection,
} from '@firn/core';
import { loadAssets, type Asset } from './assets';
import type { SafeHtml } from './html';
import * as pages from './pages';
import * as q from './queries';
import {
  TOKEN_COOKIE, csrfMatches, ensurePreSession, getSession, isSecure, parseCookies, serializeCookie, setCookie, setFlash, takeFlash,
  csrfFor, type Session,
} from './session';
import { TrayGateway } from './tray-gateway';
import { TtlCache } from './ttl-cache';

/** The fastify instance the web monitor is mounted on (firn-mon's, or firn-web's own). */
export type WebApp = FastifyInstance;

/** What the web monitor needs. firn-mon passes `{db, config, logger}`; the rest has defaults. */
export interface WebDeps {
  /** Read only: the web monitor never writes to the database (a read-only account is enough). */
  db: Db;
  logger?: Logger;
  /** Daemon configuration: `[mon] tray_url` (else the `[tray]` host/port/url) and the tray's certificate. */
  config?: FirnConfig;
  /** firn-tray URL for login and control actions (overrides the config). */
  trayUrl?: string;
  /**
   * PEM CA(s) trusted for an https tray, instead of the default: the system CAs plus `[mon] tray_ca`
   * (a PEM bundle file) or, without it, plus `[tray] tls_cert` when readable (a self-signed tray on this host).
   */
  trayCa?: string | Buffer;
  /** Serve every page to visitors who are not logged in (default `[mon] anonymous_read`, else false). */
  anonymousRead?: boolean;
  /** Seconds between live updates in the browser (default 5). */
  pollSeconds?: number;
  /** How long query results are shared between requests, ms (default 2000; 0: never). */
  cacheMs?: number;
  /** How long a tray `auth.whoami` answer is reused, ms (default 30000). */
  whoamiTtlMs?: number;
}

const ID = /^\d{1,9}$/;
const FORM_LIMIT = 64 * 1024;
const CSP = [
  "default-src 'self'", "script-src 'self'", "style-src 'self'", "img-src 'self' data:", "connect-src 'self'",
  "object-src 'none'", "base-uri 'none'", "form-action 'self'", "frame-ancestors 'none'",
].join('; ');

/** The tray URL the web monitor talks to. */
export function trayUrlOf(deps: Pick<WebDeps, 'trayUrl' | 'config'>): string {
  if (deps.trayUrl) return deps.trayUrl;
  if (deps.config?.mon.tray_url) return deps.config.mon.tray_url;
  if (deps.config) return serverUrl(deps.config.tray);
  return 'http://127.0.0.1:8580';
}

/** `[mon]` keys of the web monitor beyond the core MonSection (schemas/config.schema.json). */
interface WebMonSection extends MonSection {
  anonymous_read?: boolean;
  tray_ca?: string;
}

function webSettingsOf(config: FirnConfig | undefined): Partial<WebMonSection> {
  return (config?.mon ?? {}) as Partial<WebMonSection>;
}

/**
 * What the tray gateway trusts for an https tray: the system CAs plus `[mon] tray_ca` (a PEM bundle:
 * a private CA that signed the tray's certificate); without it, plus `[tray] tls_cert` when readable
 * (the old behaviour: a self-signed tray on this host). An unreadable tray_ca fails the start.
 */
export function trayCaOf(deps: Pick<WebDeps, 'trayCa' | 'config'>, url: string): string | Buffer | undefined {
  if (deps.trayCa !== undefined) return deps.trayCa;
  if (!url.startsWith('https:')) return undefined;
  const bundle = webSettingsOf(deps.config).tray_ca;
  let extra: string | undefined;
  if (bundle) {
    try {
      extra = fs.readFileSync(bundle, 'utf8');
    } catch (e) {
      throw new ConfigError(`[mon] tray_ca: cannot read ${bundle}: ${(e as Error).message}`);
    }
    if (!extra.includes('-----BEGIN CERTIFICATE-----')) throw new ConfigError(`[mon] tray_ca: ${bundle} holds no PEM certificate`);
  } else if (deps.config?.tray.tls_cert) {
    try {
      extra = fs.readFileSync(deps.config.tray.tls_cert, 'utf8');
    } catch {
      return undefined; // not on this host: the system CAs alone
    }
  }
  return extra === undefined ? undefined : [...tls.rootCertificates, extra].join('\n');
}

function idParam(value: unknown, what: string): number {
  if (typeof value !== 'string' || !ID.test(value)) throw new NotFoundError(`no ${what} ${JSON.stringify(String(value))}`);
  return Number(value);
}

/** A single string from the query string (repeated keys: the first). */
function qs(req: FastifyRequest, key: string): string | undefined {
  const v = (req.query as Record<string, unknown> | undefined)?.[key];
  const s = Array.isArray(v) ? v[0] : v;
  return typeof s === 'string' && s !== '' ? s.slice(0, 500) : undefined;
}

function form(req: FastifyRequest): Record<string, string> {
  const b = req.body;
  return b && typeof b === 'object' && !Array.isArray(b) ? (b as Record<string, string>) : {};
}

/** Only paths on this site: `/…` but not `//host` or `/\host`. */
export function safeNext(next: unknown): string {
  if (typeof next !== 'string' || next.length > 2000 || !next.startsWith('/') || next.startsWith('//') || next.startsWith('/\\')) return '/';
  return /[\u0000-\u001f]/.test(next) ? '/' : next;
}

/**
 * Register the web monitor's pages, JSON endpoints, static files, login and controls on `app`
 * (in their own encapsulated context: their error handler, form parser and security headers do
 * not touch firn-mon's `/rpc`). Routes: ARCHITECTURE.md "Web monitor routes".
 */
export async function mountWeb(app: WebApp, deps: WebDeps): Promise<void> {
  const logger = deps.logger ?? nullLogger;
  const db = deps.db;
  const url = trayUrlOf(deps);
  const tray = new TrayGateway({ url, ca: trayCaOf(deps, url), logger, whoamiTtlMs: deps.whoamiTtlMs });
  const anonymousRead = deps.anonymousRead ?? webSettingsOf(deps.config).anonymous_read ?? false;
  const cache = new TtlCache(deps.cacheMs ?? 2000);
  const pollSeconds = deps.pollSeconds ?? 5;
  const assets = loadAssets();
  const assetUrl = (name: string) => `/static/${name}?v=${assets.get(name)!.version}`;
  const assetUrls = { js: assetUrl('firn-web.js'), css: assetUrl('firn-web.css'), chart: assetUrl('chart.umd.js') };

  const viewContext = async (req: FastifyRequest, reply: FastifyReply, session?: Session): Promise<pages.ViewContext> => ({
    session: session ?? (await getSession(req, reply, tray, logger)),
    flash: takeFlash(req, reply),
    assets: assetUrls,
    pollSeconds,
    path: req.url,
    now: Date.now(),
    anonymousRead,
  });
  const sendPage = (reply: FastifyReply, page: SafeHtml, status = 200) =>
    reply.code(status).type('text/html; charset=utf-8').header('cache-control', 'no-store').send(page.toString());

  const counts = (id: number) => cache.get(`dataset:${id}:counts`, () => q.datasetCounts(db, id));
  const progress = (id: number) => cache.get(`dataset:${id}:progress`, async () => q.progressView(await datasetProgress(db, id)));

  await app.register(async (web) => {
    web.addContentTypeParser('application/x-www-form-urlencoded', { parseAs: 'string', bodyLimit: FORM_LIMIT }, (_req, body, done) => {
      done(null, Object.fromEntries(new URLSearchParams(String(body))));
    });
    web.addHook('onSend', async (_req, reply, payload) => {
      void reply.header('content-security-policy', CSP);
      void reply.header('x-content-type-options', 'nosniff');
      void reply.header('x-frame-options', 'DENY');
      void reply.header('referrer-policy', 'same-origin');
      return payload;
    });
    web.setErrorHandler(async (err: Error & { statusCode?: number }, req, reply) => {
      const status =
        err instanceof NotFoundError ? 404 : err instanceof ValidationError ? 400 : err.statusCode && err.statusCode >= 400 && err.statusCode < 500 ? err.statusCode : 500;
      if (status >= 500) logger.error('web request failed', { path: req.url.split('?')[0], error: coerceError(err).stack ?? String(err) });
      const message = status >= 500 ? 'Something went wrong; the details are in the firn-mon log.' : err.message;
      if (req.url.startsWith('/api/')) return reply.code(status).header('cache-control', 'no-store').send({ error: message });
      let ctx: pages.ViewContext;
      try {
        ctx = await viewContext(req, reply);
      } catch {
        ctx = { session: { token: null, user: null, csrf: null, trayDown: false, canControl: false }, flash: null, assets: assetUrls, pollSeconds, path: '/', now: Date.now(), anonymousRead };
      }
      return sendPage(reply, pages.errorPage(ctx, status, message), status);
    });

    // ------------------------------------------------------------------ who may read
    // Every page and JSON endpoint shows production data: a viewer session is needed unless
    // [mon] anonymous_read. Public: static files, the icon, the login form. POSTs check their
    // own session (controls need a manager, login needs its form token).
    const PUBLIC_ROUTES = new Set(['/static/:file', '/favicon.ico', '/login']);
    web.addHook('preHandler', async (req, reply) => {
      const reading = req.method === 'GET' || req.method === 'HEAD';
      if (anonymousRead || !reading || PUBLIC_ROUTES.has(req.routeOptions.url ?? '')) return;
      const s = await getSession(req, reply, tray, logger);
      if (s.user) return;
      const status = s.trayDown ? 503 : 401;
      const message = s.trayDown ? 'firn-tray cannot be reached to check your session: try again later.' : 'Log in to read this page.';
      if (req.url.startsWith('/api/')) return reply.code(status).header('cache-control', 'no-store').send({ error: message });
      if (!s.trayDown && (req.headers.accept ?? '').includes('text/html')) {
        return reply.header('cache-control', 'no-store').redirect(`/login?${new URLSearchParams({ next: safeNext(req.url) }).toString()}`, 303);
      }
      if (s.trayDown) return sendPage(reply, pages.errorPage(await viewContext(req, reply, s), status, message), status);
      return reply.code(status).type('text/plain; charset=utf-8').header('cache-control', 'no-store').send(`${message}\n`);
    });

    // ------------------------------------------------------------------ static files
    web.get('/static/:file', async (req, reply) => {
      const asset: Asset | undefined = assets.get((req.params as { file: string }).file);
      if (!asset) throw new NotFoundError('no such file');
      return reply.type(asset.type).header('cache-control', 'public, max-age=86400').send(asset.body);
    });

    // no icon (pages say so with <link rel="icon" href="data:,">; plain-text logs cannot)
    web.get('/favicon.ico', async (_req, reply) => reply.code(204).header('cache-control', 'public, max-age=86400').send());

    // ------------------------------------------------------------------ pages
    web.get('/', async (req, reply) => {
      const filter: q.DatasetFilter = {
        status: qs(req, 'status'), type: qs(req, 'type'), grid: qs(req, 'grid'), owner: qs(req, 'owner'), search: qs(req, 'q'),
        page: q.pageNumber(qs(req, 'page')),
      };
      const [list, choices, grids] = await Promise.all([q.listDatasetsPage(db, filter), q.filterChoices(db), q.listGridsOverview(db)]);
      return sendPage(reply, pages.generalPage(await viewContext(req, reply), filter, list, choices, grids));
    });

    web.get('/grids/:name', async (req, reply) => {
      const g = await q.gridView(db, (req.params as { name: string }).name);
      return sendPage(reply, pages.gridPage(await viewContext(req, reply), g));
    });

    web.get('/datasets/:id', async (req, reply) => {
      const id = idParam((req.params as { id: string }).id, 'dataset');
      const rangeParam = qs(req, 'range');
      const range = q.isSeriesRange(rangeParam) ? rangeParam : q.DEFAULT_SERIES_RANGE;
      // independent queries: on a server database they run side by side on the pool
      const dataset = await getDataset(db, id); // first: an unknown dataset is a 404 before any scan starts
      const jobStatus = q.jobStatusFilter(qs(req, 'job_status'));
      const errorText = q.errorFilter(qs(req, 'error'));
      const [c, errors, stats, actions, why, p] = await Promise.all([
        counts(id), cache.get(`dataset:${id}:errors`, () => q.errorGroups(db, id)), q.statsTable(db, id), q.datasetActions(db, id),
        cache.get(`dataset:${id}:why`, () => whyTasks(db, id, null)), progress(id),
      ]);
      const view: q.DatasetView = { dataset, counts: c, errors, stats, actions, progress: p };
      const jobs = await q.jobsPage(db, id, { status: jobStatus, error: errorText, page: q.pageNumber(qs(req, 'jobs_page')), jobCounts: c.jobs });
      return sendPage(reply, pages.datasetPage(await viewContext(req, reply), view, jobs, { jobStatus, errorText, range, why }));
    });

    // the config exactly as submitted (the stored text); ?download=1: as a file
    web.get('/datasets/:id/config', async (req, reply) => {
      const id = idParam((req.params as { id: string }).id, 'dataset');
      const download = qs(req, 'download');
      if (download !== undefined && download !== '1') throw new ValidationError(`download must be 1, got ${JSON.stringify(download.slice(0, 40))}`);
      const row = (await db('dataset').select('config').where({ id }).first()) as { config: string } | undefined;
      if (!row) throw new NotFoundError(`no dataset ${id}`);
      void reply.type('application/json; charset=utf-8').header('cache-control', 'no-store');
      if (download) void reply.header('content-disposition', `attachment; filename="dataset-${id}.json"`);
      return reply.send(String(row.config));
    });

    web.get('/datasets/:id/jobs/:index', async (req, reply) => {
      const p = req.params as { id: string; index: string };
      const id = idParam(p.id, 'dataset');
      const index = idParam(p.index, 'job');
      const owner = (await getDataset(db, id)).owner;
      const v = await q.jobView(db, id, index);
      return sendPage(reply, pages.jobPage(await viewContext(req, reply), v, owner, await q.jobWhy(db, id, index, v)));
    });

    web.get('/datasets/:id/jobs/:index/tasks/:task/logs/:name', async (req, reply) => {
      const p = req.params as { id: string; index: string; task: string; name: string };
      const text = await q.taskLog(db, idParam(p.id, 'dataset'), idParam(p.index, 'job'), idParam(p.task, 'task'), p.name);
      if (text === null) throw new NotFoundError(`no log ${JSON.stringify(p.name)} for task ${p.task}`);
      return reply.type('text/plain; charset=utf-8').header('cache-control', 'no-store').send(text);
    });

    web.get('/calendar', async (req, reply) => {
      const ds = qs(req, 'dataset');
      const datasetId = ds && ID.test(ds) ? Number(ds) : undefined;
      const m = qs(req, 'month');
      const month = m && q.monthBounds(m) ? m : await q.latestRunMonth(db, datasetId);
      const days = month ? await q.calendarMonth(db, month, datasetId) : new Map<string, q.CalendarDay>();
      return sendPage(reply, pages.calendarPage(await viewContext(req, reply), month, days, datasetId));
    });

    web.get('/days/:date', async (req, reply) => {
      const date = (req.params as { date: string }).date;
      const runs = await q.dayRuns(db, date);
      return sendPage(reply, pages.dayPage(await viewContext(req, reply), date, runs));
    });

    web.get('/runs/:id', async (req, reply) => {
      const v = await q.runView(db, idParam((req.params as { id: string }).id, 'run'), { page: q.pageNumber(qs(req, 'page')) });
      return sendPage(reply, pages.runPage(await viewContext(req, reply), v));
    });

    // ------------------------------------------------------------------ JSON for charts and live updates
    web.get('/api/datasets', async (req, reply) => {
      const list = await q.listDatasetsPage(db, {
        status: qs(req, 'status'), type: qs(req, 'type'), grid: qs(req, 'grid'), owner: qs(req, 'owner'), search: qs(req, 'q'),
        page: q.pageNumber(qs(req, 'page')),
      });
      return reply.header('cache-control', 'no-store').send(list);
    });

    web.get('/api/datasets/:id/summary', async (req, reply) => {
      const id = idParam((req.params as { id: string }).id, 'dataset');
      const d = (await db('dataset').select('status', 'priority', 'updated_at').where({ id }).first()) as { status: string; priority: number; updated_at: number } | undefined;
      if (!d) throw new NotFoundError(`no dataset ${id}`);
      const [c, p] = await Promise.all([counts(id), progress(id)]);
      return reply.header('cache-control', 'no-store').send({
        dataset_id: id, status: d.status, priority: Number(d.priority), updated_at: Number(d.updated_at), ...c, progress: p, generated_at: Date.now(),
      });
    });

    web.get('/api/datasets/:id/series', async (req, reply) => {
      const id = idParam((req.params as { id: string }).id, 'dataset');
      const r = qs(req, 'range');
      const range = q.isSeriesRange(r) ? r : q.DEFAULT_SERIES_RANGE;
      const series = await cache.get(`dataset:${id}:series:${range}`, () => q.datasetSeries(db, id, range));
      return reply.header('cache-control', 'no-store').send(series);
    });

    web.get('/api/grids/:name/summary', async (req, reply) => {
      const g = await q.gridView(db, (req.params as { name: string }).name);
      return reply.header('cache-control', 'no-store').send({
        name: g.name, status: g.status, last_seen_at: g.last_seen_at, counts: g.counts, blackholed: g.blackholed.length, generated_at: Date.now(),
      });
    });

    // ------------------------------------------------------------------ login / logout
    web.get('/login', async (req, reply) => {
      const csrf = ensurePreSession(req, reply);
      const ctx = await viewContext(req, reply);
      return sendPage(reply, pages.loginPage(ctx, csrf, safeNext(qs(req, 'next'))));
    });

    web.post('/login', async (req, reply) => {
      const f = form(req);
      const pre = parseCookies(req.headers.cookie).firn_pre;
      const next = safeNext(f.next);
      const ctx = await viewContext(req, reply);
      if (!sameOrigin(req) || !pre || !csrfMatches(csrfFor(`p:${pre}`), f.csrf)) {
        const csrf = ensurePreSession(req, reply);
        return sendPage(reply, pages.loginPage(ctx, csrf, next, 'The form expired; please try again.', f.username ?? ''), 403);
      }
      try {
        const r = await tray.login(String(f.username ?? ''), String(f.password ?? ''));
        const maxAge = Math.max(60, (Date.parse(r.expires) - Date.now()) / 1000);
        setCookie(reply, serializeCookie(TOKEN_COOKIE, r.token, { secure: isSecure(req), maxAgeSeconds: Number.isFinite(maxAge) ? maxAge : 3600 }));
        setFlash(req, reply, { kind: 'ok', text: `Logged in as ${r.username} (${r.role}).` });
        logger.info('web login', { username: r.username, role: r.role });
        return reply.redirect(next, 303);
      } catch (e) {
        const message =
          e instanceof RpcError
            ? e.code === RpcErrorCode.INVALID_PARAMS ? 'Enter a user name and a password.' : e.message
            : `firn-tray cannot be reached (${coerceError(e).message}).`;
        return sendPage(reply, pages.loginPage(ctx, csrfFor(`p:${pre}`), next, message, f.username ?? ''), e instanceof RpcError ? 401 : 502);
      }
    });

    web.post('/logout', async (req, reply) => {
      const s = await getSession(req, reply, tray, logger);
      if (!sameOrigin(req) || !csrfMatches(s.csrf, form(req).csrf)) return refuse(req, reply, 403, 'Invalid form token: reload the page and try again.');
      if (s.token) {
        try {
          await tray.logout(s.token);
        } catch (e) {
          logger.debug('tray logout failed', { error: coerceError(e).message });
        }
        tray.forget(s.token);
      }
      setCookie(reply, serializeCookie(TOKEN_COOKIE, '', { secure: isSecure(req), maxAgeSeconds: 0 }));
      setFlash(req, reply, { kind: 'ok', text: 'Logged out.' });
      return reply.redirect('/', 303);
    });

    // ------------------------------------------------------------------ controls (all through tray RPC, with the user's token)
    const refuse = async (req: FastifyRequest, reply: FastifyReply, status: number, message: string) =>
      sendPage(reply, pages.errorPage(await viewContext(req, reply), status, message), status);

    const control = async (
      req: FastifyRequest, reply: FastifyReply, datasetId: number, back: string,
      method: string, params: Record<string, unknown>, done: (r: Record<string, unknown>) => string,
    ) => {
      const s = await getSession(req, reply, tray, logger);
      if (!s.token || !s.user) return refuse(req, reply, s.trayDown ? 503 : 401, s.trayDown ? 'firn-tray cannot be reached: controls are unavailable.' : 'Log in to use controls.');
      if (!sameOrigin(req) || !csrfMatches(s.csrf, form(req).csrf)) return refuse(req, reply, 403, 'Invalid form token: reload the page and try again.');
      if (!s.canControl) return refuse(req, reply, 403, `User ${s.user.username} is a ${s.user.role}: viewers cannot change datasets.`);
      await getDatasetOwner(db, datasetId); // 404 before calling the tray
      try {
        const r = await tray.call<Record<string, unknown>>(method, params, s.token);
        setFlash(req, reply, { kind: 'ok', text: done(r ?? {}) });
        logger.info('web control', { method, dataset: datasetId, by: s.user.username });
      } catch (e) {
        if (e instanceof RpcError && e.code === RpcErrorCode.UNAUTHENTICATED) {
          tray.forget(s.token);
          setCookie(reply, serializeCookie(TOKEN_COOKIE, '', { secure: isSecure(req), maxAgeSeconds: 0 }));
        }
        setFlash(req, reply, { kind: 'error', text: e instanceof RpcError ? `${method} refused: ${e.message}` : `firn-tray cannot be reached: ${coerceError(e).message}` });
      }
      cache.invalidate(`dataset:${datasetId}:`);
      return reply.redirect(back, 303);
    };

    const changed = (verb: string) => (r: Record<string, unknown>) => `Dataset ${String(r.dataset_id)} ${verb}: ${Number(r.changed ?? 0)} tasks changed.`;
    const datasetAction = (name: string, method: string, extra: Record<string, unknown>, verb: string) =>
      web.post(`/datasets/:id/${name}`, async (req, reply) => {
        const id = idParam((req.params as { id: string }).id, 'dataset');
        return control(req, reply, id, `/datasets/${id}`, method, { dataset_id: id, ...extra }, changed(verb));
      });
    datasetAction('suspend', 'dataset.suspend', {}, 'suspended');
    datasetAction('resume', 'dataset.resume', {}, 'resumed');
    datasetAction('reset', 'dataset.reset', {}, 'reset (failed, error and suspended tasks)');
    datasetAction('reset-all', 'dataset.reset', { include_ok: true }, 'reset (every task)');

    web.post('/datasets/:id/priority', async (req, reply) => {
      const id = idParam((req.params as { id: string }).id, 'dataset');
      const raw = String(form(req).priority ?? '').trim();
      const priority = /^-?\d{1,7}$/.test(raw) ? Number(raw) : NaN;
      if (!Number.isInteger(priority)) {
        const s = await getSession(req, reply, tray, logger);
        if (!csrfMatches(s.csrf, form(req).csrf)) return refuse(req, reply, 403, 'Invalid form token: reload the page and try again.');
        setFlash(req, reply, { kind: 'error', text: `priority must be an integer, got ${JSON.stringify(raw.slice(0, 40))}` });
        return reply.redirect(`/datasets/${id}`, 303);
      }
      return control(req, reply, id, `/datasets/${id}`, 'dataset.set_priority', { dataset_id: id, priority }, (r) => `Dataset ${String(r.dataset_id)} priority set to ${String(r.priority)}.`);
    });

    web.post('/datasets/:id/jobs/:index/reset', async (req, reply) => {
      const p = req.params as { id: string; index: string };
      const id = idParam(p.id, 'dataset');
      const index = idParam(p.index, 'job');
      return control(req, reply, id, `/datasets/${id}/jobs/${index}`, 'job.reset', { dataset_id: id, job_index: index },
        (r) => `Job ${index} of dataset ${id} reset: ${Number(r.changed ?? 0)} tasks changed.`);
    });
  });
  logger.debug('web monitor mounted', { tray: url });
}

/** A POST must come from our own pages: when the browser says where from (Origin), it must be this host. */
function sameOrigin(req: FastifyRequest): boolean {
  const origin = req.headers.origin;
  if (!origin || origin === 'null') return origin !== 'null';
  try {
    return new URL(origin).host === req.headers.host;
  } catch {
    return false;
  }
}
