import fs from 'node:fs';
import https from 'node:https';
import tls from 'node:tls';
import { RpcClient, RpcError, RpcErrorCode, createUser, randomSecret, sha256Hex } from '@firn/core';
import { startTray, type Tray } from '@firn/tray';
import { createTestDb, type TestDb } from '../helpers/db';
import { captureLogger, makeCert, tmpDir, trayConfig } from './helpers';

async function code(p: Promise<unknown>): Promise<number> {
  try {
    await p;
  } catch (e) {
    if (e instanceof RpcError) return e.code;
    throw e;
  }
  return 0;
}

const shellConfig = (name = 'main') => ({ version: 1, tasks: [{ name, trays: [{ name: 't', modules: [{ name: 'm', class: 'shell', parameters: { command: 'true' } }] }] }] });

/** Valid params for every mutating method (so that only the missing token can be the problem). */
function mutatingCalls(datasetId: number): Array<[string, Record<string, unknown>]> {
  return [
    ['auth.logout', {}],
    ['dataset.submit', { config: shellConfig(), jobs: 1 }],
    ['dataset.suspend', { dataset_id: datasetId }],
    ['dataset.resume', { dataset_id: datasetId }],
    ['dataset.reset', { dataset_id: datasetId }],
    ['dataset.obsolete', { dataset_id: datasetId }],
    ['dataset.set_priority', { dataset_id: datasetId, priority: 5 }],
    ['dataset.add_grid', { dataset_id: datasetId, grid: 'g' }],
    ['dataset.remove_grid', { dataset_id: datasetId, grid: 'g' }],
    ['dataset.add_jobs', { dataset_id: datasetId, jobs: [{ args: { input: 'x' } }] }],
    ['job.suspend', { dataset_id: datasetId, job_index: 0 }],
    ['job.resume', { dataset_id: datasetId, job_index: 0 }],
    ['job.reset', { dataset_id: datasetId, job_index: 0, requirements: { memory: 100 } }],
    ['grid.add', { name: 'g2', plugin: 'local' }],
    ['grid.set_status', { name: 'g', status: 'disabled' }],
    ['grid.remove', { name: 'g' }],
    ['user.add', { username: 'eve', role: 'admin', password: 'eve-password' }],
    ['user.set_role', { username: 'viewer', role: 'admin' }],
  ];
}

/** POST raw bytes; resolves with the status and body the server answered. */
function rawPost(url: string, ca: Buffer, body: string | Buffer, headers: Record<string, string | number> = {}): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = https.request(`${url}/rpc`, { method: 'POST', ca, headers: { 'content-type': 'application/json', ...headers } }, (res) => {
      let text = '';
      res.on('data', (d: Buffer) => (text += d.toString()));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: text }));
    });
    req.on('error', reject);
    req.end(body);
  });
}

describe('firn-tray security and bad input (MariaDB, HTTPS)', () => {
  let t: TestDb;
  let tray: Tray;
  let dir: string;
  let ca: Buffer;
  let logs: ReturnType<typeof captureLogger>;
  const secrets: string[] = ['admin-password', 'manager-password', 'other-password', 'viewer-password'];
  let admin: RpcClient, mgr: RpcClient, other: RpcClient, viewer: RpcClient, anon: RpcClient;
  let ownDataset: number;

  const login = async (username: string, password: string) => {
    const c = new RpcClient(tray.url, { ca });
    const r = await c.call<{ token: string }>('auth.login', { username, password });
    secrets.push(r.token);
    c.token = r.token;
    return c;
  };

  beforeAll(async () => {
    t = await createTestDb('mariadb');
    dir = tmpDir();
    const cert = makeCert(dir);
    ca = fs.readFileSync(cert.cert);
    await createUser(t.db, { username: 'admin', role: 'admin', password: 'admin-password' });
    await createUser(t.db, { username: 'mgr', role: 'manager', password: 'manager-password' });
    await createUser(t.db, { username: 'other', role: 'manager', password: 'other-password' });
    await createUser(t.db, { username: 'viewer', role: 'viewer', password: 'viewer-password' });
    logs = captureLogger();
    tray = await startTray({ config: trayConfig(t.url, { body_limit: 1024 * 1024 }, cert), db: t.db, logger: logs.logger });
    admin = await login('admin', 'admin-password');
    mgr = await login('mgr', 'manager-password');
    other = await login('other', 'other-password');
    viewer = await login('viewer', 'viewer-password');
    anon = new RpcClient(tray.url, { ca });
    ownDataset = (await mgr.call<{ dataset_id: number }>('dataset.submit', { config: shellConfig(), jobs: 2 })).dataset_id;
    await admin.call('grid.add', { name: 'g', plugin: 'local' });
  });
  afterAll(async () => {
    for (const c of [admin, mgr, other, viewer, anon]) c?.close();
    await tray?.close();
    await t?.drop();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it('every mutating method without a token (or with a bad one) is -32001, and changes nothing', async () => {
    const before = await t.db('history').count({ n: '*' }).first();
    const forged = new RpcClient(tray.url, { ca, token: randomSecret(32) });
    for (const [method, params] of mutatingCalls(ownDataset)) {
      expect([method, await code(anon.call(method, params))]).toEqual([method, RpcErrorCode.UNAUTHENTICATED]);
      expect([method, await code(forged.call(method, params))]).toEqual([method, RpcErrorCode.UNAUTHENTICATED]);
    }
    forged.close();
    // reads need a token too; only login and system.* are public
    expect(await code(anon.call('dataset.list'))).toBe(RpcErrorCode.UNAUTHENTICATED);
    expect(await code(anon.call('dataset.status', { dataset_id: ownDataset }))).toBe(RpcErrorCode.UNAUTHENTICATED);
    expect(await anon.call('system.health')).toMatchObject({ status: 'ok' });
    expect(await t.db('history').count({ n: '*' }).first()).toEqual(before);
    expect((await t.db('dataset').where({ id: ownDataset }).first()).status).toBe('PROCESSING');
  });

  it('an expired token is refused', async () => {
    const c = await login('viewer', 'viewer-password');
    await t.db('token').where({ token_hash: sha256Hex(c.token!) }).update({ expires_at: Date.now() - 1 });
    expect(await code(c.call('auth.whoami'))).toBe(RpcErrorCode.UNAUTHENTICATED);
    c.close();
  });

  it('a viewer may read but not submit or control (-32003)', async () => {
    expect(await code(viewer.call('dataset.submit', { config: shellConfig(), jobs: 1 }))).toBe(RpcErrorCode.FORBIDDEN);
    expect(await code(viewer.call('dataset.suspend', { dataset_id: ownDataset }))).toBe(RpcErrorCode.FORBIDDEN);
    expect(await code(viewer.call('user.list'))).toBe(RpcErrorCode.FORBIDDEN);
    expect((await viewer.call<{ datasets: unknown[] }>('dataset.list')).datasets).toHaveLength(1);
    expect(await viewer.call('dataset.status', { dataset_id: ownDataset })).toMatchObject({ status: 'PROCESSING' });
  });

  it('a manager may not touch another manager\'s dataset (-32003); an admin may', async () => {
    for (const [method, params] of mutatingCalls(ownDataset).filter(([m]) => m.startsWith('dataset.') && m !== 'dataset.submit' || m.startsWith('job.'))) {
      expect([method, await code(other.call(method, params))]).toEqual([method, RpcErrorCode.FORBIDDEN]);
    }
    expect(await code(other.call('grid.add', { name: 'g3', plugin: 'local' }))).toBe(RpcErrorCode.FORBIDDEN);
    expect(await code(other.call('user.add', { username: 'x', role: 'admin', password: 'password-x' }))).toBe(RpcErrorCode.FORBIDDEN);
    expect((await t.db('task').where({ dataset_id: ownDataset, status: 'SUSPENDED' })).length).toBe(0);
    expect(await admin.call('dataset.suspend', { dataset_id: ownDataset, reason: 'admin override' })).toMatchObject({ changed: 2 });
    expect(await mgr.call('dataset.resume', { dataset_id: ownDataset })).toMatchObject({ changed: 2 });
    const actors = (await t.db('history').where({ dataset_id: ownDataset, entity: 'dataset' }).orderBy('id').select('action', 'actor')).map((h) => `${h.action}:${h.actor}`);
    expect(actors).toEqual(['submit:user:mgr', 'suspend:user:admin', 'resume:user:mgr']);
    expect(await code(mgr.call('dataset.suspend', { dataset_id: 999999 }))).toBe(RpcErrorCode.NOT_FOUND);
  });

  it('20 wrong passwords → -32029, then even the right one is refused for that user and address', async () => {
    const c = new RpcClient(tray.url, { ca });
    const codes: number[] = [];
    for (let i = 0; i < 20; i++) codes.push(await code(c.call('auth.login', { username: 'viewer', password: `wrong-password-${i}` })));
    expect(codes.slice(0, 10).every((x) => x === RpcErrorCode.UNAUTHENTICATED)).toBe(true);
    expect(codes.slice(10).every((x) => x === RpcErrorCode.RATE_LIMITED)).toBe(true);
    expect(await code(c.call('auth.login', { username: 'viewer', password: 'viewer-password' }))).toBe(RpcErrorCode.RATE_LIMITED);
    // another user from the same address is not affected; unknown users are refused the same way
    expect(await code(c.call('auth.login', { username: 'mgr', password: 'manager-password' }))).toBe(0);
    expect(await code(c.call('auth.login', { username: 'nobody', password: 'whatever-pw' }))).toBe(RpcErrorCode.UNAUTHENTICATED);
    c.close();
  });

  it('malformed JSON → -32700; invalid params → -32602 with paths; unknown method → -32601', async () => {
    const r = await rawPost(tray.url, ca, '{"jsonrpc":"2.0","id":1,"method":"auth.login","params":{');
    expect(JSON.parse(r.body)).toMatchObject({ error: { code: RpcErrorCode.PARSE_ERROR } });
    const u = await rawPost(tray.url, ca, JSON.stringify({ jsonrpc: '2.0', id: 2, method: 'no.such' }));
    expect(JSON.parse(u.body)).toMatchObject({ error: { code: RpcErrorCode.METHOD_NOT_FOUND } });
    const e = (await (async () => { try { await mgr.call('dataset.suspend', { dataset_id: 'x', extra: 1 }); } catch (x) { return x as RpcError; } })())!;
    expect(e.code).toBe(RpcErrorCode.INVALID_PARAMS);
    expect((e.data as { issues: Array<{ path: string }> }).issues.map((i) => i.path).sort()).toEqual(['/params/dataset_id', '/params/extra']);
  });

  it('an invalid dataset config → -32602 listing every JSON path', async () => {
    const config = {
      version: 0,
      tasks: [
        { name: 'a', depends: ['missing'], trays: [{ name: 't', modules: [{ name: 'm', class: 'ext', src: 'http://example.org/m.py' }] }] },
        { name: 'a b', trays: [] },
      ],
    };
    let err: RpcError | undefined;
    try {
      await mgr.call('dataset.submit', { config, jobs: 1 });
    } catch (e) {
      err = e as RpcError;
    }
    expect(err?.code).toBe(RpcErrorCode.INVALID_PARAMS);
    const paths = (err!.data as { issues: Array<{ path: string; message: string }> }).issues.map((i) => i.path);
    expect(paths).toEqual(expect.arrayContaining([
      '/params/config/version', '/params/config/tasks/0/depends/0', '/params/config/tasks/1/name', '/params/config/tasks/1/trays',
      '/params/config/tasks/0/trays/0/modules/0/src',
    ]));
    expect(await t.db('dataset').count({ n: '*' }).first()).toMatchObject({ n: 1 });
  });

  it('a 20 MB body is refused (413 / -32600) from its Content-Length, before it is sent', async () => {
    const size = 20 * 1024 * 1024;
    const u = new URL(tray.url);
    // send headers and 1 KB only: the answer must come without the rest of the body
    const answer = await new Promise<string>((resolve, reject) => {
      const sock = tls.connect({ host: u.hostname, port: Number(u.port), ca }, () => {
        sock.write(`POST /rpc HTTP/1.1\r\nHost: ${u.host}\r\nContent-Type: application/json\r\nContent-Length: ${size}\r\n\r\n`);
        sock.write('[' + ' '.repeat(1023));
      });
      let text = '';
      sock.on('data', (d: Buffer) => {
        text += d.toString();
        if (text.includes('\r\n\r\n') && text.includes('}')) {
          sock.destroy();
          resolve(text);
        }
      });
      sock.on('error', reject);
      setTimeout(() => reject(new Error('no answer without the body: the server waits for (buffers) it')), 10_000).unref();
    });
    expect(answer).toMatch(/^HTTP\/1\.1 413/);
    expect(answer).toContain(String(RpcErrorCode.INVALID_REQUEST));
  });

  it('a chunked 20 MB body is cut off once it passes the limit, not read to its end', async () => {
    const u = new URL(`${tray.url}/rpc`);
    const result = await new Promise<{ status: number; sent: number }>((resolve, reject) => {
      let sent = 0;
      let done = false;
      const req = https.request(u, { method: 'POST', ca, headers: { 'content-type': 'application/json', 'transfer-encoding': 'chunked' } }, (res) => {
        done = true;
        res.resume();
        resolve({ status: res.statusCode ?? 0, sent });
      });
      req.on('error', (e) => (done ? undefined : reject(e)));
      const piece = Buffer.alloc(64 * 1024, 0x20);
      const pump = () => {
        while (!done && sent < 20 * 1024 * 1024) {
          sent += piece.length;
          if (!req.write(piece)) return void req.once('drain', pump);
        }
        if (!done) req.end();
      };
      pump();
    });
    expect(result.status).toBe(413);
    expect(result.sent).toBeLessThan(20 * 1024 * 1024);
  });

  it('text full of SQL metacharacters is stored and returned verbatim; user and grid names with them are refused', async () => {
    const nasty = `Robert'); DROP TABLE dataset;-- "\\" %_ \` ; /* */ OR 1=1 ☃`;
    // user and grid names follow one rule (letters, digits, . _ @ -): no quotes, spaces or control characters
    expect(await code(admin.call('user.add', { username: `o'brien"; DELETE FROM user;--`, role: 'manager', password: 'obrien-password' }))).toBe(RpcErrorCode.INVALID_PARAMS);
    expect(await code(admin.call('grid.add', { name: `g'; DROP TABLE grid;--`, plugin: 'local' }))).toBe(RpcErrorCode.INVALID_PARAMS);
    const user = 'o.brien@example.org';
    await admin.call('user.add', { username: user, role: 'manager', password: 'obrien-password' });
    const c = await login(user, 'obrien-password');
    secrets.push('obrien-password');
    expect(await c.call('auth.whoami')).toMatchObject({ username: user });
    const config = { ...shellConfig('task_1.x-y'), description: nasty, steering: { parameters: { q: nasty } } };
    const r = await c.call<{ dataset_id: number }>('dataset.submit', { config, jobs: 1, description: nasty });
    expect((await c.call<{ dataset: { description: string; owner: string } }>('dataset.get', { dataset_id: r.dataset_id })).dataset).toMatchObject({ description: nasty, owner: user });
    expect((await c.call<{ config: unknown }>('dataset.config', { dataset_id: r.dataset_id })).config).toEqual(config);
    expect((await t.db('steering_parameter').where({ dataset_id: r.dataset_id }).first()).value).toBe(nasty);
    const gridName = 'g_drop.table-grid';
    await admin.call('grid.add', { name: gridName, plugin: 'local', capabilities: { site: nasty } });
    expect(await c.call('dataset.add_grid', { dataset_id: r.dataset_id, grid: gridName })).toEqual({ dataset_id: r.dataset_id, grids: [gridName] });
    const { grids } = await c.call<{ grids: Array<{ name: string; capabilities: { site: string } }> }>('grid.list');
    expect(grids.find((g) => g.name === gridName)?.capabilities.site).toBe(nasty);
    expect((await c.call<{ datasets: Array<{ id: number }> }>('dataset.list', { owner: user })).datasets.map((d) => d.id)).toEqual([r.dataset_id]);
    expect(Number((await t.db('dataset').count({ n: '*' }).first())!.n)).toBeGreaterThan(1);
    c.close();
  });

  it('captured logs never contain a token, passkey or password', async () => {
    // a secret-bearing request the server refuses is logged without the secret
    const passkey = randomSecret(24);
    await code(anon.call('auth.login', { username: 'viewer', password: 'x', passkey }));
    await code(anon.call('auth.login', { username: 'nobody-here', password: 'the-password-of-nobody' }));
    secrets.push(passkey, 'the-password-of-nobody');
    const text = logs.text();
    expect(text.length).toBeGreaterThan(1000);
    expect(text).toMatch(/login refused/);
    for (const s of secrets) expect(text).not.toContain(s);
  });
});
