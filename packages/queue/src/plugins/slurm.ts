/**
 * Slurm plugin: sbatch / squeue / sacct / scancel.
 *
 * Arrays: a batch becomes one `sbatch --array=<index list>` per window of task ids (an
 * array spans at most maxArrayIndex ids, Slurm's MaxArraySize − 1). The array is named
 * `firn-a<base>` and element `<jobId>_<i>` runs task `base + i`; the script computes its task
 * from `$SLURM_JOB_NAME` and `$SLURM_ARRAY_TASK_ID`, and listJobs()/cleanQ() recover it the
 * same way from squeue's `%i` (`1234_5`) and `%j`. A window of one task is a plain job
 * `firn-<taskId>`. `tasks.txt` beside the script records the mapping for people.
 *
 * Status: `squeue --me -r -t all` (pending, running and recently finished jobs); ids not
 * there are asked by id (`squeue --jobs=…`: 22.05's `squeue --array` omits the last pending
 * element of a stepped array), then looked up with `sacct -X -P -j …`, or `sacct -c` (jobcomp)
 * where accounting storage is disabled; ids nobody knows are UNKNOWN, ids a failed look-up
 * left open are UNOBSERVED (confirm-lost.ts).
 *
 * Jobs run with `--export=NONE`: the daemon's own environment (which may hold secrets)
 * is not copied into jobs; the script sets PATH if the login environment has none, and
 * exports the configured [environment].
 *
 * Grids: every job is submitted with `--comment=firn:<grid, URI-encoded>` (slurmComment)
 * and listJobs()/cleanQ() read `%k` and list only this grid's jobs, so another grid or Firn
 * instance on the same account never has its jobs cancelled or adopted. Jobs without the
 * comment (submitted before it existed) are still followed by batch id, never listed.
 *
 * Black holes: `SubmitBatch.excludeHosts` becomes `#SBATCH --exclude=<nodes>`, mapped to
 * node names with `sinfo -h -a -N -o '%N|%n'` (cached for a minute): sbatch refuses a
 * submission naming a node it does not know, so hosts Slurm does not know are left out (the
 * script says which), and if sinfo fails nothing is excluded (firn-mon refuses such a pilot
 * at pilot.start anyway).
 */
import path from 'node:path';
import { BatchSystemError, ValidationError, type Executor } from '@firn/core';
import { chunkJobName, formatIndexList, isArray, planWindows, taskIdForElement, type ArrayChunk } from './array-plan';
import { chunked, cleanQueue, firstLine, runTool, toolError } from './batch-command';
import { answerOf, confirmJobStatuses, type LookupAnswer } from './confirm-lost';
import {
  BatchState,
  jobNameFor,
  type BatchJobStatus,
  type BatchPlugin,
  type ListedJob,
  type PluginOptions,
  type SubmitBatch,
  type SubmitResult,
} from './plugin';
import {
  SACCT_FIELDS,
  SINFO_NODES_FORMAT,
  SQUEUE_FORMAT,
  SQUEUE_LIST_FORMAT,
  isSlurmAccountingDisabled,
  isSlurmInvalidJobId,
  parseArrayElementId,
  parseSacct,
  parseSbatchOutput,
  parseSinfoNodes,
  parseSqueue,
  parseSqueueById,
  slurmExcludeNodes,
  type SlurmNode,
  type SqueueJob,
} from './slurm-parse';
import {
  batchRequirements,
  checkTasks,
  excludableHosts,
  extraDirectiveLines,
  renderPilotScript,
  renderTaskMap,
  resolveOptions,
  type ResolvedOptions,
} from './submit-script';

const ID_CHUNK = 200;
/** Remembered element → own job id mappings (for `sacct -c`), oldest forgotten first. */
const RAW_ID_CACHE = 100_000;
/** How long the node list from sinfo is reused for `--exclude`. */
const NODE_LIST_TTL_MS = 60_000;

/** The job comment that marks a job as this grid's: `firn:` + the grid name URI-encoded (no `|`, spaces or newlines). */
export function slurmComment(grid: string): string {
  return `firn:${encodeURIComponent(grid)}`;
}

/** Node names accepted in a directive (Slurm node names are plain words). */
const NODE_NAME = /^[A-Za-z0-9][A-Za-z0-9._-]*$/;

/** An array element reports the array's name `firn-a<base>`; give it its own `firn-<taskId>`. */
function withTaskName(s: BatchJobStatus): BatchJobStatus {
  const element = parseArrayElementId(s.batchId);
  const taskId = s.name && element ? taskIdForElement(s.name, element.index, 0) : null;
  return taskId === null ? s : { ...s, name: jobNameFor(taskId) };
}

function withoutRawId(job: SqueueJob): BatchJobStatus {
  const { rawJobId: _raw, comment: _comment, ...status } = job;
  return status;
}

export class SlurmPlugin implements BatchPlugin {
  readonly name = 'slurm';
  private readonly options: ResolvedOptions;
  /** Which accounting query works here: plain sacct (slurmdbd) or `sacct -c` (jobcomp file). */
  private accounting: 'sacct' | 'jobcomp' = 'sacct';
  /**
   * Array element id → its own job id, learned from squeue `%A` once the element started:
   * the jobcomp log (`sacct -c`) records elements only under that id.
   */
  private readonly rawIds = new Map<string, string>();
  /** `--comment` of this grid's jobs. */
  private readonly comment: string;
  private nodeList: { at: number; nodes: SlurmNode[] } | null = null;

  constructor(
    private readonly executor: Executor,
    options: PluginOptions,
  ) {
    this.options = resolveOptions(options, 'slurm');
    this.comment = slurmComment(this.options.grid);
  }

  /** The nodes `--exclude` names for the black-holed hosts, and what to say about the rest in the script. */
  private async excludeNodes(hosts: readonly string[]): Promise<{ nodes: string[]; notes: string[] }> {
    if (hosts.length === 0) return { nodes: [], notes: [] };
    if (!this.nodeList || Date.now() - this.nodeList.at > NODE_LIST_TTL_MS) {
      const r = await runTool(this.executor, this.options.binDir, 'sinfo', ['-h', '-a', '-N', '-o', SINFO_NODES_FORMAT]);
      if (r.code !== 0) {
        return { nodes: [], notes: [`Black-holed hosts NOT excluded (sinfo failed: ${firstLine(r.stderr || r.stdout).slice(0, 200)}): ${hosts.join(' ')}`] };
      }
      this.nodeList = { at: Date.now(), nodes: parseSinfoNodes(r.stdout).filter((n) => NODE_NAME.test(n.name)) };
    }
    const { nodes, unknown } = slurmExcludeNodes(hosts, this.nodeList.nodes);
    const notes = nodes.length ? [`Black-holed hosts excluded: ${nodes.join(' ')}`] : [];
    if (unknown.length) notes.push(`Black-holed hosts Slurm does not know (not excluded): ${unknown.join(' ')}`);
    return { nodes, notes };
  }

  private plan(batch: SubmitBatch): ArrayChunk[] {
    return planWindows(
      batch.tasks.map((t) => t.taskId),
      this.options.maxArrayIndex,
    );
  }

  private checkBatch(batch: SubmitBatch): void {
    checkTasks(batch.tasks);
    for (const p of [batch.dir, ...batch.tasks.map((t) => t.taskDir)]) {
      if (!p.startsWith('/')) throw new ValidationError(`batch directory must be an absolute path, got ${JSON.stringify(p)}`);
      // sbatch expands %-patterns in --output and turns them all off after a backslash
      if (/[%\\\n]/.test(p)) throw new ValidationError(`directory ${JSON.stringify(p)} must not contain %, \\ or newlines (Slurm output patterns)`);
    }
  }

  async writeConfig(batch: SubmitBatch): Promise<string> {
    this.checkBatch(batch);
    const req = batchRequirements(batch.tasks);
    const chunks = this.plan(batch);
    const o = this.options;
    const d: string[] = [];
    if (chunks.length === 1) {
      const c = chunks[0] as ArrayChunk;
      d.push(`#SBATCH --job-name=${chunkJobName(c)}`);
      if (isArray(c)) d.push(`#SBATCH --array=${formatIndexList(c.taskIds.map((id) => id - c.base))}`);
    }
    d.push('#SBATCH --nodes=1', '#SBATCH --ntasks=1', `#SBATCH --cpus-per-task=${req.cpu}`);
    if (req.memory > 0) d.push(`#SBATCH --mem=${req.memory}M`);
    if (req.gpu > 0) d.push(`#SBATCH --gres=gpu:${req.gpu}`);
    if (req.time > 0) d.push(`#SBATCH --time=${req.time}`);
    const partition = o.partition || o.queue;
    if (partition) d.push(`#SBATCH --partition=${partition}`);
    if (o.account) d.push(`#SBATCH --account=${o.account}`);
    const exclude = await this.excludeNodes(excludableHosts(batch.excludeHosts));
    if (exclude.nodes.length) d.push(`#SBATCH --exclude=${exclude.nodes.join(',')}`);
    d.push('#SBATCH --export=NONE', ...extraDirectiveLines('#SBATCH', o.extraDirectives));

    const comments = [
      'Submitted with sbatch --job-name/--array/--comment on the command line (they override the lines above).',
      'The task is firn-<taskId> from the job name, or base + $SLURM_ARRAY_TASK_ID for an array named firn-a<base>.',
      ...exclude.notes,
    ];
    if (chunks.length > 1) comments.push(`Split into ${chunks.length} submissions: ${chunks.map((c) => chunkJobName(c)).join(' ')}`);
    const script = renderPilotScript({
      options: o,
      tasks: batch.tasks,
      directives: d,
      comments,
      selector: { kind: 'job-name', nameVars: ['SLURM_JOB_NAME'], indexVar: 'SLURM_ARRAY_TASK_ID', firstIndex: 0 },
      taskFiles: true,
    });
    const scriptPath = path.posix.join(batch.dir, 'submit.sh');
    await this.executor.mkdir(batch.dir, 0o700);
    for (const t of batch.tasks) await this.executor.mkdir(t.taskDir, 0o700);
    await this.executor.writeFile(scriptPath, script, 0o700);
    const taskDir = new Map(batch.tasks.map((t) => [t.taskId, t.taskDir]));
    const rows = chunks.flatMap((c) =>
      c.taskIds.map((id) => ({ taskId: id, batchName: chunkJobName(c), index: isArray(c) ? id - c.base : null, taskDir: taskDir.get(id) ?? '' })),
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
        const args = ['--parsable', `--job-name=${chunkJobName(c)}`, `--comment=${this.comment}`];
        if (isArray(c)) {
          args.push(`--array=${formatIndexList(c.taskIds.map((id) => id - c.base))}`, `--output=${path.posix.join(batch.dir, 'slurm-%A_%a.out')}`);
        } else {
          args.push(`--output=${path.posix.join(taskDir.get(c.base) as string, 'slurm-%j.out')}`);
        }
        args.push(scriptPath);
        const r = await runTool(this.executor, this.options.binDir, 'sbatch', args, { cwd: batch.dir });
        if (r.code !== 0) throw toolError('sbatch', r);
        const parsed = parseSbatchOutput(r.stdout);
        if (!parsed) {
          throw new BatchSystemError(`sbatch printed no job id: ${JSON.stringify(firstLine(r.stdout))}`, r.display, r.code, r.stderr || r.stdout);
        }
        submitted.push(parsed.jobId);
        for (const id of c.taskIds) batchIds.set(id, isArray(c) ? `${parsed.jobId}_${id - c.base}` : parsed.jobId);
      }
    } catch (e) {
      // do not leave half a batch behind: the caller will put these tasks back to WAITING
      if (submitted.length > 0) await this.remove(submitted).catch(() => undefined);
      throw e;
    }
    return { batchIds };
  }

  private async squeue(all: boolean, format: string = SQUEUE_FORMAT): Promise<SqueueJob[]> {
    const args = ['--me', '--noheader', '--array', ...(all ? ['--states=all'] : []), `--format=${format}`];
    const r = await runTool(this.executor, this.options.binDir, 'squeue', args);
    if (r.code !== 0) throw toolError('squeue', r);
    const jobs = parseSqueue(r.stdout, format);
    for (const j of jobs) {
      if (j.rawJobId && j.batchId.includes('_') && j.state !== BatchState.QUEUED && !this.rawIds.has(j.batchId)) {
        this.rawIds.set(j.batchId, j.rawJobId);
        if (this.rawIds.size > RAW_ID_CACHE) this.rawIds.delete(this.rawIds.keys().next().value as string);
      }
    }
    return jobs;
  }

  /** Final states from accounting; ids accounting does not know are left out, ids it could not be asked about are `unanswered`. */
  private async accountingStatuses(ids: string[]): Promise<LookupAnswer> {
    const out: BatchJobStatus[] = [];
    const unanswered: string[] = [];
    for (const part of chunked(ids, ID_CHUNK)) {
      if (this.accounting === 'sacct') {
        const r = await runTool(this.executor, this.options.binDir, 'sacct', ['-X', '-P', '-j', part.join(','), '-o', SACCT_FIELDS.join(',')]);
        if (r.code === 0) {
          out.push(...parseSacct(r.stdout));
          continue;
        }
        if (!isSlurmAccountingDisabled(r.stderr + r.stdout)) {
          unanswered.push(...part); // transient: not confirmed this cycle
          continue;
        }
        this.accounting = 'jobcomp';
      }
      // The jobcomp log knows array elements only by their own job id (if we saw it start);
      // an element we never saw start cannot be in it under another id, so "not found" stands.
      const query = new Map<string, string>();
      for (const id of part) {
        const raw = id.includes('_') ? this.rawIds.get(id) : id;
        if (raw) query.set(raw, id);
      }
      if (query.size === 0) continue;
      const r = await runTool(this.executor, this.options.binDir, 'sacct', ['-c', '-P', '-j', [...query.keys()].join(','), '-o', SACCT_FIELDS.join(',')]);
      if (r.code !== 0) {
        unanswered.push(...query.values());
        continue;
      }
      for (const s of parseSacct(r.stdout)) {
        const id = query.get(s.batchId);
        if (id !== undefined) out.push({ ...s, batchId: id });
      }
    }
    for (const s of out) if (s.state !== BatchState.QUEUED && s.state !== BatchState.RUNNING) this.rawIds.delete(s.batchId);
    return answerOf(out, unanswered);
  }

  /** `squeue --jobs=<ids>`: what Slurm knows of these ids, even where `squeue --array` left them out. */
  private async squeueById(ids: string[]): Promise<LookupAnswer> {
    const out: BatchJobStatus[] = [];
    const unanswered: string[] = [];
    for (const part of chunked(ids, ID_CHUNK)) {
      const args = ['--noheader', '--array', '--states=all', `--jobs=${part.join(',')}`, `--format=${SQUEUE_FORMAT}`];
      const r = await runTool(this.executor, this.options.binDir, 'squeue', args);
      const parsed = parseSqueueById(r.code, r.stdout, r.stderr);
      if (parsed.failed) unanswered.push(...part);
      out.push(...parsed.jobs.map(withoutRawId));
    }
    return answerOf(out, unanswered);
  }

  /** Listing → by id → accounting (confirm-lost.ts): a job is UNKNOWN only when all three agree. */
  async checkJobStatus(batchIds: string[]): Promise<Map<string, BatchJobStatus>> {
    const result = await confirmJobStatuses(batchIds, {
      list: async () => answerOf((await this.squeue(true)).map(withoutRawId)),
      byId: (ids) => this.squeueById(ids),
      accounting: (ids) => this.accountingStatuses(ids),
    });
    for (const [id, s] of result) if (s.state !== BatchState.UNKNOWN && s.state !== BatchState.UNOBSERVED) result.set(id, withTaskName(s));
    return result;
  }

  async remove(batchIds: string[]): Promise<void> {
    for (const part of chunked([...new Set(batchIds)], ID_CHUNK)) {
      if (part.length === 0) continue;
      const r = await runTool(this.executor, this.options.binDir, 'scancel', part);
      if (r.code === 0) continue;
      const problems = (r.stderr + '\n' + r.stdout)
        .split('\n')
        .map((l) => l.trim())
        .filter((l) => l && !isSlurmInvalidJobId(l) && !/already completing or completed/i.test(l) && !/^scancel: Terminating job/i.test(l));
      if (problems.length > 0) throw toolError('scancel', r);
    }
  }

  async listJobs(): Promise<ListedJob[]> {
    const jobs: ListedJob[] = [];
    for (const s of await this.squeue(false, SQUEUE_LIST_FORMAT)) {
      if (!s.name || s.comment !== this.comment) continue; // another grid's, or no Firn job
      const element = parseArrayElementId(s.batchId);
      const taskId = taskIdForElement(s.name, element ? element.index : null, 0);
      if (taskId === null) continue;
      if (s.state === BatchState.COMPLETED || s.state === BatchState.FAILED || s.state === BatchState.CANCELLED) continue;
      jobs.push({ batchId: s.batchId, name: jobNameFor(taskId), state: s.state });
    }
    return jobs;
  }

  cleanQ(keep: (job: ListedJob, taskId: number) => boolean): Promise<ListedJob[]> {
    return cleanQueue(this, keep);
  }
}
