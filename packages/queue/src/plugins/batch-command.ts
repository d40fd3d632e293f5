/**
 * Running a batch system's command through the Executor, and turning failures into
 * BatchSystemError with the tool's own words.
 */
import path from 'node:path';
import { BatchSystemError, type ExecOptions, type ExecResult, type Executor } from '@firn/core';
import { taskIdFromJobName, type BatchPlugin, type ListedJob } from './plugin';
import { shellJoin } from './shell-quote';

export interface ToolResult extends ExecResult {
  /** The command as a person would type it (for messages and logs; never executed). */
  display: string;
}

/** Path of a batch-system command: `<binDir>/<tool>` or the bare name (looked up on PATH). */
export function toolPath(binDir: string | undefined, tool: string): string {
  return binDir ? path.posix.join(binDir, tool) : tool;
}

/**
 * Run a command (argument vector, no shell). Never throws for a non-zero exit; an executor
 * failure (ssh down, spawn error) becomes a BatchSystemError.
 */
export async function runTool(
  executor: Executor,
  binDir: string | undefined,
  tool: string,
  args: string[],
  options?: ExecOptions,
): Promise<ToolResult> {
  const command = toolPath(binDir, tool);
  const display = shellJoin([command, ...args]);
  let result: ExecResult;
  try {
    result = await executor.exec(command, args, options);
  } catch (e) {
    const message = e instanceof Error ? e.message : String(e);
    throw new BatchSystemError(`could not run ${tool} via ${executor.description}: ${message}`, display, null, message);
  }
  return { ...result, display };
}

export function firstLine(text: string): string {
  return (
    text
      .split('\n')
      .map((l) => l.trim())
      .find((l) => l.length > 0) ?? ''
  );
}

/**
 * The most telling line of a tool's error output: the last line that reads like an error
 * (the Torque wrappers wrap sbatch's `sbatch: error: …` in a paragraph of their own),
 * else the first line.
 */
export function errorSummary(text: string): string {
  const lines = text
    .split('\n')
    .map((l) => l.trim().replace(/^'+/, '').trim())
    .filter((l) => l.length > 0);
  const errors = lines.filter((l) => /\b(error|denied|unable|invalid|failed|not found|cannot|can't)\b/i.test(l));
  return errors[errors.length - 1] ?? lines[0] ?? '';
}

/** The error for a failed command, carrying its stderr (or stdout when stderr is empty: the Torque wrappers print errors there). */
export function toolError(what: string, result: ToolResult): BatchSystemError {
  const text = result.stderr.trim() ? result.stderr : result.stdout;
  const why = errorSummary(text) || (result.code === null ? 'killed (timeout or signal)' : 'no message');
  return new BatchSystemError(`${what} failed (exit ${result.code ?? 'signal'}): ${why}`, result.display, result.code, text);
}

export function chunked<T>(items: readonly T[], size: number): T[][] {
  const out: T[][] = [];
  for (let i = 0; i < items.length; i += size) out.push(items.slice(i, i + size));
  return out;
}

/** cleanQ in terms of listJobs + remove: remove every listed Firn job that `keep` rejects. */
export async function cleanQueue(
  plugin: Pick<BatchPlugin, 'listJobs' | 'remove'>,
  keep: (job: ListedJob, taskId: number) => boolean,
): Promise<ListedJob[]> {
  const jobs = await plugin.listJobs();
  const doomed = jobs.filter((job) => {
    const taskId = taskIdFromJobName(job.name);
    return taskId !== null && !keep(job, taskId);
  });
  if (doomed.length > 0) await plugin.remove(doomed.map((j) => j.batchId));
  return doomed;
}
