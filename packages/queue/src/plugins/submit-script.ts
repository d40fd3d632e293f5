/**
 * The `/bin/sh` script every plugin submits, and the option/requirement checks they share.
 *
 * Layout of a generated script:
 *   #!/bin/sh
 *   <batch-system directives>          (#SBATCH / #PBS / #$ lines, resources etc.)
 *   # comments (grid, tasks, how the task is chosen)
 *   PATH default, [environment] exports (every value shell-quoted)
 *   which task am I?  (from the job name + array index, or from $1)
 *   case table: task id → task dir, passkey file (shell-quoted)
 *   run the pilot:  <pilotCommand> --mon URL --task ID --passkey-file FILE [--scratch DIR]
 *     with stdout/stderr to <taskDir>/stdout, <taskDir>/stderr and its exit code to
 *     <taskDir>/exit_code (written atomically after the pilot exits).
 *   a task with its own `command` (firn run, unmonitored) runs that instead: the case table
 *     sets it as the positional parameters (`set -- …`) and the script runs "$@".
 */
import { ConfigError, ValidationError } from '@firn/core';
import type { PluginOptions, Requirements, SubmitTask } from './plugin';
import { isShellName, shellJoin, shellQuote, splitCommandLine } from './shell-quote';

/** Exit code of the script itself when it cannot tell which task it is (never a pilot code). */
export const SCRIPT_SELECT_FAILURE = 97;

export interface ResolvedOptions extends PluginOptions {
  /** pilotCommand split into words. */
  pilotWords: string[];
  extraDirectives: string[];
  maxArrayIndex: number;
}

/** Values that go into a directive line unquoted: no spaces, quotes or shell characters. */
const DIRECTIVE_VALUE = /^[A-Za-z0-9_.,:@%+=/-]+$/;

/** Validate the options a plugin is constructed with; the message names the failing field. */
export function resolveOptions(options: PluginOptions, plugin: string): ResolvedOptions {
  const where = `${plugin} plugin`;
  const fail = (field: string, why: string): never => {
    throw new ConfigError(`${where}: ${field} ${why}`);
  };
  if (typeof options.grid !== 'string' || !options.grid.trim()) fail('grid', 'must be a non-empty string');
  if (typeof options.monUrl !== 'string' || !/^https?:\/\/\S+$/.test(options.monUrl)) {
    fail('monUrl', `must be an http(s) URL without spaces, got ${JSON.stringify(options.monUrl)}`);
  }
  let pilotWords: string[] = [];
  try {
    pilotWords = splitCommandLine(options.pilotCommand ?? '');
  } catch (e) {
    fail('pilotCommand', `cannot be split into words: ${(e as Error).message}`);
  }
  if (pilotWords.length === 0) fail('pilotCommand', 'must name the pilot command');
  for (const w of pilotWords) if (w.includes('\0')) fail('pilotCommand', 'must not contain NUL bytes');
  if (options.scratch !== undefined && options.scratch.includes('\0')) fail('scratch', 'must not contain NUL bytes');
  const env = options.environment ?? {};
  if (typeof env !== 'object' || env === null) fail('environment', 'must be an object of NAME = value');
  for (const [name, value] of Object.entries(env)) {
    if (!isShellName(name)) fail(`environment.${name}`, 'is not a valid variable name (letters, digits, _; not starting with a digit)');
    if (typeof value !== 'string') fail(`environment.${name}`, `must be a string, got ${typeof value}`);
    if (value.includes('\0')) fail(`environment.${name}`, 'must not contain NUL bytes');
  }
  for (const field of ['partition', 'queue', 'account', 'parallelEnvironment'] as const) {
    const v = options[field];
    if (v !== undefined && v !== '' && !DIRECTIVE_VALUE.test(v)) {
      fail(field, `must contain only letters, digits and _.,:@%+=/- (it is written into a batch directive), got ${JSON.stringify(v)}`);
    }
  }
  const extraDirectives = (options.extraDirectives ?? []).map((l) => l.trim()).filter((l) => l.length > 0);
  extraDirectives.forEach((line, i) => {
    if (/[\r\n\0]/.test(line)) fail(`extraDirectives[${i}]`, 'must be a single line');
  });
  if (options.concurrency !== undefined && (!Number.isInteger(options.concurrency) || options.concurrency < 1)) {
    fail('concurrency', `must be a positive integer, got ${options.concurrency}`);
  }
  const maxArrayIndex = options.maxArrayIndex ?? 1000;
  if (!Number.isInteger(maxArrayIndex) || maxArrayIndex < 1) fail('maxArrayIndex', `must be a positive integer, got ${maxArrayIndex}`);
  return { ...options, environment: { ...env }, pilotWords, extraDirectives, maxArrayIndex };
}

export interface BatchRequirements {
  cpu: number;
  gpu: number;
  /** MB */
  memory: number;
  /** MB */
  disk: number;
  /** minutes */
  time: number;
}

/**
 * The requirements a submission asks for: a batch holds tasks with identical requirements,
 * but to be safe each field is the maximum over the tasks, rounded up; cpu is at least 1.
 */
export function batchRequirements(tasks: readonly SubmitTask[]): BatchRequirements {
  if (tasks.length === 0) throw new ValidationError('a batch must hold at least one task');
  const field = (name: keyof Omit<Requirements, 'site'>): number => {
    let max = 0;
    for (const t of tasks) {
      const v = t.requirements[name];
      if (typeof v !== 'number' || !Number.isFinite(v) || v < 0) {
        throw new ValidationError(`task ${t.taskId}: requirements.${name} must be a non-negative number, got ${String(v)}`);
      }
      max = Math.max(max, Math.ceil(v));
    }
    return max;
  };
  return { cpu: Math.max(1, field('cpu')), gpu: field('gpu'), memory: field('memory'), disk: field('disk'), time: field('time') };
}

/** Check what every plugin needs of the tasks it is given. */
export function checkTasks(tasks: readonly SubmitTask[]): void {
  if (tasks.length === 0) throw new ValidationError('a batch must hold at least one task');
  const seen = new Set<number>();
  for (const t of tasks) {
    if (!Number.isSafeInteger(t.taskId) || t.taskId < 0) throw new ValidationError(`task id must be a non-negative integer, got ${t.taskId}`);
    if (seen.has(t.taskId)) throw new ValidationError(`task ${t.taskId} appears twice in one batch`);
    seen.add(t.taskId);
    for (const [field, value] of [
      ['taskDir', t.taskDir],
      ['passkeyFile', t.passkeyFile],
    ] as const) {
      if (typeof value !== 'string' || !value.startsWith('/')) {
        throw new ValidationError(`task ${t.taskId}: ${field} must be an absolute path, got ${JSON.stringify(value)}`);
      }
      if (/[\0\r\n]/.test(value)) throw new ValidationError(`task ${t.taskId}: ${field} must not contain newlines or NUL bytes`);
    }
    if (t.command !== undefined) {
      if (!Array.isArray(t.command) || t.command.length === 0) throw new ValidationError(`task ${t.taskId}: command must be a non-empty argument vector`);
      if (t.command.some((w) => typeof w !== 'string' || /[\0\r\n]/.test(w))) {
        throw new ValidationError(`task ${t.taskId}: command words must be strings without newlines or NUL bytes`);
      }
    }
  }
}

/**
 * The hosts of `SubmitBatch.excludeHosts` that can be written into a batch directive:
 * plain hostnames (letters, digits, `.`, `-`, `_`, starting with a letter or digit, at most
 * 253 characters), each once, in order. Anything else — a pilot reports its hostname itself —
 * is dropped, never quoted into a script.
 */
export function excludableHosts(hosts: readonly string[] | undefined): string[] {
  const out: string[] = [];
  const seen = new Set<string>();
  for (const h of hosts ?? []) {
    if (typeof h !== 'string' || h.length > 253 || !/^[A-Za-z0-9][A-Za-z0-9._-]*$/.test(h)) continue;
    const key = h.toLowerCase();
    if (seen.has(key)) continue;
    seen.add(key);
    out.push(h);
  }
  return out;
}

/** Minutes → `HH:MM:SS` (hours may exceed 24), as PBS walltime and SGE h_rt take it. */
export function formatHms(minutes: number): string {
  const m = Math.max(0, Math.ceil(minutes));
  const hh = Math.floor(m / 60);
  const mm = m % 60;
  return `${String(hh).padStart(2, '0')}:${String(mm).padStart(2, '0')}:00`;
}

/** extraDirectives as directive lines: a line starting with `#` is used as is, others get the prefix. */
export function extraDirectiveLines(prefix: string, extra: readonly string[]): string[] {
  return extra.map((line) => (line.startsWith('#') ? line : `${prefix} ${line}`));
}

/** How the running script finds out which of its tasks it is. */
export type TaskSelector =
  /** The task id is the script's first argument (local plugin, Condor `arguments`). */
  | { kind: 'argument' }
  /**
   * From the job name (`firn-<taskId>`, or `firn-a<base>` plus the array index): the first
   * set variable of nameVars holds the name, indexVar the array index starting at firstIndex.
   * `prefix` replaces `firn-` where names carry the grid (`firn-<gridTag>-`, SGE).
   */
  | { kind: 'job-name'; nameVars: string[]; indexVar?: string; firstIndex: 0 | 1; prefix?: string };

export interface PilotScriptSpec {
  options: ResolvedOptions;
  tasks: readonly SubmitTask[];
  /** Full directive lines, e.g. `#SBATCH --cpus-per-task=2`. */
  directives: string[];
  /** Extra comment lines (without `#`). */
  comments?: string[];
  selector: TaskSelector;
  /**
   * true: the pilot's stdout/stderr go to `<taskDir>/stdout`, `<taskDir>/stderr` and its exit
   * code to `<taskDir>/exit_code` (shared filesystem). false (Condor): output is left to the
   * batch system, and the passkey file may be found in the job's sandbox instead.
   */
  taskFiles: boolean;
}

function selectorLines(selector: TaskSelector): string[] {
  if (selector.kind === 'argument') {
    return ['firn_task=${1:?usage: $0 TASK_ID}'];
  }
  let nameExpr = "''";
  for (const v of [...selector.nameVars].reverse()) nameExpr = nameExpr === "''" ? `\${${v}:-}` : `\${${v}:-${nameExpr}}`;
  // a grid tag is letters, digits, _ and . only: literal in a case pattern and in ${x#…}
  const prefix = selector.prefix ?? 'firn-';
  if (!/^firn-(?:[A-Za-z0-9_.]+-)?$/.test(prefix)) throw new ValidationError(`job name prefix must be firn- or firn-<grid tag>-, got ${JSON.stringify(prefix)}`);
  const lines = [`firn_name=${nameExpr}`, 'case $firn_name in'];
  if (selector.indexVar) {
    const offset = selector.firstIndex === 0 ? '' : ` - ${selector.firstIndex}`;
    lines.push(`  ${prefix}a[0-9]*) firn_task=$(( \${firn_name#${prefix}a} + \${${selector.indexVar}:?not an array element}${offset} )) ;;`);
  }
  lines.push(
    `  ${prefix}[0-9]*) firn_task=\${firn_name#${prefix}} ;;`,
    `  *) echo "firn: cannot tell the task from the job name '$firn_name'" >&2; exit ${SCRIPT_SELECT_FAILURE} ;;`,
    'esac',
  );
  return lines;
}

/** Render the submit script (see the file comment for its layout). */
export function renderPilotScript(spec: PilotScriptSpec): string {
  const { options, tasks } = spec;
  const lines: string[] = ['#!/bin/sh', ...spec.directives];
  lines.push(
    '#',
    `# Firn pilot job for grid ${JSON.stringify(options.grid)}, written by firn-queue; do not edit.`,
    `# Tasks: ${tasks.map((t) => t.taskId).join(' ')}`,
    ...(spec.comments ?? []).map((c) => `# ${c}`),
    '',
    'PATH=${PATH:-/usr/local/bin:/usr/bin:/bin}',
    'export PATH',
  );
  const env = Object.entries(options.environment);
  if (env.length > 0) {
    lines.push('', '# [environment]');
    for (const [name, value] of env) lines.push(`${name}=${shellQuote(value)}`, `export ${name}`);
  }
  lines.push('', '# which task is this?', ...selectorLines(spec.selector), 'case $firn_task in');
  // Tasks with their own command (firn run) get it as the positional parameters; the others none.
  const commands = tasks.some((t) => t.command !== undefined);
  for (const t of tasks) {
    const argv = commands ? `; set --${t.command ? ` ${shellJoin(t.command)}` : ''}` : '';
    lines.push(`  ${t.taskId}) firn_dir=${shellQuote(t.taskDir)} firn_passkey=${shellQuote(t.passkeyFile)}${argv} ;;`);
  }
  lines.push(`  *) echo "firn: task '$firn_task' is not part of this submission" >&2; exit ${SCRIPT_SELECT_FAILURE} ;;`, 'esac', '');

  const pilot = [
    shellJoin(options.pilotWords),
    `--mon ${shellQuote(options.monUrl)}`,
    '--task "$firn_task"',
    '--passkey-file "$firn_passkey"',
    ...(options.scratch ? [`--scratch ${shellQuote(options.scratch)}`] : []),
  ].join(' ');
  const redirect = '>"$firn_dir/stdout" 2>"$firn_dir/stderr" </dev/null';
  if (spec.taskFiles) {
    lines.push(
      'rm -f "$firn_dir/exit_code"',
      ...(commands
        ? ['if [ $# -gt 0 ]; then', `  "$@" ${redirect}`, 'else', `  ${pilot} ${redirect}`, 'fi']
        : [`${pilot} ${redirect}`]),
      'firn_rc=$?',
      'echo "$firn_rc" >"$firn_dir/exit_code.tmp" && mv -f "$firn_dir/exit_code.tmp" "$firn_dir/exit_code"',
      'exit "$firn_rc"',
    );
  } else {
    lines.push(
      '# without a shared filesystem the passkey file was transferred into the job sandbox',
      '[ -r "$firn_passkey" ] || firn_passkey=${_CONDOR_SCRATCH_DIR:-$PWD}/${firn_passkey##*/}',
      ...(commands ? ['[ $# -eq 0 ] || exec "$@" </dev/null'] : []),
      `exec ${pilot} </dev/null`,
    );
  }
  return lines.join('\n') + '\n';
}

/** `tasks.txt` beside the script: how array elements map to tasks, for people and scripts. */
export function renderTaskMap(rows: readonly { taskId: number; batchName: string; index: number | null; taskDir: string }[]): string {
  const header = '# task_id\tjob_name\tsubmitted_as\tarray_index\ttask_dir';
  const body = rows.map((r) => `${r.taskId}\tfirn-${r.taskId}\t${r.batchName}\t${r.index ?? '-'}\t${r.taskDir}`);
  return [header, ...body].join('\n') + '\n';
}
