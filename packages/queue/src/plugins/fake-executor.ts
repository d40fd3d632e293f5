/**
 * Test support: an Executor that answers commands from scripted responses (typically
 * replayed from recorded transcripts) and records every call, plus a reader for the
 * transcript format of the fixture recordings:
 *
 *   $ squeue -j 99999
 *   slurm_load_jobs error: Invalid job id specified
 *   [rc=1, 4 ms]
 */
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import type { ExecOptions, ExecResult, Executor } from '@firn/core';

export interface FakeCall {
  command: string;
  args: string[];
  options?: ExecOptions;
}

export interface FakeResponse {
  stdout?: string;
  stderr?: string;
  code?: number | null;
}

type Matcher = (call: FakeCall) => boolean;
type Responder = FakeResponse | ((call: FakeCall) => FakeResponse);

interface Rule {
  match: Matcher;
  respond: Responder;
  once: boolean;
  used: boolean;
}

/** `cmd` matches the command's base name; `args` (if given) must equal the arguments exactly, or satisfy the predicate. */
function matcher(command: string, args?: readonly string[] | ((args: string[]) => boolean)): Matcher {
  return (call) => {
    if (path.posix.basename(call.command) !== command && call.command !== command) return false;
    if (args === undefined) return true;
    if (typeof args === 'function') return args(call.args);
    return args.length === call.args.length && args.every((a, i) => a === call.args[i]);
  };
}

export class FakeExecutor implements Executor {
  readonly description = 'fake';
  readonly calls: FakeCall[] = [];
  readonly files = new Map<string, { content: string; mode: number | undefined }>();
  readonly dirs: string[] = [];
  private readonly rules: Rule[] = [];

  /** Answer every matching call (later rules do not override earlier `once` rules). */
  on(command: string, args: readonly string[] | ((args: string[]) => boolean) | undefined, respond: Responder): this {
    this.rules.push({ match: matcher(command, args), respond, once: false, used: false });
    return this;
  }

  /** Answer the next matching call only (once rules are tried first, in order). */
  once(command: string, args: readonly string[] | ((args: string[]) => boolean) | undefined, respond: Responder): this {
    this.rules.push({ match: matcher(command, args), respond, once: true, used: false });
    return this;
  }

  /** Calls of one command (by base name). */
  callsOf(command: string): FakeCall[] {
    return this.calls.filter((c) => path.posix.basename(c.command) === command);
  }

  async exec(command: string, args: string[], options?: ExecOptions): Promise<ExecResult> {
    const call: FakeCall = options === undefined ? { command, args: [...args] } : { command, args: [...args], options };
    this.calls.push(call);
    const rule =
      this.rules.find((r) => r.once && !r.used && r.match(call)) ?? this.rules.find((r) => !r.once && r.match(call));
    if (!rule) throw new Error(`FakeExecutor: unexpected command: ${command} ${args.join(' ')}`);
    if (rule.once) rule.used = true;
    const r = typeof rule.respond === 'function' ? rule.respond(call) : rule.respond;
    return { stdout: r.stdout ?? '', stderr: r.stderr ?? '', code: r.code === undefined ? 0 : r.code };
  }

  async writeFile(file: string, content: string | Buffer, mode?: number): Promise<void> {
    this.files.set(file, { content: content.toString(), mode });
  }

  async readFile(file: string): Promise<Buffer | null> {
    const f = this.files.get(file);
    return f ? Buffer.from(f.content) : null;
  }

  async mkdir(dir: string): Promise<void> {
    this.dirs.push(dir);
  }

  async remove(p: string): Promise<void> {
    this.files.delete(p);
  }

  async close(): Promise<void> {}

  /** Content of a written file; throws when it was not written. */
  file(p: string): string {
    const f = this.files.get(p);
    if (!f) throw new Error(`FakeExecutor: ${p} was not written (written: ${[...this.files.keys()].join(', ')})`);
    return f.content;
  }
}

export interface TranscriptEntry {
  /** The command line as recorded (printf %q quoting), without the `$ `. */
  command: string;
  /** stdout and stderr as recorded (the recordings merge them). */
  output: string;
  code: number;
}

/** Split a recording into commands, their output and exit codes. */
export function parseTranscript(text: string): TranscriptEntry[] {
  const entries: TranscriptEntry[] = [];
  let current: { command: string; lines: string[] } | null = null;
  for (const line of text.split('\n')) {
    if (current === null) {
      if (line.startsWith('$ ')) current = { command: line.slice(2), lines: [] };
      continue;
    }
    const end = /^\[rc=(\d+), \d+ ms\]$/.exec(line);
    if (end) {
      entries.push({ command: current.command, output: current.lines.length ? current.lines.join('\n') + '\n' : '', code: Number(end[1]) });
      current = null;
    } else current.lines.push(line);
  }
  return entries;
}

/** The n-th (0-based) entry whose recorded command is exactly `command`. */
export function transcriptEntry(text: string, command: string, nth = 0): TranscriptEntry {
  const found = parseTranscript(text).filter((e) => e.command === command);
  const e = found[nth];
  if (!e) throw new Error(`transcript has no entry #${nth} for: $ ${command}`);
  return e;
}

/** The repository's `test/fixtures` directory (found upwards from this file). */
export function fixturesDir(): string {
  let dir = __dirname;
  for (;;) {
    const candidate = path.join(dir, 'test', 'fixtures');
    if (existsSync(candidate)) return candidate;
    const parent = path.dirname(dir);
    if (parent === dir) throw new Error('test/fixtures not found above ' + __dirname);
    dir = parent;
  }
}

/**
 * One recorded case of `test/fixtures/<system>/`: NAME.out (stdout), NAME.err (stderr),
 * NAME.code (exit code), byte-exact.
 */
export function fixtureCase(system: string, name: string): Required<FakeResponse> {
  const base = path.join(fixturesDir(), system, name);
  const read = (ext: string): string => (existsSync(base + ext) ? readFileSync(base + ext, 'utf8') : '');
  if (!existsSync(base + '.code')) throw new Error(`fixture ${system}/${name} not found`);
  return { stdout: read('.out'), stderr: read('.err'), code: Number(read('.code').trim()) };
}

/** A transcript file of `test/fixtures/<system>/` (the `$ cmd` / `[rc=N, T ms]` format). */
export function fixtureTranscript(system: string, file: string): string {
  return readFileSync(path.join(fixturesDir(), system, file), 'utf8');
}
