/**
 * Black holes seen and cleared by people, through a real firn-tray: grid.holes (viewer),
 * grid.clear_hole (admin, history row), `firn grid holes`, `firn grid clear-hole`, and
 * `firn status DS` naming a black-holed node of the dataset's grids.
 */
import fs from 'node:fs';
import path from 'node:path';
import { RpcClient, createUser } from '@firn/core';
import { startTray, type Tray } from '@firn/tray';
import { createTestDb, DB_KINDS, type TestDb } from '../helpers/db';
import { tmpDir, trayConfig } from '../tray/helpers';
import { insertDataset } from '../dh/fixtures';
import { runFirn } from '../helpers/cli';

describe.each(DB_KINDS)('grid.holes / grid.clear_hole on %s', (kind) => {
  let t: TestDb;
  let tray: Tray;
  let dir: string;
  let env: Record<string, string>;
  let datasetId: number;
  const until = Date.now() + 3600_000;

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
    dir = tmpDir('firn-holes-');
    env = { FIRN_CONFIG_DIR: path.join(dir, 'cfg'), HOME: dir };
    await createUser(t.db, { username: 'admin', role: 'admin', password: 'admin-password' });
    await createUser(t.db, { username: 'viewer', role: 'viewer', password: 'viewer-password' });
    tray = await startTray({ config: trayConfig(t.url), db: t.db });
    const now = Date.now();
    const grid = async (name: string) => {
      await t.db('grid').insert({ name, plugin: 'local', capabilities: '{}', created_at: now });
      return Number((await t.db('grid').where({ name }).first()).id);
    };
    const g1 = await grid('site-a');
    const g2 = await grid('site-b');
    const f = await insertDataset(t.db, { jobs: 1 });
    datasetId = f.datasetId;
    await t.db('dataset_grid').insert({ dataset_id: datasetId, grid_id: g1 });
    await t.db('node').insert([
      { hostname: 'wn-17', grid_id: g1, ok_count: 1, fail_count: 9, recent: '', blackholed_until: until, updated_at: now },
      { hostname: 'wn-18', grid_id: g1, ok_count: 9, fail_count: 1, recent: 'O', blackholed_until: null, updated_at: now },
      { hostname: 'wn-99', grid_id: g2, ok_count: 0, fail_count: 9, recent: '', blackholed_until: until, updated_at: now },
    ]);
    const n17 = Number((await t.db('node').where({ hostname: 'wn-17' }).first()).id);
    await t.db('history').insert({ entity: 'node', entity_id: n17, action: 'blackhole', actor: 'dh', reason: 'wn-17: 9 of its last 10 tasks failed', created_at: now - 5000 });
  });
  afterAll(async () => {
    await tray?.close();
    await t?.drop();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it('grid.holes lists black-holed nodes (viewer), per grid or per dataset; clear_hole is admin-only and writes history', async () => {
    const viewer = await login('viewer', 'viewer-password');
    const admin = await login('admin', 'admin-password');
    try {
      const all = await viewer.call<{ holes: Array<Record<string, unknown>> }>('grid.holes', {});
      expect(all.holes).toEqual([
        { grid: 'site-a', node: 'wn-17', reason: 'wn-17: 9 of its last 10 tasks failed', since: expect.any(Number), until },
        { grid: 'site-b', node: 'wn-99', reason: null, since: null, until },
      ]);
      expect((await viewer.call('grid.holes', { grid: 'site-b' })).holes.map((h: { node: string }) => h.node)).toEqual(['wn-99']);
      expect((await viewer.call('grid.holes', { dataset_id: datasetId })).holes.map((h: { node: string }) => h.node)).toEqual(['wn-17']);
      await expect(viewer.call('grid.holes', { grid: 'nowhere' })).rejects.toMatchObject({ code: -32004 });
      await expect(viewer.call('grid.holes', { grid: 'site-a', extra: 1 })).rejects.toMatchObject({ code: -32602 });
      await expect(viewer.call('grid.clear_hole', { grid: 'site-b', node: 'wn-99' })).rejects.toMatchObject({ code: -32003 });
      await expect(admin.call('grid.clear_hole', { grid: 'site-a', node: 'wn-99' })).rejects.toMatchObject({ code: -32004 });
      expect(await admin.call('grid.clear_hole', { grid: 'site-b', node: 'wn-99' })).toEqual({ grid: 'site-b', node: 'wn-99', cleared: true });
      expect(await admin.call('grid.clear_hole', { grid: 'site-b', node: 'wn-99' })).toEqual({ grid: 'site-b', node: 'wn-99', cleared: false });
      const node = await t.db('node').where({ hostname: 'wn-99' }).first();
      expect(node.blackholed_until).toBeNull();
      const h = await t.db('history').where({ entity: 'node', entity_id: node.id, action: 'clear_hole' });
      expect(h).toHaveLength(1);
      expect(h[0]).toMatchObject({ actor: 'user:admin' });
      expect((await viewer.call('grid.holes', {})).holes.map((x: { node: string }) => x.node)).toEqual(['wn-17']);
    } finally {
      viewer.close();
      admin.close();
    }
  });

  it('firn grid holes, firn status DS (names the node), firn grid clear-hole', async () => {
    expect((await firn(['login', tray.url, '-u', 'admin'], 'admin-password\n')).code).toBe(0);
    const holes = await firn(['grid', 'holes']);
    expect(holes.code).toBe(0);
    expect(holes.out).toMatch(/^GRID +NODE +SINCE +UNTIL +REASON\nsite-a +wn-17 .*9 of its last 10 tasks failed/);
    expect((await firn(['grid', 'holes', 'site-b'])).out.trim()).toBe('no black-holed nodes on grid site-b');
    const status = await firn(['status', String(datasetId)]);
    expect(status.code).toBe(0);
    expect(status.out).toMatch(/warning: site-a wn-17: black-holed until .*9 of its last 10 tasks failed/);
    const json = JSON.parse((await firn(['--json', 'status', String(datasetId)])).out) as { black_holes: Array<{ node: string }> };
    expect(json.black_holes.map((h) => h.node)).toEqual(['wn-17']);
    const cleared = await firn(['grid', 'clear-hole', 'site-a', 'wn-17']);
    expect([cleared.code, cleared.out.trim()]).toEqual([0, 'black hole wn-17 on grid site-a cleared']);
    expect((await firn(['grid', 'holes'])).out.trim()).toBe('no black-holed nodes');
    expect((await firn(['status', String(datasetId)])).out).not.toMatch(/black-holed/);
  });
});
