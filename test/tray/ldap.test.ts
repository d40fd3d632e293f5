import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { RpcClient, RpcError, RpcErrorCode, createUser } from '@firn/core';
import { startTray, type Tray } from '@firn/tray';
import { createTestDb, missingService, type TestDb } from '../helpers/db';
import { ROOT, captureLogger, trayConfig } from './helpers';

const SCRIPT = path.join(ROOT, 'test', 'services', 'start-slapd.sh');
const LDAP_URL = 'ldap://127.0.0.1:3890';

function portOpen(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = net.connect(port, '127.0.0.1');
    s.once('connect', () => { s.destroy(); resolve(true); });
    s.once('error', () => resolve(false));
  });
}

/** Start slapd with the project's script (idempotent); 'skip' only when allowed outside CI. */
async function ensureSlapd(): Promise<'ok' | 'skip'> {
  if (!fs.existsSync(SCRIPT)) return missingService('slapd', 'bash test/services/start-slapd.sh (the script is missing)');
  try {
    execFileSync('bash', [SCRIPT], { stdio: 'pipe', timeout: 240_000 });
  } catch (e) {
    const err = e as { stderr?: Buffer; message: string };
    return missingService('slapd', `bash test/services/start-slapd.sh (it failed: ${err.stderr?.toString().trim().split('\n').pop() ?? err.message})`);
  }
  if (!(await portOpen(3890))) return missingService('slapd', 'bash test/services/start-slapd.sh (nothing listens on 127.0.0.1:3890)');
  return 'ok';
}

async function code(p: Promise<unknown>): Promise<number> {
  try {
    await p;
  } catch (e) {
    if (e instanceof RpcError) return e.code;
    throw e;
  }
  return 0;
}

describe('LDAP login (slapd on 127.0.0.1:3890)', () => {
  let state: 'ok' | 'skip';
  let t: TestDb;
  let tray: Tray;
  let c: RpcClient;
  let logs: ReturnType<typeof captureLogger>;

  beforeAll(async () => {
    state = await ensureSlapd();
    if (state === 'skip') return;
    t = await createTestDb('sqlite');
    await createUser(t.db, { username: 'carol', role: 'admin', password: 'carol-password' });
    logs = captureLogger();
    tray = await startTray({
      config: trayConfig(t.url, { ldap_url: LDAP_URL, ldap_bind_dn: 'uid={username},ou=people,dc=firn,dc=test', ldap_default_role: 'manager' }),
      db: t.db,
      logger: logs.logger,
    });
    c = new RpcClient(tray.url);
  }, 300_000);
  afterAll(async () => {
    c?.close();
    await tray?.close();
    await t?.drop();
  });

  it('an LDAP user logs in; the first login creates a user row (source ldap, default role)', async () => {
    if (state === 'skip') return;
    const r = await c.call<{ token: string; username: string; role: string }>('auth.login', { username: 'alice', password: 'alicepw' });
    expect(r).toMatchObject({ username: 'alice', role: 'manager' });
    const row = await t.db('user').where({ username: 'alice' }).first();
    expect(row).toMatchObject({ source: 'ldap', role: 'manager', password_hash: null });
    const me = new RpcClient(tray.url, { token: r.token });
    expect(await me.call('auth.whoami')).toEqual({ username: 'alice', role: 'manager', source: 'ldap' });
    // the LDAP manager can submit
    const config = { version: 1, tasks: [{ name: 'a', trays: [{ name: 't', modules: [{ name: 'm', class: 'shell', parameters: { command: 'true' } }] }] }] };
    expect(await me.call('dataset.submit', { config, jobs: 1 })).toMatchObject({ jobs: 1 });
    me.close();
    // a second login reuses the row; an admin's role change sticks
    await t.db('user').where({ username: 'alice' }).update({ role: 'viewer' });
    expect((await c.call<{ role: string }>('auth.login', { username: 'alice', password: 'alicepw' })).role).toBe('viewer');
    expect(await t.db('user').where({ username: 'alice' })).toHaveLength(1);
  });

  it('a wrong password, an unknown user or a DN injection is refused (-32001)', async () => {
    if (state === 'skip') return;
    expect(await code(c.call('auth.login', { username: 'bob', password: 'wrong' }))).toBe(RpcErrorCode.UNAUTHENTICATED);
    expect(await code(c.call('auth.login', { username: 'mallory', password: 'whatever' }))).toBe(RpcErrorCode.UNAUTHENTICATED);
    expect(await code(c.call('auth.login', { username: 'bob,ou=people,dc=firn,dc=test', password: 'bobpw' }))).toBe(RpcErrorCode.UNAUTHENTICATED);
    // an empty password would be an anonymous bind: refused before LDAP
    expect(await code(c.call('auth.login', { username: 'bob', password: '' }))).toBe(RpcErrorCode.INVALID_PARAMS);
    expect(await t.db('user').where({ username: 'bob' })).toHaveLength(0);
    expect((await c.call<{ username: string }>('auth.login', { username: 'bob', password: 'bobpw' })).username).toBe('bob');
  });

  it('local users are checked locally, never against LDAP', async () => {
    if (state === 'skip') return;
    expect((await c.call<{ role: string }>('auth.login', { username: 'carol', password: 'carol-password' })).role).toBe('admin');
    expect(await code(c.call('auth.login', { username: 'carol', password: 'alicepw' }))).toBe(RpcErrorCode.UNAUTHENTICATED);
    for (const s of ['alicepw', 'bobpw', 'carol-password']) expect(logs.text()).not.toContain(s);
  });

  it('an unreachable LDAP server is an internal error, not a wrong password', async () => {
    if (state === 'skip') return;
    const t2 = await createTestDb('sqlite');
    const down = await startTray({ config: trayConfig(t2.url, { ldap_url: 'ldap://127.0.0.1:1', ldap_bind_dn: 'uid={username},dc=x' }), db: t2.db });
    const c2 = new RpcClient(down.url);
    try {
      expect(await code(c2.call('auth.login', { username: 'alice', password: 'alicepw' }))).toBe(RpcErrorCode.INTERNAL_ERROR);
    } finally {
      c2.close();
      await down.close();
      await t2.drop();
    }
  });
});
