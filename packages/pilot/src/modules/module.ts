/**
 * The module interface — the paper's IPModule: parameters in, a name → number statistics
 * map out, CPU time always reported (as `cpu_seconds`).
 *
 * A module either runs processes through `runModuleProcess` (which enforces the task's
 * memory and time limits and measures the process tree's CPU time) or works in-process
 * (transfer), in which case it reports the pilot's own CPU time spent on it. Statistics a
 * module process appends to `FIRN_STATS` are read by the pilot after the module ends and
 * added to the module's result, so every module class gets them for free.
 */
import fs from 'node:fs';
import { FirnError, type Logger } from '../core-pure';
import { ResourceLimitError, lastLine, readTail, runProcess, type Limits, type RunResult, type Sample } from '../process-runner';
import type { ExternalModuleCopy, ModuleConfig, Stats } from '../protocol';
import type { Stager } from '../staging';

export interface ModuleContext {
  tray: string;
  /** The module's name in its tray. */
  module: string;
  /** 0-based iteration of the tray. */
  iteration: number;
  /** The module's config, expressions already evaluated for this job and iteration. */
  config: ModuleConfig;
  /** `config.parameters` (never undefined). */
  parameters: Record<string, unknown>;
  /** The task's scratch directory (FIRN_SCRATCH), the working directory of module processes. */
  scratch: string;
  /** A directory private to this module run (not inside the scratch directory). */
  privateDir: string;
  /** Complete environment for module processes (FIRN_* and the module's env included). */
  env: NodeJS.ProcessEnv;
  statsFile: string;
  stdoutFile: string;
  stderrFile: string;
  limits: Limits;
  signal: AbortSignal;
  stager: Stager;
  logger: Logger;
  /** The copy of an external module's source delivered by mon (external modules only). */
  external?: ExternalModuleCopy;
  /** Resource samples of the running process tree (heartbeats read the latest). */
  onSample: (s: Sample) => void;
  /** Sampling period for process trees, ms. */
  sampleMs?: number;
}

export interface ModuleResult {
  /** Always contains `cpu_seconds`. */
  stats: Stats;
  maxRssBytes: number;
  wallSeconds: number;
}

/** A description of one parameter a module class understands (IPModule's AddParameter). */
export interface ParameterSpec {
  description: string;
  required?: boolean;
}

export interface PilotModule {
  /** The class name in dataset configs (`shell`, `transfer`, `tarball`, or `external`). */
  readonly className: string;
  readonly parameters: Record<string, ParameterSpec>;
  /** Run once. Throws ModuleExitError / ResourceLimitError / another error on failure. */
  execute(ctx: ModuleContext): Promise<ModuleResult>;
}

/** A module process ended with a non-zero exit code. */
export class ModuleExitError extends FirnError {
  constructor(
    readonly exitCode: number,
    readonly lastStderrLine: string,
  ) {
    super(`exited with code ${exitCode}${lastStderrLine ? `: ${lastStderrLine}` : ''}`);
  }
}

/** The pilot is stopping (stale passkey, signal): not the module's fault. */
export class AbortedError extends FirnError {}

/** A module's parameters are wrong (missing, wrong type). */
export class ModuleConfigError extends FirnError {}

/**
 * Parse a FIRN_STATS file: one `name value` per line (whitespace or `=` between them).
 * Values are summed per name. Lines that do not parse are returned in `bad`.
 */
export function parseStats(text: string): { stats: Stats; bad: string[] } {
  const stats: Stats = {};
  const bad: string[] = [];
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    if (!line || line.startsWith('#')) continue;
    const m = /^([A-Za-z_][A-Za-z0-9_.:/-]{0,127})(?:\s+|\s*=\s*)([-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)$/.exec(line);
    const value = m ? Number(m[2]) : NaN;
    if (!m || !Number.isFinite(value)) {
      bad.push(line.length > 100 ? line.slice(0, 100) + '…' : line);
      continue;
    }
    const name = m[1] as string;
    stats[name] = (stats[name] ?? 0) + value;
  }
  return { stats, bad };
}

/** Add `b` into `a` (name-wise sums). */
export function addStats(a: Stats, b: Stats): Stats {
  for (const [k, v] of Object.entries(b)) a[k] = (a[k] ?? 0) + v;
  return a;
}

/**
 * Run a module process with the context's limits, output files and sampling. Resolves with
 * CPU/RSS/wall figures on exit code 0; throws ResourceLimitError when a limit killed it,
 * AbortedError when the pilot stopped it, ModuleExitError otherwise.
 */
export async function runModuleProcess(ctx: ModuleContext, argv: string[], cwd = ctx.scratch): Promise<ModuleResult> {
  const r: RunResult = await runProcess({
    argv,
    cwd,
    env: ctx.env,
    stdoutFile: ctx.stdoutFile,
    stderrFile: ctx.stderrFile,
    rusageFile: `${ctx.privateDir}/rusage`,
    limits: ctx.limits,
    signal: ctx.signal,
    onSample: ctx.onSample,
    ...(ctx.sampleMs !== undefined ? { sampleMs: ctx.sampleMs } : {}),
  });
  if (r.limitError) throw r.limitError;
  if (r.aborted) throw new AbortedError('module stopped: the pilot is shutting down');
  if (r.exitCode !== 0) throw new ModuleExitError(r.exitCode ?? -1, lastLine(readTail(ctx.stderrFile, 8192)));
  return { stats: { cpu_seconds: r.cpuSeconds }, maxRssBytes: r.maxRssBytes, wallSeconds: r.wallSeconds };
}

/** CPU seconds this process spent while `fn` ran (for in-process modules). */
export async function withOwnCpu<T>(fn: () => Promise<T>): Promise<{ value: T; cpuSeconds: number; wallSeconds: number }> {
  const c0 = process.cpuUsage();
  const t0 = Date.now();
  const value = await fn();
  const d = process.cpuUsage(c0);
  return { value, cpuSeconds: (d.user + d.system) / 1e6, wallSeconds: (Date.now() - t0) / 1000 };
}

/** A required string parameter, or a ModuleConfigError naming it. */
export function stringParam(ctx: ModuleContext, name: string, required: true): string;
export function stringParam(ctx: ModuleContext, name: string, required?: false): string | undefined;
export function stringParam(ctx: ModuleContext, name: string, required = false): string | undefined {
  const v = ctx.parameters[name];
  if (v === undefined || v === null || v === '') {
    if (required) throw new ModuleConfigError(`${ctx.tray}/${ctx.module}: parameters.${name} is required`);
    return undefined;
  }
  if (typeof v !== 'string' && typeof v !== 'number') {
    throw new ModuleConfigError(`${ctx.tray}/${ctx.module}: parameters.${name} must be a string, got ${Array.isArray(v) ? 'array' : typeof v}`);
  }
  return String(v);
}

export { ResourceLimitError };

/** True when `file` exists and is non-empty. */
export function nonEmpty(file: string): boolean {
  try {
    return fs.statSync(file).size > 0;
  } catch {
    return false;
  }
}
