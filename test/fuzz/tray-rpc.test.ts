/**
 * Fuzz: firn-tray's JSON-RPC surface, a real tray on a real database (MariaDB and SQLite).
 * Every method with valid params mutated one field at a time, random params, raw bodies and
 * batches, with and without a token. Every answer must be HTTP < 500, JSON-RPC, never -32603
 * and under 1 MB, and the tray must still answer `system.health` at the end.
 */
import fc from 'fast-check';
import { RpcClient, createUser } from '@firn/core';
import { startTray, type Tray } from '@firn/tray';
import { DB_KINDS, createTestDb, type TestDb } from '../helpers/db';
import { trayConfig } from '../tray/helpers';
import { FuzzReport, fuzzRuns, hostileValue, judge, mutate, post, rawBodies, request, runInputs } from './support';

const shellConfig = {
  version: 1,
  steering: { parameters: { energy: 100, name: 'x' } },
  retry: { max_failures: 3, rules: [{ match: 'memory limit', action: 'bump', bump: { memory: 1.5 } }] },
  tasks: [{
    name: 'main', requirements: { cpu: 1, memory: 100 },
    data: [{ local: 'out.dat', remote: 'out/$(job).dat', movement: 'output', type: 'permanent' }],
    trays: [{ name: 't', iterations: 1, modules: [{ name: 'm', class: 'shell', parameters: { command: 'echo $eval($(job) * 2) $steering(energy)' } }] }],
  }],
};

/** Valid params for every tray method (dataset 1 exists; grid g exists; user v exists). */
function templates(datasetId: number): Array<[string, unknown]> {
  return [
    ['auth.login', { username: 'nobody', password: 'guess' }],
    ['auth.whoami', {}],
    ['dataset.submit', { config: shellConfig, jobs: 2, description: 'fuzz', priority: 1 }],
    ['dataset.list', { status: 'PROCESSING', limit: 10 }],
    ['dataset.get', { dataset_id: datasetId }],
    ['dataset.config', { dataset_id: datasetId }],
    ['dataset.status', { dataset_id: datasetId }],
    ['dataset.stats', { dataset_id: datasetId }],
    ['dataset.suspend', { dataset_id: datasetId }],
    ['dataset.resume', { dataset_id: datasetId }],
    ['dataset.reset', { dataset_id: datasetId }],
    ['dataset.set_priority', { dataset_id: datasetId, priority: 5 }],
    ['dataset.add_grid', { dataset_id: datasetId, grid: 'g' }],
    ['dataset.remove_grid', { dataset_id: datasetId, grid: 'g' }],
    ['dataset.add_jobs', { dataset_id: datasetId, jobs: [{ args: { input: 'x' } }] }],
    ['job.list', { dataset_id: datasetId, status: 'PROCESSING' }],
    ['job.get', { dataset_id: datasetId, job_index: 0 }],
    ['job.suspend', { dataset_id: datasetId, job_index: 0 }],
    ['job.resume', { dataset_id: datasetId, job_index: 0 }],
    ['job.reset', { dataset_id: datasetId, job_index: 0, requirements: { memory: 100 } }],
    ['task.get', { task_id: 1 }],
    ['task.logs', { task_id: 1, name: 'stdout' }],
    ['grid.list', {}],
    ['grid.add', { name: 'g2', plugin: 'local', capabilities: { cpu: 4, gpu: 0, memory: 8000 } }],
    ['grid.set_status', { name: 'g', status: 'enabled' }],
    ['grid.remove', { name: 'g3' }],
    ['user.add', { username: 'fuzzuser', role: 'viewer', password: 'fuzz-password' }],
    ['user.list', {}],
    ['user.set_role', { username: 'v', role: 'viewer' }],
    ['system.health', {}],
    ['system.version', {}],
  ];
}

describe.each(DB_KINDS)('fuzz firn-tray RPC (%s)', (kind) => {
  let t: TestDb;
  let tray: Tray;
  let token: string;
  let datasetId: number;

  beforeAll(async () => {
    t = await createTestDb(kind);
    await createUser(t.db, { username: 'admin', role: 'admin', password: 'admin-password' });
    await createUser(t.db, { username: 'v', role: 'viewer', password: 'viewer-password' });
    tray = await startTray({ config: trayConfig(t.url, { body_limit: 1024 * 1024 }), db: t.db });
    const c = new RpcClient(tray.url);
    token = (await c.call<{ token: string }>('auth.login', { username: 'admin', password: 'admin-password' })).token;
    c.token = token;
    await c.call('grid.add', { name: 'g', plugin: 'local' });
    datasetId = (await c.call<{ dataset_id: number }>('dataset.submit', { config: shellConfig, jobs: 2, grids: ['g'] })).dataset_id;
    c.close();
  });
  afterAll(async () => {
    await tray?.close();
    await t?.drop();
  });

  test('every answer is JSON-RPC, < 500, never -32603, under 1 MB; the tray still answers', async () => {
    const report = new FuzzReport(`tray-rpc/${kind}`);
    const calls = templates(datasetId);
    const names = calls.map(([m]) => m);
    // a token is sent with most calls (so validation past auth is reached); auth.logout never with it
    const arb = fc.oneof(
      { weight: 6, arbitrary: fc.integer({ min: 0, max: calls.length - 1 }).chain((i) => mutate(calls[i]![1]).map((params) => ({ kind: 'call' as const, method: calls[i]![0], params }))) },
      { weight: 2, arbitrary: fc.tuple(fc.oneof(fc.constantFrom(...names, 'auth.logout', 'no.such', ''), fc.string({ maxLength: 12 })), hostileValue).map(([method, params]) => ({ kind: 'call' as const, method, params })) },
      { weight: 1, arbitrary: rawBodies.map((body) => ({ kind: 'raw' as const, body })) },
      { weight: 1, arbitrary: fc.array(fc.integer({ min: 0, max: calls.length - 1 }).chain((i) => mutate(calls[i]![1]).map((p) => [calls[i]![0], p] as const)), { minLength: 1, maxLength: 20 })
        .map((list) => ({ kind: 'raw' as const, body: `[${list.map(([m, p], i) => (i % 5 === 4 ? request(m, p, null) : request(m, p, i))).join(',')}]` })) },
    );
    await runInputs(fc.tuple(arb, fc.boolean(), fc.nat()), fuzzRuns(0.5), async ([input, anonymous, n]) => {
      const body = input.kind === 'raw' ? input.body : request(input.method, input.params, n % 7 === 0 ? null : n);
      const withToken = !anonymous && !(input.kind === 'call' && input.method === 'auth.logout') && !body.includes('auth.logout');
      await judge(report, body, () => post(tray.url, body, withToken ? { authorization: `Bearer ${token}` } : {}));
    });
    const health = await post(tray.url, request('system.health', {}));
    console.log(report.write());
    expect(health.status).toBe(200);
    expect(report.findings).toEqual([]);
  }, 600_000);
});
