import { loadConfig } from '@firn/core';
import { createMonServer } from '@firn/mon';
import { DB_KINDS } from '../helpers/db';
import { startWebEnv, type WebEnv } from './env';
import { HOSTILE, PASSWORDS } from './seed';

/** A tiny cookie-keeping HTTP client (fetch with manual redirects). */
class Browser {
  cookies = new Map<string, string>();
  constructor(private readonly base: string) {}
  private cookieHeader(): string {
    return [...this.cookies].map(([k, v]) => `${k}=${v}`).join('; ');
  }
  private keep(res: Response): void {
    for (const c of res.headers.getSetCookie()) {
      const [pair] = c.split(';');
      const i = pair!.indexOf('=');
      const name = pair!.slice(0, i);
      const value = pair!.slice(i + 1);
      if (/Max-Age=0/.test(c)) this.cookies.delete(name);
      else this.cookies.set(name, value);
    }
  }
  async get(path: string): Promise<{ status: number; text: string; res: Response }> {
    const res = await fetch(this.base + path, { redirect: 'manual', headers: { cookie: this.cookieHeader() } });
    this.keep(res);
    return { status: res.status, text: await res.text(), res };
  }
  async post(path: string, form: Record<string, string>, headers: Record<string, string> = {}): Promise<{ status: number; text: string; res: Response }> {
    const res = await fetch(this.base + path, {
      method: 'POST',
      redirect: 'manual',
      headers: { cookie: this.cookieHeader(), 'content-type': 'application/x-www-form-urlencoded', origin: this.base, ...headers },
      body: new URLSearchParams(form).toString(),
    });
    this.keep(res);
    return { status: res.status, text: await res.text(), res };
  }
  /** The CSRF token of the first form on a page. */
  static csrf(page: string): string {
    const m = /name="csrf" value="([^"]+)"/.exec(page);
    if (!m) throw new Error('no csrf field on the page');
    return m[1]!;
  }
  async login(username: string, password: string): Promise<void> {
    const page = await this.get('/login');
    const r = await this.post('/login', { csrf: Browser.csrf(page.text), username, password, next: '/' });
    if (r.status !== 303) throw new Error(`login failed: ${r.status} ${r.text.slice(0, 300)}`);
  }
}

describe.each(DB_KINDS)('web monitor routes on %s (real firn-tray)', (kind) => {
  let env: WebEnv;
  let base: string;
  const datasetStatus = async (id: number) => ((await env.t.db('dataset').select('status', 'priority').where({ id }).first()) as { status: string; priority: number });
  const suspendedTasks = async (id: number) => Number(((await env.t.db('task').count({ n: '*' }).where({ dataset_id: id, status: 'SUSPENDED' }).first()) as { n: number }).n);

  beforeAll(async () => {
    env = await startWebEnv(kind);
    base = env.web.url;
  });
  afterAll(async () => {
    await env?.close();
  });

  test('every view renders, escapes hostile text and is served with a strict CSP', async () => {
    const b = new Browser(base);
    await b.login('bob', PASSWORDS.bob); // a viewer session: pages are not public ([mon] anonymous_read)
    const { seed } = env;
    const paths = [
      '/', `/datasets/${seed.sim.id}`, `/datasets/${seed.sim.id}/jobs/0`, '/grids/grid-a', '/calendar', '/days/2024-06-03',
      `/runs/${seed.offline.runs[0]!.id}`, '/login', `/?q=${encodeURIComponent('<script>')}`,
    ];
    for (const p of paths) {
      const r = await b.get(p);
      expect([p, r.status]).toEqual([p, 200]);
      expect(r.res.headers.get('content-type')).toBe('text/html; charset=utf-8');
      expect(r.res.headers.get('content-security-policy')).toContain("script-src 'self'");
      expect(r.text).not.toContain('<script>alert(1)</script>');
      expect(r.text).not.toMatch(/<img src=x/);
      // the only scripts are our own files and inert JSON data blocks
      for (const m of r.text.matchAll(/<script\b([^>]*)>/g)) expect(m[1]).toMatch(/src="\/static\/[a-z.-]+\?v=[0-9a-f]+"|type="application\/json"/);
      // no inline styles or event handlers in any tag (attribute values, quoted and escaped, aside)
      for (const tag of r.text.match(/<[a-z][^>]*>/gi) ?? []) expect(tag.replace(/"[^"]*"/g, '""')).not.toMatch(/\s(style|on[a-z]+)=/i);
    }
    const ds = await b.get(`/datasets/${seed.sim.id}`);
    expect(ds.text).toContain('&lt;script&gt;alert(1)&lt;/script&gt; &amp; &quot;double&quot; &#39;single&#39;');
    expect(ds.text).toContain(`<td class="num" id="tasks-OK" data-live="tasks.OK">12</td>`);
    expect(ds.text).toContain(`<th class="num" id="jobs-total" data-live="total_jobs">10</th>`);
    const job = await b.get(`/datasets/${seed.sim.id}/jobs/0`);
    expect(job.text).toContain('&lt;img src=x onerror=alert(3)&gt;.i3');
  });

  test('bad ids and unknown things are 404 pages, never errors', async () => {
    const b = new Browser(base);
    await b.login('bob', PASSWORDS.bob);
    for (const p of ['/datasets/999999', '/datasets/abc', "/datasets/1'%20OR%201=1", '/datasets/1/jobs/999', '/grids/nope', '/days/2024-13-01', '/runs/0', '/static/nope.js']) {
      const r = await b.get(p);
      expect([p, r.status]).toEqual([p, 404]);
    }
    const api = await b.get('/api/datasets/999999/summary');
    expect([api.status, JSON.parse(api.text)]).toEqual([404, { error: 'no dataset 999999' }]);
  });

  test('JSON endpoints: live summary, chart series, dataset list; Chart.js is served locally', async () => {
    const b = new Browser(base);
    await b.login('bob', PASSWORDS.bob);
    const s = JSON.parse((await b.get(`/api/datasets/${env.seed.sim.id}/summary`)).text) as { status: string; tasks: Record<string, number>; total_tasks: number; sites: unknown[] };
    expect([s.status, s.tasks.OK, s.tasks.ERROR, s.total_tasks, s.sites.length]).toEqual(['PROCESSING', 12, 2, 20, 3]);
    const series = JSON.parse((await b.get(`/api/datasets/${env.seed.sim.id}/series?range=all`)).text) as { completed: number[] };
    expect(series.completed.reduce((a, c) => a + c, 0)).toBe(12);
    const list = JSON.parse((await b.get('/api/datasets?type=offline')).text) as { total: number; rows: Array<{ id: number }> };
    expect([list.total, list.rows[0]!.id]).toEqual([1, env.seed.offline.id]);
    const chart = await b.get('/static/chart.umd.js');
    expect([chart.status, chart.res.headers.get('content-type')]).toEqual([200, 'text/javascript; charset=utf-8']);
    expect(chart.text).toMatch(/Chart\.js v4/);
  });

  test('login goes through the tray; the token cookie is HttpOnly and SameSite=Strict; logout revokes it', async () => {
    const aliceTokens = async () =>
      Number(((await env.t.db('token').join('user', 'user.id', 'token.user_id').where('user.username', 'alice').count({ n: '*' }).first()) as { n: number }).n);
    const b = new Browser(base);
    const page = await b.get('/login');
    const bad = await b.post('/login', { csrf: Browser.csrf(page.text), username: 'alice', password: 'wrong-password', next: '/' });
    expect(bad.status).toBe(401);
    expect(bad.text).toContain('invalid user name or password');
    const ok = await b.post('/login', { csrf: Browser.csrf(page.text), username: 'alice', password: PASSWORDS.alice, next: `/datasets/${env.seed.sim.id}` });
    expect([ok.status, ok.res.headers.get('location')]).toEqual([303, `/datasets/${env.seed.sim.id}`]);
    const cookie = ok.res.headers.getSetCookie().find((c) => c.startsWith('firn_token='))!;
    expect(cookie).toMatch(/HttpOnly/);
    expect(cookie).toMatch(/SameSite=Strict/);
    expect(cookie).not.toMatch(/Secure/); // plain http here
    expect(await aliceTokens()).toBe(1);
    const home = await b.get('/');
    expect(home.text).toContain('Logged in as alice (manager).');
    const out = await b.post('/logout', { csrf: Browser.csrf(home.text) });
    expect(out.status).toBe(303);
    expect(b.cookies.has('firn_token')).toBe(false);
    expect(await aliceTokens()).toBe(0);
    // a login form posted without its token, or from another site, is refused
    expect((await b.post('/login', { username: 'alice', password: PASSWORDS.alice })).status).toBe(403);
  });

  test('controls need a valid CSRF token from this site; viewers and other managers are refused', async () => {
    const id = env.seed.sim.id;
    const alice = new Browser(base);
    await alice.login('alice', PASSWORDS.alice);
    const page = await alice.get(`/datasets/${id}`);
    expect(page.text).toContain('id="controls"');
    const csrf = Browser.csrf(page.text.slice(page.text.indexOf('id="controls"')));
    expect((await alice.post(`/datasets/${id}/suspend`, {})).status).toBe(403);
    expect((await alice.post(`/datasets/${id}/suspend`, { csrf: csrf.replace(/.$/, (c) => (c === 'A' ? 'B' : 'A')) })).status).toBe(403);
    expect((await alice.post(`/datasets/${id}/suspend`, { csrf }, { origin: 'http://evil.example' })).status).toBe(403);
    expect(await datasetStatus(id)).toEqual({ status: 'PROCESSING', priority: 5 });

    const bob = new Browser(base);
    await bob.login('bob', PASSWORDS.bob);
    const viewerPage = await bob.get(`/datasets/${id}`);
    expect(viewerPage.text).not.toContain('id="controls"');
    expect(viewerPage.text).toContain('viewers cannot change datasets');
    const bobCsrf = Browser.csrf(viewerPage.text); // the logout form's: a valid token of bob's session
    const refused = await bob.post(`/datasets/${id}/suspend`, { csrf: bobCsrf });
    expect(refused.status).toBe(403);
    expect(refused.text).toContain('viewers cannot change datasets');
    expect(await datasetStatus(id)).toEqual({ status: 'PROCESSING', priority: 5 });

    // alice manages only her own datasets: none of root's controls, and the tray refuses her
    const rootPage = await alice.get(`/datasets/${env.seed.rootOwned.id}`);
    expect(rootPage.text).not.toContain('id="controls"');
    const tried = await alice.post(`/datasets/${env.seed.rootOwned.id}/priority`, { csrf, priority: '99' });
    expect(tried.status).toBe(303);
    expect((await alice.get(`/datasets/${env.seed.rootOwned.id}`)).text).toMatch(/dataset.set_priority refused: dataset \d+ belongs to another user/);
    expect((await datasetStatus(env.seed.rootOwned.id)).priority).toBe(1);
  });

  test('priority, reset and resume act through the tray with the user as actor', async () => {
    const id = env.seed.sim.id;
    const alice = new Browser(base);
    await alice.login('alice', PASSWORDS.alice);
    const csrf = Browser.csrf((await alice.get(`/datasets/${id}`)).text);
    expect((await alice.post(`/datasets/${id}/priority`, { csrf, priority: 'ten' })).status).toBe(303);
    expect((await datasetStatus(id)).priority).toBe(5);
    expect((await alice.get(`/datasets/${id}`)).text).toContain('priority must be an integer');
    const r = await alice.post(`/datasets/${id}/priority`, { csrf, priority: '42' });
    expect([r.status, r.res.headers.get('location')]).toEqual([303, `/datasets/${id}`]);
    expect((await datasetStatus(id)).priority).toBe(42);
    const h = (await env.t.db('history').where({ entity: 'dataset', entity_id: id, action: 'priority' }).orderBy('id', 'desc').first()) as { actor: string; to_status: string };
    expect([h.actor, h.to_status]).toEqual(['user:alice', '42']);
    expect((await alice.get(`/datasets/${id}`)).text).toContain(`Dataset ${id} priority set to 42.`);

    // reset job 6 (its sim task FAILED) → RESET → WAITING/IDLE
    const jobCsrf = Browser.csrf((await alice.get(`/datasets/${id}/jobs/6`)).text);
    expect((await alice.post(`/datasets/${id}/jobs/6/reset`, { csrf: jobCsrf })).status).toBe(303);
    const sim6 = (await env.t.db('task').where({ id: env.seed.sim.taskIds[6]![1] }).first()) as { status: string };
    expect(['WAITING', 'IDLE']).toContain(sim6.status);
    expect((await alice.get(`/datasets/${id}/jobs/6`)).text).toMatch(/Job 6 of dataset \d+ reset: 1 tasks changed\./);

    // reset failed tasks (dataset.reset): the ERROR tasks of jobs 7 and 8 and the suspended job 9
    expect((await alice.post(`/datasets/${id}/reset`, { csrf })).status).toBe(303);
    expect(Number(((await env.t.db('task').count({ n: '*' }).where({ dataset_id: id }).whereIn('status', ['ERROR', 'FAILED', 'SUSPENDED']).first()) as { n: number }).n)).toBe(0);
    expect(await suspendedTasks(id)).toBe(0);
    // a manager has no "reset everything" button, and the tray refuses include_ok to her
    expect((await alice.get(`/datasets/${id}`)).text).not.toContain('btn-reset-all');
    await alice.post(`/datasets/${id}/reset-all`, { csrf });
    expect((await alice.get(`/datasets/${id}`)).text).toMatch(/refused: resetting OK tasks \(include_ok\) needs role admin/);
    expect(Number(((await env.t.db('task').count({ n: '*' }).where({ dataset_id: id, status: 'OK' }).first()) as { n: number }).n)).toBeGreaterThanOrEqual(12);
  });

  test('firn-mon mounts the web monitor beside its JSON-RPC API', async () => {
    const config = loadConfig({ overrides: { db: { url: env.t.url }, mon: { host: '127.0.0.1', port: 0, tray_url: env.tray.url, anonymous_read: true }, log: { level: 'error' } } });
    const mon = await createMonServer({ db: env.t.db, config });
    try {
      const url = await mon.listen(0, '127.0.0.1');
      const page = await fetch(`${url}/datasets/${env.seed.sim.id}`);
      const body = await page.text();
      expect(page.status).toBe(200);
      expect(body).toContain('&lt;script&gt;alert(1)&lt;/script&gt;');
      expect(body).not.toContain(HOSTILE);
      const rpc = await fetch(`${url}/rpc`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'no.such' }) });
      expect(((await rpc.json()) as { error: { code: number } }).error.code).toBe(-32601);
      expect(rpc.headers.get('content-security-policy')).toBeNull(); // the web's headers stay on the web's routes
    } finally {
      await mon.close();
    }
  });
});
