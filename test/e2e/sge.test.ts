/**
 * The four daemons as processes with the SGE plugin: examples/datasets/simulation.json,
 * 10 jobs, through the real Son of Grid Engine of test/services/start-sge.sh (SGE_ROOT,
 * SGE_CELL from /etc/firn-test/sge.env in the queue daemon's environment).
 */
import { E2eSuite, PILOT_BUNDLE, runSimulation, serviceEnv, startService } from './harness';

const JOBS = 10;
let available = true;
let s: E2eSuite | undefined;

beforeAll(async () => {
  if (startService('sge') === 'skip') {
    available = false;
    return;
  }
  const e = serviceEnv('sge');
  s = await E2eSuite.create({
    name: 'sge',
    randomTaskIds: true,
    queue: {
      plugin: 'sge',
      pilot: `${process.execPath} ${PILOT_BUNDLE}`,
      env: {
        SGE_ROOT: e.SGE_ROOT ?? '/var/lib/gridengine',
        SGE_CELL: e.SGE_CELL ?? 'default',
        PATH: `${e.SGE_BIN ?? '/usr/bin'}:${process.env.PATH ?? '/usr/bin:/bin'}`,
      },
      extra: { max_queued: 20, queue: e.SGE_QUEUE ?? 'all.q', capabilities: JSON.stringify({ cpu: 1, gpu: 0, memory: 2000, disk: 10_000, time: 60 }) },
    },
  });
  await s.guard(() => s!.startAll());
}, 120_000);
afterAll(async () => {
  await s?.close();
}, 60_000);

test('simulation.json, 10 jobs, completes through real SGE with exact statistics and verified outputs', async () => {
  if (!available || !s) return;
  const suite = s;
  await suite.guard(async () => {
    const id = await runSimulation(suite, JOBS, 150_000);
    const ids = (await suite.db.db('task').pluck('batch_id').where('dataset_id', id)) as string[];
    for (const b of ids) expect(b).toMatch(/^\d+(\.\d+)?$/); // SGE job ids (array tasks: JOB.TASK)
  });
}, 200_000);
