import http from 'node:http';
import https from 'node:https';
import { FirnError, RpcErrorCode, type RpcErrorCode as Code } from './errors';

/** An error answer from a JSON-RPC server. */
export class RpcError extends FirnError {
  override readonly code: Code;
  constructor(code: number, message: string, data?: unknown) {
    super(message, data);
    this.code = code as Code;
  }
}

/** The server could not be reached (connection refused, reset, timeout). */
export class RpcTransportError extends FirnError {
  override readonly code = RpcErrorCode.INTERNAL_ERROR;
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
            const text = Buffer.concat(chunks).toString('utf8');
            if (res.statusCode === 204 || text === '') return resolve(null);
            try {
              resolve(JSON.parse(text));
            } catch {
              reject(new RpcTransportError(`HTTP ${res.statusCode}: response is not JSON`));
            }
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
    if (res.error) throw new RpcError(res.error.code, res.error.message, res.error.data);
    return res.result as T;
  }

  /** Several calls in one JSON-RPC batch; each entry is the result or an RpcError. */
  async batch(calls: Array<{ method: string; params?: Record<string, unknown> }>): Promise<Array<unknown | RpcError>> {
    const ids = calls.map(() => this.nextId++);
    const res = (await this.post(calls.map((c, i) => ({ jsonrpc: '2.0', id: ids[i], method: c.method, params: c.params ?? {} })))) as RpcResponse[] | null;
    const byId = new Map((res ?? []).map((r) => [r.id, r]));
    return ids.map((id) => {
      const r = byId.get(id);
      if (!r) return new RpcError(RpcErrorCode.INTERNAL_ERROR, 'no response for this call');
      return r.error ? new RpcError(r.error.code, r.error.message, r.error.data) : r.result;
    });
  }

  close(): void {
    if (!this.options.agent) this.agent.destroy();
  }
}
