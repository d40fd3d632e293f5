import fs from 'node:fs';
import type http from 'node:http';
import type { FastifyServerOptions } from 'fastify';

/**
 * Connection limits every Firn HTTP server (firn-tray, firn-mon, firn-web) applies, so that an
 * idle or slow client cannot hold a socket (or a file descriptor, or a parser) forever:
 *
 *  - `idle_timeout`     a keep-alive connection with no request in progress is closed after this;
 *  - `headers_timeout`  a request's headers must arrive within this (also bounds a connection
 *                       that opens and sends nothing);
 *  - `request_timeout`  the whole request — headers and body — must arrive within this (a body
 *                       trickled a byte at a time is cut off);
 *  - `max_connections`  sockets beyond this many are closed as soon as they are accepted.
 *
 * Node checks the header/request deadlines every `connectionsCheckingInterval`, here a tenth of
 * the shorter one (at most 30 s, at least 100 ms), so a deadline is kept to within 10 %.
 */
export interface HttpLimits {
  idleTimeoutMs: number;
  headersTimeoutMs: number;
  requestTimeoutMs: number;
  maxConnections: number;
}

/** The INI keys (seconds, and a count) as they appear in `[tray]` and `[mon]` (firn-web reads `[mon]`). */
export interface HttpLimitKeys {
  idle_timeout?: number;
  headers_timeout?: number;
  request_timeout?: number;
  max_connections?: number;
}

/**
 * Defaults. firn-mon's idle timeout is longer: pilots keep their connection between heartbeats,
 * which come every `[dh] heartbeat_timeout / 6` s (at most 300 s), and a server that closes a
 * connection just as a pilot reuses it makes that request fail.
 */
export const HTTP_LIMIT_DEFAULTS = {
  tray: { idle_timeout: 75, headers_timeout: 30, request_timeout: 120, max_connections: 2000 },
  mon: { idle_timeout: 330, headers_timeout: 30, request_timeout: 120, max_connections: 10000 },
} as const satisfies Record<string, Required<HttpLimitKeys>>;

/** The limits of a config section (keys missing there take `defaults`). */
export function httpLimitsOf(section: object, defaults: Required<HttpLimitKeys>): HttpLimits {
  const s = section as HttpLimitKeys;
  const num = (key: keyof HttpLimitKeys, min: number): number => {
    const v = s[key] ?? defaults[key];
    if (!(typeof v === 'number' && Number.isFinite(v) && v >= min)) throw new RangeError(`${key} must be a number ≥ ${min}, got ${String(v)}`);
    return v;
  };
  return {
    idleTimeoutMs: Math.round(num('idle_timeout', 1) * 1000),
    headersTimeoutMs: Math.round(num('headers_timeout', 1) * 1000),
    requestTimeoutMs: Math.round(num('request_timeout', 1) * 1000),
    maxConnections: Math.floor(num('max_connections', 1)),
  };
}

/**
 * Fastify server options carrying the limits (and HTTPS when `tls` is given). Call
 * applyHttpLimits(app.server, limits) once the instance exists.
 */
export function fastifyHttpOptions(limits: HttpLimits, tls?: { cert: string; key: string }): Partial<FastifyServerOptions> {
  // Node: headersTimeout must not exceed requestTimeout
  const headersTimeout = Math.min(limits.headersTimeoutMs, limits.requestTimeoutMs);
  const serverOptions: http.ServerOptions = {
    headersTimeout,
    requestTimeout: limits.requestTimeoutMs,
    keepAliveTimeout: limits.idleTimeoutMs,
    connectionsCheckingInterval: Math.max(100, Math.min(30_000, Math.floor(Math.min(headersTimeout, limits.requestTimeoutMs) / 10))),
  };
  const base = {
    keepAliveTimeout: limits.idleTimeoutMs,
    requestTimeout: limits.requestTimeoutMs,
    // a socket silent this long (no bytes either way) is closed even mid-request: generous, it is a backstop
    connectionTimeout: Math.max(limits.requestTimeoutMs, limits.idleTimeoutMs) + 60_000,
    // answered by the RPC layer itself during close (a JSON-RPC -32050 body), not fastify's plain 503
    return503OnClosing: false,
  };
  if (tls) {
    return { ...base, https: { ...serverOptions, cert: fs.readFileSync(tls.cert), key: fs.readFileSync(tls.key) } } as Partial<FastifyServerOptions>;
  }
  return { ...base, http: serverOptions } as Partial<FastifyServerOptions>;
}

/** Set what fastify does not pass on: the header deadline and the connection cap. */
export function applyHttpLimits(server: http.Server, limits: HttpLimits): void {
  server.headersTimeout = Math.min(limits.headersTimeoutMs, limits.requestTimeoutMs);
  server.requestTimeout = limits.requestTimeoutMs;
  server.keepAliveTimeout = limits.idleTimeoutMs;
  server.maxConnections = limits.maxConnections;
}
