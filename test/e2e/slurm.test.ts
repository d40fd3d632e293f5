/**
 * The four daemons as processes with the Slurm plugin: examples/datasets/simulation.json,
 * 10 jobs, through the real single-node Slurm of test/services/start-slurm.sh (jobs run as
 * this user, root; the pilot is `node <abs path of the bundle>`).
 */
import { spawnSync } from 'node:child_process';
import { E2eSuite, PILOT_BUNDLE, runSimulation, startService } from './harness';

const JOBS = 10;
let available = true;
let s: E2eSuite | undefined;

beforeAll(async () => {
  if (startService('slurm') === 'skip') {
    available = false;
    return;
  }
  s = await E2eSuite.create({
    name: 'slurm',
    randomTaskIds: true,
    queue: {
      plugin: 'slurm',
      pilot: `${process.execPath} ${PILOT_BUNDLE}`,
      extra: { max_queued: 20, capabilities: JSON.stringify({ cpu: 2, gpu: 0, memory: 2000, disk: 10_000, time: 60 }) },
    },
  });
  await s.guard(() => s!.startAll());
}, 120_000);
afterAll(async () => {
  await s?.close();
}, 60_000);

test('simulation.json, 10 jobs, completes through real Slurm with exact statistics and verified outputs', async () => {
  if (!available || !s) return;
  const suite = s;
  await suite.guard(async () => {
    const id = await runSimulation(suite, JOBS, 150_000);
    // Slurm ran them: every batch id is a Slurm job (array element) that sacct -c knows as ours
    const ids = (await suite.db.db('task').pluck('batch_id').where('dataset_id', id)) as string[];
    for (const b of ids) expect(b).toMatch(/^\d+(_\d+)?$/);
    const comp = spawnSync('sacct', ['-c', '-n', '-P', '-o', 'jobid,jobname,state', '-j', [...new Set(ids.map((b) => b.split('_')[0]!))].join(',')], { encoding: 'utf8' });
    expect(comp.status).toBe(0);
    expect(comp.stdout).toMatch(/firn-/);
  });
}, 200_000);
