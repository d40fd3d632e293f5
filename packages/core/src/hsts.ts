import type { FastifyInstance } from 'fastify';

/** One year, the usual value; no `includeSubDomains` (other hosts of the domain are not ours to pin). */
export const HSTS_HEADER_VALUE = 'max-age=31536000';

/**
 * Send `Strict-Transport-Security` on every response served over TLS (never over plain HTTP,
 * where browsers ignore it and it would only mislead). Added at the root of a fastify instance,
 * before its routes, it covers every route of the instance and of the plugins registered in it
 * (firn-tray's and firn-mon's `/rpc`, `/healthz`, `/metrics` and the web monitor).
 */
export function addStrictTransportSecurity(app: FastifyInstance): void {
  app.addHook('onRequest', (req, reply, done) => {
    if (req.protocol === 'https') void reply.header('strict-transport-security', HSTS_HEADER_VALUE);
    done();
  });
}
