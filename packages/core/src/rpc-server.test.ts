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
