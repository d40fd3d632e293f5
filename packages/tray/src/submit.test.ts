import fs from 'node:fs';
import https from 'node:https';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import {
  RpcErrorCode, ValidationError, configHash, createUser, nullLogger, sha256Hex,
  type AuthUser, type Db,
} from '@firn/core';
import { createTestDb, DB_KINDS, type TestDb } from '../../../test/helpers/db';
import { exampleConfig, makeCert, tmpDir, trayConfig } from '../../../test/tray/helpers';
import { createTrayContext } from './server';
import { addJobs, submitDataset, type SubmitOptions } from './submit';

const shellTask = (name: string, extra: Record<string, unknown> = {}) => ({
  name,
  trays: [{ name: 't', modules: [{ name: 'm', class: 'shell', parameters: { command: 'true' } }] }],
  ...extra,
});

async function expectIssues(p: Promise<unknown>): Promise<Array<{ path: string; message: string }>> {
  try {
    await p;
  } catch (e) {
    expect(e).toBeInstanceOf(ValidationError);
    expect((e as ValidationError).code).toBe(RpcErrorCode.INVALID_PARAMS);
    return (e as ValidationError).issues;
  }
  throw new Error('expected a ValidationError');
}

describe.each(DB_KINDS)('dataset submission on %s', (kind) => {
  let t: TestDb;
  let db: Db;
  let user: AuthUser;
  let opts: SubmitOptions;
  let dir: string;
  let server: https.Server;
  let base: string;
  const moduleText = '#!/usr/bin/env python3\nprint("external module")\n';

  beforeAll(async () => {
    t = await createTestDb(kind);
    db = t.db;
    const u = await createUser(db, { username: 'mgr', role: 'manager', password: 'manager-pw-1' });
    user = { id: u.id, username: u.username, role: 'manager', source: 'local' };
    dir = tmpDir();
    const tls = makeCert(dir);
    server = https.createServer({ cert: fs.readFileSync(tls.cert), key: fs.readFileSync(tls.key) }, (req, res) => {
      if (req.url === '/mod.py') res.end(moduleText);
      else if (req.url === '/big.py') res.end('x'.repeat(5000));
      else if (req.url === '/chunked.py') {
        res.write('y'.repeat(3000));
        res.write('y'.repeat(3000));
        res.end('y'.repeat(3000));
      } else if (req.url === '/moved') res.writeHead(302, { location: '/mod.py' }).end();
      else res.writeHead(404).end('no');
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    base = `https://127.0.0.1:${(server.address() as AddressInfo).port}`;
    opts = { user, fetch: { maxBytes: 4096, timeoutMs: 5000, ca: fs.readFileSync(tls.cert), allowPrivate: true }, logger: nullLogger }; // the module server is on loopback
  });
  afterAll(async () => {
    await new Promise((r) => server.close(r));
    await t.drop();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it('creates jobs × tasks (IDLE/WAITING by dependencies), the relational form and ONE history row', async () => {
    const config = exampleConfig('dag-gpu');
    const r = await submitDataset(db, { config, jobs: 5, priority: 3 }, opts);
    expect(r).toEqual({ dataset_id: expect.any(Number), jobs: 5, tasks: 15, grids: [], warnings: [{ path: '/params/grids', message: expect.stringContaining('no grid exists') }] });
    const id = r.dataset_id;
    const ds = await db('dataset').where({ id }).first();
    expect(ds).toMatchObject({ status: 'PROCESSING', type: 'simulation', priority: 3, owner_id: user.id, jobs_submitted: 5, tasks_per_job: 3 });
    expect(JSON.parse(ds.config)).toEqual(config);
    expect(ds.config_hash).toBe(configHash(config));
    expect(JSON.parse(ds.retry)).toMatchObject({ max_failures: 5, max_evictions: 10 });

    const byName = (await db('task').select('name', 'status').count({ n: '*' }).where({ dataset_id: id }).groupBy('name', 'status').orderBy('name')) as Array<{ name: string; status: string; n: number | string }>;
    expect(byName.map((x) => [x.name, x.status, Number(x.n)])).toEqual([
      ['detector', 'IDLE', 5], ['generate', 'WAITING', 5], ['photon', 'IDLE', 5],
    ]);
    // requirements: numbers straight in, "$eval(2 * 500)" evaluated
    const photon = await db('task').where({ dataset_id: id, name: 'photon' }).first();
    expect(photon).toMatchObject({ req_cpu: 1, req_gpu: 1, req_memory: 1000, req_time: 5, req_disk: 10000, req_site: null });
    const gen = await db('task').where({ dataset_id: id, name: 'generate' }).first();
    expect(gen).toMatchObject({ req_memory: 500, req_gpu: 0 });

    const jobs = await db('job').where({ dataset_id: id }).orderBy('job_index');
    expect(jobs.map((j) => j.job_index)).toEqual([0, 1, 2, 3, 4]);
    const perJob = await db('task').select('job_id').count({ n: '*' }).where({ dataset_id: id }).groupBy('job_id');
    expect(perJob.every((x) => Number(x.n) === 3)).toBe(true);

    const rels = await db('task_rel').where({ dataset_id: id }).orderBy('task_index');
    expect(rels.map((x) => x.name)).toEqual(['generate', 'photon', 'detector']);
    expect(JSON.parse(rels[1].requirements)).toEqual({ cpu: 1, gpu: 1, memory: '$eval(2 * 500)', time: 5 });
    const deps = await db('task_rel_dep as d').join('task_rel as a', 'a.id', 'd.task_rel_id').join('task_rel as b', 'b.id', 'd.depends_on_id')
      .where('a.dataset_id', id).select('a.name as task', 'b.name as dep').orderBy('a.name');
    expect(deps).toEqual([{ task: 'detector', dep: 'photon' }, { task: 'photon', dep: 'generate' }]);
    const trays = await db('tray').where({ dataset_id: id });
    expect(trays).toHaveLength(4);
    expect(trays.find((x) => x.name === 'calibrate')).toMatchObject({ iterations: 2, tray_index: 0 });
    const modules = await db('module').where({ dataset_id: id });
    expect(modules.map((m) => m.class)).toEqual(['shell', 'shell', 'shell', 'shell']);
    const cparams = await db('cparameter').where({ dataset_id: id });
    expect(cparams).toHaveLength(4);
    expect(cparams.every((c) => c.name === 'command' && typeof JSON.parse(c.value) === 'string')).toBe(true);
    const steering = await db('steering_parameter').where({ dataset_id: id }).orderBy('name');
    expect(steering.map((s) => [s.name, s.type, s.value])).toEqual([
      ['jobdir', 'string', '$steering(outdir)/$(dataset)/$(job)'], ['nevents', 'number', '100'], ['outdir', 'string', 'results'], ['seed', 'number', '7'],
    ]);

    const history = await db('history').where({ dataset_id: id });
    expect(history).toHaveLength(1);
    expect(history[0]).toMatchObject({ entity: 'dataset', entity_id: id, action: 'submit', to_status: 'PROCESSING', actor: 'user:mgr' });
  });

  it('evaluates requirement expressions for each job, and checks them', async () => {
    const config = {
      version: 1,
      steering: { parameters: { base: 1000 } },
      tasks: [shellTask('a', { requirements: { memory: '$eval($steering(base) + 10 * $(job))', time: '$eval($(jobs_total) * 2)', site: 'site-$(dataset)' } })],
    };
    const r = await submitDataset(db, { config, jobs: 4 }, opts);
    const rows = await db('task as t').join('job as j', 'j.id', 't.job_id').where('t.dataset_id', r.dataset_id).orderBy('j.job_index').select('t.req_memory', 't.req_time', 't.req_site');
    expect(rows.map((x) => x.req_memory)).toEqual([1000, 1010, 1020, 1030]);
    expect(rows.every((x) => x.req_time === 8 && x.req_site === `site-${r.dataset_id}`)).toBe(true);

    const bad = { version: 1, tasks: [shellTask('a', { requirements: { memory: '$eval(1000 - 2000 * $(job))' } })] };
    const issues = await expectIssues(submitDataset(db, { config: bad, jobs: 3 }, opts));
    expect(issues[0]!.path).toBe('/params/config/tasks/0/requirements/memory');
    expect(issues[0]!.message).toMatch(/must be > 0/);
    const notNumber = { version: 1, tasks: [shellTask('a', { requirements: { cpu: 'many' } })] };
    expect((await expectIssues(submitDataset(db, { config: notNumber, jobs: 1 }, opts)))[0]!.path).toBe('/params/config/tasks/0/requirements/cpu');
    // nothing of the refused submissions was written
    expect(Number((await db('dataset').count({ n: '*' }).first())!.n)).toBe(2);
  });

  it('refuses an invalid config with every JSON path under /params/config', async () => {
    const config = { version: 1, tasks: [shellTask('a', { depends: ['nope'] }), { name: 'b', trays: [] }], extra: 1 };
    const issues = await expectIssues(submitDataset(db, { config, jobs: 1 }, opts));
    const paths = issues.map((i) => i.path);
    expect(paths).toEqual(expect.arrayContaining(['/params/config/extra', '/params/config/tasks/1/trays', '/params/config/tasks/0/depends/0']));
    expect(issues.every((i) => i.path.startsWith('/params/config') && i.message.length > 0)).toBe(true);
  });

  it('refuses unknown grids and offline datasets with jobs, naming the field', async () => {
    await db('grid').insert({ name: 'g1', plugin: 'local', capabilities: '{}', created_at: Date.now() });
    const config = { version: 1, tasks: [shellTask('a')] };
    const issues = await expectIssues(submitDataset(db, { config, jobs: 1, grids: ['g1', 'nope'] }, opts));
    expect(issues).toEqual([{ path: '/params/grids/1', message: expect.stringMatching(/no grid named "nope"/) }]);
    const offline = await expectIssues(submitDataset(db, { config: { ...config, type: 'offline' }, jobs: 2 }, opts));
    expect(offline[0]!.path).toBe('/params/jobs');
    const r = await submitDataset(db, { config, jobs: 1, grids: ['g1'] }, opts);
    const grids = await db('dataset_grid').where({ dataset_id: r.dataset_id });
    expect(grids).toHaveLength(1);
  });

  it('fetches external modules over https at submission, with checksums; refuses http and oversize', async () => {
    const ext = (src: string) => ({
      version: 1,
      tasks: [{ name: 'a', trays: [{ name: 't', modules: [{ name: 'ext', class: 'mymod', src }, { name: 'again', class: 'mymod', src }] }] }],
    });
    const r = await submitDataset(db, { config: ext(`${base}/moved`), jobs: 1 }, opts);
    const mods = await db('module').where({ dataset_id: r.dataset_id }).orderBy('module_index');
    expect(mods).toHaveLength(2);
    for (const m of mods) {
      expect(m.src_content).toBe(moduleText);
      expect(m.src_sha256).toBe(sha256Hex(moduleText));
      expect(m.src_md5).toMatch(/^[0-9a-f]{32}$/);
    }
    const http = await expectIssues(submitDataset(db, { config: ext('http://127.0.0.1:1/mod.py'), jobs: 1 }, opts));
    expect(http.some((i) => i.path === '/params/config/tasks/0/trays/0/modules/0/src' && /https/.test(i.message))).toBe(true);
    const big = await expectIssues(submitDataset(db, { config: ext(`${base}/big.py`), jobs: 1 }, opts));
    expect(big[0]).toEqual({ path: '/params/config/tasks/0/trays/0/modules/0/src', message: expect.stringMatching(/more than the 4096 bytes allowed/) });
    // no Content-Length: the cap applies while streaming
    const streamed = await expectIssues(submitDataset(db, { config: ext(`${base}/chunked.py`), jobs: 1 }, opts));
    expect(streamed[0]!.message).toMatch(/more than the 4096 bytes allowed/);
    const missing = await expectIssues(submitDataset(db, { config: ext(`${base}/missing.py`), jobs: 1 }, opts));
    expect(missing[0]!.message).toMatch(/HTTP 404/);
    // an untrusted certificate is refused
    const untrusted = await expectIssues(submitDataset(db, { config: ext(`${base}/mod.py`), jobs: 1 }, { ...opts, fetch: { ...opts.fetch, ca: undefined } }));
    expect(untrusted[0]!.message).toMatch(/could not fetch: TLS handshake or certificate verification failed/);
  });

  it('inserts many jobs in several batches of multi-row statements', async () => {
    const config = { version: 1, tasks: [shellTask('a'), shellTask('b', { depends: ['a'] }), shellTask('c', { depends: ['a'] })] };
    const r = await submitDataset(db, { config, jobs: 3000 }, { ...opts, jobBatch: 700 });
    expect(r.tasks).toBe(9000);
    const counts = (await db('task').select('status').count({ n: '*' }).where({ dataset_id: r.dataset_id }).groupBy('status').orderBy('status')) as Array<{ status: string; n: number | string }>;
    expect(counts.map((c) => [c.status, Number(c.n)])).toEqual([['IDLE', 6000], ['WAITING', 3000]]);
    const jobs = (await db('job').select('id', 'job_index').where({ dataset_id: r.dataset_id }).orderBy('job_index')) as Array<{ id: number; job_index: number }>;
    expect(jobs.map((j) => j.job_index)).toEqual(Array.from({ length: 3000 }, (_, i) => i));
    // every job has exactly its three tasks, one per task index
    const perJob = (await db('task').select('job_id').count({ n: '*' }).countDistinct({ k: 'task_index' }).where({ dataset_id: r.dataset_id }).groupBy('job_id')) as Array<{ n: number | string; k: number | string }>;
    expect(perJob).toHaveLength(3000);
    expect(perJob.every((x) => Number(x.n) === 3 && Number(x.k) === 3)).toBe(true);
  });

  it('offline: zero jobs at submission; add_jobs adds jobs with input files and runs', async () => {
    const config = exampleConfig('offline');
    const r = await submitDataset(db, { config }, opts);
    expect(r).toMatchObject({ jobs: 0, tasks: 0 });
    expect((await db('dataset').where({ id: r.dataset_id }).first()).type).toBe('offline');
    const ctx = createTrayContext(trayConfig(t.url), db, nullLogger);
    const md5 = 'd41d8cd98f00b204e9800998ecf8427e';
    const added = await addJobs(ctx, user, {
      dataset_id: r.dataset_id,
      jobs: [
        { args: { input: 'file:///data/run_000001.txt' }, files: [{ url: 'file:///data/run_000001.txt', md5, size: 0 }], run: { number: 1, date: '2024-05-01' } },
        { args: { input: 'file:///data/run_000002.txt' }, files: [{ url: 'file:///data/run_000002.txt', md5: md5.toUpperCase(), sha256: 'A'.repeat(64) }], run: { number: 2, date: '2024-05-02' } },
      ],
    });
    expect(added).toEqual({ dataset_id: r.dataset_id, first_job_index: 0, jobs: 2, tasks: 2, files: 2 });
    const more = await addJobs(ctx, user, { dataset_id: r.dataset_id, jobs: [{ args: { input: 'x' }, files: [{ url: 'sftp://h/p/run_3.txt', md5 }], run: { number: 1, date: '2024-05-01' } }] });
    expect(more.first_job_index).toBe(2);
    const files = await db('file').where({ dataset_id: r.dataset_id }).orderBy('id');
    expect(files.map((f) => [f.kind, f.local_name, f.md5, f.state])).toEqual([
      ['input', 'run_000001.txt', md5, 'INPUT'], ['input', 'run_000002.txt', md5, 'INPUT'], ['input', 'run_3.txt', md5, 'INPUT'],
    ]);
    expect(files[1].sha256).toBe('a'.repeat(64));
    const runs = await db('run').where({ dataset_id: r.dataset_id }).orderBy('run_number');
    expect(runs.map((x) => [x.run_number, x.date])).toEqual([[1, '2024-05-01'], [2, '2024-05-02']]);
    const jobs = await db('job').where({ dataset_id: r.dataset_id }).orderBy('job_index');
    expect(jobs.map((j) => JSON.parse(j.args).input)).toEqual(['file:///data/run_000001.txt', 'file:///data/run_000002.txt', 'x']);
    expect(jobs[0].run_id).toBe(jobs[2].run_id);
    const tasks = await db('task').where({ dataset_id: r.dataset_id });
    expect(tasks.map((x) => x.status)).toEqual(['WAITING', 'WAITING', 'WAITING']);
    expect((await db('dataset').where({ id: r.dataset_id }).first()).jobs_submitted).toBe(3);
    const hist = await db('history').where({ dataset_id: r.dataset_id, action: 'add_jobs' });
    expect(hist).toHaveLength(2);
  });
});

describe('paths', () => {
  it('the examples exist', () => {
    for (const n of ['simulation', 'dag-gpu', 'offline']) expect(fs.existsSync(path.resolve(__dirname, '../../../examples/datasets', `${n}.json`))).toBe(true);
  });
});
