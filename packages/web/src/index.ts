// @firn/web — PLACEHOLDER written by the firn-mon helper so that firn-mon's mount point builds and
// runs. The web-monitor helper replaces this file; keep the `mountWeb(app, deps)` entry point
// (firn-mon calls it when `[mon] web` is true).
import type { Db, FirnConfig, Logger, RpcServer } from '@firn/core';

/** The fastify instance firn-mon serves (its `POST /rpc`, `/healthz` and `/metrics` are already registered). */
export type WebApp = RpcServer['app'];

/** What firn-mon hands the web monitor. */
export interface WebDeps {
  db: Db;
  config: FirnConfig;
  logger: Logger;
}

/** Register the web monitor's routes on firn-mon's server (placeholder: a one-line `GET /`). */
export async function mountWeb(app: WebApp, deps: WebDeps): Promise<void> {
  void deps;
  app.get('/', async (_req, reply) => reply.type('text/plain; charset=utf-8').send('firn web monitor (placeholder: not built yet)\n'));
}
