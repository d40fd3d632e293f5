import http from 'node:http';
import https from 'node:https';
import { FirnError, RpcErrorCode, type RpcErrorCode as Code } from './errors';

/** An error answer from a JSON-RPC server. */
export class RpcError extends FirnError {
  override readonly code: Code;
  /** The HTTP status the answer came with (200 normally; 503 from a mon that is stopping). */
  httpStatus?: number;
  /** The server's Retry-After, in ms, when it sent one. */
  retryAfterMs?: number;
  constructor(code: number, message: string, data?: unknown) {
    super(message, data);
    this.code = code as Code;
  }
}

/**
 * The server could not be reached (connection refused, reset, timeout), or answered HTTP
 * without a JSON-RPC body (a proxy's 502, a stopping server's plain 503): `httpStatus` says which.
 */
export class RpcTransportError extends FirnError {
  override readonly code = RpcErrorCode.INTERNAL_ERROR;
  constructor(
    message: string,
    readonly httpStatus?: number,
    readonly retryAfterMs?: number,
  ) {
    super(message);
  }
}

/** HTTP statuses that mean "not now": the answer will change if the call is made again later. */
const RETRYABLE_HTTP = new Set([408, 429, 502, 503, 504]);

/**
 * Whether a failed call may succeed when it is made again unchanged — the one place that
 * decides it for every client (the pilot's reporter, the CLI):
 *  - the server could not be reached, or the connection broke or timed out;
 *  - HTTP 408/429/502/503/504, with or without a JSON-RPC body (a stopping firn-mon, a proxy);
 *  - JSON-RPC -32029 (rate limited / task still being queued), -32050 (unavailable: its
 *    database is down or it is stopping) and -32603 (internal: what a server without -32050
 *    answers while its database is down).
 * Never retryable: -32009 (stale passkey, illegal transition), -32602 (invalid params),
 * -32001/-32003 (authentication), -32004, -32601, -32700/-32600.
 */
export function isRetryableRpcFailure(e: unknown): boolean {
  if (e instanceof RpcTransportError) return e.httpStatus === undefined || RETRYABLE_HTTP.has(e.httpStatus);
  if (e instanceof RpcError) {
    if (e.code === RpcErrorCode.RATE_LIMITED || e.code === RpcErrorCode.INTERNAL_ERROR || (e.code as number) === RPC_UNAVAILABLE) return true;
    return false;
  }
  return false;
}

/**
 * -32050 "unavailable, retry": the server is up but cannot serve now (database down, stopping).
 * Spelled here as well as in errors.ts so that the client understands it whatever server it talks to.
 */
export const RPC_UNAVAILABLE = -32050;

/** The wait a server asked for (Retry-After: seconds or an HTTP date), in ms, at most an hour. */
export function parseRetryAfter(value: string | string[] | undefined, now = Date.now()): number | undefined {
  const v = Array.isArray(value) ? value[0] : value;
  if (v === undefined || v.trim() === '') return undefined;
  let ms: number;
  if (/^\s*\d+\s*$/.test(v)) ms = Number(v) * 1000;
  else {
    const at = Date.parse(v);
    if (!Number.isFinite(at)) return undefined;
    ms = at - now;
  }
  return Math.max(0, Math.min(3600_000, ms));
}

export interface RpcClientOptions {
  token?: string | null;
  /** PEM CA to trust (self-signed test certificates). */
  ca?: string | Buffer;
  /** Accept any certificate (only for explicit opt-in, e.g. `--insecure`). */
  insecure?: boolean;
  timeoutMs?: number;
  /**
   * Connections to share with other clients of the same server (a pilot worker's tasks): used
   * as is, and left open by close(). Its TLS settings are the caller's business.
   */
  agent?: http.Agent;
}

interface RpcResponse {
  id: number | string | null;
  result?: unknown;
  error?: { code: number; message: string; data?: unknown };
  /** Not on the wire: the HTTP status and Retry-After of a non-200 answer, kept for errors. */
  [HTTP_META]?: { status: number; retryAfterMs?: number };
}

const HTTP_META = Symbol('http');

/** A JSON-RPC response or a batch of them (an error with a numeric code, or a result). */
function isRpcResponse(v: unknown): v is RpcResponse {
  if (!v || typeof v !== 'object' || Array.isArray(v)) return false;
  const r = v as Record<string, unknown>;
  if ('error' in r) {
    const e = r.error as Record<string, unknown> | null;
    return !!e && typeof e === 'object' && typeof e.code === 'number' && Number.isFinite(e.code);
  }
  return 'result' in r;
}
function isRpcBody(v: unknown): boolean {
  return Array.isArray(v) ? v.every(isRpcResponse) : isRpcResponse(v);
}
function annotate(body: unknown, status: number, retryAfterMs: number | undefined) {
  for (const r of (Array.isArray(body) ? body : [body]) as RpcResponse[]) {
    r[HTTP_META] = { status, ...(retryAfterMs !== undefined ? { retryAfterMs } : {}) };
  }
}
function toError(r: RpcResponse & { error: NonNullable<RpcResponse['error']> }): RpcError {
  const err = new RpcError(r.error.code, String(r.error.message ?? ''), r.error.data);
  const meta = r[HTTP_META];
  if (meta) {
    err.httpStatus = meta.status;
    if (meta.retryAfterMs !== undefined) err.retryAfterMs = meta.retryAfterMs;
  }
  return err;
}

/** A small keep-alive JSON-RPC 2.0 client over http(s) `POST <url>/rpc`. */
export class RpcClient {
  private nextId = 1;
  private readonly agent: http.Agent;
  private readonly endpoint: URL;
  token: string | null;

  constructor(url: string, private readonly options: RpcClientOptions = {}) {
    const base = url.replace(/\/+$/, '');
    this.endpoint = new URL(base.endsWith('/rpc') ? base : `${base}/rpc`);
    this.token = options.token ?? null;
    this.agent =
      options.agent ?? RpcClient.agentFor(this.endpoint.href, options);
  }

  /** A keep-alive agent for `url` with these TLS settings (to share through `agent`). */
  static agentFor(url: string, options: Pick<RpcClientOptions, 'ca' | 'insecure'> = {}): http.Agent {
    return url.startsWith('https:')
      ? new https.Agent({ keepAlive: true, maxSockets: 64, ca: options.ca, rejectUnauthorized: !options.insecure })
      : new http.Agent({ keepAlive: true, maxSockets: 64 });
  }

  /** POST a raw body and return the parsed response (or null for 204). */
  async post(body: unknown): Promise<unknown> {
    const data = Buffer.from(JSON.stringify(body));
    const mod = this.endpoint.protocol === 'https:' ? https : http;
    return new Promise((resolve, reject) => {
      const req = mod.request(
        this.endpoint,
        {
          method: 'POST',
          agent: this.agent,
          headers: {
            'content-type': 'application/json',
            'content-length': data.length,
            ...(this.token ? { authorization: `Bearer ${this.token}` } : {}),
          },
          timeout: this.options.timeoutMs ?? 60_000,
        },
        (res) => {
          const chunks: Buffer[] = [];
          res.on('data', (c: Buffer) => chunks.push(c));
          res.on('end', () => {
            const status = res.statusCode ?? 0;
            const retryAfter = parseRetryAfter(res.headers['retry-after']);
            const text = Buffer.concat(chunks).toString('utf8');
            const notRpc = (why: string) =>
              new RpcTransportError(`HTTP ${status}${res.statusMessage ? ` ${res.statusMessage}` : ''}: ${why}`, status, retryAfter);
            if (status === 204 || (text === '' && status < 300)) return resolve(null);
            let parsed: unknown;
            try {
              parsed = JSON.parse(text);
            } catch {
              return reject(notRpc(text === '' ? 'empty response' : 'response is not JSON'));
            }
            if (!isRpcBody(parsed)) return reject(notRpc('response is not JSON-RPC'));
            if (status >= 300 || retryAfter !== undefined) annotate(parsed, status, retryAfter);
            resolve(parsed);
          });
          res.on('error', (e) => reject(new RpcTransportError(e.message)));
        },
      );
      req.on('timeout', () => req.destroy(new Error('request timed out')));
      req.on('error', (e) => reject(new RpcTransportError(`cannot reach ${this.endpoint.origin}: ${e.message}`)));
      req.end(data);
    });
  }

  /** Call one method; throws RpcError with the server's code on an error answer. */
  async call<T = any>(method: string, params: Record<string, unknown> = {}): Promise<T> {
    const id = this.nextId++;
    const res = (await this.post({ jsonrpc: '2.0', id, method, params })) as RpcResponse | null;
    if (!res) throw new RpcTransportError('empty response');
    if (Array.isArray(res)) throw new RpcTransportError('a batch answer to a single call');
    if (res.error) throw toError(res as RpcResponse & { error: NonNullable<RpcResponse['error']> });
    return res.result as T;
  }

  /** Several calls in one JSON-RPC batch; each entry is the result or an RpcError. */
  async batch(calls: Array<{ method: string; params?: Record<string, unknown> }>): Promise<Array<unknown | RpcError>> {
    const ids = calls.map(() => this.nextId++);
    const res = (await this.post(calls.map((c, i) => ({ jsonrpc: '2.0', id: ids[i], method: c.method, params: c.params ?? {} })))) as RpcResponse[] | RpcResponse | null;
    // a server that cannot serve at all answers a batch with one error (e.g. -32050 while stopping)
    const single = res && !Array.isArray(res) ? res : null;
    if (single?.error) {
      const err = toError(single as RpcResponse & { error: NonNullable<RpcResponse['error']> });
      return ids.map(() => err);
    }
    const byId = new Map((Array.isArray(res) ? res : []).map((r) => [r.id, r]));
    return ids.map((id) => {
      const r = byId.get(id);
      if (!r) return new RpcError(RpcErrorCode.INTERNAL_ERROR, 'no response for this call');
      return r.error ? toError(r as RpcResponse & { error: NonNullable<RpcResponse['error']> }) : r.result;
    });
  }

  close(): void {
    if (!this.options.agent) this.agent.destroy();
  }
}
