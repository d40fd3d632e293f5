import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { chromium, type Browser, type BrowserContext, type Page } from 'playwright-core';
import { TASK_STATUSES, transition } from '@firn/core';
import { missingService } from '../helpers/db';
import { startWebEnv, type WebEnv } from './env';
import { HOSTILE, HOSTILE_FILE, PASSWORDS, expectedJobCounts, expectedSites, expectedTaskCounts } from './seed';

/**
 * The web monitor in a real browser (Debian's Chromium driven by playwright-core), against a
 * real firn-tray on a seeded SQLite database: every view shows the seeded numbers, login,
 * suspending from the page changes the database, a viewer has no controls, live counts update
 * without a reload. A screenshot of every view is kept under test/artifacts/web/.
 */

const CHROMIUM = '/usr/bin/chromium';
const ROOT = path.resolve(__dirname, '..', '..');
const ARTIFACTS = path.join(ROOT, 'test', 'artifacts', 'web');
const ARGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage', '--disable-quic', '--no-first-run',
  '--disable-background-networking', '--disable-component-update', '--disable-sync'];

function haveChromium(): boolean {
  if (fs.existsSync(CHROMIUM)) return true;
  try {
    execFileSync('bash', [path.join(ROOT, 'test', 'services', 'install-chromium.sh')], { stdio: 'pipe', timeout: 600_000 });
  } catch {
    /* reported below */
  }
  return fs.existsSync(CHROMIUM);
}

const available = haveChromium() || missingService('chromium', 'bash test/services/install-chromium.sh') !== 'skip';
const maybe = available ? describe : describe.skip;

maybe('web monitor in Chromium', () => {
  let env: WebEnv;
  let browser: Browser;
  let anon: BrowserContext;
  /** Logged in as bob (a viewer): pages need a session unless [mon] anonymous_read. */
  let reader: BrowserContext;
  const problems: string[] = [];

  const watch = (page: Page) => {
    page.on('pageerror', (e) => problems.push(`page error on ${page.url()}: ${e.message}`));
    page.on('console', (m) => {
      // refusals (401 wrong password, 403 forged POST) are expected in some tests; anything else is a problem
      if (m.type() === 'error' && !/status of 40[13]/.test(m.text())) problems.push(`console error on ${page.url()}: ${m.text()}`);
    });
    page.on('dialog', (d) => {
      if (d.type() === 'confirm') void d.accept();
      else {
        problems.push(`unexpected ${d.type()} dialog: ${d.message()}`);
        void d.dismiss();
      }
    });
    return page;
  };
  const open = async (ctx: BrowserContext, url: string) => {
    const page = watch(await ctx.newPage());
    const res = await page.goto(env.web.url + url);
    expect([url, res?.status()]).toEqual([url, 200]);
    return page;
  };
  const shot = (page: Page, name: string) => page.screenshot({ path: path.join(ARTIFACTS, `${name}.png`), fullPage: true });
  const text = async (page: Page, selector: string) => ((await page.textContent(selector)) ?? '').trim();
  const login = async (ctx: BrowserContext, user: 'alice' | 'bob') => {
    const page = await open(ctx, '/login');
    await page.fill('input[name=username]', user);
    await page.fill('input[name=password]', PASSWORDS[user]);
    await Promise.all([page.waitForURL(`${env.web.url}/`), page.click('#login-submit')]);
    expect(await text(page, '.flash-ok')).toBe(`Logged in as ${user} (${user === 'alice' ? 'manager' : 'viewer'}).`);
    return page;
  };

  beforeAll(async () => {
    fs.mkdirSync(ARTIFACTS, { recursive: true });
    env = await startWebEnv('sqlite', { pollSeconds: 1, cacheMs: 0 });
    browser = await chromium.launch({ executablePath: CHROMIUM, args: ARGS });
    anon = await browser.newContext({ viewport: { width: 1400, height: 900 } });
    reader = await browser.newContext({ viewport: { width: 1400, height: 900 } });
    await (await login(reader, 'bob')).close();
  });
  afterAll(async () => {
    await browser?.close();
    await env?.close();
  });
  afterEach(() => {
    const seen = problems.splice(0);
    expect(seen).toEqual([]);
  });

  test('general view: datasets with filters and search, grids; hostile text stays text', async () => {
    const page = await open(reader, '/');
    expect(await page.locator('#datasets tbody tr').count()).toBe(3);
    const sim = page.locator(`#datasets tr[data-dataset="${env.seed.sim.id}"]`);
    expect(await sim.locator('td.desc').textContent()).toBe(HOSTILE);
    expect((await sim.locator('td').allTextContents()).slice(7, 10)).toEqual(['10', '4', '1']); // jobs, OK, failed
    // the progress bar is drawn by our script (no inline styles): 4 of 10 jobs OK
    expect(await sim.locator('.seg-OK').evaluate((el) => (el as HTMLElement).style.width)).toBe('40%');
    expect(await page.locator('#grid-list tbody tr').count()).toBe(2);
    await shot(page, 'general');
    await page.selectOption('select[name=type]', 'offline');
    await Promise.all([page.waitForURL(/type=offline/), page.click('#filters button[type=submit]')]);
    expect(await page.locator('#datasets tbody tr').count()).toBe(1);
    await page.fill('input[name=q]', '<script>');
    await page.selectOption('select[name=type]', '');
    await Promise.all([page.waitForURL(/q=/), page.click('#filters button[type=submit]')]);
    expect(await page.locator('#datasets tbody tr td.desc').allTextContents()).toEqual([HOSTILE]);
    await page.close();
  });

  test('grid view: plugin, heartbeat, queued/running, datasets, black-holed nodes', async () => {
    const page = await open(reader, '/grids/grid-a');
    expect(await text(page, '#grid-plugin')).toBe('slurm');
    expect([await text(page, '#grid-queued'), await text(page, '#grid-running'), await text(page, '#grid-blackholed')]).toEqual(['0', '1', '1']);
    expect(await text(page, '#grid-heartbeat')).toBe(new Date(env.seed.now - 30_000).toISOString().slice(0, 19).replace('T', ' '));
    expect(await page.locator('#blackholed-nodes tbody td:first-child').allTextContents()).toEqual(['node13.a']);
    expect(await page.locator('#grid-datasets tbody tr').count()).toBe(1);
    await shot(page, 'grid');
    await page.close();
  });

  test('dataset view: task and job counts, errors, statistics, sites and charts', async () => {
    const page = await open(reader, `/datasets/${env.seed.sim.id}`);
    expect(await text(page, '#description')).toBe(HOSTILE);
    const want = expectedTaskCounts(env.seed);
    for (const s of TASK_STATUSES) expect([s, await text(page, `#tasks-${s}`)]).toEqual([s, String(want[s] ?? 0)]);
    expect(await text(page, '#tasks-total')).toBe('20');
    const jobs = expectedJobCounts(env.seed);
    for (const s of ['OK', 'PROCESSING', 'FAILED', 'SUSPENDED']) expect([s, await text(page, `#jobs-${s}`)]).toEqual([s, String(jobs[s] ?? 0)]);
    expect(await page.locator('#errors tbody tr td.num').allTextContents()).toEqual(['2', '1']);
    const energy = await page.locator('#stats tr[data-stat="energy"] td').allTextContents();
    expect(energy.slice(0, 4)).toEqual(['energy', '4', '10', '2.5']);
    expect(energy.slice(5)).toEqual(['1', '4']);
    expect(['1.11803', '1.29099']).toContain(energy[4]); // population or sample stddev of 1,2,3,4 (as core reports it)
    const sites = expectedSites(env.seed);
    for (const grid of ['grid-a', 'grid-b'] as const) {
      const total = Object.values(sites.get(grid)!).reduce((a, b) => a + b, 0);
      expect(await page.locator(`#sites tr[data-site="${grid}"] td`).nth(1).textContent()).toBe(String(total));
    }
    expect(await page.locator('#job-list tbody tr').count()).toBe(10);
    // charts: drawn by Chart.js from /api/datasets/ID/series
    await page.waitForFunction(() => ((window as unknown as { firnWeb?: { seriesLoaded?: number } }).firnWeb?.seriesLoaded ?? 0) >= 1);
    const sums = await page.evaluate(() => {
      const C = (window as unknown as { Chart: { getChart(id: string): { data: { datasets: Array<{ label: string; data: number[] }> } } } }).Chart;
      const sum = (id: string, i: number) => C.getChart(id).data.datasets[i]!.data.reduce((a, b) => a + b, 0);
      return { completed: sum('chart-completion', 0), errors: sum('chart-errors', 0), reasons: sum('chart-reasons', 0), states: C.getChart('chart-states').data.datasets.map((d) => d.label) };
    });
    expect(sums.completed).toBe(12);
    expect(sums.errors).toBe(3);
    expect(sums.reasons).toBe(3);
    expect(sums.states).toEqual(expect.arrayContaining(['OK', 'WAITING', 'IDLE', 'SUSPENDED']));
    await shot(page, 'dataset');
    await page.close();
  });

  test('live updates: counts change without a reload when a daemon moves a task', async () => {
    const page = await open(reader, `/datasets/${env.seed.sim.id}`);
    expect([await text(page, '#tasks-QUEUED'), await text(page, '#tasks-PROCESSING')]).toEqual(['1', '1']);
    const navigations: string[] = [];
    page.on('framenavigated', (f) => navigations.push(f.url()));
    // what firn-mon does on pilot.start
    await transition(env.t.db, { taskIds: [env.seed.sim.taskIds[5]![1]!], from: 'QUEUED', to: 'PROCESSING', by: 'mon', actor: 'mon' });
    await page.waitForFunction(() => document.getElementById('tasks-PROCESSING')?.textContent === '2', undefined, { timeout: 15_000 });
    expect(await text(page, '#tasks-QUEUED')).toBe('0');
    expect(navigations).toEqual([]);
    expect(await text(page, '#live-status')).toMatch(/^live · updated/);
    await page.close();
  });

  test('job view: tasks with host, resources, statistics, logs, files with checksums, history', async () => {
    const page = await open(reader, `/datasets/${env.seed.sim.id}/jobs/0`);
    expect(await page.locator('#tasks tbody tr').count()).toBe(2);
    expect(await page.locator('#tasks tbody tr td:nth-child(4)').allTextContents()).toEqual(['node01.a', 'node01.a']);
    expect(await page.locator('#task-0 .task-stats tbody tr').allTextContents()).toEqual(['energy1', 'events1,000']);
    expect(await page.locator('#task-0 .resources').textContent()).toContain('cpu 12.5 s');
    await page.click('#task-0 details[data-log="stdout"] summary');
    expect(await page.locator('#task-0 details[data-log="stdout"] pre').textContent()).toContain(HOSTILE);
    expect(await page.locator('#files tbody tr').count()).toBe(3);
    const hostileFile = page.locator(`#files tr[data-file="${HOSTILE_FILE}"]`);
    expect(await hostileFile.locator('td').nth(1).textContent()).toBe(HOSTILE_FILE);
    expect(await hostileFile.locator('td.hash').textContent()).toMatch(/^[0-9a-f]{64}$/);
    expect(await page.locator('#history tbody tr').count()).toBe(15);
    await shot(page, 'job');
    // the long log is one link away, whole
    await Promise.all([page.waitForURL(/\/logs\/stdout$/), page.click('#task-1 details[data-log="stdout"] summary a')]);
    expect((await page.textContent('body'))?.trim().endsWith('END-OF-LONG-LOG')).toBe(true);
    await page.close();
  });

  test('calendar, day and run views for offline data', async () => {
    const page = await open(reader, '/calendar');
    expect(await text(page, '#month')).toBe('2024-06');
    const day = page.locator('td[data-date="2024-06-03"]');
    expect(await day.locator('[data-count="OK"]').textContent()).toBe('3 ok');
    expect(await day.locator('[data-count="FAILED"]').textContent()).toBe('1 failed');
    expect(await page.locator('td[data-date="2024-06-05"] [data-count="PROCESSING"]').textContent()).toBe('1 proc');
    await shot(page, 'calendar');
    await Promise.all([page.waitForURL(/\/days\/2024-06-03$/), day.locator('a').click()]);
    expect(await page.locator('#runs tbody tr').count()).toBe(2);
    expect(await page.locator('#runs tr[data-run="130002"] td').nth(2).textContent()).toBe('FAILED');
    await shot(page, 'day');
    await Promise.all([page.waitForURL(/\/runs\/\d+$/), page.locator('#runs tr[data-run="130002"] td a').first().click()]);
    expect(await page.locator('#run-jobs tbody tr').allTextContents()).toEqual(['2OK1', '3FAILED1']);
    await shot(page, 'run');
    await page.close();
  });

  test('a manager logs in and suspends her dataset from the page: the database changes', async () => {
    const ctx = await browser.newContext({ viewport: { width: 1400, height: 900 } });
    const id = env.seed.sim.id;
    try {
      const home = await login(ctx, 'alice');
      await shot(home, 'login-done');
      const page = await open(ctx, `/datasets/${id}`);
      expect(await page.locator('#controls').isVisible()).toBe(true);
      const suspendable = Number(((await env.t.db('task').count({ n: '*' }).where({ dataset_id: id }).whereNotIn('status', ['OK', 'FAILED', 'SUSPENDED']).first()) as { n: number }).n);
      const before = Number(((await env.t.db('task').count({ n: '*' }).where({ dataset_id: id, status: 'SUSPENDED' }).first()) as { n: number }).n);
      await Promise.all([page.waitForURL(`${env.web.url}/datasets/${id}`), page.click('#btn-suspend')]);
      expect(await text(page, '.flash-ok')).toBe(`Dataset ${id} suspended: ${suspendable} tasks changed.`);
      const ds = (await env.t.db('dataset').select('status').where({ id }).first()) as { status: string };
      expect(ds.status).toBe('SUSPENDED');
      expect(Number(((await env.t.db('task').count({ n: '*' }).where({ dataset_id: id, status: 'SUSPENDED' }).first()) as { n: number }).n)).toBe(before + suspendable);
      const h = (await env.t.db('history').where({ entity: 'dataset', entity_id: id, action: 'suspend' }).first()) as { actor: string };
      expect(h.actor).toBe('user:alice');
      expect(await text(page, '#tasks-SUSPENDED')).toBe(String(before + suspendable));
      expect(await text(page, 'h1 .status')).toBe('SUSPENDED');
      await shot(page, 'dataset-suspended');
    } finally {
      await ctx.close();
    }
  });

  test('a viewer sees no controls, and a forged control POST is refused', async () => {
    const ctx = await browser.newContext({ viewport: { width: 1400, height: 900 } });
    const id = env.seed.sim.id;
    try {
      await login(ctx, 'bob');
      const page = await open(ctx, `/datasets/${id}`);
      expect(await page.locator('#controls').count()).toBe(0);
      expect(await page.locator('form[action*="/suspend"], form[action*="/priority"], form[action*="/reset"]').count()).toBe(0);
      expect(await text(page, '#no-controls')).toContain('viewers cannot change datasets');
      await shot(page, 'dataset-viewer');
      const before = (await env.t.db('dataset').select('status', 'priority').where({ id }).first()) as { status: string; priority: number };
      const status = await page.evaluate(async (datasetId) => {
        const csrf = (document.querySelector('input[name=csrf]') as HTMLInputElement).value;
        const r = await fetch(`/datasets/${datasetId}/priority`, { method: 'POST', body: new URLSearchParams({ csrf, priority: '1000' }), redirect: 'manual' });
        return r.status;
      }, id);
      expect(status).toBe(403);
      expect(await env.t.db('dataset').select('status', 'priority').where({ id }).first()).toEqual(before);
      const job = await open(ctx, `/datasets/${id}/jobs/6`);
      expect(await job.locator('#btn-job-reset').count()).toBe(0);
    } finally {
      await ctx.close();
    }
  });

  test('an anonymous visitor is sent to the login page and, logged in, back to the page asked for', async () => {
    const ctx = await browser.newContext({ viewport: { width: 1400, height: 900 } });
    try {
      const page = watch(await ctx.newPage());
      const target = `/datasets/${env.seed.sim.id}/jobs/0`;
      await page.goto(env.web.url + target);
      expect(page.url()).toBe(`${env.web.url}/login?next=${encodeURIComponent(target)}`);
      expect(await page.locator('#datasets, #tasks').count()).toBe(0);
      await page.fill('input[name=username]', 'bob');
      await page.fill('input[name=password]', PASSWORDS.bob);
      await Promise.all([page.waitForURL(env.web.url + target), page.click('#login-submit')]);
      expect(await text(page, '.flash-ok')).toBe('Logged in as bob (viewer).');
    } finally {
      await ctx.close();
    }
  });

  test('the login page', async () => {
    const page = await open(anon, `/login?next=${encodeURIComponent(`/datasets/${env.seed.sim.id}`)}`);
    await page.fill('input[name=username]', 'alice');
    await page.fill('input[name=password]', 'not-her-password');
    await page.click('#login-submit');
    expect(await text(page, '#login-error')).toBe('invalid user name or password');
    await shot(page, 'login');
    await page.close();
  });
});
