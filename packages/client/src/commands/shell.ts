import fs from 'node:fs';
import path from 'node:path';
import readline from 'node:readline';
import type { Command } from 'commander';
import { contextOf, type CliContext } from '../context';
import { CliError, ExitCode } from '../exit-codes';
import { HISTORY_FILE, configDir } from '../settings';
import { completer, datasetIdSource } from './completion';

const HISTORY_SIZE = 1000;

/**
 * Split a command line into words like a POSIX shell does for simple commands: blanks separate
 * words; '…' is literal; "…" keeps blanks, with \\" \\\\ \\$ escapes; a backslash outside
 * quotes escapes the next character. No expansion of any kind.
 */
export function splitArgs(line: string): string[] {
  const out: string[] = [];
  let cur = '';
  let inWord = false;
  for (let i = 0; i < line.length; i++) {
    const c = line[i]!;
    if (c === "'") {
      const end = line.indexOf("'", i + 1);
      if (end < 0) throw new CliError('unterminated single quote', ExitCode.USAGE);
      cur += line.slice(i + 1, end);
      i = end;
      inWord = true;
    } else if (c === '"') {
      i++;
      for (;; i++) {
        if (i >= line.length) throw new CliError('unterminated double quote', ExitCode.USAGE);
        const d = line[i]!;
        if (d === '"') break;
        if (d === '\\' && i + 1 < line.length && '"\\$`'.includes(line[i + 1]!)) cur += line[++i]!;
        else cur += d;
      }
      inWord = true;
    } else if (c === '\\') {
      if (i + 1 < line.length) cur += line[++i]!;
      inWord = true;
    } else if (c === ' ' || c === '\t') {
      if (inWord) out.push(cur);
      cur = '';
      inWord = false;
    } else {
      cur += c;
      inWord = true;
    }
  }
  if (inWord) out.push(cur);
  return out;
}

export { completer } from './completion';

function loadHistory(file: string): string[] {
  try {
    return fs.readFileSync(file, 'utf8').split('\n').filter(Boolean).slice(-HISTORY_SIZE);
  } catch {
    return [];
  }
}

function appendHistory(file: string, line: string): void {
  try {
    fs.mkdirSync(path.dirname(file), { recursive: true, mode: 0o700 });
    fs.appendFileSync(file, line.replace(/\n/g, ' ') + '\n', { mode: 0o600 });
  } catch {
    /* history is a convenience */
  }
}

export interface ShellOptions {
  /** A script (stdin not a terminal) runs on after a failing command, as `sh` without `-e` does. */
  keepGoing?: boolean;
}

/** readline's callback form of the completer; dataset ids come from the server the shell's commands use. */
function readlineCompleter(program: Command): (line: string, done: (err: null, result: [string[], string]) => void) => void {
  const complete = completer(program, { datasetIds: datasetIdSource(program) });
  return (line, done) => {
    complete(line).then(
      (r) => done(null, r),
      () => done(null, [[], line]),
    );
  };
}

/**
 * The interactive shell: every firn command, one per line, parsed by the same commander
 * program (exitOverride: an error ends the command, never the shell). History in
 * <config dir>/history; Tab completes command names, options, file paths and dataset ids
 * (completion.ts). Reads stdin to its end
 * when it is not a terminal (scripts can drive it); a script stops at its first failing
 * command with that command's exit code, as `sh -e` does, unless keepGoing. Otherwise it
 * returns the last command's exit code.
 */
export async function runShell(parent: CliContext, opts: ShellOptions = {}): Promise<number> {
  const { io } = parent;
  const tty = Boolean(io.stdin.isTTY && io.stdout.isTTY);
  // piped in: stop at the first failure (a terminal's user sees the error and goes on)
  const stopOnError = !io.stdin.isTTY && !opts.keepGoing;
  const historyFile = path.join(configDir(io.env), HISTORY_FILE);
  const history = loadHistory(historyFile);
  const rl = readline.createInterface({
    input: io.stdin,
    output: tty ? io.stdout : undefined,
    terminal: tty,
    completer: readlineCompleter(parent.makeProgram(parent)),
    history: [...history].reverse(),
    historySize: HISTORY_SIZE,
    prompt: 'firn> ',
  });
  const queue: string[] = [];
  let closed = false;
  let wake: (() => void) | null = null;
  rl.on('line', (l) => {
    queue.push(l);
    wake?.();
  });
  rl.on('close', () => {
    closed = true;
    wake?.();
  });
  const nextLine = async (): Promise<string | null> => {
    while (queue.length === 0) {
      if (closed) return null;
      await new Promise<void>((r) => (wake = r));
      wake = null;
    }
    return queue.shift()!;
  };
  const ask = (q: string, hidden: boolean) =>
    new Promise<string>((resolve) => {
      const r = rl as unknown as { _writeToOutput(s: string): void };
      const original = r._writeToOutput;
      if (hidden) r._writeToOutput = (s: string) => { if (s.startsWith(q)) original.call(rl, q); };
      rl.question(q, (answer) => {
        r._writeToOutput = original;
        if (hidden) io.stdout.write('\n');
        resolve(answer);
      });
    });
  let interrupt: (() => void) | null = null;
  rl.on('SIGINT', () => {
    if (interrupt) interrupt();
    else {
      io.stdout.write('^C\n');
      rl.prompt();
    }
  });

  const ctx: CliContext = {
    io,
    inShell: true,
    runArgv: parent.runArgv,
    makeProgram: parent.makeProgram,
    readLine: async (q) => (tty ? ask(q, false) : ((await nextLine()) ?? '')),
    readSecret: async (q) => (tty ? ask(q, true) : ((await nextLine()) ?? '')),
  };
  let last: number = ExitCode.OK;
  if (tty) io.stdout.write('firn shell: type a command (help lists them), Tab completes, exit or Ctrl-D leaves\n');
  if (tty) rl.prompt();
  let lineNo = 0;
  for (;;) {
    const line = await nextLine();
    if (line === null) break;
    lineNo++;
    const text = line.trim();
    if (text && !text.startsWith('#')) {
      appendHistory(historyFile, text);
      if (text === 'exit' || text === 'quit') break;
      let argv: string[] | null = null;
      try {
        argv = splitArgs(text);
      } catch (e) {
        io.stderr.write(`firn: ${(e as Error).message}\n`);
        last = ExitCode.USAGE;
      }
      if (argv) {
        ctx.interrupted = new Promise<void>((r) => (interrupt = r));
        last = await parent.runArgv(argv, ctx);
        interrupt = null;
      }
      if (last !== ExitCode.OK && stopOnError) {
        io.stderr.write(`firn shell: stopped at line ${lineNo} (exit ${last}); --keep-going runs on after a failing command\n`);
        break;
      }
    }
    if (tty) rl.prompt();
  }
  rl.close();
  return last;
}

/** firn shell */
export function register(program: Command): void {
  program
    .command('shell')
    .description('interactive shell with the same commands, history and Tab completion (reads stdin to its end when piped, stopping at the first failing command with its exit code)')
    .option('-k, --keep-going', 'when piped, run on after a failing command (exit code: the last command\'s)')
    .action(async (opts: { keepGoing?: boolean }, cmd: Command) => {
      const ctx = contextOf(cmd);
      if (ctx.inShell) throw new CliError('already in the shell', ExitCode.USAGE);
      ctx.exitCode = await runShell(ctx, { keepGoing: opts.keepGoing });
    });
}
