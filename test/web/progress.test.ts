/**
 * The dataset page's progress (issue 18): % complete, rate and ETA; error groups linking to the
 * job list filtered to their tasks; the job list's status and error filters (validated,
 * escaped, parameterised); the config as submitted, viewable and downloadable behind the
 * viewer session. Real firn-tray and firn-web on SQLite and MariaDB, over test/web/seed.ts.
 */
import { errorGroupFilter } from '@firn/web';
import { DB_KINDS } from '../helpers/db';
import { startWebEnv, type WebEnv } from './env';
import { PASSWORDS } from './seed';

/** fetch with a kept session cookie and no redirects followed. */
class Client {
  cookies = new Map<string, string>();
  constructor(private readonly base: string) {}
  async get(path: string): Promise<{ status: number; text: string; res: Response }> {
    const res = await fetch(this.base + path, { redirect: 'manual', headers: { cookie: [...this.cookies].map(([k, v]) => `${k}=${v}`).join('; '), accept: 'text/html' } });
    for (const c of res.headers.getSetCookie()) {
      const [pair] = c.split(';');
      const i = pair!.indexOf('=');
      this.cookies.set(pair!.slice(0, i), pair!.slice(i + 1));
    }
    return { status: res.status, text: await res.text(), res };
  }
  async login(username: string, password: string): Promise<void> {
    const page = await this.get('/login');
    const csrf = /name="csrf" value="([^"]+)"/.exec(page.text)![1]!;
    const res = await fetch(`${this.base}/login`, {
      method: 'POST', redirect: 'manual',
      headers: { cookie: [...this.cookies].map(([k, v]) => `${k}=${v}`).join('; '), 'content-type': 'application/x-www-form-urlencoded', origin: this.base },
      body: new URLSearchParams({ csrf, username, password, next: '/' }).toString(),
    });
    for (const c of res.headers.getSetCookie()) {
      const [pair] = c.split(';');
      const i = pair!.indexOf('=');
      this.cookies.set(pair!.slice(0, i), pair!.slice(i + 1));
    }
    if (res.status !== 303) throw new Error(`login failed: ${res.status}`);
  }
}

/** Job indexes listed in the page's job table. */
function jobIndexes(page: string): number[] {
  const table = /<table class="list" id="job-list">([\s\S]*?)<\/table>/.exec(page)![1]!;
  return [...table.matchAll(/\/jobs\/(\d+)">/g)].map((m) => Number(m[1]));
}

test('an error group\'s filter is the longest text between its folded numbers', () => {
  expect(errorGroupFilter('module sim exited with code N: memory limit exceeded (rss N MB)')).toBe('module sim exited with code');
  expect(errorGroupFilter('transfer failed: checksum mismatch for out_N.iN')).toBe('transfer failed: checksum mismatch for out_');
  expect(errorGroupFilter('N')).toBe('N');
});

describe.each(DB_KINDS)('dataset page progress, filters and config on %s', (kind) => {
  let env: WebEnv;
  let bob: Client;
  let sim: number;

  beforeAll(async () => {
    env = await startWebEnv(kind);
    sim = env.seed.sim.id;
    bob = new Client(env.web.url);
    await bob.login('bob', PASSWORDS.bob);
  });
  afterAll(async () => {
    await env?.close();
  });

  test('the page shows % complete, the last hour\'s rate and an ISO ETA; the live summary carries them', async () => {
    const r = await bob.get(`/datasets/${sim}`);
    expect(r.status).toBe(200);
    expect(r.text).toContain('<span id="progress-percent" data-live="progress.text.percent">60.0%</span>');
    expect(r.text).toContain('<span id="progress-rate" data-live="progress.text.rate">1 tasks/h</span>'); // job 3's sim, 40 min ago
    const eta = /<span id="progress-eta" data-live="progress.text.eta">([^<]+)<\/span>/.exec(r.text)![1]!;
    expect(eta).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/);
    expect(Math.abs(Date.parse(eta) - (Date.now() + 8 * 3600_000))).toBeLessThan(60_000); // 8 remaining at 1/h
    const s = JSON.parse((await bob.get(`/api/datasets/${sim}/summary`)).text) as { progress: { percent: number; ok: number; total: number; tasks_per_hour: number; text: Record<string, string> } };
    expect([s.progress.percent, s.progress.ok, s.progress.total, s.progress.tasks_per_hour, s.progress.text.percent]).toEqual([60, 12, 20, 1, '60.0%']);
  });

  test('error groups link to the job list filtered to their tasks', async () => {
    const page = (await bob.get(`/datasets/${sim}`)).text;
    const links = [...page.matchAll(/<a class="error-jobs" href="([^"]+)">/g)].map((m) => m[1]!.replace(/&amp;/g, '&'));
    expect(links).toHaveLength(2);
    // memory: job 6's FAILED sim and job 7's ERROR sim; checksum: job 8's gen
    const lists = await Promise.all(links.map(async (l) => jobIndexes((await bob.get(l)).text)));
    expect(lists).toEqual([[6, 7], [8]]);
  });

  test('the job list filters by status and error text; hostile and malformed filters are refused or escaped', async () => {
    expect(jobIndexes((await bob.get(`/datasets/${sim}?error=MEMORY%20LIMIT`)).text)).toEqual([6, 7]); // ASCII case ignored
    expect(jobIndexes((await bob.get(`/datasets/${sim}?error=memory&job_status=FAILED`)).text)).toEqual([6]);
    expect(jobIndexes((await bob.get(`/datasets/${sim}?job_status=OK`)).text)).toEqual([0, 1, 2, 3]);
    // LIKE wildcards are literal: '%' and '_' match only themselves
    expect(jobIndexes((await bob.get(`/datasets/${sim}?error=${encodeURIComponent('%')}`)).text)).toEqual([]);
    expect(jobIndexes((await bob.get(`/datasets/${sim}?error=out${encodeURIComponent('_')}8`)).text)).toEqual([8]);
    expect(jobIndexes((await bob.get(`/datasets/${sim}?error=out${encodeURIComponent('_')}_`)).text)).toEqual([]);
    const hostile = await bob.get(`/datasets/${sim}?error=${encodeURIComponent('<script>x</script>\' OR 1=1 --')}`);
    expect(hostile.status).toBe(200);
    expect(jobIndexes(hostile.text)).toEqual([]);
    expect(hostile.text).not.toContain('<script>x</script>');
    expect(hostile.text).toContain('&lt;script&gt;x&lt;/script&gt;');
    expect((await bob.get(`/datasets/${sim}?job_status=NOPE`)).status).toBe(400);
    expect((await bob.get(`/datasets/${sim}?error=${'a'.repeat(201)}`)).status).toBe(400);
    expect((await bob.get(`/datasets/${sim}?error=a%01b`)).status).toBe(400);
  });

  test('the config: the JSON as submitted, as a download with ?download=1, only with a session', async () => {
    const stored = String((await env.t.db('dataset').select('config').where({ id: sim }).first()).config);
    const view = await bob.get(`/datasets/${sim}/config`);
    expect([view.status, view.res.headers.get('content-type'), view.res.headers.get('content-disposition'), view.text]).toEqual([200, 'application/json; charset=utf-8', null, stored]);
    const dl = await bob.get(`/datasets/${sim}/config?download=1`);
    expect([dl.status, dl.res.headers.get('content-disposition'), dl.text]).toEqual([200, `attachment; filename="dataset-${sim}.json"`, stored]);
    expect((await bob.get(`/datasets/${sim}/config?download=yes`)).status).toBe(400);
    expect((await bob.get('/datasets/999999/config')).status).toBe(404);
    expect((await bob.get('/datasets/x1/config')).status).toBe(404);
    const anonymous = await new Client(env.web.url).get(`/datasets/${sim}/config`);
    expect(anonymous.status).toBe(303);
    expect(anonymous.res.headers.get('location')).toMatch(/^\/login\?next=/);
    expect((await bob.get(`/datasets/${sim}`)).text).toContain(`href="/datasets/${sim}/config?download=1"`);
  });
});
