/**
 * (Son of) Grid Engine plugin: qsub / qstat -xml / qacct / qdel.
 *
 * Arrays: `-t first-last` is a single range, so a batch becomes one array per run of
 * consecutive task ids (at most maxArrayIndex long). The array is named `firn-a<base>` and
 * submitted with `-t 1-N`; task `<jobId>.<k>` runs task `base + k − 1`. The script computes
 * its task from `$JOB_NAME` and `$SGE_TASK_ID`; listJobs()/cleanQ() do the same from
 * `qstat -xml` (JB_name + tasks, pending ranges such as `3-4:1` expanded). A run of one task
 * is a plain job `firn-<taskId>`. `tasks.txt` beside the script records the mapping.
 *
 * Resources: `-l h_rt` (walltime), `-l mem_free` (memory: a host with that much free; the
 * pilot enforces the RSS limit itself — not `h_vmem`, whose address-space rlimit stops the
 * Node.js pilot from starting at all: V8 reserves gigabytes of virtual memory), `-l gpu=N` (a common
 * site-defined complex), `-pe <options.parallelEnvironment> <cpus>` only when a parallel
 * environment is configured — without one a multi-core task gets one slot (noted in the
 * script). No `-V`: the daemon's environment is not copied into jobs.
 *
 * Status: `qstat -xml -u <user>`; ids no longer there are looked up with `qacct -j <job>`.
 *
 * Grids: job names carry the grid — `firn-<gridTag>-<taskId>`, arrays
 * `firn-<gridTag>-a<base>` (gridJobPrefix; a context variable `-ac` would be invisible to
 * `qstat -xml` without one `qstat -j` per job) — and listJobs()/cleanQ() list only this
 * grid's names, so another grid or Firn instance on the same account never has its jobs
 * cancelled or adopted. Untagged names `firn-<taskId>` / `firn-a<base>` (submitted before
 * tags existed) are still understood by checkJobStatus, never listed.
 *
 * Black holes: `SubmitBatch.excludeHosts` becomes `-l hostname=!h1&!h1.*&!h2…` (the `.*`
 * pattern for a short name also matches its fully qualified form); a host SGE does not know
 * simply matches nothing, so no lookup is needed.
 */
import path from 'node:path';
import { BatchSystemError, ValidationError, type Executor } from '@firn/core';
import { chunkJobName, isArray, planRuns, taskIdForElement, type ArrayChunk } from './array-plan';
import { answerOf, confirmJobStatuses } from './confirm-lost';
import { chunked, cleanQueue, firstLine, runTool, toolError } from './batch-command';
import {
  BatchState,
  gridJobPrefix,
  jobNameFor,
  type BatchJobStatus,
  type BatchPlugin,
  type ListedJob,
  type PluginOptions,
  type SubmitBatch,
  type SubmitResult,
} from './plugin';
import { isSgeUnknownJob, parseQacct, parseSgeSchedulingInfo, sgeQstatJKnown, parseSgeQstatXml, parseSgeQsubOutput, qacctStatuses, sgeJobStatuses } from './sge-parse';
import {
  batchRequirements,
  checkTasks,
  excludableHosts,
  extraDirectiveLines,
  formatHms,
  renderPilotScript,
  renderTaskMap,
  resolveOptions,
  type ResolvedOptions,
} from './submit-script';

/** Most pending SGE jobs whose scheduling info one status check asks for. */
export const SGE_PENDING_INFO_MAX = 100;

const ID_CHUNK = 200;

/** `-l hostname=` value excluding the hosts: `!h1&!h1.*&!h2.example.org` (SGE host expression; the hosts are plain hostnames). */
export function sgeExcludeExpression(hosts: readonly string[]): string {
  return hosts.map((h) => (h.includes('.') ? `!${h}` : `!${h}&!${h}.*`)).join('&');
}

/** Task id of a listed job or array task from its name: this grid's tagged names, or (`legacy`) untagged ones too. */
function sgeTaskId(name: string, batchId: string, prefix: string, legacy: boolean): number | null {
  const [, task] = batchId.split('.');
  const index = task === undefined ? null : Number(task);
  return taskIdForElement(name, index, 1, prefix) ?? (legacy ? taskIdForElement(name, index, 1) : null);
}

export class SgePlugin implements BatchPlugin {
  readonly name = 'sge';
  private readonly options: ResolvedOptions;
  private user: string | null = null;
  /** `firn-<gridTag>-`: the start of every job name of this grid. */
  private readonly prefix: string;

  constructor(
    private readonly executor: Executor,
    options: PluginOptions,
  ) {
    this.options = resolveOptions(options, 'sge');
    this.prefix = gridJobPrefix(this.options.grid);
  }

  private jobName(c: ArrayChunk): string {
    return chunkJobName(c, this.prefix);
  }

  private plan(batch: SubmitBatch): ArrayChunk[] {
    return planRuns(
      batch.tasks.map((t) => t.taskId),
      this.options.maxArrayIndex,
    );
  }

  private checkBatch(batch: SubmitBatch): void {
    checkTasks(batch.tasks);
    for (const p of [batch.dir, ...batch.tasks.map((t) => t.taskDir)]) {
      if (!p.startsWith('/')) throw new ValidationError(`batch directory must be an absolute path, got ${JSON.stringify(p)}`);
      // qsub -o takes [host:]path and expands $-pseudo variables
      if (/[:$\n]/.test(p)) throw new ValidationError(`directory ${JSON.stringify(p)} must not contain ':', '$' or newlines (SGE -o paths)`);
    }
  }

  async writeConfig(batch: SubmitBatch): Promise<string> {
    this.checkBatch(batch);
    const req = batchRequirements(batch.tasks);
    const chunks = this.plan(batch);
    const o = this.options;
    const d: string[] = ['#$ -S /bin/sh'];
    if (chunks.length === 1) {
      const c = chunks[0] as ArrayChunk;
      d.push(`#$ -N ${this.jobName(c)}`);
      if (isArray(c)) d.push(`#$ -t 1-${c.taskIds.length}`);
    }
    const comments = [
      'Submitted with qsub -N/-t on the command line (they override the lines above).',
      `The task is ${this.prefix}<taskId> from the job name, or base + $SGE_TASK_ID - 1 for an array named ${this.prefix}a<base>.`,
    ];
    const pe = o.parallelEnvironment;
    if (pe && req.cpu > 1) d.push(`#$ -pe ${pe} ${req.cpu}`);
    else if (req.cpu > 1) comments.push(`${req.cpu} cpus requested but no parallel environment is configured (options.parallelEnvironment): one slot.`);
    if (req.time > 0) d.push(`#$ -l h_rt=${formatHms(req.time)}`);
    if (req.memory > 0) d.push(`#$ -l mem_free=${req.memory}M`);
    if (req.gpu > 0) d.push(`#$ -l gpu=${req.gpu}`);
    const exclude = excludableHosts(batch.excludeHosts);
    if (exclude.length) {
      d.push(`#$ -l hostname=${sgeExcludeExpression(exclude)}`);
      comments.push(`Black-holed hosts excluded: ${exclude.join(' ')}`);
    }
    const queue = o.queue || o.partition;
    if (queue) d.push(`#$ -q ${queue}`);
    if (o.account) d.push(`#$ -A ${o.account}`);
    d.push(...extraDirectiveLines('#$', o.extraDirectives));
    if (chunks.length > 1) comments.push(`Split into ${chunks.length} submissions: ${chunks.map((c) => this.jobName(c)).join(' ')}`);

    const script = renderPilotScript({
      options: o,
      tasks: batch.tasks,
      directives: d,
      comments,
      selector: { kind: 'job-name', nameVars: ['JOB_NAME'], indexVar: 'SGE_TASK_ID', firstIndex: 1, prefix: this.prefix },
      taskFiles: true,
    });
    const scriptPath = path.posix.join(batch.dir, 'submit.sh');
    await this.executor.mkdir(batch.dir, 0o700);
    for (const t of batch.tasks) await this.executor.mkdir(t.taskDir, 0o700);
    await this.executor.writeFile(scriptPath, script, 0o700);
    const taskDir = new Map(batch.tasks.map((t) => [t.taskId, t.taskDir]));
    const rows = chunks.flatMap((c) =>
      c.taskIds.map((id) => ({ taskId: id, batchName: this.jobName(c), index: isArray(c) ? id - c.base + 1 : null, taskDir: taskDir.get(id) ?? '' })),
    );
    await this.executor.writeFile(path.posix.join(batch.dir, 'tasks.txt'), renderTaskMap(rows), 0o600);
    return scriptPath;
  }

  async submit(batch: SubmitBatch, scriptPath: string): Promise<SubmitResult> {
    this.checkBatch(batch);
    const taskDir = new Map(batch.tasks.map((t) => [t.taskId, t.taskDir]));
    const batchIds = new Map<number, string>();
    const submitted: string[] = [];
    try {
      for (const c of this.plan(batch)) {
        const args = ['-terse', '-N', this.jobName(c), '-j', 'y'];
        if (isArray(c)) args.push('-t', `1-${c.taskIds.length}`, '-o', path.posix.join(batch.dir, 'sge-$JOB_ID.$TASK_ID.out'));
        else args.push('-o', path.posix.join(taskDir.get(c.base) as string, 'sge-$JOB_ID.out'));
        args.push(scriptPath);
        const r = await runTool(this.executor, this.options.binDir, 'qsub', args, { cwd: batch.dir });
        if (r.code !== 0) throw toolError('qsub', r);
        const parsed = parseSgeQsubOutput(r.stdout);
        if (!parsed || (isArray(c) && parsed.tasks?.length !== c.taskIds.length)) {
          if (parsed) submitted.push(parsed.jobId);
          throw new BatchSystemError(`qsub printed no usable job id: ${JSON.stringify(firstLine(r.stdout))}`, r.display, r.code, r.stderr || r.stdout);
        }
        submitted.push(parsed.jobId);
        c.taskIds.forEach((id, k) => batchIds.set(id, isArray(c) ? `${parsed.jobId}.${k + 1}` : parsed.jobId));
      }
    } catch (e) {
      if (submitted.length > 0) await this.remove(submitted).catch(() => undefined);
      throw e;
    }
    return { batchIds };
  }

  private async whoami(): Promise<string> {
    if (this.user) return this.user;
    const r = await runTool(this.executor, undefined, 'id', ['-un']);
    const user = r.stdout.trim();
    if (r.code !== 0 || !user) throw toolError('id -un', r);
    this.user = user;
    return user;
  }

  private async qstat(): Promise<BatchJobStatus[]> {
    const r = await runTool(this.executor, this.options.binDir, 'qstat', ['-xml', '-u', await this.whoami()]);
    if (r.code !== 0) throw toolError('qstat', r);
    return sgeJobStatuses(parseSgeQstatXml(r.stdout));
  }

  async checkJobStatus(batchIds: string[]): Promise<Map<string, BatchJobStatus>> {
    const wanted = [...new Set(batchIds)];
    const wantedSet = new Set(wanted);
    const result = new Map<string, BatchJobStatus>();
    if (wanted.length === 0) return result;
    const jobOf = (id: string) => id.split('.')[0] as string;
    const confirmed = await confirmJobStatuses(wanted, {
      list: async () => answerOf(await this.qstat()),
      // `qstat -j N`: the job (array) is still known, though not listed: not lost (weak: accounting may know the element)
      byId: async (ids) => {
        const found = new Map<string, BatchJobStatus>();
        const unanswered: string[] = [];
        for (const job of new Set(ids.map(jobOf))) {
          const r = await runTool(this.executor, this.options.binDir, 'qstat', ['-j', job]);
          const mine = ids.filter((id) => jobOf(id) === job);
          const known = sgeQstatJKnown(r.code, r.stdout, r.stderr);
          if (known === null) unanswered.push(...mine);
          else if (known) for (const id of mine) found.set(id, { batchId: id, state: BatchState.UNOBSERVED, rawState: 'known', reason: 'qstat -j knows the job, qstat does not list it' });
        }
        return { found, unanswered };
      },
      accounting: async (ids) => {
        const found: BatchJobStatus[] = [];
        const unanswered: string[] = [];
        for (const job of new Set(ids.map(jobOf))) {
          const r = await runTool(this.executor, this.options.binDir, 'qacct', ['-j', job]);
          if (r.code !== 0) {
            // `error: job id N not found` is an answer; anything else (no accounting file) is not
            if (!isSgeUnknownJob(r.stderr + '\n' + r.stdout)) unanswered.push(...ids.filter((id) => jobOf(id) === job));
            continue;
          }
          for (const s of qacctStatuses(parseQacct(r.stdout))) if (wantedSet.has(s.batchId)) found.push(s);
        }
        return answerOf(found, unanswered);
      },
    });
    for (const [id, s] of confirmed) result.set(id, s);
    for (const id of wanted) {
      const s = result.get(id)!;
      if (s.state === BatchState.UNKNOWN || s.state === BatchState.UNOBSERVED) continue;
      // every job reports its own `firn-<taskId>` (an array task reports the array's name), tagged or not
      const taskId = s.name ? sgeTaskId(s.name, id, this.prefix, true) : null;
      if (taskId !== null) result.set(id, { ...s, name: jobNameFor(taskId) });
    }
    await this.addSchedulingInfo(result);
    return result;
  }

  /**
   * Why pending jobs wait, in the scheduler's words: one `qstat -j` of up to SGE_PENDING_INFO_MAX
   * pending jobs per status check (its `scheduling info:`; arrays share their job's), set as the
   * status's reason (firn-queue records it as task.batch_reason). A failed call costs nothing but the reasons.
   */
  private async addSchedulingInfo(result: Map<string, BatchJobStatus>): Promise<void> {
    const jobOf = (id: string) => id.split('.')[0] as string;
    const pending = [...new Set([...result.values()].filter((s) => s.state === BatchState.QUEUED).map((s) => jobOf(s.batchId)))].slice(0, SGE_PENDING_INFO_MAX);
    if (pending.length === 0) return;
    const r = await runTool(this.executor, this.options.binDir, 'qstat', ['-j', pending.join(',')]).catch(() => null);
    if (!r) return;
    const info = parseSgeSchedulingInfo(r.stdout);
    for (const [id, s] of result) {
      const why = s.state === BatchState.QUEUED ? info.get(jobOf(id)) : undefined;
      if (why) result.set(id, { ...s, reason: why });
    }
  }

  async remove(batchIds: string[]): Promise<void> {
    for (const part of chunked([...new Set(batchIds)], ID_CHUNK)) {
      if (part.length === 0) continue;
      const r = await runTool(this.executor, this.options.binDir, 'qdel', part);
      if (r.code === 0) continue;
      const problems = (r.stderr + '\n' + r.stdout)
        .split('\n')
        .map((l) => l.trim())
        .filter((l) => l && !isSgeUnknownJob(l) && !/has (registered|deleted)|for deletion/i.test(l));
      if (problems.length > 0) throw toolError('qdel', r);
    }
  }

  async listJobs(): Promise<ListedJob[]> {
    const jobs: ListedJob[] = [];
    for (const s of await this.qstat()) {
      if (!s.name) continue;
      const taskId = sgeTaskId(s.name, s.batchId, this.prefix, false); // this grid's names only
      if (taskId === null || s.state === BatchState.COMPLETED) continue;
      jobs.push({ batchId: s.batchId, name: jobNameFor(taskId), state: s.state });
    }
    return jobs;
  }

  cleanQ(keep: (job: ListedJob, taskId: number) => boolean): Promise<ListedJob[]> {
    return cleanQueue(this, keep);
  }
}

