import fs from 'node:fs';
import path from 'node:path';
import { PassThrough } from 'node:stream';
import { createUser, parseDbUrl, transition } from '@firn/core';
import { main } from '@firn/client';
import { startTray, type Tray } from '@firn/tray';
import { createTestDb, type TestDb } from '../helpers/db';
import { ROOT, exampleConfig, makeCert, tmpDir, trayConfig } from './helpers';

interface Run { code: number; out: string; err: string }

describe('the firn CLI against firn-tray (HTTPS, SQLite)', () => {
  let t: TestDb;
  let tray: Tray;
  let dir: string;
  let cert: { cert: string; key: string };
  let adminEnv: Record<string, string>;
  let mgrEnv: Record<string, string>;
  const example = (n: string) => path.join(ROOT, 'examples', 'datasets', `${n}.json`);

  /** Run `firn …` in-process with its own streams; `input` is stdin. */
  const firn = async (env: Record<string, string>, argv: string[], input = '', onOut?: (text: string) => void): Promise<Run> => {
    const stdin = new PassThrough();
    stdin.end(input);
    const stdout = new PassThrough();
    const stderr = new PassThrough();
    let out = '';
    let err = '';
    stdout.on('data', (d: Buffer) => {
      out += d.toString();
      onOut?.(out);
    });
    stderr.on('data', (d: Buffer) => (err += d.toString()));
    const code = await main(argv, { stdin, stdout, stderr, env });
    return { code, out, err };
  };

  beforeAll(async () => {
    t = await createTestDb('sqlite');
    dir = tmpDir();
    cert = makeCert(dir);
    await createUser(t.db, { username: 'admin', role: 'admin', password: 'admin-password' });
    tray = await startTray({ config: trayConfig(t.url, {}, cert), db: t.db });
    adminEnv = { FIRN_CONFIG_DIR: path.join(dir, 'admin'), FIRN_CA: cert.cert, HOME: dir };
    mgrEnv = { XDG_CONFIG_HOME: path.join(dir, 'xdg'), FIRN_CA: cert.cert, HOME: dir };
  });
  afterAll(async () => {
    await tray?.close();
    await t?.drop();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it('refuses commands before login with exit code 3 and a hint', async () => {
    const r = await firn(adminEnv, ['--url', tray.url, 'ls']);
    expect(r.code).toBe(3);
    expect(r.err).toMatch(/authentication required[\s\S]*firn login/);
  });

  it('login keeps the URL and token in a 0600 file; a wrong password exits 3', async () => {
    const bad = await firn(adminEnv, ['login', tray.url, '-u', 'admin'], 'not-the-password\n');
    expect(bad.code).toBe(3);
    const r = await firn(adminEnv, ['login', tray.url, '-u', 'admin'], 'admin-password\n');
    expect(r.code).toBe(0);
    expect(r.out).toMatch(/logged in to https:\/\/127\.0\.0\.1:\d+ as admin \(admin\)/);
    const file = path.join(dir, 'admin', 'client.json');
    expect(fs.statSync(file).mode & 0o777).toBe(0o600);
    const saved = JSON.parse(fs.readFileSync(file, 'utf8')) as { url: string; token: string };
    expect(saved.url).toBe(tray.url);
    expect(r.out).not.toContain(saved.token);
    expect((await firn(adminEnv, ['whoami'])).out).toMatch(/^admin \(admin, local\)/);
  });

  it('user add (password on stdin), ls, role', async () => {
    const add = await firn(adminEnv, ['user', 'add', 'mgr', '--role', 'manager'], 'manager-password\n');
    expect([add.code, add.out.trim()]).toEqual([0, 'user mgr created (manager, local)']);
    expect((await firn(adminEnv, ['user', 'add', 'mgr', '--role', 'manager'], 'manager-password\n')).code).toBe(5);
    expect((await firn(adminEnv, ['user', 'add', 'x', '--role', 'king'], 'pw\n')).code).toBe(2);
    const ls = await firn(adminEnv, ['user', 'ls']);
    expect(ls.out).toMatch(/^USER +ROLE +SOURCE/);
    expect(ls.out).toMatch(/\nmgr +manager +local/);
    expect((await firn(adminEnv, ['user', 'role', 'mgr', 'viewer'])).out.trim()).toBe('user mgr is now viewer');
    expect((await firn(adminEnv, ['--json', 'user', 'role', 'mgr', 'manager'])).out).toMatch(/"role": "manager"/);
    // XDG_CONFIG_HOME is honoured when FIRN_CONFIG_DIR is not set
    expect((await firn(mgrEnv, ['login', tray.url, '--username', 'mgr'], 'manager-password\n')).code).toBe(0);
    expect(fs.statSync(path.join(dir, 'xdg', 'firn', 'client.json')).mode & 0o777).toBe(0o600);
  });

  it('submit, ls, status (bars and --json), config', async () => {
    const s = await firn(mgrEnv, ['submit', example('dag-gpu'), '--jobs', '3', '--priority', '2', '-d', 'dag via cli']);
    expect([s.code, s.out.trim()]).toEqual([0, 'submitted dataset 1: 3 jobs, 9 tasks; grids: (none)\nwarning: /params/grids: no grid exists: nothing runs until one is added (grid.add) and assigned (dataset.add_grid)']);
    const j = await firn(mgrEnv, ['--json', 'submit', example('simulation'), '--jobs', '2']);
    expect(JSON.parse(j.out)).toEqual({ dataset_id: 2, jobs: 2, tasks: 2, grids: [], warnings: [{ path: '/params/grids', message: expect.stringContaining('no grid exists') }] });
    const ls = await firn(mgrEnv, ['ls']);
    expect(ls.out.split('\n')[0]).toMatch(/^ID +STATUS +PRIO +TYPE +JOBS/);
    expect(ls.out).toMatch(/\n2 +PROCESSING +0 +simulation +2 +1 +mgr/);
    expect(ls.out).toMatch(/\n1 +PROCESSING +2 +simulation +3 +3 +mgr .* dag via cli/);
    expect((await firn(mgrEnv, ['--json', 'ls', '--status', 'SUSPENDED'])).out.trim()).toBe('[]');
    const st = await firn(mgrEnv, ['status', '1']);
    expect(st.out).toMatch(/^dataset 1: PROCESSING\ntasks \(9\)\n/);
    expect(st.out).toMatch(/WAITING +█+░+ 3\/9  33\.3%/);
    expect(st.out).toMatch(/IDLE +█+░+ 6\/9  66\.7%/);
    expect(st.out).toMatch(/jobs \(3\)\n  PROCESSING +█+ 3\/3 100\.0%/);
    const sj = JSON.parse((await firn(mgrEnv, ['status', '1', '--json'])).out) as { tasks: Record<string, number> };
    expect(Object.values(sj.tasks).reduce((a, b) => a + b, 0)).toBe(9);
    const cfg = await firn(mgrEnv, ['config', '1']);
    expect(JSON.parse(cfg.out)).toEqual(exampleConfig('dag-gpu'));
    const file = path.join(dir, 'downloaded.json');
    expect((await firn(mgrEnv, ['config', '1', '-o', file])).code).toBe(0);
    expect(JSON.parse(fs.readFileSync(file, 'utf8'))).toEqual(exampleConfig('dag-gpu'));
  });

  it('an invalid config exits 1 listing every path in the file', async () => {
    const bad = path.join(dir, 'bad.json');
    fs.writeFileSync(bad, JSON.stringify({ version: 1, tasks: [{ name: 'a', depends: ['zz'], trays: [] }] }));
    const r = await firn(mgrEnv, ['submit', bad]);
    expect(r.code).toBe(1);
    expect(r.err).toMatch(/bad\.json: the dataset config is invalid/);
    expect(r.err).toMatch(/^ {2}\/tasks\/0\/trays: /m);
    expect(r.err).toMatch(/^ {2}\/tasks\/0\/depends\/0: /m);
    fs.writeFileSync(bad, '{ not json');
    expect((await firn(mgrEnv, ['submit', bad])).err).toMatch(/not valid JSON/);
  });

  it('suspend | resume | reset DATASET[.JOB], priority; exit codes 3, 4 and 5', async () => {
    expect((await firn(mgrEnv, ['suspend', '1', '--reason', 'hold on'])).out.trim()).toBe('dataset 1 suspended: 9 tasks; now SUSPENDED');
    expect((await firn(mgrEnv, ['resume', '1'])).out.trim()).toBe('dataset 1 resumed: 9 tasks (3 waiting, 6 idle); now PROCESSING');
    expect((await firn(mgrEnv, ['suspend', '1.2'])).out.trim()).toBe('job 1.2 suspended: 3 tasks; now SUSPENDED');
    const reset = await firn(mgrEnv, ['reset', '1.2', '--memory', '4000', '--time', '90']);
    expect(reset.out.trim()).toBe('job 1.2 reset: 3 tasks (1 waiting, 2 idle); now PROCESSING');
    const reqs = await t.db('task as t').join('job as j', 'j.id', 't.job_id').where({ 't.dataset_id': 1, 'j.job_index': 2 }).select('t.req_memory', 't.req_time');
    expect(reqs.every((r) => r.req_memory === 4000 && r.req_time === 90)).toBe(true);
    // multipliers and task selection are dataset-wide (test/tray/cli-fixes.test.ts)
    expect((await firn(mgrEnv, ['reset', '1.2', '--memory', 'x2'])).code).toBe(2);
    expect((await firn(mgrEnv, ['reset', '1.2', '--failed'])).code).toBe(2);
    expect((await firn(mgrEnv, ['suspend', '1.77'])).code).toBe(4);
    expect((await firn(mgrEnv, ['suspend', '99'])).code).toBe(4);
    expect((await firn(mgrEnv, ['priority', '1', '7'])).out.trim()).toBe('dataset 1 priority 7');
    // the admin's dataset is not the manager's
    const adminDs = JSON.parse((await firn(adminEnv, ['--json', 'submit', example('simulation'), '-n', '1'])).out) as { dataset_id: number };
    expect((await firn(mgrEnv, ['suspend', String(adminDs.dataset_id)])).code).toBe(3);
    expect((await firn(adminEnv, ['obsolete', String(adminDs.dataset_id)])).out).toMatch(/made obsolete: 1 tasks; now OBSOLETE/);
    expect((await firn(adminEnv, ['resume', String(adminDs.dataset_id)])).code).toBe(5);
  });

  it('status --watch refreshes until the dataset stops processing', async () => {
    let suspended = false;
    const r = await firn(mgrEnv, ['status', '2', '--watch', '--interval', '1'], '', (out) => {
      if (!suspended && out.includes('dataset 2: PROCESSING')) {
        suspended = true;
        void firn(mgrEnv, ['suspend', '2']);
      }
    });
    expect(r.code).toBe(1); // stopped, but not COMPLETE
    expect(r.out).toMatch(/dataset 2: PROCESSING[\s\S]*dataset 2: SUSPENDED/);
  });

  it('grid add | ls | disable | enable | rm, stats, logs, jobs, job', async () => {
    expect((await firn(adminEnv, ['grid', 'add', 'site-a', '--plugin', 'slurm', '--cpu', '4', '--memory', '8000', '--site', 'a'])).out.trim())
      .toBe('grid site-a added (slurm, enabled) cpu=4 memory=8000 site=a');
    expect((await firn(mgrEnv, ['grid', 'add', 'site-b', '--plugin', 'local'])).code).toBe(3);
    expect((await firn(adminEnv, ['grid', 'add', 'site-c', '--plugin', 'nope'])).code).toBe(2);
    expect((await firn(mgrEnv, ['grid', 'ls'])).out).toMatch(/^NAME +PLUGIN +STATUS[\s\S]*\nsite-a +slurm +enabled/);
    expect((await firn(adminEnv, ['grid', 'disable', 'site-a'])).out.trim()).toBe('grid site-a disabled');
    expect((await firn(adminEnv, ['grid', 'enable', 'site-a'])).out.trim()).toBe('grid site-a enabled');
    expect((await firn(mgrEnv, ['add-grid', '1', 'site-a'])).out.trim()).toBe('dataset 1 grids: site-a');
    expect((await firn(adminEnv, ['grid', 'rm', 'site-a'])).out.trim()).toBe('grid site-a removed');
    expect((await firn(adminEnv, ['grid', 'rm', 'site-a'])).code).toBe(4);

    await t.db('dataset_stat').insert({ dataset_id: 1, name: 'events', n: 3, sum: 6, sum_sq: 14, min: 1, max: 3 });
    const stats = await firn(mgrEnv, ['stats', '1']);
    expect(stats.out).toMatch(/^NAME +N +SUM +MEAN +STDDEV +MIN +MAX\nevents +3 +6 +2 +0\.816497 +1 +3\n$/);
    const task = await t.db('task').where({ dataset_id: 1, name: 'generate' }).orderBy('id').first();
    await t.db('task_log').insert({ task_id: task.id, name: 'stdout', data: 'generated 100 events', updated_at: Date.now() });
    expect((await firn(mgrEnv, ['logs', String(task.id)])).out).toMatch(/^==> stdout \(.+\) <==\ngenerated 100 events\n$/);
    await transition(t.db, { taskIds: [task.id], from: 'WAITING', to: 'QUEUEING', by: 'queue', actor: 'queue' });
    expect((await firn(mgrEnv, ['jobs', '1'])).out).toMatch(/^JOB +STATUS +RUN +CHANGED\n1\.0 +PROCESSING/);
    expect((await firn(mgrEnv, ['job', '1.0'])).out).toMatch(/^job 1\.0: PROCESSING\nTASK +NAME +STATUS[\s\S]*generate +QUEUEING/);
    expect((await firn(mgrEnv, ['task', String(task.id)])).out).toMatch(/status: QUEUEING/);
  });

  it('validate and expand work offline', async () => {
    const v = await firn({}, ['validate', example('dag-gpu')]);
    expect([v.code, v.out.trim()]).toEqual([0, 'valid: 3 tasks, 4 trays, 4 modules']);
    const bad = path.join(dir, 'invalid.json');
    fs.writeFileSync(bad, JSON.stringify({ version: 1, tasks: [{ name: 'a', trays: [{ name: 't', modules: [{ name: 'm', class: 'x', src: 'http://h/m.py' }] }] }, { name: 'a', trays: [] }] }));
    const iv = await firn({}, ['validate', bad]);
    expect(iv.code).toBe(1);
    expect(iv.err).toMatch(/invalid \(\d+ problems\)/);
    expect(iv.err).toMatch(/^ {2}\/tasks\/0\/trays\/0\/modules\/0\/src: /m);
    expect(iv.err).toMatch(/^ {2}\/tasks\/1\/trays: /m);
    for (const name of ['simulation', 'dag-gpu', 'offline']) expect((await firn({}, ['validate', example(name)])).code).toBe(0);
    // issue 2 acceptance: a cycle, an unknown dependency and a wrongly typed requirement, all named
    const three = path.join(dir, 'three.json');
    const task = (name: string, depends: string[], requirements: Record<string, unknown> = {}) => ({
      name, depends, requirements, trays: [{ name: 't', modules: [{ name: 'm', class: 'shell', parameters: { command: 'true' } }] }],
    });
    fs.writeFileSync(three, JSON.stringify({ version: 1, tasks: [task('a', ['b']), task('b', ['a']), task('c', ['nosuch'], { memory: true })] }));
    const t3 = await firn({}, ['validate', three]);
    expect(t3.code).toBe(1);
    expect(t3.err).toMatch(/dependency cycle: a → b → a|dependency cycle: b → a → b/);
    expect(t3.err).toMatch(/\/tasks\/2\/depends\/0: .*nosuch/);
    expect(t3.err).toMatch(/\/tasks\/2\/requirements\/memory: must be/);
    const e = await firn({}, ['expand', example('dag-gpu'), '--job', '2', '--dataset', '5', '--jobs-total', '10']);
    expect(e.code).toBe(0);
    const x = JSON.parse(e.out) as { steering: { parameters: Record<string, string> }; tasks: Array<{ requirements: { memory: string }; data: Array<{ remote: string }>; trays: Array<{ modules: Array<{ parameters: { command: string } }> }> }> };
    expect(x.steering.parameters.jobdir).toBe('results/5/2');
    expect(x.tasks[1]!.requirements.memory).toBe('1000');
    expect(x.tasks[2]!.data[1]!.remote).toBe('results/5/det_000002.txt');
    expect(x.tasks[2]!.trays[0]!.modules[0]!.parameters.command).toContain('calibration pass $(iter) of job 2');
    const off = await firn({}, ['expand', example('offline'), '--job', '0', '--arg', 'input=file:///d/run_1.txt']);
    expect((JSON.parse(off.out) as { tasks: Array<{ data: Array<{ remote: string }> }> }).tasks[0]!.data[0]!.remote).toBe('file:///d/run_1.txt');
    expect((await firn({}, ['expand', example('dag-gpu')])).code).toBe(2);
  });

  it('db migrate and db status (--db URL or --config FILE)', async () => {
    const file = path.join(dir, 'fresh', 'firn.sqlite');
    const url = `sqlite://${file}`;
    const m = await firn({}, ['db', 'migrate', '--db', url]);
    expect(m.code).toBe(0);
    expect(m.out.trim()).toMatch(new RegExp(`^${url.replace(/[.]/g, '\\.')}: applied 0001_initial(, \\w+)*$`));
    expect((await firn({}, ['db', 'migrate', '--db', url])).out).toMatch(/schema up to date/);
    const ini = path.join(dir, 'firn.ini');
    fs.writeFileSync(ini, `[db]\nurl = ${url}\n`);
    const s = await firn({}, ['--json', 'db', 'status', '--config', ini]);
    expect(JSON.parse(s.out)).toMatchObject({ applied: expect.arrayContaining(['0001_initial']), pending: [] });
    expect(parseDbUrl(url).filename).toBe(file);
  });

  it('logout revokes the token on the server and forgets it', async () => {
    const mgrTokens = async () => Number((await t.db('token as k').join('user as u', 'u.id', 'k.user_id').where('u.username', 'mgr').count({ n: '*' }).first())!.n);
    const before = await mgrTokens();
    expect((await firn(mgrEnv, ['logout'])).out.trim()).toBe('logged out');
    expect(await mgrTokens()).toBe(before - 1);
    expect(JSON.parse(fs.readFileSync(path.join(dir, 'xdg', 'firn', 'client.json'), 'utf8'))).not.toHaveProperty('token');
    expect((await firn(mgrEnv, ['whoami'])).code).toBe(3);
  });
});
