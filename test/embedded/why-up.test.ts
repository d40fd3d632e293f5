/**
 * Issue 18 acceptance under a plain `firn up` (default settings): `firn submit dag-gpu.json`
 * without --grid gets the local grid and a warning that no grid offers gpu ≥ 1; `firn why DS`
 * names the gpu requirement and the local grid's 0; the job page in Chromium shows the same
 * reason on the photon task; after a black hole on this host (a node row, as firn-dh writes it)
 * `firn why` names the node and until when, and the queue claims nothing meanwhile.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { chromium, type Browser } from 'playwright-core';
import { openDb, type Db } from '@firn/core';
import { missingService, waitUntil } from '../helpers/db';
import { runFirn } from '../helpers/cli';

const ROOT = path.join(__dirname, '..', '..');
const FIRN = path.join(ROOT, 'packages', 'client', 'bin', 'firn');
const DAG = path.join(ROOT, 'examples', 'datasets', 'dag-gpu.json');
const SIM = path.join(ROOT, 'examples', 'datasets', 'simulation.json');
const CHROMIUM = '/usr/bin/chromium';
const ARGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage', '--no-first-run', '--disable-background-networking'];

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as net.AddressInfo).port;
      s.close(() => resolve(port));
    });
    s.on('error', reject);
  });
}

let data: string;
let child: ChildProcess | null = null;
let db: Db | null = null;
let browser: Browser | null = null;
let trayPort: number;
let monPort: number;
const env: Record<string, string> = {};

const firn = async (argv: string[], input = '') => {
  // stdout and stderr together: the reasons may come on either
  const r = await runFirn(argv, env, input);
  return { code: r.code, out: r.out + r.err };
};

beforeAll(async () => {
  for (const f of [path.join(ROOT, 'packages', 'client', 'dist', 'cli.js'), path.join(ROOT, 'packages', 'pilot', 'dist', 'firn-pilot.js')]) {
    if (!fs.existsSync(f)) throw new Error(`${f} is missing: run \`npm run build\` first`);
  }
  if (!fs.existsSync(CHROMIUM)) missingService('chromium', 'bash test/services/install-chromium.sh');
  data = fs.mkdtempSync(path.join(os.tmpdir(), 'firn-why-up-'));
  env.FIRN_CONFIG_DIR = path.join(data, 'cfg');
  env.HOME = data;
  trayPort = await freePort();
  monPort = await freePort();
});
afterAll(async () => {
  await browser?.close();
  if (child) {
    child.kill('SIGINT');
    await new Promise((r) => { child!.once('exit', r); setTimeout(r, 20_000).unref(); });
  }
  await db?.destroy();
  // pilots the local plugin started are detached (pilot workers carry no --mon): stop those working under our data directory
  for (const pid of fs.readdirSync('/proc').filter((d) => /^\d+$/.test(d))) {
    try {
      if (fs.readlinkSync(`/proc/${pid}/cwd`).startsWith(data)) process.kill(Number(pid), 'SIGKILL');
    } catch {
      /* gone, or not ours to read */
    }
  }
  fs.rmSync(data, { recursive: true, force: true });
});

test('dag-gpu under a plain firn up: a submit warning, firn why and the web name the gpu requirement; a black hole names the node', async () => {
  const stdout: string[] = [];
  child = spawn(process.execPath, [FIRN, 'up', '--data', data, '--tray-port', String(trayPort), '--mon-port', String(monPort)], {
    env: { ...process.env, FIRN_DH_SCHEDULE: '* * * * * *', FIRN_QUEUE_SCHEDULE: '* * * * * *' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  child.stdout!.on('data', (b: Buffer) => stdout.push(b.toString()));
  child.stderr!.on('data', () => undefined);
  await waitUntil(() => stdout.join('').includes('Ctrl-C to stop'), 60_000, 'firn up to start');
  const password = /password: (\S+)/.exec(stdout.join(''))![1]!;
  expect((await firn(['login', `http://127.0.0.1:${trayPort}`, '-u', 'admin'], `${password}\n`)).code).toBe(0);

  const sub = await firn(['submit', DAG, '--jobs', '3']);
  expect(sub.code).toBe(0);
  expect(sub.out).toContain('grids: local');
  expect(sub.out).toContain('warning: /tasks/1/requirements/gpu: task photon: no assigned grid offers gpu ≥ 1 (local: gpu 0)');
  const id = Number(/submitted dataset (\d+)/.exec(sub.out)![1]);

  db = openDb(`sqlite://${path.join(data, 'firn.sqlite')}`);
  // whether photon still waits for generate (IDLE) or for a grid (WAITING), the gpu requirement is named
  const NO_GPU = 'no assigned grid offers gpu ≥ 1 (local: gpu 0)';
  const why = await firn(['why', String(id)]);
  expect(why.out).toMatch(/\d WAITING: no assigned grid offers gpu ≥ 1 \(local: gpu 0\)|\d IDLE: photon: waiting for dependencies \(generate: \d not OK\); then: no assigned grid offers gpu ≥ 1 \(local: gpu 0\)/);
  expect(why.out).toContain('3 IDLE: detector: waiting for dependencies (photon: 3 not OK)');
  expect(why.out).toContain('local (local, enabled):');
  expect(why.out).toContain('gpu 0');
  const photon = (await db('task').where({ dataset_id: id, name: 'photon' }).orderBy('id').first()) as { id: number };
  expect((await firn(['why', `t${photon.id}`])).out).toContain(NO_GPU);

  // the job page in Chromium (a session is needed: firn up's web is not anonymous)
  browser = await chromium.launch({ executablePath: CHROMIUM, args: ARGS });
  const page = await (await browser.newContext()).newPage();
  const web = `http://127.0.0.1:${monPort}`;
  await page.goto(`${web}/login`);
  await page.fill('input[name=username]', 'admin');
  await page.fill('input[name=password]', password);
  await Promise.all([page.waitForURL(`${web}/`), page.click('#login-submit')]);
  const res = await page.goto(`${web}/datasets/${id}/jobs/0`);
  expect(res?.status()).toBe(200);
  expect(await page.textContent('section.task[data-task="photon"] .why-task')).toContain(NO_GPU);
  expect(await page.textContent('#why')).toContain(NO_GPU);
  await page.goto(`${web}/datasets/${id}`);
  expect(await page.textContent('#why')).toContain(NO_GPU);

  // a black hole on this host (the local grid's only worker): nothing is claimed, and firn why says so
  const grid = (await db('grid').where({ name: 'local' }).first()) as { id: number };
  const until = Date.now() + 10 * 60_000;
  // as firn-dh marks it (the node row exists once a pilot has started here)
  const hole = { grid_id: grid.id, recent: 'FFFFF', blackholed_until: until, updated_at: Date.now() };
  if (!(await db('node').where({ hostname: os.hostname() }).update(hole))) await db('node').insert({ hostname: os.hostname(), ok_count: 0, fail_count: 5, ...hole });
  const sim = await firn(['submit', SIM, '--jobs', '2']);
  expect(sim.out).not.toContain('warning');
  const simId = Number(/submitted dataset (\d+)/.exec(sim.out)![1]);
  const simWhy = await firn(['why', String(simId)]);
  expect(simWhy.out).toContain(`2 WAITING: grid local's only usable node is black-holed: ${os.hostname()} until ${new Date(until).toISOString()}`);
  await new Promise((r) => setTimeout(r, 3000)); // three queue cycles
  expect(Number(((await db('task').where({ dataset_id: simId }).whereNot('status', 'WAITING').count({ n: '*' })) as Array<{ n: number }>)[0]!.n)).toBe(0);
}, 240_000);
