import fs from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { ForbiddenError, RpcErrorCode } from './errors';
import { RpcClient, RpcError } from './rpc-client';
import { createRpcServer, type RpcServer } from './rpc-server';

// A throwaway schema directory so this test does not depend on the real RPC schemas.
const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'firn-schemas-'));
fs.mkdirSync(path.join(dir, 'rpc'));
fs.copyFileSync(path.join(__dirname, '..', '..', '..', 'schemas', 'config.schema.json'), path.join(dir, 'config.schema.json'));
fs.writeFileSync(
  path.join(dir, 'rpc', 'test.echo.json'),
  JSON.stringify({ type: 'object', additionalProperties: false, required: ['text'], properties: { text: { type: 'string', maxLength: 10 }, n: { type: 'integer' } } }),
);
fs.writeFileSync(path.join(dir, 'rpc', 'test.secret.json'), JSON.stringify({ type: 'object' }));

function rawPost(url: string, body: string | Buffer, headers: Record<string, string | number> = {}): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = http.request(`${url}/rpc`, { method: 'POST', headers: { 'content-type': 'application/json', ...headers } }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString() }));
    });
    req.on('error', reject);
    req.end(body);
  });
}

describe('JSON-RPC server', () => {
  let server: RpcServer;
  let url: string;
  const seenTokens: Array<string | null> = [];
  beforeAll(async () => {
    process.env.FIRN_SCHEMAS_DIR = dir;
    server = await createRpcServer({
      name: 'test',
      bodyLimit: 64 * 1024,
      methods: {
        'test.echo': { handler: (p: { text: string }) => ({ echoed: p.text }) },
        'test.secret': {
          handler: (_p, ctx) => {
            seenTokens.push(ctx.token);
            throw new ForbiddenError('not for you');
          },
        },
      },
    });
    url = (await server.listen(0, '127.0.0.1')).replace('0.0.0.0', '127.0.0.1');
  });
  afterAll(async () => {
    await server.close();
    delete process.env.FIRN_SCHEMAS_DIR;
  });

  test('a call returns its result', async () => {
    const c = new RpcClient(url);
    expect(await c.call('test.echo', { text: 'hi' })).toEqual({ echoed: 'hi' });
    c.close();
  });

  test('invalid params → -32602 naming every failing path', async () => {
    const c = new RpcClient(url);
    const e = await c.call('test.echo', { text: 'much too long text', n: 1.5, extra: 1 }).catch((x: unknown) => x);
    expect(e).toBeInstanceOf(RpcError);
    expect((e as RpcError).code).toBe(RpcErrorCode.INVALID_PARAMS);
    const paths = ((e as RpcError).data as { issues: Array<{ path: string }> }).issues.map((i) => i.path).sort();
    expect(paths).toEqual(['/params/extra', '/params/n', '/params/text']);
    c.close();
  });

  test('application errors keep their code; the bearer token reaches the handler', async () => {
    const c = new RpcClient(url, { token: 'abc' });
    const e = await c.call('test.secret').catch((x: unknown) => x);
    expect((e as RpcError).code).toBe(RpcErrorCode.FORBIDDEN);
    expect(seenTokens).toContain('abc');
    c.close();
  });

  test('unknown method → -32601; malformed JSON → -32700; not a request → -32600', async () => {
    const c = new RpcClient(url);
    expect(((await c.call('nope').catch((x: unknown) => x)) as RpcError).code).toBe(-32601);
    const parse = await rawPost(url, '{"jsonrpc": "2.0", "method": ');
    expect(JSON.parse(parse.body).error.code).toBe(-32700);
    const invalid = await rawPost(url, JSON.stringify({ foo: 1 }));
    expect(JSON.parse(invalid.body).error.code).toBe(-32600);
    const empty = await rawPost(url, '[]');
    expect(JSON.parse(empty.body).error.code).toBe(-32600);
    c.close();
  });

  test('batches answer each call', async () => {
    const c = new RpcClient(url);
    const res = await c.batch([{ method: 'test.echo', params: { text: 'a' } }, { method: 'test.echo', params: {} }, { method: 'test.echo', params: { text: 'b' } }]);
    expect(res[0]).toEqual({ echoed: 'a' });
    expect((res[1] as RpcError).code).toBe(-32602);
    expect(res[2]).toEqual({ echoed: 'b' });
    c.close();
  });

  test('an oversize body is refused from its Content-Length without reading it', async () => {
    const r = await rawPost(url, Buffer.alloc(10), { 'content-length': 20 * 1024 * 1024 }).catch((e: Error) => ({ status: -1, body: e.message }));
    // either a 413 answer or the connection closed before the body was read
    expect([413, -1]).toContain(r.status);
    const big = await rawPost(url, Buffer.alloc(200 * 1024, 0x20));
    expect(big.status).toBe(413);
  });

  test('/healthz and /metrics', async () => {
    const h = await new Promise<string>((resolve) => http.get(`${url}/healthz`, (res) => { let b = ''; res.on('data', (c) => (b += c)); res.on('end', () => resolve(b)); }));
    expect(JSON.parse(h)).toMatchObject({ status: 'ok', daemon: 'test' });
    const m = await new Promise<string>((resolve) => http.get(`${url}/metrics`, (res) => { let b = ''; res.on('data', (c) => (b += c)); res.on('end', () => resolve(b)); }));
    expect(m).toContain('firn_test_rpc_calls_total{method="test.echo",outcome="ok"}');
  });
});

describe('JSON-RPC conformance, bounded errors, outages and shutdown', () => {
  let server: RpcServer;
  let url: string;
  let notified = 0;
  let release: (() => void) | null = null;
  beforeAll(async () => {
    process.env.FIRN_SCHEMAS_DIR = dir;
    fs.writeFileSync(path.join(dir, 'rpc', 'test.notify.json'), JSON.stringify({ type: 'object' }));
    fs.writeFileSync(path.join(dir, 'rpc', 'test.slow.json'), JSON.stringify({ type: 'object' }));
    fs.writeFileSync(path.join(dir, 'rpc', 'test.dbdown.json'), JSON.stringify({ type: 'object' }));
    fs.writeFileSync(path.join(dir, 'rpc', 'test.big.json'), JSON.stringify({
      type: 'object', properties: { items: { type: 'array', items: { type: 'string', maxLength: 1 } }, n: { type: 'number' } },
    }));
    server = await createRpcServer({
      name: 'conf',
      bodyLimit: 4 * 1024 * 1024,
      methods: {
        'test.echo': { handler: (p: { text: string }) => ({ echoed: p.text }) },
        'test.notify': { handler: () => void notified++ },
        'test.slow': { handler: () => new Promise<string>((resolve) => (release = () => resolve('done'))) },
        'test.big': { handler: () => 'ok' },
        'test.dbdown': {
          handler: () => {
            throw Object.assign(new Error('connect ECONNREFUSED 127.0.0.1:1'), { code: 'ECONNREFUSED', errno: -111 });
          },
        },
      },
    });
    url = (await server.listen(0, '127.0.0.1')).replace('0.0.0.0', '127.0.0.1');
  });
  afterAll(async () => {
    await server.close();
    delete process.env.FIRN_SCHEMAS_DIR;
  });

  test('a null body and a non-object body are -32600 with HTTP 200, never 500', async () => {
    for (const body of ['null', '42', '"x"', 'true']) {
      const r = await rawPost(url, body);
      expect(r.status).toBe(200);
      expect(JSON.parse(r.body)).toMatchObject({ jsonrpc: '2.0', id: null, error: { code: -32600 } });
    }
  });

  test('[null, {valid}] answers the null member -32600 and the valid one with its result', async () => {
    const r = await rawPost(url, JSON.stringify([null, { jsonrpc: '2.0', id: 7, method: 'test.echo', params: { text: 'hi' } }, 5]));
    expect(r.status).toBe(200);
    const answers = JSON.parse(r.body) as Array<{ id: unknown; result?: unknown; error?: { code: number } }>;
    expect(answers).toHaveLength(3);
    expect(answers.filter((a) => a.error?.code === -32600)).toHaveLength(2);
    expect(answers.find((a) => a.id === 7)).toEqual({ jsonrpc: '2.0', id: 7, result: { echoed: 'hi' } });
  });

  test('[] is one -32600; a batch over the member limit too', async () => {
    const empty = await rawPost(url, '[]');
    expect(empty.status).toBe(200);
    expect(JSON.parse(empty.body)).toMatchObject({ id: null, error: { code: -32600, message: expect.stringContaining('empty batch') } });
    const many = await rawPost(url, JSON.stringify(Array.from({ length: 1001 }, (_, i) => ({ jsonrpc: '2.0', id: i, method: 'test.echo', params: { text: 'a' } }))));
    expect(JSON.parse(many.body)).toMatchObject({ id: null, error: { code: -32600 } });
  });

  test('notifications are run but not answered: HTTP 204 when all are notifications', async () => {
    const before = notified;
    const single = await rawPost(url, JSON.stringify({ jsonrpc: '2.0', method: 'test.notify', params: {} }));
    expect(single.status).toBe(204);
    expect(single.body).toBe('');
    const batch = await rawPost(url, JSON.stringify([{ jsonrpc: '2.0', method: 'test.notify' }, { jsonrpc: '2.0', method: 'test.notify' }]));
    expect(batch.status).toBe(204);
    // a failing notification is not answered either
    const failing = await rawPost(url, JSON.stringify({ jsonrpc: '2.0', method: 'no.such.method' }));
    expect(failing.status).toBe(204);
    const mixed = await rawPost(url, JSON.stringify([{ jsonrpc: '2.0', method: 'test.notify' }, { jsonrpc: '2.0', id: 'a', method: 'test.echo', params: { text: 'x' } }]));
    expect(mixed.status).toBe(200);
    expect(JSON.parse(mixed.body)).toEqual([{ jsonrpc: '2.0', id: 'a', result: { echoed: 'x' } }]);
    expect(notified - before).toBe(4);
  });

  test('1e400 is not a number (strictNumbers): -32602 with the path', async () => {
    const r = await rawPost(url, '{"jsonrpc":"2.0","id":1,"method":"test.big","params":{"n":1e400}}');
    expect(JSON.parse(r.body)).toMatchObject({ error: { code: -32602, data: { issues: [{ path: '/params/n' }] } } });
  });

  test('error answers stay small whatever the input: message ≤ 1 KB, data ≤ 64 KB', async () => {
    const items = Array.from({ length: 100_000 }, () => 'xx');
    const r = await rawPost(url, JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'test.big', params: { items } }));
    expect(r.status).toBe(200);
    const e = JSON.parse(r.body).error as { code: number; message: string; data: { issues: unknown[] } };
    expect(e.code).toBe(-32602);
    expect(e.message.length).toBeLessThanOrEqual(1024);
    expect(Buffer.byteLength(JSON.stringify(e.data))).toBeLessThanOrEqual(64 * 1024);
    expect(Buffer.byteLength(r.body)).toBeLessThan(70 * 1024);
    const long = await rawPost(url, JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'x'.repeat(100_000) }));
    expect(JSON.parse(long.body).error.code).toBe(-32601);
    expect(long.body.length).toBeLessThan(2048);
  });

  test('a database outage is -32050 "unavailable, retry", not -32603', async () => {
    const c = new RpcClient(url);
    const e = (await c.call('test.dbdown').catch((x: unknown) => x)) as RpcError;
    expect(e).toBeInstanceOf(RpcError);
    expect(e.code).toBe(RpcErrorCode.UNAVAILABLE);
    expect(e.message).toMatch(/unavailable, retry/);
    c.close();
  });

  test('during close(): HTTP 503 with Retry-After and a JSON-RPC -32050 body per member; the call in flight finishes', async () => {
    const c = new RpcClient(url);
    const slow = c.call('test.slow');
    await new Promise((r) => setTimeout(r, 50));
    expect(release).not.toBeNull();
    const closing = server.close();
    const r = await new Promise<{ status: number; retryAfter?: string; body: string }>((resolve, reject) => {
      const req = http.request(`${url}/rpc`, { method: 'POST', headers: { 'content-type': 'application/json' }, agent: false }, (res) => {
        let b = '';
        res.on('data', (d: Buffer) => (b += d.toString()));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, retryAfter: res.headers['retry-after'] as string | undefined, body: b }));
      });
      req.on('error', reject);
      req.end(JSON.stringify([{ jsonrpc: '2.0', id: 1, method: 'test.echo', params: { text: 'a' } }, { jsonrpc: '2.0', id: 2, method: 'test.echo', params: { text: 'b' } }]));
    });
    expect(r.status).toBe(503);
    expect(r.retryAfter).toBe('5');
    const body = JSON.parse(r.body) as Array<{ id: number; error: { code: number } }>;
    expect(body.map((m) => [m.id, m.error.code])).toEqual([[1, -32050], [2, -32050]]);
    // the client parses the 503 body into an error carrying its code
    const fresh = new RpcClient(url);
    const e = (await fresh.call('test.echo', { text: 'a' }).catch((x: unknown) => x)) as RpcError;
    fresh.close();
    expect(e.code).toBe(-32050);
    expect(e.httpStatus).toBe(503);
    release!();
    expect(await slow).toBe('done');
    await closing;
    c.close();
  });
});
