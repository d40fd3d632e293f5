/**
 * HTCondor plugin: condor_submit / condor_q / condor_history / condor_rm.
 *
 * writeConfig writes two files into the batch dir: `pilot.sh` (the /bin/sh script, the
 * executable) and `submit.sub` (the submit description, returned). A batch is one cluster:
 * one `queue 1` block per task, in task order, each with its own `arguments = <taskId>`,
 * output/error (`<taskDir>/stdout`, `<taskDir>/stderr`, transferred back), the passkey file
 * in `transfer_input_files`, and the attributes `+FirnTaskId`, `+FirnJobName =
 * "firn-<taskId>"`; the cluster carries `+FirnGrid` and `batch_name`. Proc N of the
 * cluster is the N-th task; listJobs()/cleanQ() read FirnJobName with
 * `condor_q -constraint 'FirnGrid == "<grid>"' -af:jt …`, so grids sharing a schedd and
 * user never see each other's jobs.
 *
 * Requirements: request_cpus, request_memory (MB), request_disk (KiB), request_gpus,
 * `+MaxRuntime` (seconds; enforcing it is pool policy). options.account becomes
 * accounting_group; there are no queues/partitions in HTCondor (use extraDirectives,
 * one submit command per line). No shared filesystem is assumed; `getenv = false`.
 *
 * Status: condor_q; ids that left the queue are looked up with condor_history. Held jobs
 * count as FAILED (they wait for a person), with the HoldReason.
 *
 * Black holes: `SubmitBatch.excludeHosts` is ANDed into `requirements`
 * (`(Machine != "h.example.org")`; a short name also excludes its fully qualified forms),
 * after the last `requirements = …` of extraDirectives, which it keeps.
 */
import path from 'node:path';
import { BatchSystemError, ValidationError, type Executor } from '@firn/core';
import { answerOf, confirmJobStatuses } from './confirm-lost';
import { chunked, cleanQueue, firstLine, runTool, toolError } from './batch-command';
import { CONDOR_ATTRS, classAdString, condorIdConstraint, condorStatus, isCondorUnknownJob, parseCondorAf, parseCondorAnalyze, parseCondorSubmit } from './condor-parse';
import {
  jobNameFor,
  taskIdFromJobName,
  BatchState,
  type BatchJobStatus,
  type BatchPlugin,
  type ListedJob,
  type PluginOptions,
  type SubmitBatch,
  type SubmitResult,
} from './plugin';
import { batchRequirements, checkTasks, excludableHosts, renderPilotScript, renderTaskMap, resolveOptions, type ResolvedOptions } from './submit-script';

/** Most idle HTCondor jobs one status check analyses (condor_q -better-analyze). */
export const CONDOR_ANALYZE_MAX = 10;

const ID_CHUNK = 200;

/**
 * The ClassAd clause keeping a job off a host: `(Machine != "h.example.org")`; for a short
 * name also off `h.<anything>` (Machine is usually fully qualified, pilots may report the
 * short name). String comparison in ClassAds ignores case, as hostnames do.
 */
export function condorExcludeClause(host: string): string {
  const name = classAdString(host);
  if (host.includes('.')) return `(Machine != ${name})`;
  const dotted = `${host}.`;
  return `(Machine != ${name} && substr(Machine, 0, ${dotted.length}) != ${classAdString(dotted)})`;
}

/**
 * Submit commands of extraDirectives (comments dropped), with the exclusion of the hosts
 * ANDed into the last `requirements` (or added as one).
 */
export function condorSubmitCommands(extra: readonly string[], excludeHosts: readonly string[]): string[] {
  const lines = extra.filter((l) => !l.startsWith('#'));
  if (excludeHosts.length === 0) return lines;
  const clauses = excludeHosts.map(condorExcludeClause);
  const at = lines.map((l) => /^requirements\s*=/i.test(l)).lastIndexOf(true);
  if (at < 0) return [...lines, `requirements = ${clauses.join(' && ')}`];
  const own = (lines[at] as string).replace(/^requirements\s*=\s*/i, '').trim();
  const merged = `requirements = ${own ? `(${own}) && ` : ''}${clauses.join(' && ')}`;
  return [...lines.slice(0, at), merged, ...lines.slice(at + 1)];
}

export class CondorPlugin implements BatchPlugin {
  readonly name = 'condor';
  private readonly options: ResolvedOptions;

  constructor(
    private readonly executor: Executor,
    options: PluginOptions,
  ) {
    this.options = resolveOptions(options, 'condor');
    classAdString(this.options.grid); // throws on newlines
  }

  private checkBatch(batch: SubmitBatch): void {
    checkTasks(batch.tasks);
    const paths = [batch.dir, ...batch.tasks.flatMap((t) => [t.taskDir, t.passkeyFile])];
    for (const p of paths) {
      if (!p.startsWith('/')) throw new ValidationError(`path must be absolute, got ${JSON.stringify(p)}`);
      // submit-file values run to the end of the line, expand $(macros) and transfer lists split on commas
      if (/[\n\r]|\$\(|\$\$|,|^\s|\s$/.test(p)) {
        throw new ValidationError(`path ${JSON.stringify(p)} cannot be written into a submit file (no newlines, commas, $( or $$, surrounding spaces)`);
      }
    }
  }

  async writeConfig(batch: SubmitBatch): Promise<string> {
    this.checkBatch(batch);
    const o = this.options;
    const req = batchRequirements(batch.tasks);
    const exe = path.posix.join(batch.dir, 'pilot.sh');
    const subPath = path.posix.join(batch.dir, 'submit.sub');
    const first = batch.tasks.reduce((m, t) => Math.min(m, t.taskId), Number.POSITIVE_INFINITY);
    const batchName = batch.tasks.length > 1 ? `firn-a${first}` : jobNameFor(first);

    const script = renderPilotScript({
      options: o,
      tasks: batch.tasks,
      directives: [],
      comments: ['Executable of an HTCondor submission (submit.sub beside it); the task id is the first argument.'],
      selector: { kind: 'argument' },
      taskFiles: false,
    });

    const lines = [
      `# Firn pilot submission for grid ${JSON.stringify(o.grid)}, written by firn-queue; do not edit.`,
      '# One cluster; proc N runs the N-th task below.',
      'universe = vanilla',
      `executable = ${exe}`,
      'transfer_executable = true',
      'should_transfer_files = IF_NEEDED',
      'when_to_transfer_output = ON_EXIT',
      'getenv = false',
      `log = ${path.posix.join(batch.dir, 'condor.log')}`,
      `batch_name = ${batchName}`,
      `request_cpus = ${req.cpu}`,
    ];
    if (req.memory > 0) lines.push(`request_memory = ${req.memory}`);
    if (req.disk > 0) lines.push(`request_disk = ${req.disk * 1024}`);
    if (req.gpu > 0) lines.push(`request_gpus = ${req.gpu}`);
    if (req.time > 0) lines.push(`+MaxRuntime = ${req.time * 60}`);
    lines.push(`+FirnGrid = ${classAdString(o.grid)}`);
    if (o.account) lines.push(`accounting_group = ${o.account}`);
    lines.push(...condorSubmitCommands(o.extraDirectives, excludableHosts(batch.excludeHosts)));
    for (const t of batch.tasks) {
      lines.push(
        '',
        `arguments = ${t.taskId}`,
        `output = ${path.posix.join(t.taskDir, 'stdout')}`,
        `error = ${path.posix.join(t.taskDir, 'stderr')}`,
        `transfer_input_files = ${t.passkeyFile}`,
        `+FirnTaskId = ${t.taskId}`,
        `+FirnJobName = ${classAdString(jobNameFor(t.taskId))}`,
        'queue 1',
      );
    }
    await this.executor.mkdir(batch.dir, 0o700);
    for (const t of batch.tasks) await this.executor.mkdir(t.taskDir, 0o700);
    await this.executor.writeFile(exe, script, 0o700);
    await this.executor.writeFile(subPath, lines.join('\n') + '\n', 0o600);
    const rows = batch.tasks.map((t, i) => ({ taskId: t.taskId, batchName, index: i, taskDir: t.taskDir }));
    await this.executor.writeFile(path.posix.join(batch.dir, 'tasks.txt'), renderTaskMap(rows), 0o600);
    return subPath;
  }

  async submit(batch: SubmitBatch, scriptPath: string): Promise<SubmitResult> {
    this.checkBatch(batch);
    const r = await runTool(this.executor, this.options.binDir, 'condor_submit', ['-terse', scriptPath], { cwd: batch.dir });
    if (r.code !== 0) throw toolError('condor_submit', r);
    const ids = parseCondorSubmit(r.stdout);
    if (ids.length !== batch.tasks.length) {
      if (ids.length > 0) await this.remove(ids).catch(() => undefined);
      throw new BatchSystemError(
        `condor_submit created ${ids.length} jobs for ${batch.tasks.length} tasks: ${JSON.stringify(firstLine(r.stdout))}`,
        r.display,
        r.code,
        r.stderr || r.stdout,
      );
    }
    return { batchIds: new Map(batch.tasks.map((t, i) => [t.taskId, ids[i] as string])) };
  }

  async checkJobStatus(batchIds: string[]): Promise<Map<string, BatchJobStatus>> {
    const wanted = [...new Set(batchIds)];
    for (const id of wanted) if (!/^\d+\.\d+$/.test(id)) throw new ValidationError(`not an HTCondor job id: ${JSON.stringify(id)}`);
    // condor_q with the ids is the listing and the look-up by id in one; then condor_history
    const result = await confirmJobStatuses(wanted, {
      list: async (ids) => {
        const found: BatchJobStatus[] = [];
        for (const part of chunked(ids, ID_CHUNK)) {
          const r = await runTool(this.executor, this.options.binDir, 'condor_q', [...part, '-af:jt', ...CONDOR_ATTRS]);
          if (r.code !== 0) throw toolError('condor_q', r);
          for (const row of parseCondorAf(r.stdout, CONDOR_ATTRS)) found.push(condorStatus(row));
        }
        return answerOf(found);
      },
      accounting: async (ids) => {
        const found: BatchJobStatus[] = [];
        const unanswered: string[] = [];
        for (const part of chunked(ids, ID_CHUNK)) {
          const args = ['-constraint', condorIdConstraint(part), '-limit', String(part.length), '-af:jt', ...CONDOR_ATTRS];
          const r = await runTool(this.executor, this.options.binDir, 'condor_history', args);
          if (r.code !== 0) {
            unanswered.push(...part); // history unavailable: not confirmed this cycle
            continue;
          }
          for (const row of parseCondorAf(r.stdout, CONDOR_ATTRS)) found.push(condorStatus(row));
        }
        return answerOf(found, unanswered);
      },
    });
    await this.addAnalysis(result);
    return result;
  }

  /**
   * Why idle jobs wait, in HTCondor's words: one `condor_q -better-analyze` of up to
   * CONDOR_ANALYZE_MAX idle jobs per status check (the analysis is costly for the schedd), its
   * summary set as their reason (firn-queue records it as task.batch_reason). A failure costs
   * only the reasons.
   */
  private async addAnalysis(result: Map<string, BatchJobStatus>): Promise<void> {
    const idle = [...result.values()].filter((s) => s.state === BatchState.QUEUED && !s.reason).map((s) => s.batchId).slice(0, CONDOR_ANALYZE_MAX);
    if (idle.length === 0) return;
    let stdout: string;
    try {
      const r = await runTool(this.executor, this.options.binDir, 'condor_q', ['-better-analyze', ...idle]);
      if (r.code !== 0) return;
      stdout = r.stdout;
    } catch {
      return;
    }
    for (const [id, why] of parseCondorAnalyze(stdout)) {
      const s = result.get(id);
      if (s && s.state === BatchState.QUEUED && why) result.set(id, { ...s, reason: why });
    }
  }

  async remove(batchIds: string[]): Promise<void> {
    for (const part of chunked([...new Set(batchIds)], ID_CHUNK)) {
      if (part.length === 0) continue;
      const r = await runTool(this.executor, this.options.binDir, 'condor_rm', part);
      if (r.code === 0) continue;
      const problems = (r.stderr + '\n' + r.stdout)
        .split('\n')
        .map((l) => l.trim())
        .filter((l) => l && !isCondorUnknownJob(l) && !/marked for removal|already/i.test(l));
      if (problems.length > 0) throw toolError('condor_rm', r);
    }
  }

  async listJobs(): Promise<ListedJob[]> {
    const constraint = `FirnGrid == ${classAdString(this.options.grid)}`;
    const r = await runTool(this.executor, this.options.binDir, 'condor_q', ['-constraint', constraint, '-af:jt', ...CONDOR_ATTRS]);
    if (r.code !== 0) throw toolError('condor_q', r);
    const jobs: ListedJob[] = [];
    for (const row of parseCondorAf(r.stdout, CONDOR_ATTRS)) {
      const s = condorStatus(row);
      const taskId = s.name ? taskIdFromJobName(s.name) : null;
      // Removed (3) and Completed (4) jobs are on their way out of the queue
      if (taskId === null || s.rawState === 'Removed' || s.rawState === 'Completed') continue;
      jobs.push({ batchId: s.batchId, name: jobNameFor(taskId), state: s.state });
    }
    return jobs;
  }

  cleanQ(keep: (job: ListedJob, taskId: number) => boolean): Promise<ListedJob[]> {
    return cleanQueue(this, keep);
  }
}
