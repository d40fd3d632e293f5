import crypto from 'node:crypto';
import { createUser, deriveJobStatus, type Db, type JobStatus, type TaskStatus } from '@firn/core';

/**
 * A small, fully known production written straight into the database with bulk inserts, for the
 * web monitor's tests. Every number a page should show can be counted from `WebSeed` (the spec),
 * independently of the SQL the web monitor runs.
 */

export const HOSTILE = `<script>alert(1)</script> & "double" 'single' <img src=x onerror=alert(2)>`;
export const HOSTILE_FILE = `<img src=x onerror=alert(3)>.i3`;
export const PASSWORDS = { alice: 'alice-password', bob: 'bob-password', root: 'root-password' } as const;

export interface SeedTask {
  name: 'gen' | 'sim';
  status: TaskStatus;
  grid: 'grid-a' | 'grid-b' | null;
  error?: string;
  host?: string;
  /** When it reached its status, minutes before `now`. */
  minutesAgo: number;
}

export interface SeedJob {
  index: number;
  tasks: [SeedTask, SeedTask];
}

export interface WebSeed {
  now: number;
  createdAt: number;
  /** The simulation dataset (hostile description, owned by alice). */
  sim: { id: number; jobs: SeedJob[]; stats: Record<string, number[]>; jobIds: number[]; taskIds: number[][] };
  /** The offline dataset: runs by date. */
  offline: { id: number; runs: Array<{ id: number; run_number: number; date: string; jobs: JobStatus[] }> };
  /** A dataset owned by root (alice may not control it). */
  rootOwned: { id: number };
  grids: Record<'grid-a' | 'grid-b', number>;
  users: Record<'alice' | 'bob' | 'root', number>;
}

const MEMORY = (rss: number) => `module sim exited with code 137: memory limit exceeded (rss ${rss} MB)`;

/** The simulation dataset's jobs: 10 jobs × 2 tasks, every interesting state. */
export function simJobs(): SeedJob[] {
  const t = (name: 'gen' | 'sim', status: TaskStatus, grid: SeedTask['grid'], minutesAgo: number, extra: Partial<SeedTask> = {}): SeedTask => ({
    name, status, grid, minutesAgo, ...extra,
  });
  return [
    { index: 0, tasks: [t('gen', 'OK', 'grid-a', 240, { host: 'node01.a' }), t('sim', 'OK', 'grid-a', 230, { host: 'node01.a' })] },
    { index: 1, tasks: [t('gen', 'OK', 'grid-a', 240), t('sim', 'OK', 'grid-a', 180)] },
    { index: 2, tasks: [t('gen', 'OK', 'grid-b', 200), t('sim', 'OK', 'grid-b', 170)] },
    { index: 3, tasks: [t('gen', 'OK', 'grid-b', 190), t('sim', 'OK', 'grid-b', 40)] },
    { index: 4, tasks: [t('gen', 'OK', 'grid-a', 150), t('sim', 'PROCESSING', 'grid-a', 20, { host: 'node01.a' })] },
    { index: 5, tasks: [t('gen', 'OK', 'grid-b', 140), t('sim', 'QUEUED', 'grid-b', 15)] },
    { index: 6, tasks: [t('gen', 'OK', 'grid-a', 130), t('sim', 'FAILED', 'grid-a', 60, { error: MEMORY(2100), host: 'node13.a' })] },
    { index: 7, tasks: [t('gen', 'OK', 'grid-b', 120), t('sim', 'ERROR', 'grid-b', 30, { error: MEMORY(2345), host: 'node02.b' })] },
    { index: 8, tasks: [t('gen', 'ERROR', 'grid-a', 50, { error: 'transfer failed: checksum mismatch for out_8.i3', host: 'node13.a' }), t('sim', 'IDLE', null, 300)] },
    { index: 9, tasks: [t('gen', 'SUSPENDED', null, 100), t('sim', 'SUSPENDED', null, 100)] },
  ];
}

/** The normal path of a task; the history written for each task follows it up to its status. */
const PATH: TaskStatus[] = ['WAITING', 'QUEUEING', 'QUEUED', 'PROCESSING', 'READYTOCOPY', 'COPYING', 'COPIED', 'OK'];

/** Transitions (from → to) leading a task from its initial status to `final`. */
export function transitionsTo(initial: TaskStatus, final: TaskStatus): Array<[TaskStatus, TaskStatus]> {
  const steps: Array<[TaskStatus, TaskStatus]> = [];
  if (final === initial) return steps;
  if (final === 'SUSPENDED') return [[initial, 'SUSPENDED']];
  let cur = initial;
  if (cur === 'IDLE') {
    steps.push(['IDLE', 'WAITING']);
    cur = 'WAITING';
  }
  const target = final === 'ERROR' || final === 'FAILED' ? 'PROCESSING' : final;
  for (let i = PATH.indexOf(cur) + 1; i <= PATH.indexOf(target) && i > 0; i++) {
    steps.push([cur, PATH[i]!]);
    cur = PATH[i]!;
  }
  if (final === 'ERROR' || final === 'FAILED') steps.push(['PROCESSING', 'ERROR']);
  if (final === 'FAILED') steps.push(['ERROR', 'FAILED']);
  return steps;
}

function sha(s: string, algo: 'md5' | 'sha256'): string {
  return crypto.createHash(algo).update(s).digest('hex');
}

async function insertDataset(db: Db, row: Record<string, unknown>): Promise<number> {
  const config = JSON.stringify({ version: 1, description: row.description, tasks: [] });
  const [id] = await db('dataset').insert({ config, config_hash: sha(config, 'sha256'), ...row });
  return Number(id);
}

export async function seedWeb(db: Db): Promise<WebSeed> {
  const now = Date.now();
  const createdAt = now - 5 * 3600_000;
  const min = (m: number) => now - m * 60_000;

  const users = {
    alice: (await createUser(db, { username: 'alice', role: 'manager', password: PASSWORDS.alice })).id,
    bob: (await createUser(db, { username: 'bob', role: 'viewer', password: PASSWORDS.bob })).id,
    root: (await createUser(db, { username: 'root', role: 'admin', password: PASSWORDS.root })).id,
  };

  await db('grid').insert([
    { name: 'grid-a', plugin: 'slurm', capabilities: JSON.stringify({ cpu: 64, memory: 256000 }), status: 'enabled', last_seen_at: now - 30_000, last_cycle: JSON.stringify({ claimed: 3, submitted: 3, reconciled: 1 }), created_at: createdAt },
    { name: 'grid-b', plugin: 'condor', capabilities: JSON.stringify({ gpu: 4 }), status: 'enabled', last_seen_at: now - 600_000, created_at: createdAt },
  ]);
  const gridRows = (await db('grid').select('id', 'name')) as Array<{ id: number; name: 'grid-a' | 'grid-b' }>;
  const grids = Object.fromEntries(gridRows.map((g) => [g.name, Number(g.id)])) as Record<'grid-a' | 'grid-b', number>;
  await db('node').insert([
    { hostname: 'node01.a', grid_id: grids['grid-a'], ok_count: 10, fail_count: 0, recent: 'OOOOOOOOOO', blackholed_until: null, updated_at: now },
    { hostname: 'node13.a', grid_id: grids['grid-a'], ok_count: 1, fail_count: 9, recent: 'OFFFFFFFFF', blackholed_until: now + 3600_000, updated_at: now },
    { hostname: 'node14.a', grid_id: grids['grid-a'], ok_count: 5, fail_count: 3, recent: 'OOFOFOFO', blackholed_until: now - 60_000, updated_at: now },
    { hostname: 'node02.b', grid_id: grids['grid-b'], ok_count: 4, fail_count: 1, recent: 'OOOOF', blackholed_until: null, updated_at: now },
  ]);

  // ---- the simulation dataset
  const jobs = simJobs();
  const simId = await insertDataset(db, {
    description: HOSTILE, type: 'simulation', status: 'PROCESSING', priority: 5, owner_id: users.alice,
    jobs_submitted: jobs.length, tasks_per_job: 2, created_at: createdAt, updated_at: min(15),
  });
  await db('dataset_grid').insert([{ dataset_id: simId, grid_id: grids['grid-a'] }, { dataset_id: simId, grid_id: grids['grid-b'] }]);
  await db('task_rel').insert([
    { dataset_id: simId, task_index: 0, name: 'gen', requirements: '{}' },
    { dataset_id: simId, task_index: 1, name: 'sim', requirements: '{}' },
  ]);
  const rels = (await db('task_rel').select('id', 'name').where('dataset_id', simId)) as Array<{ id: number; name: string }>;
  const relId = (name: string) => Number(rels.find((r) => r.name === name)!.id);
  await db('job').insert(
    jobs.map((j) => ({ dataset_id: simId, job_index: j.index, status: deriveJobStatus(j.tasks.map((t) => t.status)), status_changed_at: min(Math.min(...j.tasks.map((t) => t.minutesAgo))) })),
  );
  const jobIds = ((await db('job').select('id').where('dataset_id', simId).orderBy('job_index')) as Array<{ id: number }>).map((r) => Number(r.id));
  await db('task').insert(
    jobs.flatMap((j) =>
      j.tasks.map((t, ti) => ({
        dataset_id: simId, job_id: jobIds[j.index], task_rel_id: relId(t.name), task_index: ti, name: t.name, status: t.status,
        status_changed_at: min(t.minutesAgo), grid_id: t.grid ? grids[t.grid] : null, error_summary: t.error ?? null, host: t.host ?? null,
        failures: t.error ? 1 : 0, started_at: t.host ? min(t.minutesAgo + 10) : null, finished_at: t.status === 'OK' ? min(t.minutesAgo) : null,
        cpu_seconds: t.status === 'OK' ? 12.5 : null, rss_mb: t.host ? 512 : null, wall_seconds: t.status === 'OK' ? 20 : null,
        req_memory: t.name === 'sim' ? 2000 : 1000,
      })),
    ),
  );
  const taskRows = (await db('task').select('id', 'job_id', 'task_index').where('dataset_id', simId)) as Array<{ id: number; job_id: number; task_index: number }>;
  const taskIds = jobIds.map((jid) => [0, 1].map((ti) => Number(taskRows.find((r) => Number(r.job_id) === jid && Number(r.task_index) === ti)!.id)));

  // history: each task's path to its status, one minute apart, ending when it got there
  const history: Array<Record<string, unknown>> = [];
  for (const j of jobs) {
    j.tasks.forEach((t, ti) => {
      const steps = transitionsTo(ti === 0 ? 'WAITING' : 'IDLE', t.status);
      steps.forEach(([from, to], i) => {
        history.push({
          entity: 'task', entity_id: taskIds[j.index]![ti], dataset_id: simId, action: 'transition', from_status: from, to_status: to,
          actor: 'core', reason: null, created_at: min(t.minutesAgo + (steps.length - 1 - i)),
        });
      });
    });
  }
  history.push({ entity: 'dataset', entity_id: simId, dataset_id: simId, action: 'submit', from_status: null, to_status: 'PROCESSING', actor: 'user:alice', reason: HOSTILE, created_at: createdAt });
  history.push({ entity: 'dataset', entity_id: simId, dataset_id: simId, action: 'priority', from_status: '0', to_status: '5', actor: 'user:alice', reason: 'more important', created_at: createdAt + 60_000 });
  for (let i = 0; i < history.length; i += 200) await db('history').insert(history.slice(i, i + 200));

  const stats: Record<string, number[]> = { energy: [1, 2, 3, 4], cpu_seconds: [10, 12.5, 15] };
  await db('dataset_stat').insert(
    Object.entries(stats).map(([name, v]) => ({
      dataset_id: simId, name, n: v.length, sum: v.reduce((a, b) => a + b, 0), sum_sq: v.reduce((a, b) => a + b * b, 0), min: Math.min(...v), max: Math.max(...v),
    })),
  );
  await db('task_stat').insert([
    { task_id: taskIds[0]![0], dataset_id: simId, name: 'energy', value: 1 },
    { task_id: taskIds[0]![0], dataset_id: simId, name: 'events', value: 1000 },
    { task_id: taskIds[0]![1], dataset_id: simId, name: 'energy', value: 2 },
  ]);
  await db('task_log').insert([
    { task_id: taskIds[0]![0], name: 'stdout', data: `generating 1000 events\n${HOSTILE}\ndone\n`, updated_at: min(240) },
    { task_id: taskIds[0]![0], name: 'stderr', data: 'warning: nothing to worry about\n', updated_at: min(240) },
    { task_id: taskIds[0]![1], name: 'stdout', data: `${'x'.repeat(40_000)}\nEND-OF-LONG-LOG\n`, updated_at: min(230) },
  ]);
  const file = (task: number, kind: string, name: string, state: string, size: number) => ({
    dataset_id: simId, job_id: jobIds[0], task_id: taskIds[0]![task], kind, local_name: name, url: `file:///data/sim/${encodeURIComponent(name)}`,
    type: 'permanent', size, md5: sha(name, 'md5'), sha256: sha(name, 'sha256'), state, created_at: min(240), updated_at: min(230),
  });
  await db('file').insert([
    file(0, 'output', 'gen_0.i3', 'VERIFIED', 123456),
    file(1, 'output', HOSTILE_FILE, 'VERIFIED', 654321),
    file(1, 'log', 'sim_0.log', 'COPIED', 2048),
  ]);

  // ---- the offline dataset: runs of two days of data taking
  const offId = await insertDataset(db, {
    description: 'IC86 2024 offline L2', type: 'offline', status: 'PROCESSING', priority: 0, owner_id: users.alice,
    jobs_submitted: 5, tasks_per_job: 1, created_at: createdAt, updated_at: now,
  });
  await db('dataset_grid').insert({ dataset_id: offId, grid_id: grids['grid-b'] });
  await db('task_rel').insert({ dataset_id: offId, task_index: 0, name: 'level2', requirements: '{}' });
  const offRel = Number(((await db('task_rel').select('id').where('dataset_id', offId).first()) as { id: number }).id);
  const runSpec: Array<{ run_number: number; date: string; jobs: JobStatus[] }> = [
    { run_number: 130001, date: '2024-06-03', jobs: ['OK', 'OK'] },
    { run_number: 130002, date: '2024-06-03', jobs: ['OK', 'FAILED'] },
    { run_number: 130003, date: '2024-06-05', jobs: ['PROCESSING'] },
  ];
  const taskStatusOf: Record<JobStatus, TaskStatus> = { OK: 'OK', FAILED: 'FAILED', PROCESSING: 'PROCESSING', SUSPENDED: 'SUSPENDED' };
  const runs: WebSeed['offline']['runs'] = [];
  let jobIndex = 0;
  for (const r of runSpec) {
    const [runId] = await db('run').insert({ dataset_id: offId, run_number: r.run_number, date: r.date, created_at: createdAt });
    runs.push({ id: Number(runId), ...r });
    for (const status of r.jobs) {
      const [jid] = await db('job').insert({ dataset_id: offId, job_index: jobIndex, status, run_id: runId, args: JSON.stringify({ run: r.run_number }), status_changed_at: now });
      await db('task').insert({ dataset_id: offId, job_id: jid, task_rel_id: offRel, task_index: 0, name: 'level2', status: taskStatusOf[status], status_changed_at: now, grid_id: grids['grid-b'] });
      await db('file').insert({
        dataset_id: offId, job_id: jid, kind: 'input', local_name: `Run${r.run_number}_${jobIndex}.i3`, url: `file:///data/exp/Run${r.run_number}_${jobIndex}.i3`,
        type: 'permanent', size: 1000, md5: sha(String(jobIndex), 'md5'), sha256: sha(String(jobIndex), 'sha256'), state: 'INPUT', created_at: now, updated_at: now,
      });
      jobIndex++;
    }
  }

  // ---- a dataset of root's
  const rootId = await insertDataset(db, {
    description: 'owned by root', type: 'simulation', status: 'COMPLETE', priority: 1, owner_id: users.root, jobs_submitted: 1, tasks_per_job: 1, created_at: createdAt, updated_at: now,
  });
  await db('task_rel').insert({ dataset_id: rootId, task_index: 0, name: 'only', requirements: '{}' });
  const rootRel = Number(((await db('task_rel').select('id').where('dataset_id', rootId).first()) as { id: number }).id);
  const [rootJob] = await db('job').insert({ dataset_id: rootId, job_index: 0, status: 'OK', status_changed_at: now });
  await db('task').insert({ dataset_id: rootId, job_id: rootJob, task_rel_id: rootRel, task_index: 0, name: 'only', status: 'OK', status_changed_at: now, grid_id: grids['grid-a'] });

  return {
    now, createdAt, users, grids,
    sim: { id: simId, jobs, stats, jobIds, taskIds },
    offline: { id: offId, runs },
    rootOwned: { id: rootId },
  };
}

// ---------------------------------------------------------------- expected numbers, counted from the spec

export function expectedTaskCounts(seed: WebSeed): Record<string, number> {
  const out: Record<string, number> = {};
  for (const j of seed.sim.jobs) for (const t of j.tasks) out[t.status] = (out[t.status] ?? 0) + 1;
  return out;
}

export function expectedJobCounts(seed: WebSeed): Record<string, number> {
  const out: Record<string, number> = {};
  for (const j of seed.sim.jobs) {
    const s = deriveJobStatus(j.tasks.map((t) => t.status));
    out[s] = (out[s] ?? 0) + 1;
  }
  return out;
}

export function expectedSites(seed: WebSeed): Map<string | null, Record<string, number>> {
  const out = new Map<string | null, Record<string, number>>();
  for (const j of seed.sim.jobs) {
    for (const t of j.tasks) {
      const c = out.get(t.grid) ?? {};
      c[t.status] = (c[t.status] ?? 0) + 1;
      out.set(t.grid, c);
    }
  }
  return out;
}

/** mean and both standard deviations of a statistic's values. */
export function expectedStat(values: number[]): { n: number; sum: number; mean: number; min: number; max: number; pstddev: number; sstddev: number } {
  const n = values.length;
  const sum = values.reduce((a, b) => a + b, 0);
  const mean = sum / n;
  const ss = values.reduce((a, b) => a + (b - mean) ** 2, 0);
  return { n, sum, mean, min: Math.min(...values), max: Math.max(...values), pstddev: Math.sqrt(ss / n), sstddev: n > 1 ? Math.sqrt(ss / (n - 1)) : 0 };
}
