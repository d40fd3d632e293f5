/**
 * A small JSON-RPC 2.0 server speaking the pilot side of firn-mon's protocol, for testing
 * firn-pilot while firn-mon itself is developed separately. It records every call, checks
 * task_id + passkey on each, validates params against the real schemas/rpc/pilot.*.json
 * (so the pilot cannot drift from firn-mon's contract), and can be taken down (connections refused) and brought back
 * on the same port, refuse the passkey (-32009) or rate-limit (-32029).
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { ajvIssues, hasSchema, schemaValidator } from '@firn/core';

export interface RecordedCall {
  method: string;
  params: Record<string, any>;
  at: number;
  /** Whether the call arrived inside a JSON-RPC batch. */
  batched: boolean;
  /** A pilot.stats / pilot.log / pilot.files that came inside pilot.finish (stats, logs, files). */
  viaFinish?: boolean;
}

export interface FakeMonOptions {
  taskId?: number;
  passkey?: string;
  /** The pilot.start result (task_id/passkey are checked before it is returned). */
  start: Record<string, unknown>;
}

export class FakeMon {
  readonly calls: RecordedCall[] = [];
  /** Every request body received (raw), for asserting the passkey is not logged elsewhere. */
  readonly bodies: string[] = [];
  port = 0;
  private server: http.Server | null = null;
  /** Answer -32009 to everything from now on (a task reset revoked the passkey). */
  revoked = false;
  /** Answer -32029 to the next N calls. */
  rateLimitNext = 0;
  /** Calls whose params failed schema validation (a test asserts this stays empty). */
  readonly invalid: Array<{ method: string; issues: string }> = [];
  /**
   * The next requests are answered with these raw HTTP responses, one each, whatever they ask
   * (a stopping firn-mon's plain 503, a 503 with a JSON-RPC -32050 body, a proxy's 502).
   */
  rawNext: Array<{ status: number; headers?: Record<string, string>; body: string }> = [];
  /** Per-method hook run before answering (throw {code, message} to answer an error). */
  onCall: ((c: RecordedCall) => void) | null = null;
  readonly taskId: number;
  readonly passkey: string;

  constructor(private readonly opts: FakeMonOptions) {
    this.taskId = opts.taskId ?? 42;
    this.passkey = opts.passkey ?? 'pk-Secret-0123456789abcdef';
  }

  get url(): string {
    return `http://127.0.0.1:${this.port}`;
  }

  async listen(port = this.port): Promise<void> {
    const server = http.createServer((req, res) => this.handle(req, res));
    server.keepAliveTimeout = 65_000;
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(port, '127.0.0.1', () => resolve());
    });
    this.port = (server.address() as AddressInfo).port;
    this.server = server;
  }

  /** Refuse connections until up() (existing keep-alive sockets are cut too). */
  async down(): Promise<void> {
    const s = this.server;
    this.server = null;
    if (!s) return;
    s.closeAllConnections();
    await new Promise<void>((resolve) => s.close(() => resolve()));
  }

  async up(): Promise<void> {
    if (!this.server) await this.listen(this.port);
  }

  async close(): Promise<void> {
    await this.down();
  }

  callsOf(method: string): RecordedCall[] {
    return this.calls.filter((c) => c.method === method);
  }

  private answer(req: { id?: unknown; method?: unknown; params?: unknown }, batched: boolean): unknown {
    const id = req.id ?? null;
    const err = (code: number, message: string) => ({ jsonrpc: '2.0', id, error: { code, message } });
    const method = String(req.method);
    const params = (req.params ?? {}) as Record<string, any>;
    const call: RecordedCall = { method, params, at: Date.now(), batched };
    if (typeof params.task_id !== 'number' || !Number.isInteger(params.task_id) || typeof params.passkey !== 'string') {
      return err(-32602, 'invalid params: task_id (integer) and passkey (string) are required');
    }
    const schema = `rpc/${method}.json`;
    if (hasSchema(schema)) {
      const validate = schemaValidator(schema);
      if (!validate(params)) {
        const issues = ajvIssues(validate.errors, params, '/params').map((i) => `${i.path} ${i.message}`).join('; ');
        this.invalid.push({ method, issues });
        return err(-32602, `invalid params for ${method}: ${issues}`);
      }
    }
    if (this.rateLimitNext > 0) {
      this.rateLimitNext--;
      return err(-32029, 'rate limited');
    }
    if (this.revoked || params.task_id !== this.taskId || params.passkey !== this.passkey) {
      return err(-32009, 'invalid or stale passkey');
    }
    try {
      this.onCall?.(call);
    } catch (e) {
      const x = e as { code?: number; message?: string };
      return err(x.code ?? -32603, x.message ?? 'error');
    }
    if (method === 'pilot.finish') {
      // what firn-mon writes from a finish that carries the task's last updates, in its order
      const base = { task_id: params.task_id, passkey: params.passkey };
      const carried = (m: string, p: Record<string, any>) => this.calls.push({ method: m, params: { ...base, ...p }, at: call.at, batched, viaFinish: true });
      if (params.files) carried('pilot.files', { files: params.files });
      if (params.stats) carried('pilot.stats', { stats: params.stats });
      for (const l of (params.logs ?? []) as Array<Record<string, any>>) carried('pilot.log', l);
    }
    this.calls.push(call);
    switch (method) {
      case 'pilot.start':
        return { jsonrpc: '2.0', id, result: this.opts.start };
      case 'pilot.finish':
        return { jsonrpc: '2.0', id, result: { status: params.ok ? 'READYTOCOPY' : 'ERROR' } };
      case 'pilot.heartbeat':
      case 'pilot.stats':
      case 'pilot.log':
      case 'pilot.files':
        return { jsonrpc: '2.0', id, result: { ok: true } };
      default:
        this.calls.pop();
        return err(-32601, `method not found: ${method}`);
    }
  }

  private handle(req: http.IncomingMessage, res: http.ServerResponse) {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const text = Buffer.concat(chunks).toString('utf8');
      this.bodies.push(text);
      const raw = this.rawNext.shift();
      if (raw) {
        res.writeHead(raw.status, { 'content-type': 'application/json', ...raw.headers });
        res.end(raw.body);
        return;
      }
      let body: unknown;
      try {
        body = JSON.parse(text);
      } catch {
        res.writeHead(200, { 'content-type': 'application/json' });
        res.end(JSON.stringify({ jsonrpc: '2.0', id: null, error: { code: -32700, message: 'parse error' } }));
        return;
      }
      const out = Array.isArray(body) ? body.map((b) => this.answer(b as object, true)) : this.answer(body as object, false);
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify(out));
    });
  }
}
