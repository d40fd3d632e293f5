/**
 * A one-host `firn up` (the embedded suite in-process: SQLite, local plugin, real pilots): a
 * dataset with a user bug (odd jobs `exit 3`) fails over and over on the only host. That is
 * the dataset's fault, not the host's: the host is never black-holed, and a second, healthy
 * dataset submitted meanwhile runs to COMPLETE.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { RpcClient, nullLogger } from '@firn/core';
import { EMBEDDED_BLACKHOLE_COOLDOWN, EMBEDDED_GRID, startEmbedded, type EmbeddedSuite } from '../../packages/client/src/embedded/suite';
import { waitUntil } from '../helpers/db';

const PILOT = path.join(__dirname, '..', '..', 'packages', 'pilot', 'dist', 'firn-pilot.js');

function dataset(name: string, command: string, retry: Record<string, unknown>): Record<string, unknown> {
  return {
    version: 1,
    description: `one host: ${name}`,
    retry,
    tasks: [{ name, requirements: { cpu: 1, memory: 100, time: 5 }, trays: [{ name: 't', modules: [{ name: 'm', class: 'shell', parameters: { command } }] }] }],
  };
}

let data: string;
let suite: EmbeddedSuite;
let client: RpcClient;

beforeAll(async () => {
  if (!fs.existsSync(PILOT)) throw new Error(`${PILOT} is missing: run \`npm run build\` first`);
  data = fs.mkdtempSync(path.join(os.tmpdir(), 'firn-one-host-'));
  suite = await startEmbedded({
    dataDir: data, trayPort: 0, monPort: 0, schedule: '* * * * * *', concurrency: 4, logger: nullLogger, env: {},
    capabilities: { cpu: 4, gpu: 0, memory: 8000, disk: 100_000, time: 60 },
  });
  client = new RpcClient(suite.trayUrl);
  client.token = (await client.call<{ token: string }>('auth.login', { username: suite.firstAdmin!.username, password: suite.firstAdmin!.password })).token;
}, 60_000);
afterAll(async () => {
  client?.close();
  await suite?.close();
  fs.rmSync(data, { recursive: true, force: true });
}, 60_000);

test('firn up defaults to a short black-hole cool-down', () => {
  expect(suite.config.dh.blackhole_cooldown).toBe(EMBEDDED_BLACKHOLE_COOLDOWN);
  expect(EMBEDDED_BLACKHOLE_COOLDOWN).toBeLessThanOrEqual(60);
});

test('a dataset failing its odd jobs on the only host does not stop a healthy dataset', async () => {
  const buggy = await client.call<{ dataset_id: number }>('dataset.submit', {
    config: dataset('buggy', 'if [ $((FIRN_JOB % 2)) -eq 1 ]; then echo "user bug" >&2; exit 3; fi; echo "events 1" >> "$FIRN_STATS"',
      { max_failures: 6, backoff_seconds: 1, backoff_max_seconds: 1 }),
    jobs: 12, grids: [EMBEDDED_GRID],
  });
  // enough failures on this host to meet the default threshold (8 of its last 10) many times over
  await waitUntil(async () => {
    const n = (await suite.db('history').where({ entity: 'task', dataset_id: buggy.dataset_id, to_status: 'ERROR' }).count({ n: '*' }).first()) as { n: number };
    return Number(n.n) >= 16;
  }, 120_000, 'the buggy dataset to fail 16 times', 200);
  const healthy = await client.call<{ dataset_id: number }>('dataset.submit', {
    config: dataset('healthy', 'echo "events 2" >> "$FIRN_STATS"', { max_failures: 1, backoff_seconds: 1 }),
    jobs: 6, grids: [EMBEDDED_GRID],
  });
  const end = async (id: number) => waitUntil(async () => {
    const s = await client.call<{ status: string }>('dataset.status', { dataset_id: id });
    return s.status === 'COMPLETE' || s.status === 'ERRORS' ? s.status : null;
  }, 150_000, `dataset ${id} to end`, 250);
  expect(await end(healthy.dataset_id)).toBe('COMPLETE');
  expect(await end(buggy.dataset_id)).toBe('ERRORS');
  const stat = await suite.db('dataset_stat').where({ dataset_id: healthy.dataset_id, name: 'events' }).first();
  expect([Number(stat.n), Number(stat.sum)]).toEqual([6, 12]);
  // never black-holed: no history row, no exclusion, grid.holes empty
  expect(await suite.db('history').where({ entity: 'node', action: 'blackhole' })).toEqual([]);
  expect(await suite.db('node').whereNotNull('blackholed_until')).toEqual([]);
  expect((await client.call<{ holes: unknown[] }>('grid.holes', {})).holes).toEqual([]);
  const buggyTasks = (await suite.db('task').select('status', 'failures', 'evictions').where('dataset_id', buggy.dataset_id)) as Array<Record<string, unknown>>;
  expect(buggyTasks.filter((t) => t.status === 'FAILED').map((t) => [Number(t.failures), Number(t.evictions)])).toEqual(Array(6).fill([6, 0]));
}, 300_000);
