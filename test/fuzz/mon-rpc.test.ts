/**
 * Fuzz: firn-mon's JSON-RPC surface (what every worker node can reach, unauthenticated but for
 * the per-task passkey), a real mon on a real database (MariaDB and SQLite).
 *   - pilot.* calls with valid task ids and passkeys, one field mutated (the calls a buggy or
 *     hostile job can make for its own task), and with random params and raw bodies;
 *   - pilot file records (pilot.files, pilot.finish {files}) with hostile names, URLs, sizes
 *     and checksums: whatever mon stores must lie under site temp or a configured destination.
 * Every answer must be HTTP < 500, JSON-RPC, never -32603 and under 1 MB.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import fc from 'fast-check';
import { sha256Hex } from '@firn/core';
import { createMonServer, type MonServer } from '@firn/mon';
import { DB_KINDS, createTestDb, type TestDb } from '../helpers/db';
import { monConfig, seedDataset, type Seeded } from '../mon/fixtures';
import { FuzzReport, NASTY_STRINGS, fuzzRuns, hostileValue, judge, mutate, post, rawBodies, request, runInputs } from './support';

const md5 = 'd41d8cd98f00b204e9800998ecf8427e';
const sha256 = 'e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855';

describe.each(DB_KINDS)('fuzz firn-mon RPC and pilot file records (%s)', (kind) => {
  let t: TestDb;
  let mon: MonServer;
  let url: string;
  let seeded: Seeded;
  let dir: string;
  let siteTemp: string;
  let dest: string;

  beforeAll(async () => {
    t = await createTestDb(kind);
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'firn-fuzz-mon-'));
    siteTemp = `file://${path.join(dir, 'site-temp')}`;
    dest = `file://${path.join(dir, 'dest')}`;
    seeded = await seedDataset(t.db, 60);
    // the dataset declares two outputs: one under a destination, one relative (under site temp)
    const config = {
      version: 3,
      tasks: [{
        name: 'generate',
        data: [
          { local: 'out.dat', remote: `${dest}/out-$(job).dat`, movement: 'output', type: 'permanent' },
          { local: 'tmp.dat', remote: 'tmp/$(job).dat', movement: 'output', type: 'job_temp' },
        ],
        trays: [{ name: 'main', modules: [{ name: 'gen', class: 'shell', parameters: { command: 'true' } }] }],
      }],
    };
    const text = JSON.stringify(config);
    await t.db('dataset').where({ id: seeded.datasetId }).update({ config: text, config_hash: sha256Hex(text) });
    mon = await createMonServer({ db: t.db, config: monConfig(t.url, {}, { system: { site_temp: siteTemp }, dh: { destinations: dest } } as never), heartbeatSeconds: 7 });
    url = await mon.listen();
    // half the tasks started, so their passkeys reach every method's handler
    for (const task of seeded.tasks.slice(0, 30)) {
      const a = await post(url, request('pilot.start', { task_id: task.id, passkey: task.passkey, host: 'fuzz-node' }));
      expect(a.status).toBe(200);
    }
  });
  afterAll(async () => {
    await mon?.close();
    await t?.drop();
    if (dir) fs.rmSync(dir, { recursive: true, force: true });
  });

  test('every answer is JSON-RPC, < 500, never -32603, under 1 MB; stored files stay inside site temp and destinations', async () => {
    const report = new FuzzReport(`mon-rpc/${kind}`);
    const task = fc.integer({ min: 0, max: seeded.tasks.length - 1 }).map((i) => seeded.tasks[i]!);
    const fileRecord = (local: string) => ({ local_name: local, url: `${dest}/out-0.dat`, temp_url: `${siteTemp}/x/${local}`, size: 0, md5, sha256, type: 'permanent' });
    const templates = (id: number, passkey: string): Array<[string, unknown]> => [
      ['pilot.start', { task_id: id, passkey, host: 'fuzz-node' }],
      ['pilot.heartbeat', { task_id: id, passkey, cpu_seconds: 1, rss_mb: 10, disk_mb: 1, wall_seconds: 2, gpu_util: 0 }],
      ['pilot.stats', { task_id: id, passkey, stats: { events: 10, energy: 1.5 } }],
      ['pilot.log', { task_id: id, passkey, name: 'stdout', data: 'hello\n', append: true }],
      ['pilot.files', { task_id: id, passkey, files: [fileRecord('out.dat'), fileRecord('tmp.dat')] }],
      ['pilot.finish', { task_id: id, passkey, ok: true, resources: { cpu_seconds: 1, wall_seconds: 2 }, stats: { events: 3 }, files: [fileRecord('out.dat')], logs: [{ name: 'stderr', data: 'x' }] }],
    ];
    // file records with a hostile name or location in an otherwise valid call
    const hostileFile = fc.tuple(task, fc.constantFrom('pilot.files', 'pilot.finish'), fc.constantFrom('local_name', 'url', 'temp_url', 'type', 'size'), fc.oneof(fc.constantFrom(...NASTY_STRINGS), hostileValue))
      .map(([tk, method, field, value]) => {
        const f: Record<string, unknown> = { ...fileRecord(field === 'local_name' ? 'x' : 'out.dat'), [field]: value };
        return { method, params: { task_id: tk.id, passkey: tk.passkey, ...(method === 'pilot.finish' ? { ok: true } : {}), files: [f] } };
      });
    const arb = fc.oneof(
      { weight: 5, arbitrary: fc.tuple(task, fc.integer({ min: 0, max: 5 })).chain(([tk, i]) => { const [m, p] = templates(tk.id, tk.passkey)[i]!; return mutate(p).map((params) => ({ method: m, params })); }) },
      { weight: 1, arbitrary: fc.tuple(fc.constantFrom('pilot.start', 'pilot.heartbeat', 'pilot.stats', 'pilot.log', 'pilot.files', 'pilot.finish', 'no.such'), hostileValue).map(([method, params]) => ({ method, params })) },
      { weight: 1, arbitrary: rawBodies.map((body) => ({ method: '', params: undefined, body })) },
    );
    const send = (r: FuzzReport) => async ([input, n]: [{ method: string; params: unknown; body?: string }, number]) => {
      const body = typeof input.body === 'string' ? input.body : request(input.method, input.params, n % 9 === 0 ? null : n);
      await judge(r, body, () => post(url, body));
    };
    await runInputs(fc.tuple(arb, fc.nat()), fuzzRuns(0.5), send(report));
    // the pilot file records surface on its own: a hostile name or location in an otherwise valid call
    const records = new FuzzReport(`pilot-file-records/${kind}`);
    await runInputs(fc.tuple(hostileFile, fc.nat()), fuzzRuns(0.5), send(records));
    console.log(records.write());
    expect(records.findings).toEqual([]);
    // an honest heartbeat still goes through
    const honest = seeded.tasks.slice(30).find(() => true)!;
    await post(url, request('pilot.start', { task_id: honest.id, passkey: honest.passkey, host: 'fuzz-node' }));
    const hb = await post(url, request('pilot.heartbeat', { task_id: honest.id, passkey: honest.passkey, cpu_seconds: 1 }));
    expect(JSON.parse(hb.body)).toMatchObject({ result: expect.anything() });
    // what mon stored: only the locations it derived itself
    const rows: Array<{ url: string; temp_url: string | null }> = await t.db('file').where({ kind: 'output' }).select('url', 'temp_url');
    const inside = (u: string | null) => u === null || u.startsWith(`${siteTemp}/`) || u.startsWith(`${dest}/`);
    const outside = rows.filter((r) => !inside(r.url) || !inside(r.temp_url));
    for (const r of outside.slice(0, 5)) report.finding('crashes', `(trust boundary) stored a file row outside site temp and destinations: ${JSON.stringify(r)}`, r);
    console.log(report.write());
    expect(report.findings).toEqual([]);
  }, 600_000);
});
