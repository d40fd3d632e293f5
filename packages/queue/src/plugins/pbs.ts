/**
 * PBS / Torque plugin: qsub / qstat -f / qdel. Works with real Torque and with Slurm's
 * Torque-compatible wrappers (slurm-wlm-torque; set options.binDir when they live outside
 * PATH, e.g. /opt/slurm-torque/usr/bin).
 *
 * No arrays: Torque spells them `-t` and `$PBS_ARRAYID`, PBS Pro `-J` and
 * `$PBS_ARRAY_INDEX`, and the Slurm wrappers hide elements from qstat and do not set
 * either variable. Instead every task is its own job named `firn-<taskId>`, all submitting
 * the same script, which reads its task from the job name (`$PBS_JOBNAME`, or
 * `$SLURM_JOB_NAME` under the wrappers). listJobs()/cleanQ() read names from `qstat -f`
 * (the tabular qstat truncates them).
 *
 * Resources: `-l nodes=1:ppn=<cpus>[:gpus=<n>],mem=<MB>mb,walltime=HH:MM:SS` (Torque
 * syntax; sbatch translates it under the wrappers, except `gpus=`). Jobs are submitted with
 * `-v FIRN_BATCH_SYSTEM=pbs` and never `-V`: without `-v` the Debian wrappers (22.05) copy the
 * daemon's whole environment (which may hold secrets) into the job; with it they submit with
 * `--export=none,…` and the job gets the user's login environment, as under real Torque.
 *
 * Status: `qstat -f <ids>`. Torque keeps finished jobs as `C` (with exit_status) for a
 * while; the wrappers show `C` with no exit status (→ COMPLETED). PBS has no accounting
 * command for users, so ids qstat no longer knows are UNKNOWN.
 *
 * Not done here, on purpose:
 *  - Black holes: `SubmitBatch.excludeHosts` is ignored. Torque's `-l nodes=` can only name
 *    the nodes to use, not ones to avoid, and the Slurm wrappers pass no exclusion through;
 *    firn-mon refuses a pilot on a black-holed host at pilot.start (the task is evicted and
 *    retried), and the site should drain the node.
 *  - Grids: names stay `firn-<taskId>` (classic PBS/Torque limit job names to 15
 *    characters: no room for a grid tag) and listJobs() sees every `firn-<taskId>` job of
 *    the batch account. Give each PBS grid (and each Firn instance) its own batch account.
 */
import path from 'node:path';
import { BatchSystemError, ValidationError, type Executor } from '@firn/core';
import { confirmJobStatuses } from './confirm-lost';
import { chunked, cleanQueue, firstLine, runTool, toolError } from './batch-command';
import { isPbsUnknownJob, parseQstatFull, parseQsubOutput, pbsIdKey, pbsOwner, qstatFullStatuses, type QstatFullRecord } from './pbs-parse';
import {
  jobNameFor,
  taskIdFromJobName,
  type BatchJobStatus,
  type BatchPlugin,
  type ListedJob,
  type PluginOptions,
  type SubmitBatch,
  type SubmitResult,
} from './plugin';
import {
  batchRequirements,
  checkTasks,
  extraDirectiveLines,
  formatHms,
  renderPilotScript,
  resolveOptions,
  renderTaskMap,
  type ResolvedOptions,
} from './submit-script';

const ID_CHUNK = 100;
const FINISHED = new Set(['C', 'F', 'X']);

export class PbsPlugin implements BatchPlugin {
  readonly name = 'pbs';
  private readonly options: ResolvedOptions;
  private user: string | null = null;

  constructor(
    private readonly executor: Executor,
    options: PluginOptions,
  ) {
    this.options = resolveOptions(options, 'pbs');
  }

  private checkBatch(batch: SubmitBatch): void {
    checkTasks(batch.tasks);
    for (const p of [batch.dir, ...batch.tasks.map((t) => t.taskDir)]) {
      // PBS -o takes [host:]path, and Slurm's Torque wrapper (22.05) runs sbatch through a
      // shell command string: only plain words are safe on its command line.
      if (!/^\/[A-Za-z0-9_@%+=,./-]*$/.test(p)) {
        throw new ValidationError(`directory ${JSON.stringify(p)} must be an absolute path of letters, digits and _@%+=,./- only (PBS -o syntax; the Torque wrappers pass it through a shell)`);
      }
    }
  }

  async writeConfig(batch: SubmitBatch): Promise<string> {
    this.checkBatch(batch);
    const req = batchRequirements(batch.tasks);
    const o = this.options;
    const resources = [`nodes=1:ppn=${req.cpu}${req.gpu > 0 ? `:gpus=${req.gpu}` : ''}`];
    if (req.memory > 0) resources.push(`mem=${req.memory}mb`);
    if (req.time > 0) resources.push(`walltime=${formatHms(req.time)}`);
    const d = ['#PBS -S /bin/sh', `#PBS -l ${resources.join(',')}`];
    const queue = o.queue || o.partition;
    if (queue) d.push(`#PBS -q ${queue}`);
    if (o.account) d.push(`#PBS -A ${o.account}`);
    d.push(...extraDirectiveLines('#PBS', o.extraDirectives));
    const script = renderPilotScript({
      options: o,
      tasks: batch.tasks,
      directives: d,
      comments: ['One job per task, each submitted with qsub -N firn-<taskId>; the task is read from the job name.'],
      selector: { kind: 'job-name', nameVars: ['PBS_JOBNAME', 'SLURM_JOB_NAME'], firstIndex: 0 },
      taskFiles: true,
    });
    const scriptPath = path.posix.join(batch.dir, 'submit.sh');
    await this.executor.mkdir(batch.dir, 0o700);
    for (const t of batch.tasks) await this.executor.mkdir(t.taskDir, 0o700);
    await this.executor.writeFile(scriptPath, script, 0o700);
    const rows = batch.tasks.map((t) => ({ taskId: t.taskId, batchName: jobNameFor(t.taskId), index: null, taskDir: t.taskDir }));
    await this.executor.writeFile(path.posix.join(batch.dir, 'tasks.txt'), renderTaskMap(rows), 0o600);
    return scriptPath;
  }

  async submit(batch: SubmitBatch, scriptPath: string): Promise<SubmitResult> {
    this.checkBatch(batch);
    const batchIds = new Map<number, string>();
    try {
      for (const t of batch.tasks) {
        // `-v` (without -V) also makes the Slurm wrappers submit with --export=none: the
        // daemon's environment must not leak into jobs (real Torque never exports it).
        const args = ['-N', jobNameFor(t.taskId), '-v', 'FIRN_BATCH_SYSTEM=pbs', '-j', 'oe', '-o', path.posix.join(t.taskDir, 'pbs.out'), scriptPath];
        const r = await runTool(this.executor, this.options.binDir, 'qsub', args, { cwd: batch.dir });
        if (r.code !== 0) throw toolError('qsub', r);
        const id = parseQsubOutput(r.stdout);
        if (!id) throw new BatchSystemError(`qsub printed no job id: ${JSON.stringify(firstLine(r.stdout + r.stderr))}`, r.display, r.code, r.stderr || r.stdout);
        batchIds.set(t.taskId, id);
      }
    } catch (e) {
      if (batchIds.size > 0) await this.remove([...batchIds.values()]).catch(() => undefined);
      throw e;
    }
    return { batchIds };
  }

  /** `qstat -f [ids]`; exit 153 means (some) ids are unknown, which is an answer, not a failure. */
  private async qstatFull(ids: string[]): Promise<QstatFullRecord[]> {
    const r = await runTool(this.executor, this.options.binDir, 'qstat', ['-f', ...ids]);
    const records = parseQstatFull(r.stdout);
    if (r.code !== 0 && r.code !== 153 && records.length === 0 && !(ids.length > 0 && isPbsUnknownJob(r.stderr, r.code))) {
      throw toolError('qstat', r);
    }
    return records;
  }

  private async whoami(): Promise<string> {
    if (this.user) return this.user;
    const r = await runTool(this.executor, undefined, 'id', ['-un']);
    const user = r.stdout.trim();
    if (r.code !== 0 || !user) throw toolError('id -un', r);
    this.user = user;
    return user;
  }

  async checkJobStatus(batchIds: string[]): Promise<Map<string, BatchJobStatus>> {
    // `qstat -f <ids>` is the listing and the look-up by id in one (an unknown id is an answer:
    // exit 153); the Torque tools offer no accounting to ask (tracejob runs on the server only)
    return confirmJobStatuses(batchIds, {
      list: async (ids) => {
        const found = new Map<string, BatchJobStatus>();
        for (const part of chunked(ids, ID_CHUNK)) {
          const statuses = qstatFullStatuses(await this.qstatFull(part));
          const byId = new Map(statuses.map((s) => [s.batchId, s]));
          const byKey = new Map(statuses.map((s) => [pbsIdKey(s.batchId), s]));
          for (const id of part) {
            const s = byId.get(id) ?? byKey.get(pbsIdKey(id));
            if (s) found.set(id, { ...s, batchId: id });
          }
        }
        return { found };
      },
    });
  }

  async remove(batchIds: string[]): Promise<void> {
    for (const part of chunked([...new Set(batchIds)], ID_CHUNK)) {
      if (part.length === 0) continue;
      const r = await runTool(this.executor, this.options.binDir, 'qdel', part);
      if (r.code === 0) continue;
      // The wrappers' qdel counts failures in its exit code but stays silent for unknown and
      // finished jobs; Torque says `Unknown Job Id` or `invalid state for job - COMPLETE`.
      const problems = (r.stderr + '\n' + r.stdout)
        .split('\n')
        .map((l) => l.trim())
        .filter((l) => l && !/unknown job id|invalid state for job|already (done|completed|completing)|job has finished/i.test(l));
      if (problems.length > 0) throw toolError('qdel', r);
    }
  }

  async listJobs(): Promise<ListedJob[]> {
    const me = await this.whoami();
    const records = await this.qstatFull([]);
    const statuses = qstatFullStatuses(records);
    const jobs: ListedJob[] = [];
    records.forEach((record, i) => {
      const s = statuses[i] as BatchJobStatus;
      const owner = pbsOwner(record);
      if (owner !== undefined && owner !== me) return;
      const taskId = s.name ? taskIdFromJobName(s.name) : null;
      if (taskId === null || FINISHED.has(s.rawState)) return;
      jobs.push({ batchId: s.batchId, name: jobNameFor(taskId), state: s.state });
    });
    return jobs;
  }

  cleanQ(keep: (job: ListedJob, taskId: number) => boolean): Promise<ListedJob[]> {
    return cleanQueue(this, keep);
  }
}
