import net from 'node:net';
import { RpcClient, RpcError, createUser, openDb } from '@firn/core';
import { startTray, type Tray } from '@firn/tray';
import { DB_KINDS, createTestDb, waitUntil, type TestDb } from '../helpers/db';
import { trayConfig } from './helpers';

/**
 * firn-tray's guards through the real RPC, on SQLite and MariaDB: OBSOLETE datasets take no
 * change but an admin's reset, the last enabled admin stays admin, grid and user names follow
 * one rule, values no column can hold are -32602 naming their path, and the HTTP server closes
 * idle, slow and excess connections.
 */

async function failure(p: Promise<unknown>): Promise<RpcError> {
  try {
    await p;
  } catch (e) {
    if (e instanceof RpcError) return e;
    throw e;
  }
  throw new Error('call unexpectedly succeeded');
}
const paths = (e: RpcError) => [...new Set(((e.data as { issues?: Array<{ path: string }> } | undefined)?.issues ?? []).map((i) => i.path))];

const shell = (extra: Record<string, unknown> = {}, requirements: Record<string, unknown> = {}) => ({
  version: 1,
  ...extra,
  tasks: [{ name: 'main', requirements, trays: [{ name: 't', modules: [{ name: 'm', class: 'shell', parameters: { command: 'true' } }] }] }],
});

describe.each(DB_KINDS)('firn-tray guards on %s', (kind) => {
  let t: TestDb;
  let tray: Tray;
  const clients: RpcClient[] = [];
  const login = async (username: string, password: string) => {
    const anon = new RpcClient(tray.url);
    const { token } = await anon.call<{ token: string }>('auth.login', { username, password });
    anon.close();
    const c = new RpcClient(tray.url, { token });
    clients.push(c);
    return c;
  };
  let admin: RpcClient;
  let mgr: RpcClient;

  beforeAll(async () => {
    t = await createTestDb(kind);
    await createUser(t.db, { username: 'root1', role: 'admin', password: 'root1-password' });
    await createUser(t.db, { username: 'mgr', role: 'manager', password: 'manager-password' });
    tray = await startTray({ config: trayConfig(t.url, { idle_timeout: 1, headers_timeout: 1, request_timeout: 2, max_connections: 4 }), db: t.db });
    admin = await login('root1', 'root1-password');
    mgr = await login('mgr', 'manager-password');
    await admin.call('grid.add', { name: 'site-a', plugin: 'local' });
    await admin.call('grid.add', { name: 'site-b', plugin: 'local' });
  });
  afterAll(async () => {
    for (const c of clients) c.close();
    await tray?.close();
    await t?.drop();
  });

  test('an OBSOLETE dataset refuses every change (-32009 naming OBSOLETE) except a reset by an admin', async () => {
    const { dataset_id: id } = await mgr.call<{ dataset_id: number }>('dataset.submit', { config: shell(), jobs: 2, grids: ['site-a'] });
    await mgr.call('dataset.obsolete', { dataset_id: id, reason: 'superseded' });
    const refused: Array<[string, Record<string, unknown>]> = [
      ['dataset.set_priority', { dataset_id: id, priority: 9 }],
      ['dataset.add_grid', { dataset_id: id, grid: 'site-b' }],
      ['dataset.remove_grid', { dataset_id: id, grid: 'site-a' }],
      ['dataset.suspend', { dataset_id: id }],
      ['dataset.resume', { dataset_id: id }],
      ['dataset.reset', { dataset_id: id }],
      ['dataset.obsolete', { dataset_id: id }],
      ['job.suspend', { dataset_id: id, job_index: 0 }],
      ['job.reset', { dataset_id: id, job_index: 0 }],
    ];
    for (const [method, params] of refused) {
      const e = await failure(mgr.call(method, params));
      expect([method, e.code]).toEqual([method, -32009]);
      expect(e.message).toMatch(/OBSOLETE/);
    }
    // an admin's other changes are refused too
    expect((await failure(admin.call('dataset.set_priority', { dataset_id: id, priority: 9 }))).code).toBe(-32009);
    expect((await failure(admin.call('dataset.add_grid', { dataset_id: id, grid: 'site-b' }))).code).toBe(-32009);
    const row = await t.db('dataset').where({ id }).first();
    expect([row.status, Number(row.priority)]).toEqual(['OBSOLETE', 0]);
    expect(await t.db('dataset_grid').where({ dataset_id: id })).toHaveLength(1);
    // the one way back: an admin resets it
    await expect(admin.call('dataset.reset', { dataset_id: id, reason: 'needed after all' })).resolves.toMatchObject({ status: 'PROCESSING' });
    expect((await t.db('dataset').where({ id }).first()).status).toBe('PROCESSING');
    await expect(mgr.call('dataset.set_priority', { dataset_id: id, priority: 3 })).resolves.toMatchObject({ priority: 3 });
  });

  test('job.reset on an OBSOLETE dataset: refused for a manager, done for an admin (as dataset.reset)', async () => {
    const { dataset_id: id } = await mgr.call<{ dataset_id: number }>('dataset.submit', { config: shell(), jobs: 2, grids: ['site-a'] });
    const job0 = await t.db('job').where({ dataset_id: id, job_index: 0 }).first();
    await t.db('task').where({ job_id: job0.id }).update({ status: 'FAILED', failures: 5 });
    await mgr.call('dataset.obsolete', { dataset_id: id, reason: 'superseded' });
    const e = await failure(mgr.call('job.reset', { dataset_id: id, job_index: 0 }));
    expect([e.code, e.message]).toEqual([-32009, `dataset ${id} is OBSOLETE: it takes no changes (reset); only an admin may reset it`]);
    expect((await t.db('task').where({ job_id: job0.id }).first()).status).toBe('FAILED');
    // an admin's other job changes are still refused
    expect((await failure(admin.call('job.suspend', { dataset_id: id, job_index: 0 }))).code).toBe(-32009);
    await expect(admin.call('job.reset', { dataset_id: id, job_index: 0, reason: 'one more try' })).resolves.toMatchObject({ changed: 1, waiting: 1 });
    // a person's reset keeps the failure counters (tray control.ts RESET_COUNTERS, docs/production-manager.md)
    expect(await t.db('task').where({ job_id: job0.id }).first()).toMatchObject({ status: 'WAITING', failures: 5 });
    // the job brought back makes the dataset schedulable again, with a history row
    expect((await t.db('dataset').where({ id }).first()).status).toBe('PROCESSING');
    expect(await t.db('history').where({ entity: 'dataset', entity_id: id, action: 'reset' }).select('from_status', 'to_status')).toEqual([{ from_status: 'OBSOLETE', to_status: 'PROCESSING' }]);
  });

  test('the last enabled admin cannot be demoted, not even by themself', async () => {
    await admin.call('user.add', { username: 'root2', role: 'admin', password: 'root2-password' });
    // two admins: one may step down
    await expect(admin.call('user.set_role', { username: 'root2', role: 'manager' })).resolves.toMatchObject({ user: { role: 'manager' } });
    for (const role of ['manager', 'viewer']) {
      const e = await failure(admin.call('user.set_role', { username: 'root1', role }));
      expect(e.code).toBe(-32009);
      expect(e.message).toMatch(/last enabled admin/);
    }
    expect((await t.db('user').where({ username: 'root1' }).first()).role).toBe('admin');
    // a disabled admin does not count
    await t.db('user').where({ username: 'root2' }).update({ role: 'admin', disabled: true });
    expect((await failure(admin.call('user.set_role', { username: 'root1', role: 'viewer' }))).code).toBe(-32009);
    await t.db('user').where({ username: 'root2' }).update({ disabled: false });
    await expect(admin.call('user.set_role', { username: 'root2', role: 'viewer' })).resolves.toMatchObject({ user: { role: 'viewer' } });
    expect(await t.db('user').where({ role: 'admin', disabled: false })).toHaveLength(1);
  });

  test('grid and user names: NUL, ANSI escapes, spaces and overlong names are -32602 naming the field; dotted and @ names work', async () => {
    for (const name of ['bad\u0000name', '\u001b[31mred', 'two words', '-lead', 'a'.repeat(65), 'x/y']) {
      const e = await failure(admin.call('grid.add', { name, plugin: 'local' }));
      expect([name, e.code, paths(e)]).toEqual([name, -32602, ['/params/name']]);
      expect(e.message).not.toContain('\u001b');
      expect(e.message).not.toContain('\u0000');
    }
    await expect(admin.call('grid.add', { name: 'wisc_sge.2', plugin: 'sge' })).resolves.toMatchObject({ grid: { name: 'wisc_sge.2' } });
    for (const username of ['eve\u0000', '\u001b[31mmallory', 'bob,ou=people', 'sp ace']) {
      const e = await failure(admin.call('user.add', { username, role: 'viewer', password: 'long-enough-pw' }));
      expect([username, e.code, paths(e)]).toEqual([username, -32602, ['/params/username']]);
    }
    await expect(admin.call('user.add', { username: 'j.doe@example.org', role: 'viewer', password: 'long-enough-pw' })).resolves.toMatchObject({ user: { username: 'j.doe@example.org' } });
    expect(await t.db('grid').where('name', 'like', '%red%')).toHaveLength(0);
    expect(await t.db('user').where('username', 'like', '%mallory%')).toHaveLength(0);
  });

  test('values no column can hold are -32602 with their path: cpu 2^31, a 70 KB steering value, a 5,000-character URL, 2^31 MB', async () => {
    const big = 2 ** 31;
    const cases: Array<[string, Record<string, unknown>, RegExp]> = [
      ['dataset.submit', { config: shell({}, { cpu: big }), jobs: 1 }, /tasks\/0\/requirements\/cpu$/],
      ['dataset.submit', { config: shell({ steering: { parameters: { blob: 'x'.repeat(70 * 1024) } } }), jobs: 1 }, /steering\/parameters\/blob$/],
      ['dataset.submit', { config: shell({ steering: { parameters: { blob: '😀'.repeat(20_000) } } }), jobs: 1 }, /steering\/parameters\/blob$/], // 80 KB in 20,000 characters
      ['dataset.submit', { config: shell({ steering: { metaprojects: [{ name: 'mp', url: `https://example.org/${'u'.repeat(5000)}` }] } }), jobs: 1 }, /metaprojects\/0\/url$/],
      ['dataset.submit', { config: { ...shell(), description: 'd'.repeat(1025) }, jobs: 1 }, /description$/],
      ['grid.add', { name: 'site-c', plugin: 'local', capabilities: { cpu: big } }, /^\/params\/capabilities\/cpu$/],
      ['job.reset', { dataset_id: 1, job_index: 0, requirements: { memory: big } }, /^\/params\/requirements\/memory$/],
      ['job.get', { dataset_id: 2 ** 32, job_index: 0 }, /^\/params\/dataset_id$/],
      ['dataset.add_jobs', { dataset_id: 1, jobs: [{ args: Object.fromEntries(Array.from({ length: 40 }, (_, i) => [`a${i}`, 'v'.repeat(2000)])) }] }, /^\/params\/jobs\/0\/args$/],
    ];
    for (const [method, params, path] of cases) {
      const e = await failure(admin.call(method, params));
      expect([method, e.code]).toEqual([method, -32602]);
      expect(paths(e).some((p) => path.test(p))).toBe(true);
    }
    const d = await t.db('dataset').count({ n: '*' }).first();
    expect(Number((d as { n: number }).n)).toBe(2); // only the two OBSOLETE tests' datasets
  });

  test('the HTTP server closes idle connections, cuts off a trickled body and refuses connections over max_connections', async () => {
    const port = Number(new URL(tray.url).port);
    const open = () => {
      const socket = net.connect(port, '127.0.0.1');
      const t0 = Date.now();
      let data = '';
      socket.on('data', (b: Buffer) => (data += b.toString()));
      socket.on('error', () => undefined);
      return {
        socket,
        opened: new Promise<void>((r) => socket.once('connect', () => r())),
        closed: new Promise<{ ms: number; data: string }>((r) => socket.once('close', () => r({ ms: Date.now() - t0, data }))),
      };
    };
    const idle = open();
    await idle.opened;
    idle.socket.write('GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: keep-alive\r\n\r\n');
    const idleEnd = await idle.closed;
    expect(idleEnd.data).toMatch(/^HTTP\/1\.1 200/);
    expect(idleEnd.ms).toBeGreaterThanOrEqual(900);
    expect(idleEnd.ms).toBeLessThan(3000);

    const slow = open();
    await slow.opened;
    slow.socket.write('POST /rpc HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n');
    const trickle = setInterval(() => slow.socket.writable && slow.socket.write(' '), 150);
    const slowEnd = await slow.closed;
    clearInterval(trickle);
    expect(slowEnd.ms).toBeLessThan(4500);
    expect(slowEnd.data).not.toMatch(/^HTTP\/1\.1 200/);

    // the clients' keep-alive sockets may count against the limit: close them first
    for (const c of clients) c.close();
    const held = [open(), open(), open(), open()];
    await Promise.all(held.map((h) => h.opened));
    await new Promise((r) => setTimeout(r, 50));
    const extra = open();
    extra.socket.write('GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n');
    const extraEnd = await extra.closed;
    expect(extraEnd.data).toBe('');
    expect(extraEnd.ms).toBeLessThan(500);
    for (const h of held) h.socket.destroy();
    await waitUntil(async () => {
      const c = new RpcClient(tray.url);
      try {
        return (await c.call<{ version: string }>('system.version')).version !== undefined;
      } finally {
        c.close();
      }
    }, 5000, 'served again');
  });
});

describe('firn-tray whose database cannot be reached', () => {
  test('answers -32050 "unavailable, retry" (connection refused), never -32603', async () => {
    // a real MariaDB client against a port nobody listens on
    const db = openDb('mysql://root@127.0.0.1:1/firn_unreachable');
    const tray = await startTray({ config: trayConfig('mysql://root@127.0.0.1:1/firn_unreachable'), db });
    const c = new RpcClient(tray.url, { token: 'a'.repeat(43) }); // token-shaped: checked against the database
    try {
      for (const [method, params] of [['auth.login', { username: 'a', password: 'b' }], ['dataset.list', {}], ['grid.list', {}]] as const) {
        const e = await failure(c.call(method, params));
        expect([method, e.code, e.message]).toEqual([method, -32050, expect.stringMatching(/unavailable, retry/)]);
      }
    } finally {
      c.close();
      await tray.close();
      await db.destroy();
    }
  });
});
