/**
 * Issue 14: who may read the web monitor, HSTS, and the CA trusted for the tray connection —
 * through real firn-tray, firn-web and firn-mon servers over HTTP and HTTPS.
 */
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import http from 'node:http';
import https from 'node:https';
import os from 'node:os';
import path from 'node:path';
import { HSTS_HEADER_VALUE, loadConfig } from '@firn/core';
import { createMonServer } from '@firn/mon';
import { startTray } from '@firn/tray';
import { startWeb, type RunningWeb } from '@firn/web';
import { DB_KINDS, createTestDb } from '../helpers/db';
import { startWebEnv, type WebEnv } from './env';
import { PASSWORDS, seedWeb } from './seed';

interface Answer {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  text: string;
}

/** GET or POST over http(s), trusting `ca`, never following redirects. */
function request(url: string, o: { method?: string; headers?: Record<string, string>; body?: string; ca?: Buffer } = {}): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const req = (url.startsWith('https:') ? https : http).request(url, { method: o.method ?? 'GET', headers: o.headers, ca: o.ca, agent: false }, (res) => {
      let text = '';
      res.on('data', (d: Buffer) => (text += d.toString()));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, text }));
    });
    req.on('error', reject);
    req.end(o.body);
  });
}

/** Log in through the web's form; the cookie header of the session (throws unless the login redirected). */
async function webLogin(base: string, username: string, password: string, ca?: Buffer): Promise<{ cookie: string; answer: Answer }> {
  const page = await request(`${base}/login`, { ca });
  const pre = String(page.headers['set-cookie']![0]).split(';')[0]!;
  const csrf = /name="csrf" value="([^"]+)"/.exec(page.text)![1]!;
  const answer = await request(`${base}/login`, {
    method: 'POST', ca,
    headers: { cookie: pre, 'content-type': 'application/x-www-form-urlencoded', origin: base },
    body: new URLSearchParams({ csrf, username, password, next: '/' }).toString(),
  });
  const token = ((answer.headers['set-cookie'] ?? []) as string[]).find((c) => c.startsWith('firn_token='));
  return { cookie: token ? `${pre}; ${token.split(';')[0]!}` : pre, answer };
}

const HTML = { accept: 'text/html,application/xhtml+xml' };

describe.each(DB_KINDS)('web monitor access on %s', (kind) => {
  let env: WebEnv;
  let open: RunningWeb;
  let paths: { dataset: string; job: string; log: string; grid: string; run: string; day: string; home: string; api: string };

  beforeAll(async () => {
    env = await startWebEnv(kind);
    const { seed } = env;
    paths = {
      dataset: `/datasets/${seed.sim.id}`,
      job: `/datasets/${seed.sim.id}/jobs/0`,
      log: `/datasets/${seed.sim.id}/jobs/0/tasks/${seed.sim.taskIds[0]![0]}/logs/stdout`,
      grid: '/grids/grid-a',
      run: `/runs/${seed.offline.runs[0]!.id}`,
      day: '/days/2024-06-03',
      home: '/',
      api: `/api/datasets/${seed.sim.id}/summary`,
    };
    // a second firn-web on the same database with [mon] anonymous_read = true
    const config = loadConfig({
      overrides: { db: { url: env.t.url }, mon: { host: '127.0.0.1', port: 0, tray_url: env.tray.url, anonymous_read: true }, log: { level: 'error' } },
    });
    open = await startWeb({ config, db: env.t.db, web: { cacheMs: 0 } });
  });
  afterAll(async () => {
    await open?.close();
    await env?.close();
  });

  test('anonymous visitors are refused every page (303 to the login page, 401 for logs and JSON); static files and the login page stay public', async () => {
    const base = env.web.url;
    for (const p of [paths.dataset, paths.job, paths.grid, paths.run, paths.day, paths.home]) {
      const r = await request(base + p, { headers: HTML });
      expect([p, r.status, r.headers.location]).toEqual([p, 303, `/login?next=${encodeURIComponent(p)}`]);
      expect(r.text).not.toContain('alert'); // nothing of the page leaks
    }
    const log = await request(base + paths.log);
    expect([log.status, log.text]).toEqual([401, 'Log in to read this page.\n']);
    expect(log.text).not.toContain('generating 1000 events');
    const logInBrowser = await request(base + paths.log, { headers: HTML });
    expect(logInBrowser.status).toBe(303);
    const api = await request(base + paths.api, { headers: HTML });
    expect([api.status, JSON.parse(api.text)]).toEqual([401, { error: 'Log in to read this page.' }]);
    const head = await request(base + paths.dataset, { method: 'HEAD' });
    expect(head.status).toBe(401);
    // a forged or stale token cookie is no session
    const forged = await request(base + paths.dataset, { headers: { ...HTML, cookie: `firn_token=${'A'.repeat(43)}` } });
    expect(forged.status).toBe(303);
    // public
    expect((await request(`${base}/login`)).status).toBe(200);
    expect((await request(`${base}/login`)).text).toContain('Every page needs a login');
    expect((await request(`${base}/static/firn-web.css`)).status).toBe(200);
    expect((await request(`${base}/favicon.ico`)).status).toBe(204);
  });

  test('a viewer session reads the log, dataset and job pages; the login returns to the page asked for', async () => {
    const base = env.web.url;
    const { cookie, answer } = await webLogin(base, 'bob', PASSWORDS.bob);
    expect(answer.status).toBe(303);
    const ds = await request(base + paths.dataset, { headers: { ...HTML, cookie } });
    expect(ds.status).toBe(200);
    expect(ds.text).toContain('&lt;script&gt;alert(1)&lt;/script&gt;');
    expect((await request(base + paths.job, { headers: { ...HTML, cookie } })).status).toBe(200);
    const log = await request(base + paths.log, { headers: { cookie } });
    expect([log.status, log.text]).toEqual([200, expect.stringContaining('generating 1000 events')]);
    expect((await request(base + paths.api, { headers: { cookie } })).status).toBe(200);
    // the login form sent to from a page goes back there
    const page = await request(`${base}/login?next=${encodeURIComponent(paths.job)}`);
    expect(page.text).toContain(`name="next" value="${paths.job}"`);
  });

  test('with [mon] anonymous_read = true the pages are served to anyone', async () => {
    const base = open.url;
    const ds = await request(base + paths.dataset, { headers: HTML });
    expect(ds.status).toBe(200);
    expect((await request(base + paths.job, { headers: HTML })).status).toBe(200);
    const log = await request(base + paths.log);
    expect([log.status, log.text]).toEqual([200, expect.stringContaining('generating 1000 events')]);
    expect((await request(`${base}/login`)).text).toContain('Viewing needs no login');
  });
});

/** A private CA and a leaf certificate for 127.0.0.1 signed by it. */
function makeCaAndLeaf(dir: string): { ca: string; cert: string; key: string } {
  const f = (n: string) => path.join(dir, n);
  const run = (args: string[]) => execFileSync('openssl', args, { stdio: 'pipe' });
  run(['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-keyout', f('ca.key'), '-out', f('ca.pem'), '-days', '1',
    '-subj', '/CN=Firn test CA', '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign,cRLSign']);
  run(['req', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-keyout', f('leaf.key'), '-out', f('leaf.csr'), '-subj', '/CN=127.0.0.1']);
  fs.writeFileSync(f('leaf.ext'), 'subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n');
  run(['x509', '-req', '-in', f('leaf.csr'), '-CA', f('ca.pem'), '-CAkey', f('ca.key'), '-CAcreateserial', '-out', f('leaf.pem'), '-days', '1', '-extfile', f('leaf.ext')]);
  return { ca: f('ca.pem'), cert: f('leaf.pem'), key: f('leaf.key') };
}

describe('TLS: HSTS and the CA trusted for the tray (SQLite)', () => {
  let dir: string;
  let pki: { ca: string; cert: string; key: string };
  let caPem: Buffer;
  const closers: Array<() => Promise<void>> = [];
  let dbUrl: string;
  let db: Awaited<ReturnType<typeof createTestDb>>;
  let trayUrl: string;

  beforeAll(async () => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'firn-web-tls-'));
    pki = makeCaAndLeaf(dir);
    caPem = fs.readFileSync(pki.ca);
    db = await createTestDb('sqlite');
    dbUrl = db.url;
    await seedWeb(db.db);
    const trayCfg = loadConfig({ overrides: { db: { url: dbUrl }, tray: { host: '127.0.0.1', port: 0, tls_cert: pki.cert, tls_key: pki.key }, log: { level: 'error' } } });
    const tray = await startTray({ config: trayCfg, db: db.db });
    closers.push(() => tray.close());
    trayUrl = tray.url;
    expect(trayUrl).toMatch(/^https:/);
  });
  afterAll(async () => {
    for (const c of closers.reverse()) await c();
    await db?.drop();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  const web = async (mon: Record<string, unknown>, tray: Record<string, unknown> = {}) => {
    const config = loadConfig({ overrides: { db: { url: dbUrl }, tray, mon: { host: '127.0.0.1', port: 0, tray_url: trayUrl, ...mon }, log: { level: 'error' } } });
    const w = await startWeb({ config, db: db.db, web: { cacheMs: 0 } });
    closers.push(() => w.close());
    return w;
  };

  test('firn-tray, firn-web and firn-mon send Strict-Transport-Security over TLS, never over plain HTTP', async () => {
    const rpc = await request(`${trayUrl}/rpc`, { method: 'POST', ca: caPem, headers: { 'content-type': 'application/json' }, body: '{"jsonrpc":"2.0","id":1,"method":"system.version"}' });
    expect([rpc.status, rpc.headers['strict-transport-security']]).toEqual([200, HSTS_HEADER_VALUE]);
    expect((await request(`${trayUrl}/healthz`, { ca: caPem })).headers['strict-transport-security']).toBe('max-age=31536000');

    const secureWeb = await web({ tls_cert: pki.cert, tls_key: pki.key, tray_ca: pki.ca });
    expect(secureWeb.url).toMatch(/^https:/);
    for (const p of ['/login', '/static/firn-web.css', '/datasets/1', '/nope', '/healthz']) {
      expect([p, (await request(secureWeb.url + p, { ca: caPem })).headers['strict-transport-security']]).toEqual([p, 'max-age=31536000']);
    }
    const plainWeb = await web({ tray_ca: pki.ca });
    const plain = await request(`${plainWeb.url}/login`);
    expect([plain.status, plain.headers['strict-transport-security']]).toEqual([200, undefined]);

    const monCfg = (tls: boolean) => loadConfig({
      overrides: { db: { url: dbUrl }, mon: { host: '127.0.0.1', port: 0, tray_url: trayUrl, tray_ca: pki.ca, ...(tls ? { tls_cert: pki.cert, tls_key: pki.key } : {}) }, log: { level: 'error' } },
    });
    for (const tls of [true, false]) {
      const mon = await createMonServer({ db: db.db, config: monCfg(tls) });
      try {
        const url = await mon.listen(0, '127.0.0.1');
        for (const p of ['/healthz', '/login']) {
          const r = await request(url + p, { ca: caPem });
          expect([tls, p, r.status, r.headers['strict-transport-security']]).toEqual([tls, p, 200, tls ? 'max-age=31536000' : undefined]);
        }
        const r = await request(`${url}/rpc`, { method: 'POST', ca: caPem, headers: { 'content-type': 'application/json' }, body: '{"jsonrpc":"2.0","id":1,"method":"no.such"}' });
        expect(r.headers['strict-transport-security']).toBe(tls ? 'max-age=31536000' : undefined);
      } finally {
        await mon.close();
      }
    }
  });

  test('the web reaches a tray whose certificate a private CA signed when [mon] tray_ca names that CA', async () => {
    // before: only [tray] tls_cert (here the leaf) was trusted, which does not verify a CA-signed chain
    const old = await web({}, { tls_cert: pki.cert, tls_key: pki.key });
    const refused = await webLogin(old.url, 'bob', PASSWORDS.bob);
    expect(refused.answer.status).toBe(502);
    expect(refused.answer.text).toContain('firn-tray cannot be reached');

    const w = await web({ tray_ca: pki.ca });
    const { cookie, answer } = await webLogin(w.url, 'bob', PASSWORDS.bob);
    expect(answer.status).toBe(303);
    const page = await request(`${w.url}/datasets/1`, { headers: { ...HTML, cookie } });
    expect(page.status).toBe(200);
    expect(page.text).toContain('bob');
  });

  test('an unreadable tray_ca stops the start with a message naming the key', async () => {
    await expect(web({ tray_ca: path.join(dir, 'missing.pem') })).rejects.toThrow(/\[mon\] tray_ca: cannot read/);
    fs.writeFileSync(path.join(dir, 'empty.pem'), 'not a certificate\n');
    await expect(web({ tray_ca: path.join(dir, 'empty.pem') })).rejects.toThrow(/holds no PEM certificate/);
  });
});
