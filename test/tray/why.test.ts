/**
 * Through a real firn-tray on both databases: dataset.submit warns (or, strict, refuses with
 * -32602 naming the requirement's path) when no grid can run a task, assigns [tray]
 * default_grids when no grids are given, and task.why / job.why / dataset.why (viewer) name
 * the blocking requirement and what each grid offers; `firn submit` prints the warnings and
 * `firn why` the reasons (text and --json).
 */
import fs from 'node:fs';
import path from 'node:path';
import { RpcClient, RpcError, createUser, type GroupWhy, type TaskWhy } from '@firn/core';
import { startTray, type Tray } from '@firn/tray';
import { createTestDb, DB_KINDS, type TestDb } from '../helpers/db';
import { ROOT, tmpDir, trayConfig } from './helpers';
import { runFirn } from '../helpers/cli';

const DAG = path.join(ROOT, 'examples', 'datasets', 'dag-gpu.json');

describe.each(DB_KINDS)('why and submit warnings on %s', (kind) => {
  let t: TestDb;
  let tray: Tray;
  let dir: string;
  let env: Record<string, string>;
  let manager: RpcClient;
  let viewer: RpcClient;

  const firn = async (argv: string[], input = '') => {
    return runFirn(argv, env, input);
  };
  const login = async (username: string, password: string) => {
    const c = new RpcClient(tray.url);
    c.token = (await c.call<{ token: string }>('auth.login', { username, password })).token;
    return c;
  };

  beforeAll(async () => {
    t = await createTestDb(kind);
    dir = tmpDir('firn-why-');
    env = { FIRN_CONFIG_DIR: path.join(dir, 'cfg'), HOME: dir };
    await createUser(t.db, { username: 'mgr', role: 'manager', password: 'manager-password' });
    await createUser(t.db, { username: 'viewer', role: 'viewer', password: 'viewer-password' });
    const now = Date.now();
    await t.db('grid').insert({ name: 'local', plugin: 'local', capabilities: JSON.stringify({ cpu: 4, gpu: 0, memory: 8000 }), last_seen_at: now, created_at: now });
    tray = await startTray({ config: trayConfig(t.url, { default_grids: 'local' }), db: t.db });
    manager = await login('mgr', 'manager-password');
    viewer = await login('viewer', 'viewer-password');
  });
  afterAll(async () => {
    await tray?.close();
    await t?.drop();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it('dataset.submit: default grid assigned, a warning naming the gpu requirement; strict refuses with the path', async () => {
    const config = JSON.parse(fs.readFileSync(DAG, 'utf8')) as Record<string, unknown>;
    const r = await manager.call<{ dataset_id: number; grids: string[]; warnings: Array<{ path: string; message: string }> }>('dataset.submit', { config, jobs: 2 });
    expect(r.grids).toEqual(['local']);
    expect(r.warnings).toEqual([{ path: '/params/config/tasks/1/requirements/gpu', message: 'task photon: no assigned grid offers gpu ≥ 1 (local: gpu 0)' }]);
    const grids = await t.db('dataset_grid').where({ dataset_id: r.dataset_id });
    expect(grids).toHaveLength(1);

    const before = Number(((await t.db('dataset').count({ n: '*' })) as Array<{ n: number | string }>)[0]!.n);
    const refused = await manager.call('dataset.submit', { config, jobs: 2, strict: true }).catch((e: unknown) => e);
    expect(refused).toBeInstanceOf(RpcError);
    expect((refused as RpcError).code).toBe(-32602);
    expect(JSON.stringify((refused as RpcError).data)).toContain('/params/config/tasks/1/requirements/gpu');
    expect(Number(((await t.db('dataset').count({ n: '*' })) as Array<{ n: number | string }>)[0]!.n)).toBe(before);

    // grids: [] assigns none: that is a warning too
    const none = await manager.call<{ grids: string[]; warnings: Array<{ path: string }> }>('dataset.submit', { config, jobs: 1, grids: [] });
    expect(none.grids).toEqual([]);
    expect(none.warnings.map((w) => w.path)).toEqual(['/params/grids', '/params/config/tasks/1/requirements/gpu']);
  });

  it('task.why / job.why / dataset.why (viewer) and firn why / firn submit', async () => {
    const mgrLogin = await firn(['login', tray.url, '-u', 'mgr'], 'manager-password\n');
    expect(mgrLogin.code).toBe(0);
    const sub = await firn(['submit', DAG, '--jobs', '3']);
    expect(sub.code).toBe(0);
    expect(sub.out).toContain('grids: local');
    expect(sub.out).toContain('warning: /tasks/1/requirements/gpu: task photon: no assigned grid offers gpu ≥ 1 (local: gpu 0)');
    const id = Number(/submitted dataset (\d+)/.exec(sub.out)![1]);
    const strict = await firn(['submit', DAG, '--jobs', '3', '--strict']);
    expect(strict.code).not.toBe(0);
    expect(strict.err).toContain('/tasks/1/requirements/gpu');

    // the generate tasks are done: the photon tasks wait for a GPU
    await t.db('task').where({ dataset_id: id, name: 'generate' }).update({ status: 'OK' });
    await t.db('task').where({ dataset_id: id, name: 'photon' }).update({ status: 'WAITING' });
    const photon = (await t.db('task').where({ dataset_id: id, name: 'photon' }).orderBy('id').first()) as { id: number };
    const tw = await viewer.call<TaskWhy>('task.why', { task_id: photon.id });
    expect(tw.reason).toMatchObject({ code: 'no_fit', message: 'no assigned grid offers gpu ≥ 1 (local: gpu 0)' });
    const jw = await viewer.call<GroupWhy>('job.why', { dataset_id: id, job_index: 0 });
    expect(jw.reasons.map((r) => [r.status, r.code, r.count])).toEqual([['IDLE', 'dependencies', 1], ['OK', 'ok', 1], ['WAITING', 'no_fit', 1]]);
    const dw = await viewer.call<GroupWhy>('dataset.why', { dataset_id: id });
    expect(dw.reasons.find((r) => r.code === 'no_fit')).toMatchObject({ count: 3, status: 'WAITING' });
    expect(dw.reasons.find((r) => r.code === 'dependencies')!.message).toBe('detector: waiting for dependencies (photon: 3 not OK)');
    await expect(viewer.call('task.why', { task_id: 0 })).rejects.toMatchObject({ code: -32602 });
    await expect(viewer.call('dataset.why', { dataset_id: 999999 })).rejects.toMatchObject({ code: -32004 });
    await expect(new RpcClient(tray.url).call('dataset.why', { dataset_id: id })).rejects.toMatchObject({ code: -32001 });

    const why = await firn(['why', String(id)]);
    expect(why.code).toBe(0);
    expect(why.out).toContain('3 WAITING: no assigned grid offers gpu ≥ 1 (local: gpu 0)');
    expect(why.out).toContain('local (local, enabled): cpu 4, gpu 0, memory 8000');
    const whyTaskOut = await firn(['why', `t${photon.id}`]);
    expect(whyTaskOut.out).toContain('why: no assigned grid offers gpu ≥ 1 (local: gpu 0)');
    const whyJob = await firn(['--json', 'why', `${id}.1`]);
    expect((JSON.parse(whyJob.out) as GroupWhy).reasons.find((r) => r.code === 'no_fit')!.count).toBe(1);
    expect((await firn(['why', 'x1'])).code).not.toBe(0);
  });
});
