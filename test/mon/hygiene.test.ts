import http from 'node:http';
import net from 'node:net';
import { RpcClient, RpcError, isMysql, openDb, type Db } from '@firn/core';
import { createMonServer, type MonServer } from '@firn/mon';
import { DB_KINDS, MYSQL_ROOT_URL, createTestDb, waitUntil, type TestDb } from '../helpers/db';
import { monConfig, rpcErrorOf, seedDataset, type SeededTask } from './fixtures';

/**
 * firn-mon against hostile and unlucky input, on real SQLite and MariaDB: numbers JSON cannot
 * hold, values no column can hold, an update the database refuses inside a batch, idle and slow
 * connections, too many connections, a database that cannot be reached, and a shutdown.
 */

function post(url: string, body: string): Promise<{ status: number; headers: http.IncomingHttpHeaders; body: string }> {
  return new Promise((resolve, reject) => {
    const req = http.request(`${url}/rpc`, { method: 'POST', headers: { 'content-type': 'application/json' }, agent: false }, (res) => {
      let text = '';
      res.on('data', (d: Buffer) => (text += d.toString()));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: text }));
    });
    req.on('error', reject);
    req.end(body);
  });
}

function portOf(url: string): number {
  return Number(new URL(url).port);
}

/** A raw socket; resolves `closed` (with ms since open and the bytes received) when the server ends it. */
function rawSocket(port: number): { socket: net.Socket; opened: Promise<void>; closed: Promise<{ ms: number; data: string }> } {
  const socket = net.connect(port, '127.0.0.1');
  const t0 = Date.now();
  let data = '';
  socket.on('data', (d: Buffer) => (data += d.toString()));
  const opened = new Promise<void>((resolve) => socket.once('connect', () => resolve()));
  const closed = new Promise<{ ms: number; data: string }>((resolve) => {
    socket.once('close', () => resolve({ ms: Date.now() - t0, data }));
    socket.on('error', () => undefined);
  });
  return { socket, opened, closed };
}

describe.each(DB_KINDS)('firn-mon input and connection hygiene on %s', (kind) => {
  let tdb: TestDb;
  let db: Db;
  let mon: MonServer;
  let url: string;
  let client: RpcClient;

  async function start(monSection: Record<string, unknown> = {}): Promise<void> {
    mon = await createMonServer({ db, config: monConfig(tdb.url, monSection), heartbeatSeconds: 7 });
    url = await mon.listen();
    client = new RpcClient(url);
  }
  async function processing(n: number): Promise<SeededTask[]> {
    const seeded = await seedDataset(db, n);
    await db('task').whereIn('id', seeded.tasks.map((t) => t.id)).update({ status: 'PROCESSING' });
    return seeded.tasks;
  }

  beforeAll(async () => {
    tdb = await createTestDb(kind);
    db = tdb.db;
  });
  afterAll(async () => tdb?.drop());
  afterEach(async () => {
    client?.close();
    await mon?.close();
    expect(mon.batcher.pending).toBe(0);
  });

  test('an honest heartbeat succeeds while 100 heartbeats with task_id 1e400 arrive in the same flush window', async () => {
    await start({ flush_ms: 50 });
    const [t] = await processing(1);
    const bad = Array.from({ length: 100 }, () => post(url, `{"jsonrpc":"2.0","id":1,"method":"pilot.heartbeat","params":{"task_id":1e400,"passkey":"${t!.passkey}","cpu_seconds":5}}`));
    const honest = client.call('pilot.heartbeat', { task_id: t!.id, passkey: t!.passkey, cpu_seconds: 42 });
    const answers = await Promise.all(bad);
    await expect(honest).resolves.toEqual({ ok: true });
    for (const a of answers) {
      expect(a.status).toBe(200);
      expect(JSON.parse(a.body).error).toMatchObject({ code: -32602, data: { issues: [{ path: '/params/task_id' }] } });
    }
    expect(Number((await db('task').where({ id: t!.id }).first()).cpu_seconds)).toBe(42);
  });

  test('values no column can hold are -32602 naming the path: a 70 KB error, a 5,000-character URL, a 300-character host, 2^31 MB', async () => {
    await start();
    const [t] = await processing(1);
    const auth = { task_id: t!.id, passkey: t!.passkey };
    const cases: Array<[string, Record<string, unknown>, string]> = [
      ['pilot.finish', { ...auth, ok: false, error: 'e'.repeat(70 * 1024) }, '/params/error'],
      ['pilot.files', { ...auth, files: [{ local_name: 'o', url: `file:///${'u'.repeat(5000)}`, size: 1, md5: 'a'.repeat(32), sha256: 'b'.repeat(64) }] }, '/params/files/0/url'],
      ['pilot.start', { ...auth, host: 'h'.repeat(300) }, '/params/host'],
      ['pilot.heartbeat', { ...auth, rss_mb: 1e13 }, '/params/rss_mb'],
      ['pilot.heartbeat', { ...auth, task_id: 2 ** 32 }, '/params/task_id'],
      ['pilot.log', { ...auth, name: 'n'.repeat(65), data: 'x' }, '/params/name'],
    ];
    for (const [method, params, path] of cases) {
      const e = await rpcErrorOf(client, method, params);
      expect([method, e.code]).toEqual([method, -32602]);
      expect((e.data as { issues: Array<{ path: string }> }).issues.map((i) => i.path)).toContain(path);
    }
    // nothing of it was stored, and the task is untouched
    const row = await db('task').where({ id: t!.id }).first();
    expect(row.status).toBe('PROCESSING');
    expect(row.error_summary).toBeNull();
    expect(await db('file').where({ task_id: t!.id })).toHaveLength(0);
  });

  test('an update the database refuses fails alone: the others of its flush are written and answered OK', async () => {
    // a real refusal by the database: a trigger that rejects one log name
    if (isMysql(db)) {
      await db.raw(`CREATE TRIGGER poison_log BEFORE INSERT ON task_log FOR EACH ROW BEGIN
        IF NEW.name = 'poison' THEN SIGNAL SQLSTATE '45000' SET MESSAGE_TEXT = 'poisoned log'; END IF; END`);
    } else {
      await db.raw(`CREATE TRIGGER poison_log BEFORE INSERT ON task_log WHEN NEW.name = 'poison' BEGIN SELECT RAISE(ABORT, 'poisoned log'); END`);
    }
    try {
      await start({ flush_ms: 50 });
      const tasks = await processing(4);
      const calls = tasks.flatMap((t, i) => [
        { method: 'pilot.heartbeat', params: { task_id: t.id, passkey: t.passkey, wall_seconds: 100 + i } },
        { method: 'pilot.log', params: { task_id: t.id, passkey: t.passkey, name: i === 2 ? 'poison' : 'stdout', data: `line ${i}\n` } },
        { method: 'pilot.stats', params: { task_id: t.id, passkey: t.passkey, stats: { events: i } } },
      ]);
      const answers = await client.batch(calls); // one request: every update in one flush
      const failed = answers.map((a, i) => (a instanceof RpcError ? [i, a.code] : null)).filter(Boolean);
      expect(failed).toEqual([[7, -32603]]); // only task 2's poisoned log
      for (const [i, t] of tasks.entries()) {
        expect(Number((await db('task').where({ id: t.id }).first()).wall_seconds)).toBe(100 + i);
        expect(Number((await db('task_stat').where({ task_id: t.id, name: 'events' }).first()).value)).toBe(i);
        const log = await db('task_log').where({ task_id: t.id }).first();
        if (i === 2) expect(log).toBeUndefined();
        else expect(log.data).toBe(`line ${i}\n`);
      }
    } finally {
      await db.raw('DROP TRIGGER IF EXISTS poison_log');
    }
  });

  test('an idle connection is closed after idle_timeout; a trickled body is cut off at request_timeout; connections over max_connections are refused', async () => {
    await start({ idle_timeout: 1, headers_timeout: 1, request_timeout: 2, max_connections: 3 });
    const port = portOf(url);

    // idle: one request on a keep-alive connection, then silence
    const idle = rawSocket(port);
    await idle.opened;
    const body = JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'pilot.heartbeat', params: { task_id: 1, passkey: 'x' } });
    idle.socket.write(`POST /rpc HTTP/1.1\r\nHost: x\r\nConnection: keep-alive\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`);
    const idleEnd = await idle.closed;
    expect(idleEnd.data).toMatch(/^HTTP\/1\.1 200/);
    expect(idleEnd.ms).toBeGreaterThanOrEqual(900);
    expect(idleEnd.ms).toBeLessThan(3000);

    // slow body: headers promptly, then one byte every 150 ms of a 1000-byte body
    const slow = rawSocket(port);
    await slow.opened;
    slow.socket.write('POST /rpc HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n');
    const trickle = setInterval(() => slow.socket.writable && slow.socket.write(' '), 150);
    const slowEnd = await slow.closed;
    clearInterval(trickle);
    expect(slowEnd.ms).toBeLessThan(4500); // cut off after ~2 s, long before the body (150 s) would be complete
    expect(slowEnd.data).not.toMatch(/^HTTP\/1\.1 200/);

    // the connection limit: three held open, the fourth closed at once without an answer
    const held = [rawSocket(port), rawSocket(port), rawSocket(port)];
    await Promise.all(held.map((h) => h.opened));
    await new Promise((r) => setTimeout(r, 50));
    const extra = rawSocket(port);
    extra.socket.write('GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n');
    const extraEnd = await extra.closed;
    expect(extraEnd.data).toBe('');
    expect(extraEnd.ms).toBeLessThan(500);
    for (const h of held) h.socket.destroy();
    // below the limit again: served
    await waitUntil(async () => (await post(url, JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'pilot.heartbeat', params: { task_id: 1, passkey: 'x' } }))).status === 200, 5000, 'served again');
  });

  (kind === 'mariadb' ? test : test.skip)('during close() a new call gets HTTP 503 with a JSON-RPC -32050 body and Retry-After; the call in flight is written', async () => {
    await start({ flush_ms: 10 });
    const [t] = await processing(1);
    // hold the task row so the flush (SELECT … FOR UPDATE) waits: the heartbeat stays in flight
    const trx = await db.transaction();
    await trx('task').where({ id: t!.id }).forUpdate().select('id');
    const inFlight = client.call('pilot.heartbeat', { task_id: t!.id, passkey: t!.passkey, cpu_seconds: 77 });
    await waitUntil(() => mon.batcher.pending === 1, 5000, 'heartbeat queued');
    const closing = mon.close();
    const r = await post(url, JSON.stringify([{ jsonrpc: '2.0', id: 9, method: 'pilot.heartbeat', params: { task_id: t!.id, passkey: t!.passkey } }]));
    expect(r.status).toBe(503);
    expect(Number(r.headers['retry-after'])).toBeGreaterThan(0);
    expect(JSON.parse(r.body)).toEqual([{ jsonrpc: '2.0', id: 9, error: { code: -32050, message: expect.stringMatching(/unavailable, retry/), data: { retry_after_ms: 5000 } } }]);
    await trx.commit();
    await expect(inFlight).resolves.toEqual({ ok: true });
    await closing;
    expect(Number((await db('task').where({ id: t!.id }).first()).cpu_seconds)).toBe(77);
  });
});

describe('firn-mon whose database cannot be reached', () => {
  test('answers -32050 "unavailable, retry" (connection refused), for the batched and the direct methods', async () => {
    const u = new URL(MYSQL_ROOT_URL);
    // a real MariaDB client against a port nobody listens on: every connection attempt is refused
    const db = openDb(`mysql://${u.username || 'root'}@127.0.0.1:1/firn_unreachable`);
    const config = monConfig('mysql://root@127.0.0.1:1/firn_unreachable');
    const mon = await createMonServer({ db, config, heartbeatSeconds: 7 });
    const client = new RpcClient(await mon.listen());
    try {
      const auth = { task_id: 1, passkey: 'p'.repeat(20) };
      for (const [method, params] of [
        ['pilot.heartbeat', { ...auth, cpu_seconds: 1 }],
        ['pilot.start', { ...auth, host: 'wn1' }],
        ['pilot.finish', { ...auth, ok: true }],
      ] as Array<[string, Record<string, unknown>]>) {
        const e = await rpcErrorOf(client, method, params);
        expect([method, e.code, e.message]).toEqual([method, -32050, expect.stringMatching(/unavailable, retry/)]);
      }
    } finally {
      client.close();
      await mon.close();
      await db.destroy();
    }
  });
});
