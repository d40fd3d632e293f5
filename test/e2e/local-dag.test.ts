/**
 * The whole suite with the local plugin: firn-tray, firn-mon, firn-dh and firn-queue as
 * separate processes on MariaDB, the bundled pilot; examples/datasets/dag-gpu.json with 20
 * jobs (the grid declares gpu 1; the photon step runs on the CPU) reaches COMPLETE.
 */
import fs from 'node:fs';
import { fileURLToPath } from 'node:url';
import { E2eSuite, checksums, dagExpected, exampleConfig } from './harness';

const JOBS = 20;
let s: E2eSuite;

beforeAll(async () => {
  s = await E2eSuite.create({ name: 'dag', queue: { plugin: 'local', extra: { concurrency: 4, max_queued: 12 } } });
  await s.guard(() => s.startAll());
}, 90_000);
afterAll(async () => {
  await s?.close();
}, 60_000);

interface FileRow {
  task_id: number;
  local_name: string;
  url: string;
  temp_url: string | null;
  type: string;
  state: string;
  size: number;
  md5: string;
  sha256: string;
}

test('dag-gpu.json, 20 jobs: COMPLETE, every task OK, outputs verified at their destinations, exact statistics', async () => {
  await s.guard(async () => {
    const sub = await s.submit(exampleConfig('dag-gpu'), JOBS);
    expect(sub).toMatchObject({ dataset_id: expect.any(Number), jobs: JOBS, tasks: 3 * JOBS }); // and grids, warnings
    const id = sub.dataset_id;

    const st = await s.waitForDataset(id, ['COMPLETE'], 150_000);
    expect(st.status).toBe('COMPLETE');
    expect(Object.fromEntries(Object.entries(st.tasks).filter(([, n]) => n > 0))).toEqual({ OK: 3 * JOBS });
    expect(Object.fromEntries(Object.entries(st.jobs).filter(([, n]) => n > 0))).toEqual({ OK: JOBS });

    // every task OK, and never failed or retried on the way
    const tasks = (await s.db.db('task').select('id', 'name', 'status', 'failures', 'evictions', 'job_id').where('dataset_id', id)) as Array<{ id: number; name: string; status: string; failures: number; evictions: number }>;
    expect(tasks).toHaveLength(3 * JOBS);
    for (const t of tasks) expect([t.name, t.status, t.failures, t.evictions]).toEqual([t.name, 'OK', 0, 0]);
    const errors = await s.db.db('history').where({ entity: 'task', dataset_id: id }).whereIn('to_status', ['ERROR', 'EVICTED', 'FAILED']).count({ n: '*' });
    expect(Number((errors[0] as { n: number }).n)).toBe(0);

    // permanent outputs: one file row per job, at its destination, checksums as recorded
    const files = (await s.db.db('file').select('task_id', 'local_name', 'url', 'temp_url', 'type', 'state', 'size', 'md5', 'sha256').where({ dataset_id: id, kind: 'output' })) as FileRow[];
    const permanent = files.filter((f) => f.type === 'permanent');
    expect(permanent).toHaveLength(JOBS);
    const jobOf = new Map((await s.db.db('task').select('task.id', 'job.job_index').join('job', 'job.id', 'task.job_id').where('task.dataset_id', id) as Array<{ id: number; job_index: number }>).map((r) => [Number(r.id), Number(r.job_index)]));
    const seenUrls = new Set<string>();
    for (const f of permanent) {
      const job = jobOf.get(Number(f.task_id))!;
      const file = `${s.siteTemp}/results/${id}/det_${String(job).padStart(6, '0')}.txt`;
      expect(f.url).toBe(`file://${file}`);
      expect(f.state).toBe('VERIFIED');
      expect(f.temp_url).toBeNull(); // the staged copy is removed once verified
      expect(seenUrls.has(f.url)).toBe(false);
      seenUrls.add(f.url);
      const sums = await checksums(fileURLToPath(f.url));
      expect(sums).toEqual({ md5: f.md5, sha256: f.sha256, size: Number(f.size) });
      // one line per event i: energy (7 + job + i) + 1
      const lines = fs.readFileSync(file, 'utf8').trimEnd().split('\n');
      expect(lines).toHaveLength(100);
      expect(lines[0]).toBe(`0 ${7 + job + 1}`);
      expect(lines[99]).toBe(`99 ${7 + job + 99 + 1}`);
    }
    // job_temp outputs (gen.txt, photons.txt) were verified too
    const temps = files.filter((f) => f.type === 'job_temp');
    expect(temps).toHaveLength(2 * JOBS);
    for (const f of temps) expect(f.state).toBe('VERIFIED');

    // the photon task (gpu 1) was claimed by this grid, which declares one GPU, and ran on the CPU
    const photon = tasks.find((t) => t.name === 'photon')!;
    const req = (await s.db.db('task').select('req_gpu').where('id', photon.id).first()) as { req_gpu: number };
    expect(Number(req.req_gpu)).toBe(1);
    const logs = (await s.tray.call<{ logs: Array<{ name: string; data: string }> }>('task.logs', { task_id: Number(photon.id) })).logs;
    expect(logs.map((l) => l.data).join('\n')).toMatch(/propagating on device none/);

    // dataset statistics: the README's exact sums for N = 20
    const stats = (await s.tray.call<{ stats: Record<string, { n: number; sum: number; min: number; max: number }> }>('dataset.stats', { dataset_id: id })).stats;
    const sums = Object.fromEntries(Object.entries(stats).filter(([k]) => k !== 'cpu_seconds').map(([k, v]) => [k, v.sum]));
    expect(sums).toEqual(dagExpected(JOBS));
    expect(dagExpected(JOBS)).toEqual({ events: 2000, energy_sum: 132000, photons: 396000, calib_passes: 40, detected_events: 2000, hits: 134000 });
    expect(stats.events).toMatchObject({ n: JOBS, min: 100, max: 100 });
    expect(stats.energy_sum).toMatchObject({ n: JOBS, min: 5650, max: 5650 + 100 * (JOBS - 1) });
    expect(stats.cpu_seconds?.n).toBe(3 * JOBS);
  });
}, 200_000);
