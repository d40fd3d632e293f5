import fs from 'node:fs';
import Fastify, { type FastifyInstance, type FastifyRequest } from 'fastify';
import { JSONRPCErrorException, JSONRPCServer, type JSONRPCRequest, type JSONRPCResponse } from 'json-rpc-2.0';
import client from 'prom-client';
import { FirnError, RpcErrorCode, ValidationError, coerceError } from './errors';
import { addStrictTransportSecurity } from './hsts';
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
}

export interface RpcServer {
  app: FastifyInstance;
  registry: client.Registry;
  /** Run one JSON-RPC request or batch in-process (used by batch-aware callers and tests). */
  receive(body: unknown, ctx: Omit<RpcContext, 'method'>): Promise<JSONRPCResponse | JSONRPCResponse[] | null>;
  listen(port: number, host: string): Promise<string>;
  close(): Promise<void>;
}

function toException(e: unknown): JSONRPCErrorException {
  if (e instanceof JSONRPCErrorException) return e;
  if (e instanceof FirnError) return new JSONRPCErrorException(e.message, e.code, e.data);
  const err = coerceError(e);
  return new JSONRPCErrorException('internal error', RpcErrorCode.INTERNAL_ERROR, { name: err.name });
}

/** JSON-RPC 2.0 over HTTP(S) `POST /rpc`, with ajv validation against schemas/rpc/<method>.json. */
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

  const server = new JSONRPCServer<RpcContext>();
  for (const [name, method] of Object.entries(options.methods)) {
    const schemaFile = `rpc/${name}.json`;
    const validate = method.noSchema ? null : hasSchema(schemaFile) ? schemaValidator(schemaFile) : null;
    if (!method.noSchema && !validate) throw new Error(`no schema ${schemaFile} for RPC method ${name}`);
    server.addMethodAdvanced(name, async (request: JSONRPCRequest, ctx: RpcContext) => {
      const started = process.hrtime.bigint();
      const params = request.params ?? {};
      try {
        if (validate && !validate(params)) {
          const issues = ajvIssues(validate.errors, params, '/params');
          throw new ValidationError(`invalid params for ${name}`, issues);
        }
        const result = await method.handler(params, { ...ctx, method: name });
        calls.inc({ method: name, outcome: 'ok' });
        return { jsonrpc: '2.0', id: request.id ?? null, result: result === undefined ? null : result };
      } catch (e) {
        const ex = toException(e);
        calls.inc({ method: name, outcome: String(ex.code) });
        if (ex.code === RpcErrorCode.INTERNAL_ERROR) {
          logger.error('rpc method failed', { method: name, error: coerceError(e).stack ?? String(e) });
        } else {
          logger.debug('rpc method refused', { method: name, code: ex.code, error: ex.message });
        }
        return { jsonrpc: '2.0', id: request.id ?? null, error: { code: ex.code, message: ex.message, ...(ex.data !== undefined ? { data: ex.data } : {}) } };
      } finally {
        duration.observe({ method: name }, Number(process.hrtime.bigint() - started) / 1e9);
      }
    });
  }

  const https = options.tls
    ? { https: { cert: fs.readFileSync(options.tls.cert), key: fs.readFileSync(options.tls.key) } }
    : {};
  const app = Fastify({
    bodyLimit: options.bodyLimit ?? 10 * 1024 * 1024,
    logger: false,
    keepAliveTimeout: 65_000,
    ...https,
  }) as unknown as FastifyInstance;
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
    if (status >= 500) logger.error('http error', { error: err.message });
    void reply.code(status).send({ jsonrpc: '2.0', id: null, error: { code: status >= 500 ? RpcErrorCode.INTERNAL_ERROR : RpcErrorCode.INVALID_REQUEST, message: err.message } });
  });

  const receive = async (body: unknown, ctx: Omit<RpcContext, 'method'>) => {
    return server.receive(body as JSONRPCRequest, { perRequest: new Map(), ...ctx, method: '' }) as Promise<JSONRPCResponse | null>;
  };

  const contextOf = (req: FastifyRequest): Omit<RpcContext, 'method'> => {
    const auth = req.headers.authorization;
    const token = auth && /^Bearer\s+/i.test(auth) ? auth.replace(/^Bearer\s+/i, '').trim() : null;
    return { token, ip: req.ip, perRequest: new Map() };
  };

  app.post('/rpc', async (req, reply) => {
    let body: unknown;
    try {
      body = JSON.parse(typeof req.body === 'string' ? req.body : '');
    } catch {
      return reply.send({ jsonrpc: '2.0', id: null, error: { code: RpcErrorCode.PARSE_ERROR, message: 'parse error: body is not valid JSON' } });
    }
    if (Array.isArray(body) && body.length === 0) {
      return reply.send({ jsonrpc: '2.0', id: null, error: { code: RpcErrorCode.INVALID_REQUEST, message: 'invalid request: empty batch' } });
    }
    const ctx = contextOf(req);
    const result = Array.isArray(body)
      ? await server.receive(body as JSONRPCRequest[], { ...ctx, method: '' })
      : await server.receive(body as JSONRPCRequest, { ...ctx, method: '' });
    if (result === null || (Array.isArray(result) && result.length === 0)) return reply.code(204).send();
    return reply.send(result);
  });
  app.get('/healthz', async (_req, reply) => {
    try {
      const detail = options.health ? await options.health() : {};
      const down = Object.values(detail).some((v) => v === 'error' || v === 'unavailable');
      return reply.code(down ? 503 : 200).send({ status: down ? 'error' : 'ok', daemon: options.name, ...detail });
    } catch (e) {
      // readiness probes must see a daemon that cannot reach its database as down
      return reply.code(503).send({ status: 'error', daemon: options.name, error: coerceError(e).message });
    }
  });
  app.get('/metrics', async (_req, reply) => {
    void reply.header('content-type', registry.contentType);
    return registry.metrics();
  });

  return {
    app,
    registry,
    receive,
    async listen(port: number, host: string) {
      return app.listen({ port, host });
    },
    async close() {
      await app.close();
    },
  };
}
