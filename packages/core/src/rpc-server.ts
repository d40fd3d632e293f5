import Fastify, { type FastifyInstance, type FastifyReply, type FastifyRequest } from 'fastify';
import client from 'prom-client';
import { FirnError, RpcErrorCode, ValidationError, coerceError, isDatabaseUnavailable } from './errors';
import { addStrictTransportSecurity } from './hsts';
import { HTTP_LIMIT_DEFAULTS, applyHttpLimits, fastifyHttpOptions, httpLimitsOf, type HttpLimits } from './http-server';
import { nullLogger, type Logger } from './logger';
import { ajvIssues, hasSchema, schemaValidator } from './schemas';

/** What every RPC handler learns about the call besides its params. */
export interface RpcContext {
  /** Bearer token from `Authorization: Bearer …`, if any. */
  token: string | null;
  ip: string;
  method: string;
  /** One map per HTTP request, shared by the calls of a batch: per-request limits count here (e.g. logins per batch). */
  perRequest?: Map<string, number>;
}

export interface RpcMethod<P = any, R = unknown> {
  handler: (params: P, ctx: RpcContext) => Promise<R> | R;
  /** Skip schema validation (only for methods that validate themselves). */
  noSchema?: boolean;
}

export interface RpcServerOptions {
  name: string; // 'tray' | 'mon'
  logger?: Logger;
  /** Largest body accepted, bytes; bigger bodies are refused from Content-Length / while streaming. */
  bodyLimit?: number;
  tls?: { cert: string; key: string };
  methods: Record<string, RpcMethod>;
  /** Own prom-client registry (default: a new one). */
  registry?: client.Registry;
  /** Extra fields for /healthz. */
  health?: () => Promise<Record<string, unknown>>;
  /** Connection limits (default: firn-tray's defaults; see http-server.ts). */
  limits?: HttpLimits;
}

/** A JSON-RPC 2.0 response object as Firn sends it. */
export type RpcResponseObject =
  | { jsonrpc: '2.0'; id: string | number | null; result: unknown }
  | { jsonrpc: '2.0'; id: string | number | null; error: { code: number; message: string; data?: unknown } };

export interface RpcServer {
  app: FastifyInstance;
  registry: client.Registry;
  /** Run one JSON-RPC request or batch in-process (used by batch-aware callers and tests); null: nothing to answer. */
  receive(body: unknown, ctx: Omit<RpcContext, 'method'>): Promise<RpcResponseObject | RpcResponseObject[] | null>;
  listen(port: number, host: string): Promise<string>;
  /** Is close() under way (every call answered HTTP 503, -32050)? */
  readonly closing: boolean;
  /**
   * Stop serving: from now on every call is answered HTTP 503 with a JSON-RPC -32050 body and a
   * Retry-After; wait (at most `drainMs`, default 30 s) for the calls in flight, then close.
   */
  close(drainMs?: number): Promise<void>;
}

/** Most members of one batch (a whole-node pilot sends at most 50). */
export const MAX_BATCH = 1000;
/** Longest error message sent, characters (user strings quoted in it are cut here). */
export const MAX_ERROR_MESSAGE = 1024;
/** Largest error `data` of one answer, bytes of JSON; … */
export const MAX_ERROR_DATA = 64 * 1024;
/** … and of all the error answers of one batch together (after that, errors carry no data). */
export const MAX_ERROR_DATA_PER_REQUEST = 256 * 1024;
/** Longest error text written to the log, characters. */
export const MAX_LOGGED_ERROR = 4096;
/** Seconds a client is asked to wait (Retry-After) while a server stops. */
const CLOSING_RETRY_AFTER_S = 5;
/** Told to clients (data.retry_after_ms) when the database is unreachable. */
const UNAVAILABLE_RETRY_AFTER_MS = 2000;

/** `s` cut to at most `n` characters (an ellipsis marks the cut). */
export function clipText(s: string, n: number): string {
  return s.length <= n ? s : `${s.slice(0, Math.max(0, n - 1))}…`;
}

interface ErrorBody {
  code: number;
  message: string;
  data?: unknown;
}

/** The wire error for anything a handler threw: FirnErrors keep their code, an outage is -32050, the rest -32603. */
function toErrorBody(e: unknown): ErrorBody {
  if (e instanceof FirnError && e.code !== RpcErrorCode.INTERNAL_ERROR) return { code: e.code, message: e.message, data: e.data };
  if (isDatabaseUnavailable(e)) {
    return { code: RpcErrorCode.UNAVAILABLE, message: 'unavailable, retry: the database cannot be reached', data: { retry_after_ms: UNAVAILABLE_RETRY_AFTER_MS } };
  }
  if (e instanceof FirnError) return { code: e.code, message: e.message, data: e.data };
  return { code: RpcErrorCode.INTERNAL_ERROR, message: 'internal error', data: { name: coerceError(e).name } };
}

/**
 * Keep an error answer small whatever the input: the message is cut to MAX_ERROR_MESSAGE; the
 * data, when its JSON exceeds `budget` bytes, keeps as many validation issues as fit (each
 * cut to 512 characters) or is replaced by `{truncated: true}`. Returns the bytes of data used.
 */
function boundError(err: ErrorBody, budget: number): { error: ErrorBody; bytes: number } {
  const message = clipText(String(err.message), MAX_ERROR_MESSAGE);
  if (err.data === undefined) return { error: { code: err.code, message }, bytes: 0 };
  let json: string | undefined;
  try {
    json = JSON.stringify(err.data);
  } catch {
    json = undefined;
  }
  if (json !== undefined && Buffer.byteLength(json) <= budget) return { error: { code: err.code, message, data: err.data }, bytes: Buffer.byteLength(json) };
  const issues = (err.data as { issues?: unknown }).issues;
  if (Array.isArray(issues)) {
    const kept: Array<{ path: string; message: string }> = [];
    let bytes = 40;
    for (const raw of issues as Array<{ path?: unknown; message?: unknown }>) {
      const issue = { path: clipText(String(raw.path ?? ''), 512), message: clipText(String(raw.message ?? ''), 512) };
      const b = Buffer.byteLength(JSON.stringify(issue)) + 1;
      if (bytes + b > budget) break;
      kept.push(issue);
      bytes += b;
    }
    return { error: { code: err.code, message, data: { issues: kept, truncated: kept.length < issues.length } }, bytes };
  }
  return budget >= 20 ? { error: { code: err.code, message, data: { truncated: true } }, bytes: 20 } : { error: { code: err.code, message }, bytes: 0 };
}

/** One request's error budget (a batch shares it). */
class ErrorBudget {
  private left = MAX_ERROR_DATA_PER_REQUEST;
  take(err: ErrorBody): ErrorBody {
    const { error, bytes } = boundError(err, Math.min(MAX_ERROR_DATA, this.left));
    this.left -= bytes;
    return error;
  }
}

type RpcId = string | number | null;
const isId = (v: unknown): v is RpcId => v === null || typeof v === 'string' || (typeof v === 'number' && Number.isFinite(v));

/**
 * JSON-RPC 2.0 over HTTP(S) `POST /rpc`, with ajv validation against schemas/rpc/<method>.json.
 *
 * Conformance (https://www.jsonrpc.org/specification): a member that is not a request object
 * (`null`, a number, an array, no `method`) is answered -32600 on its own, the other members of
 * its batch are still answered; a notification (no `id`) is run but never answered, and a
 * request of notifications only is answered HTTP 204; an empty batch is -32600. Every answer is
 * HTTP 200 except while stopping (503, -32050, Retry-After) and for an oversize body (413).
 */
export async function createRpcServer(options: RpcServerOptions): Promise<RpcServer> {
  const logger = options.logger ?? nullLogger;
  const registry = options.registry ?? new client.Registry();
  const calls = new client.Counter({
    name: `firn_${options.name}_rpc_calls_total`,
    help: 'JSON-RPC calls by method and outcome',
    labelNames: ['method', 'outcome'],
    registers: [registry],
  });
  const duration = new client.Histogram({
    name: `firn_${options.name}_rpc_duration_seconds`,
    help: 'JSON-RPC call duration',
    labelNames: ['method'],
    buckets: [0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5],
    registers: [registry],
  });

  const methods = new Map<string, { method: RpcMethod; validate: ReturnType<typeof schemaValidator> | null }>();
  for (const [name, method] of Object.entries(options.methods)) {
    const schemaFile = `rpc/${name}.json`;
    const validate = method.noSchema ? null : hasSchema(schemaFile) ? schemaValidator(schemaFile) : null;
    if (!method.noSchema && !validate) throw new Error(`no schema ${schemaFile} for RPC method ${name}`);
    methods.set(name, { method, validate });
  }

  /** Run one call; the error (unbounded yet) or the result. */
  const call = async (name: string, params: unknown, ctx: RpcContext): Promise<{ result: unknown } | { error: ErrorBody }> => {
    const entry = methods.get(name);
    if (!entry) {
      calls.inc({ method: '(unknown)', outcome: String(RpcErrorCode.METHOD_NOT_FOUND) });
      return { error: { code: RpcErrorCode.METHOD_NOT_FOUND, message: `method not found: ${clipText(name, 100)}` } };
    }
    const started = process.hrtime.bigint();
    try {
      if (entry.validate && !entry.validate(params)) {
        throw new ValidationError(`invalid params for ${name}`, ajvIssues(entry.validate.errors, params, '/params'));
      }
      const result = await entry.method.handler(params, { ...ctx, method: name });
      calls.inc({ method: name, outcome: 'ok' });
      return { result: result === undefined ? null : result };
    } catch (e) {
      const error = toErrorBody(e);
      calls.inc({ method: name, outcome: String(error.code) });
      if (error.code === RpcErrorCode.INTERNAL_ERROR) {
        logger.error('rpc method failed', { method: name, error: clipText(coerceError(e).stack ?? String(e), MAX_LOGGED_ERROR) });
      } else if (error.code === RpcErrorCode.UNAVAILABLE) {
        logger.warn('rpc method failed: database unavailable', { method: name, error: clipText(coerceError(e).message, MAX_LOGGED_ERROR) });
      } else {
        logger.debug('rpc method refused', { method: name, code: error.code, error: clipText(error.message, MAX_LOGGED_ERROR) });
      }
      return { error };
    } finally {
      duration.observe({ method: name }, Number(process.hrtime.bigint() - started) / 1e9);
    }
  };

  /** One member of a request: its answer, or null for a notification. */
  const receiveOne = async (member: unknown, ctx: Omit<RpcContext, 'method'>, budget: ErrorBudget): Promise<RpcResponseObject | null> => {
    const invalid = (id: RpcId, why: string): RpcResponseObject => ({
      jsonrpc: '2.0', id, error: budget.take({ code: RpcErrorCode.INVALID_REQUEST, message: `invalid request: ${why}` }),
    });
    if (member === null || typeof member !== 'object' || Array.isArray(member)) {
      return invalid(null, `expected a request object, got ${member === null ? 'null' : Array.isArray(member) ? 'an array' : typeof member}`);
    }
    const req = member as Record<string, unknown>;
    const hasId = Object.prototype.hasOwnProperty.call(req, 'id');
    const id: RpcId = hasId && isId(req.id) ? req.id : null;
    if (hasId && !isId(req.id)) return invalid(null, 'id must be a string, a number or null');
    if (req.jsonrpc !== '2.0') return invalid(id, 'jsonrpc must be "2.0"');
    if (typeof req.method !== 'string' || req.method === '') return invalid(id, 'method must be a non-empty string');
    if (req.params !== undefined && (req.params === null || typeof req.params !== 'object')) return invalid(id, 'params must be an object');
    const outcome = await call(req.method, req.params ?? {}, { ...ctx, method: '' });
    if (!hasId) return null; // a notification: run, never answered
    return 'result' in outcome ? { jsonrpc: '2.0', id, result: outcome.result } : { jsonrpc: '2.0', id, error: budget.take(outcome.error) };
  };

  /** A parsed body: the answer (one object or an array), or null when nothing is to be answered. */
  const receive = async (body: unknown, ctx: Omit<RpcContext, 'method'>): Promise<RpcResponseObject | RpcResponseObject[] | null> => {
    const budget = new ErrorBudget();
    const context = { perRequest: new Map<string, number>(), ...ctx };
    if (!Array.isArray(body)) return receiveOne(body, context, budget);
    if (body.length === 0) return { jsonrpc: '2.0', id: null, error: { code: RpcErrorCode.INVALID_REQUEST, message: 'invalid request: empty batch' } };
    if (body.length > MAX_BATCH) {
      return { jsonrpc: '2.0', id: null, error: { code: RpcErrorCode.INVALID_REQUEST, message: `invalid request: batch of ${body.length} calls (at most ${MAX_BATCH})` } };
    }
    const answers = await Promise.all(body.map((m) => receiveOne(m, context, budget)));
    const out = answers.filter((a): a is RpcResponseObject => a !== null);
    return out.length ? out : null;
  };

  const limits = options.limits ?? httpLimitsOf({}, HTTP_LIMIT_DEFAULTS.tray);
  const app = Fastify({
    bodyLimit: options.bodyLimit ?? 10 * 1024 * 1024,
    logger: false,
    ...fastifyHttpOptions(limits, options.tls),
  }) as unknown as FastifyInstance;
  applyHttpLimits(app.server, limits);
  addStrictTransportSecurity(app);

  // Parse JSON ourselves so that malformed JSON becomes a JSON-RPC -32700, not an HTTP 400.
  app.addContentTypeParser(['application/json', 'text/plain', 'application/json-rpc'], { parseAs: 'string' }, (_req, body, done) => {
    done(null, body);
  });
  app.setErrorHandler((err: Error & { statusCode?: number; code?: string }, _req, reply) => {
    const status = err.statusCode ?? 500;
    if (status === 413 || err.code === 'FST_ERR_CTP_BODY_TOO_LARGE') {
      void reply.code(413).send({ jsonrpc: '2.0', id: null, error: { code: RpcErrorCode.INVALID_REQUEST, message: `request body too large (limit ${options.bodyLimit ?? 10485760} bytes)` } });
      return;
    }
    if (status >= 500) logger.error('http error', { error: clipText(err.message, MAX_LOGGED_ERROR) });
    void reply.code(status).send({
      jsonrpc: '2.0', id: null,
      error: { code: status >= 500 ? RpcErrorCode.INTERNAL_ERROR : RpcErrorCode.INVALID_REQUEST, message: status >= 500 ? 'internal error' : clipText(err.message, MAX_ERROR_MESSAGE) },
    });
  });

  const contextOf = (req: FastifyRequest): Omit<RpcContext, 'method'> => {
    const auth = req.headers.authorization;
    const token = auth && /^Bearer\s+/i.test(auth) ? auth.replace(/^Bearer\s+/i, '').trim() : null;
    return { token, ip: req.ip, perRequest: new Map() };
  };

  let closing = false;
  let inFlight = 0;
  let drained: (() => void) | null = null;

  /** While stopping: HTTP 503, Retry-After, and -32050 for every call of the body (one error when none has an id). */
  const answerClosing = (body: unknown, reply: FastifyReply) => {
    const error = { code: RpcErrorCode.UNAVAILABLE, message: `unavailable, retry: firn-${options.name} is shutting down`, data: { retry_after_ms: CLOSING_RETRY_AFTER_S * 1000 } };
    const members = Array.isArray(body) ? body : [body];
    const ids = members
      .filter((m): m is Record<string, unknown> => m !== null && typeof m === 'object' && !Array.isArray(m) && Object.prototype.hasOwnProperty.call(m, 'id'))
      .map((m) => (isId(m.id) ? m.id : null));
    const answer = Array.isArray(body) && ids.length > 0 ? ids.map((id) => ({ jsonrpc: '2.0', id, error })) : { jsonrpc: '2.0', id: ids[0] ?? null, error };
    return reply.code(503).header('retry-after', String(CLOSING_RETRY_AFTER_S)).header('connection', 'close').send(answer);
  };

  app.post('/rpc', async (req, reply) => {
    let body: unknown;
    try {
      body = JSON.parse(typeof req.body === 'string' ? req.body : '');
    } catch {
      return reply.send({ jsonrpc: '2.0', id: null, error: { code: RpcErrorCode.PARSE_ERROR, message: 'parse error: body is not valid JSON' } });
    }
    if (closing) return answerClosing(body, reply);
    inFlight++;
    try {
      const result = await receive(body, contextOf(req));
      if (result === null) return reply.code(204).send();
      return reply.send(result);
    } finally {
      if (--inFlight === 0 && drained) drained();
    }
  });
  app.get('/healthz', async (_req, reply) => {
    if (closing) return reply.code(503).header('retry-after', String(CLOSING_RETRY_AFTER_S)).send({ status: 'stopping', daemon: options.name });
    try {
      const detail = options.health ? await options.health() : {};
      const down = Object.values(detail).some((v) => v === 'error' || v === 'unavailable');
      return reply.code(down ? 503 : 200).send({ status: down ? 'error' : 'ok', daemon: options.name, ...detail });
    } catch (e) {
      // readiness probes must see a daemon that cannot reach its database as down
      return reply.code(503).send({ status: 'error', daemon: options.name, error: clipText(coerceError(e).message, MAX_ERROR_MESSAGE) });
    }
  });
  app.get('/metrics', async (_req, reply) => {
    void reply.header('content-type', registry.contentType);
    return registry.metrics();
  });

  let closed: Promise<void> | null = null;
  return {
    app,
    registry,
    receive,
    async listen(port: number, host: string) {
      return app.listen({ port, host });
    },
    get closing() {
      return closing;
    },
    close(drainMs = 30_000) {
      closed ??= (async () => {
        closing = true;
        if (inFlight > 0) {
          await new Promise<void>((resolve) => {
            const t = setTimeout(resolve, drainMs);
            t.unref();
            drained = () => {
              clearTimeout(t);
              resolve();
            };
          });
        }
        await app.close();
      })();
      return closed;
    },
  };
}
