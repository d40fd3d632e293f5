/** Rows for the firn-dh tests, inserted directly (no tray / mon code involved). */
import { execFileSync } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { checksumBuffer, nullLogger, type Db, type DhSection, type TaskStatus } from '@firn/core';
import { missingService } from '../helpers/db';

export const REPO = path.resolve(__dirname, '../..');
export const DH_BIN = path.join(REPO, 'packages/dh/bin/firn-dh');

/** Tests that run the real bin need it built (`npm test` builds first; after editing sources, `npm run build`). */
export function requireBuiltBin(): void {
  if (!fs.existsSync(path.join(REPO, 'packages/dh/dist/cli.js'))) {
    throw new Error('packages/dh/dist is missing: run `npm run build` first (npm test does)');
  }
}

export interface DatasetFixture {
  datasetId: number;
  jobIds: number[];
  /** taskIds[job][taskIndex] */
  taskIds: number[][];
}

export interface TaskSpec {
  name: string;
  /** Indexes of the tasks (same job) this one depends on. */
  depends?: number[];
}

/**
 * A PROCESSING dataset with `jobs` jobs of the given tasks. Tasks start WAITING when they have
 * no dependencies, else IDLE, unless `status` says otherwise.
 */
export async function insertDataset(
  db: Db,
  o: { jobs: number; tasks?: TaskSpec[]; retry?: unknown; status?: (job: number, task: number) => TaskStatus; datasetStatus?: string } = { jobs: 1 },
): Promise<DatasetFixture> {
  const t = Date.now();
  const tasks = o.tasks ?? [{ name: 'main' }];
  const [datasetId] = (await db('dataset').insert({
    status: o.datasetStatus ?? 'PROCESSING', tasks_per_job: tasks.length, config: '{}', config_hash: 'x'.repeat(64),
    retry: o.retry === undefined ? null : JSON.stringify(o.retry), created_at: t, updated_at: t,
  })) as number[];
  const relIds: number[] = [];
  for (const [i, spec] of tasks.entries()) {
    const [id] = (await db('task_rel').insert({ dataset_id: datasetId, task_index: i, name: spec.name, requirements: '{}' })) as number[];
    relIds.push(Number(id));
  }
  for (const [i, spec] of tasks.entries()) {
    for (const d of spec.depends ?? []) await db('task_rel_dep').insert({ task_rel_id: relIds[i], depends_on_id: relIds[d] });
  }
  const jobIds: number[] = [];
  const taskIds: number[][] = [];
  for (let j = 0; j < o.jobs; j++) {
    const [jobId] = (await db('job').insert({ dataset_id: datasetId, job_index: j, status: 'PROCESSING', status_changed_at: t })) as number[];
    jobIds.push(Number(jobId));
    await db('task').insert(
      tasks.map((spec, i) => ({
        dataset_id: datasetId, job_id: jobId, task_rel_id: relIds[i], task_index: i, name: spec.name,
        status: o.status?.(j, i) ?? (spec.depends?.length ? 'IDLE' : 'WAITING'), status_changed_at: t,
      })),
    );
    const rows: Array<{ id: number }> = await db('task').select('id').where('job_id', jobId).orderBy('task_index');
    taskIds.push(rows.map((r) => Number(r.id)));
  }
  return { datasetId: Number(datasetId), jobIds, taskIds };
}

export async function taskRow(db: Db, id: number): Promise<Record<string, unknown> & { status: TaskStatus }> {
  return db('task').where({ id }).first();
}

export async function taskHistory(db: Db, id: number): Promise<Array<{ from_status: string | null; to_status: string | null; action: string; actor: string; reason: string | null }>> {
  return db('history').select('from_status', 'to_status', 'action', 'actor', 'reason').where({ entity: 'task', entity_id: id }).orderBy('id');
}

/** A random file of `size` bytes; returns its path and checksums. */
export function randomFile(file: string, size: number): { path: string; md5: string; sha256: string; size: number } {
  fs.mkdirSync(path.dirname(file), { recursive: true });
  const buf = crypto.randomBytes(size);
  fs.writeFileSync(file, buf);
  return { path: file, ...checksumBuffer(buf) };
}

/** A STAGED output row as firn-mon writes it. */
export async function insertOutput(
  db: Db,
  task: { id: number; jobId: number; datasetId: number },
  f: { local: string; url: string; tempUrl: string | null; md5: string | null; sha256: string | null; size: number | null; type?: string; state?: string },
): Promise<number> {
  const t = Date.now();
  const [id] = (await db('file').insert({
    dataset_id: task.datasetId, job_id: task.jobId, task_id: task.id, kind: 'output', local_name: f.local, url: f.url,
    temp_url: f.tempUrl, type: f.type ?? 'permanent', size: f.size, md5: f.md5, sha256: f.sha256, state: f.state ?? 'STAGED',
    created_at: t, updated_at: t,
  })) as number[];
  return Number(id);
}

export function tmpDir(prefix = 'firn-dh-'): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), prefix));
}

/** The [dh] section with defaults, as loadConfig would give it. */
export function dhConfig(over: Partial<DhSection> = {}): DhSection {
  return {
    schedule: '*/10 * * * * *', heartbeat_timeout: 1800, transfer_retries: 2, retention_days: 7, blackhole_window: 10,
    blackhole_threshold: 8, blackhole_cooldown: 3600, batch_size: 200, ...over,
  };
}

export const quietLogger = nullLogger;

export interface SshEnv {
  host: string;
  port: number;
  user: string;
  key: string;
  knownHosts: string;
}

/** The test sshd (test/services/start-sshd.sh), started if its env file is missing. */
export function sshEnv(): SshEnv | null {
  const file = '/etc/firn-test/ssh.env';
  if (!fs.existsSync(file)) {
    const script = path.join(REPO, 'test/services/start-sshd.sh');
    if (fs.existsSync(script)) execFileSync('bash', [script], { stdio: 'ignore', timeout: 120_000 });
  }
  if (!fs.existsSync(file)) {
    missingService('sshd', 'bash test/services/start-sshd.sh');
    return null;
  }
  const env: Record<string, string> = {};
  for (const line of fs.readFileSync(file, 'utf8').split('\n')) {
    const m = /^([A-Z_]+)=(.*)$/.exec(line.trim());
    if (m) env[m[1]!] = m[2]!;
  }
  return { host: env.SSH_HOST!, port: Number(env.SSH_PORT), user: env.SSH_USER!, key: env.SSH_KEY!, knownHosts: env.SSH_KNOWN_HOSTS! };
}

/** A directory the ssh user may write (we run as root in CI). */
export function sshWritableDir(user: string): string {
  const dir = tmpDir('firn-dh-sftp-');
  const uid = Number(execFileSync('id', ['-u', user]).toString().trim());
  const gid = Number(execFileSync('id', ['-g', user]).toString().trim());
  fs.chownSync(dir, uid, gid);
  return dir;
}

/** Files under `dir`, recursively, relative paths sorted. */
export function listFiles(dir: string): string[] {
  const out: string[] = [];
  const walk = (d: string) => {
    for (const e of fs.readdirSync(d, { withFileTypes: true })) {
      const p = path.join(d, e.name);
      if (e.isDirectory()) walk(p);
      else out.push(path.relative(dir, p));
    }
  };
  if (fs.existsSync(dir)) walk(dir);
  return out.sort();
}
