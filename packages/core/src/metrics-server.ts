import Fastify from 'fastify';
import client from 'prom-client';
import type { Db } from './db';
import { coerceError } from './errors';
import { applyHttpLimits, fastifyHttpOptions, type HttpLimits } from './http-server';
import { nullLogger, type Logger } from './logger';

/**
 * `/metrics` (Prometheus text) and `/healthz` for the daemons that serve no HTTP of their own
 * (firn-queue, firn-dh: `[queue|dh] metrics_port`, off when unset), and the task gauges every
 * daemon's registry can carry (firn-mon's server, `firn up`'s mon port).
 *
 * Label sets stay bounded whatever the database holds:
 *  - `firn_tasks`{dataset, grid, status} covers the TASK_GAUGE_DATASETS (200) most recent
 *    datasets that are PROCESSING or SUSPENDED — one grouped query per scrape, joined to a
 *    derived table of those dataset ids (MariaDB refuses LIMIT inside IN (…)). Older or
 *    finished datasets drop out of the series (their last values are not kept).
 *  - `firn_grid_tasks`{grid, status} is the same count summed per grid over every active dataset.
 *  - statuses are the fixed task states, grids the configured grids (a few dozen at most).
 * A scrape that cannot read the database keeps the previous values and counts the failure in
 * `firn_metrics_scrape_errors_total`; `/healthz` then answers 503.
 */

/** Datasets with their own `firn_tasks` series, the most recent active first. */
export const TASK_GAUGE_DATASETS = 200;

/** `/healthz`'s `SELECT 1` gives up after this (ms): a probe must answer even when the database hangs. */
export const HEALTH_TIMEOUT_MS = 2000;

/** Metrics and health server limits: scrapers are few (and local by default). */
const METRICS_LIMITS: HttpLimits = { idleTimeoutMs: 75_000, headersTimeoutMs: 10_000, requestTimeoutMs: 30_000, maxConnections: 64 };

/** Does the database answer `SELECT 1` within `timeoutMs`? Never throws. */
export async function databaseAnswers(db: Db, timeoutMs = HEALTH_TIMEOUT_MS): Promise<{ ok: boolean; error?: string }> {
  let timer: NodeJS.Timeout | undefined;
  try {
    await Promise.race([
      db.raw('SELECT 1'),
      new Promise((_, reject) => {
        timer = setTimeout(() => reject(new Error(`no answer within ${timeoutMs} ms`)), timeoutMs);
      }),
    ]);
    return { ok: true };
  } catch (e) {
    return { ok: false, error: coerceError(e).message.slice(0, 300) };
  } finally {
    if (timer) clearTimeout(timer);
  }
}

interface TaskCountRow { dataset_id: number | string; grid: string | null; status: string; n: number | string }

/** Task counts by dataset, grid and status over the `limit` most recent active datasets (one query). */
export async function taskCounts(db: Db, limit = TASK_GAUGE_DATASETS): Promise<Array<{ dataset: number; grid: string; status: string; n: number }>> {
  const active = db('dataset').select('id').whereIn('status', ['PROCESSING', 'SUSPENDED']).orderBy('id', 'desc').limit(limit).as('d');
  const rows = (await db('task as t')
    .join(active, 'd.id', 't.dataset_id')
    .leftJoin('grid as g', 'g.id', 't.grid_id')
    .select('t.dataset_id', 'g.name as grid', 't.status')
    .count({ n: '*' })
    .groupBy('t.dataset_id', 'g.name', 't.status')) as TaskCountRow[];
  return rows.map((r) => ({ dataset: Number(r.dataset_id), grid: r.grid ?? '', status: r.status, n: Number(r.n) }));
}

/**
 * Register `firn_tasks`, `firn_grid_tasks` and `firn_metrics_scrape_errors_total` on a registry;
 * the counts are read at scrape time. `prefix` names the daemon (`firn_queue_`, `firn_dh_`) so
 * that one Prometheus scraping several daemons can tell the series apart by job anyway.
 */
export function registerTaskGauges(registry: client.Registry, db: Db, options: { limit?: number; logger?: Logger } = {}): void {
  const logger = options.logger ?? nullLogger;
  let last: Awaited<ReturnType<typeof taskCounts>> | null = null;
  let pending: Promise<void> | null = null;
  const errors = new client.Counter({
    name: 'firn_metrics_scrape_errors_total', help: 'scrapes whose task counts could not be read', registers: [registry],
    // the same scrape's failure is counted in that scrape
    async collect() {
      await refresh();
    },
  });
  // both gauges come from one query per scrape
  const refresh = () =>
    (pending ??= taskCounts(db, options.limit)
      .then((rows) => void (last = rows))
      .catch((e: unknown) => {
        errors.inc();
        logger.warn('metrics: cannot read task counts', { error: coerceError(e).message });
      })
      .finally(() => setImmediate(() => (pending = null))));
  new client.Gauge({
    name: 'firn_tasks',
    help: `tasks by dataset, grid (empty: not yet claimed) and status, over the ${options.limit ?? TASK_GAUGE_DATASETS} most recent PROCESSING/SUSPENDED datasets`,
    labelNames: ['dataset', 'grid', 'status'],
    registers: [registry],
    async collect() {
      await refresh();
      if (!last) return;
      this.reset();
      for (const r of last) this.set({ dataset: String(r.dataset), grid: r.grid, status: r.status }, r.n);
    },
  });
  new client.Gauge({
    name: 'firn_grid_tasks',
    help: 'tasks by grid (empty: not yet claimed) and status, summed over the same datasets as firn_tasks',
    labelNames: ['grid', 'status'],
    registers: [registry],
    async collect() {
      await refresh();
      if (!last) return;
      this.reset();
      const sums = new Map<string, { grid: string; status: string; n: number }>();
      for (const r of last) {
        const key = `${r.grid}\u0000${r.status}`;
        const s = sums.get(key) ?? { grid: r.grid, status: r.status, n: 0 };
        s.n += r.n;
        sums.set(key, s);
      }
      for (const s of sums.values()) this.set({ grid: s.grid, status: s.status }, s.n);
    },
  });
}

export interface MetricsServerOptions {
  registry: client.Registry;
  db: Db;
  /** Daemon name in `/healthz` (`queue`, `dh`). */
  name: string;
  logger?: Logger;
  healthTimeoutMs?: number;
  /** More `/healthz` fields. */
  health?: () => Record<string, unknown>;
}

export interface MetricsServer {
  /** `http://host:port` after listen(). */
  url: string;
  close(): Promise<void>;
}

/**
 * Serve `GET /metrics` and `GET /healthz` (200 `{status: ok}`, or 503 `{status: error, database:
 * unavailable}` while the database does not answer `SELECT 1` within the health timeout).
 */
export async function startMetricsServer(o: MetricsServerOptions & { port: number; host: string }): Promise<MetricsServer> {
  const app = Fastify({ logger: false, ...fastifyHttpOptions(METRICS_LIMITS), return503OnClosing: true });
  applyHttpLimits(app.server, METRICS_LIMITS);
  app.get('/metrics', async (_req, reply) => {
    void reply.header('content-type', o.registry.contentType);
    return o.registry.metrics();
  });
  app.get('/healthz', async (_req, reply) => {
    const db = await databaseAnswers(o.db, o.healthTimeoutMs);
    const extra = o.health?.() ?? {};
    return reply
      .code(db.ok ? 200 : 503)
      .send({ status: db.ok ? 'ok' : 'error', daemon: o.name, database: db.ok ? 'ok' : 'unavailable', ...(db.error ? { error: db.error } : {}), ...extra });
  });
  await app.listen({ port: o.port, host: o.host });
  const addr = app.server.address();
  const port = typeof addr === 'object' && addr ? addr.port : o.port;
  const url = `http://${o.host.includes(':') ? `[${o.host}]` : o.host}:${port}`;
  (o.logger ?? nullLogger).info('metrics served', { url: `${url}/metrics`, daemon: o.name });
  return { url, close: () => app.close() };
}
