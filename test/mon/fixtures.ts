import crypto from 'node:crypto';
import {
  RpcClient, RpcError, TaskStatus, foldTaskStats, loadConfig, randomSecret, sha256Hex, transition,
  type Db, type FirnConfig, type RawConfig,
} from '@firn/core';

/**
 * Test fixtures for firn-mon: datasets/jobs/tasks inserted directly into the database (QUEUED,
 * with a passkey hash as firn-queue would leave them), so these tests depend on no other daemon.
 */

export const DATASET_CONFIG = {
  version: 3,
  description: 'mon test dataset',
  steering: { parameters: { energy: 100 } },
  tasks: [
    {
      name: 'generate',
      requirements: { cpu: 2, memory: 3000 },
      trays: [{ name: 'main', modules: [{ name: 'gen', class: 'shell', parameters: { command: 'echo $(job)' } }] }],
    },
  ],
};

/** DATASET_CONFIG whose task declares one output, out.dat (see outDat). */
export const CONFIG_WITH_OUTPUT = {
  ...DATASET_CONFIG,
  tasks: [{ ...DATASET_CONFIG.tasks[0]!, data: [{ local: 'out.dat', remote: 'file:///dest/$(job)/out.dat', movement: 'output' }] }],
};

/** Site temp and destination root of monConfig. */
export const SITE_TEMP = 'file:///tmp/firn-site-temp';
export const DESTINATIONS = 'file:///dest';

/** Where mon puts out.dat of job `jobIndex` (task generate) of the seeded dataset. */
export function outDat(datasetId: number, jobIndex: number): { url: string; temp_url: string } {
  return { url: `file:///dest/${jobIndex}/out.dat`, temp_url: `${SITE_TEMP}/${datasetId}/${jobIndex}/generate/out.dat` };
}

/** What firn-dh does once a READYTOCOPY task's outputs are delivered: → OK, statistics folded. */
export async function deliver(db: Db, taskIds: number[]): Promise<void> {
  await transition(db, { taskIds, from: TaskStatus.READYTOCOPY, to: TaskStatus.COPYING, by: 'dh', actor: 'dh' });
  await transition(db, { taskIds, from: TaskStatus.COPYING, to: TaskStatus.COPIED, by: 'dh', actor: 'dh' });
  await db.transaction(async (trx) => {
    await transition(trx, { taskIds, from: TaskStatus.COPIED, to: TaskStatus.OK, by: 'dh', actor: 'dh' });
    await foldTaskStats(trx, taskIds);
  });
}

export const EXTERNAL_MODULE_SOURCE = '#!/bin/sh\necho "external module ✓"\n';

export interface SeededTask {
  id: number;
  jobId: number;
  jobIndex: number;
  passkey: string;
}

export interface Seeded {
  datasetId: number;
  gridId: number;
  taskRelId: number;
  tasks: SeededTask[];
}

/** One dataset with `jobs` one-task jobs, every task QUEUED with its own passkey. */
export async function seedDataset(db: Db, jobs: number, options: { status?: string; config?: unknown } = {}): Promise<Seeded> {
  const t = Date.now();
  const gridName = `grid-${crypto.randomBytes(3).toString('hex')}`;
  const [gridId] = await db('grid').insert({ name: gridName, plugin: 'local', capabilities: '{}', created_at: t });
  const config = JSON.stringify(options.config ?? DATASET_CONFIG);
  const [datasetId] = await db('dataset').insert({
    description: 'mon test', status: 'PROCESSING', tasks_per_job: 1, jobs_submitted: jobs,
    config, config_hash: sha256Hex(config), created_at: t, updated_at: t,
  });
  const [taskRelId] = await db('task_rel').insert({
    dataset_id: datasetId, task_index: 0, name: 'generate', requirements: JSON.stringify({ cpu: 2, memory: 3000 }),
  });
  const [trayId] = await db('tray').insert({ dataset_id: datasetId, task_rel_id: taskRelId, tray_index: 0, name: 'main' });
  const src = checksums(EXTERNAL_MODULE_SOURCE);
  await db('module').insert([
    { dataset_id: datasetId, tray_id: trayId, module_index: 0, name: 'gen', class: 'shell' },
    {
      dataset_id: datasetId, tray_id: trayId, module_index: 1, name: 'ext', class: 'external', src: 'https://example.org/ext.sh',
      src_md5: src.md5, src_sha256: src.sha256, src_content: EXTERNAL_MODULE_SOURCE,
    },
  ]);
  const tasks: SeededTask[] = [];
  for (let j = 0; j < jobs; j++) {
    const [jobId] = await db('job').insert({ dataset_id: datasetId, job_index: j, status: 'PROCESSING', args: JSON.stringify({ seed: 1000 + j }), status_changed_at: t });
    await db('file').insert({
      dataset_id: datasetId, job_id: jobId, task_id: null, kind: 'input', local_name: `in-${j}.dat`, url: `file:///data/in-${j}.dat`,
      type: 'permanent', size: 10 + j, md5: 'a'.repeat(32), sha256: 'b'.repeat(64), state: 'INPUT', created_at: t, updated_at: t,
    });
    const passkey = randomSecret();
    const [taskId] = await db('task').insert({
      dataset_id: datasetId, job_id: jobId, task_rel_id: taskRelId, task_index: 0, name: 'generate',
      status: options.status ?? TaskStatus.QUEUED, status_changed_at: t, req_cpu: 2, req_memory: 3000,
      grid_id: gridId, batch_id: `b${j}`, passkey_hash: sha256Hex(passkey),
    });
    tasks.push({ id: Number(taskId), jobId: Number(jobId), jobIndex: j, passkey });
  }
  return { datasetId: Number(datasetId), gridId: Number(gridId), taskRelId: Number(taskRelId), tasks };
}

/**
 * What a retry does to a task, through the real transition table: ERROR → RESET (passkey revoked)
 * → WAITING → QUEUEING → QUEUED with a new passkey. Returns the new passkey.
 */
export async function resetAndRequeue(db: Db, taskId: number, from: TaskStatus = TaskStatus.ERROR): Promise<string> {
  await transition(db, { taskIds: [taskId], from, to: TaskStatus.RESET, by: from === TaskStatus.SUSPENDED ? 'tray' : 'core', actor: 'core', set: { passkey_hash: null } });
  await transition(db, { taskIds: [taskId], from: TaskStatus.RESET, to: TaskStatus.WAITING, by: 'core', actor: 'core' });
  const passkey = randomSecret();
  await transition(db, { taskIds: [taskId], from: TaskStatus.WAITING, to: TaskStatus.QUEUEING, by: 'queue', actor: 'queue:test', set: { passkey_hash: sha256Hex(passkey) } });
  await transition(db, { taskIds: [taskId], from: TaskStatus.QUEUEING, to: TaskStatus.QUEUED, by: 'queue', actor: 'queue:test' });
  return passkey;
}

/** A validated config for an in-process firn-mon on an ephemeral port. */
export function monConfig(dbUrl: string, mon: Record<string, unknown> = {}, extra: RawConfig = {}): FirnConfig {
  return loadConfig({
    env: {},
    overrides: {
      ...extra,
      db: { url: dbUrl },
      mon: { host: '127.0.0.1', port: 0, flush_ms: 20, web: false, ...mon },
      system: { site_temp: SITE_TEMP, ...(extra.system ?? {}) },
      dh: { destinations: DESTINATIONS, ...(extra.dh ?? {}) },
    },
  });
}

/** Call and return the error object the server answered with (fails if the call succeeded). */
export async function rpcErrorOf(c: RpcClient, method: string, params: Record<string, unknown>): Promise<RpcError> {
  try {
    await c.call(method, params);
  } catch (e) {
    if (e instanceof RpcError) return e;
    throw e;
  }
  throw new Error(`${method} unexpectedly succeeded`);
}

export function checksums(s: string): { md5: string; sha256: string; size: number } {
  const b = Buffer.from(s);
  return { md5: crypto.createHash('md5').update(b).digest('hex'), sha256: crypto.createHash('sha256').update(b).digest('hex'), size: b.length };
}
