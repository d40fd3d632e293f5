import fs from 'node:fs';
import path from 'node:path';
import { Command } from 'commander';
import { RpcError, RpcErrorCode, coerceError } from '@firn/core';
import { COMMAND_GROUPS } from './commands';
import * as runCommand from './commands/run';
import * as siteCommand from './commands/site';
import { attachContext, type CliContext, type CliIo } from './context';
import { CliError, EXIT_CODES_HELP, exitCodeOf } from './exit-codes';
import { jsonError } from './output';
import { LineReader, readHidden } from './prompt';

/**
 * `firn`: the command-line client. One commander program, built from one file per command
 * group (src/commands/), used both for one-shot commands and line by line in `firn shell`.
 */
export function clientVersion(): string {
  try {
    return (JSON.parse(fs.readFileSync(path.join(__dirname, '..', 'package.json'), 'utf8')) as { version?: string }).version ?? '0.0.0';
  } catch {
    return '0.0.0';
  }
}

export function buildProgram(ctx: CliContext): Command {
  const program = new Command('firn')
    .description('Firn client: submit, watch and control datasets on firn-tray')
    .version(clientVersion(), '-V, --version')
    .option('--url <url>', 'firn-tray URL (default: $FIRN_URL, else the one saved by login)')
    .option('--json', 'print results as JSON (for scripts)')
    .option('--ca <file>', 'PEM CA file to trust for the server certificate ($FIRN_CA)')
    .option('--insecure', 'accept any server certificate (testing only)')
    .configureOutput({ writeOut: (s) => ctx.io.stdout.write(s), writeErr: (s) => ctx.io.stderr.write(s) })
    .exitOverride()
    .showSuggestionAfterError()
    .addHelpText('after', `${EXIT_CODES_HELP}
Settings (server URL, token; mode 0600) live in $FIRN_CONFIG_DIR, else $XDG_CONFIG_HOME/firn, else ~/.config/firn.
Environment: FIRN_URL, FIRN_TOKEN, FIRN_CA, FIRN_USER, FIRN_PASSWORD (login without a prompt).`);
  attachContext(program, ctx);
  for (const group of COMMAND_GROUPS) group.register(program);
  runCommand.register(program);
  siteCommand.register(program);
  return program;
}

function hint(e: unknown): string | null {
  if (e instanceof RpcError && e.code === RpcErrorCode.UNAUTHENTICATED) return 'hint: run `firn login`';
  return null;
}

/** Was --json given (parsed, or on a command line commander refused before parsing it)? */
function wantsJson(program: Command, argv: readonly string[]): boolean {
  if ((program.opts() as { json?: boolean }).json) return true;
  const end = argv.indexOf('--');
  return (end === -1 ? argv : argv.slice(0, end)).includes('--json');
}

/** Run one command line (without the leading `firn`) in a fresh program; print errors; return the exit code. */
export async function runArgv(argv: string[], ctx: CliContext): Promise<number> {
  const program = buildProgram(ctx);
  ctx.exitCode = undefined;
  try {
    await program.parseAsync(argv, { from: 'user' });
    return ctx.exitCode ?? 0;
  } catch (e) {
    const code = exitCodeOf(e);
    // --json: the error as JSON on stdout too, for scripts (stderr keeps the message for people)
    if (code !== 0 && wantsJson(program, argv)) ctx.io.stdout.write(jsonError(e, code, e instanceof CliError ? e.details : []));
    if (e instanceof Error && e.name === 'CommanderError') {
      // commander already printed the message (or the help)
      return (e as { code?: string; exitCode?: number }).code === 'commander.help' && (e as { exitCode?: number }).exitCode === 0 ? 0 : code;
    }
    const err = coerceError(e);
    ctx.io.stderr.write(`firn: ${err.message}\n`);
    if (e instanceof CliError) for (const d of e.details) ctx.io.stderr.write(`${d}\n`);
    const h = hint(e);
    if (h) ctx.io.stderr.write(`${h}\n`);
    return code;
  }
}

export function processIo(): CliIo {
  return { stdin: process.stdin, stdout: process.stdout, stderr: process.stderr, env: process.env };
}

/** A context reading prompts from the real (or a test's) stdin. */
export function createContext(io: CliIo): CliContext {
  const lines = new LineReader(io.stdin);
  const tty = Boolean(io.stdin.isTTY && typeof io.stdin.setRawMode === 'function');
  return {
    io,
    inShell: false,
    runArgv,
    makeProgram: buildProgram,
    readLine: async (q) => {
      if (tty) io.stderr.write(q);
      return (await lines.next()) ?? '';
    },
    readSecret: async (q) => (tty ? readHidden(io.stdin, io.stderr, q) : ((await lines.next()) ?? '')),
  };
}

export async function main(argv: string[] = process.argv.slice(2), io: CliIo = processIo()): Promise<number> {
  const ctx = createContext(io);
  // Ctrl-C is caught only while a command waits on it (status --watch); otherwise it ends the process as usual
  let onSigint: (() => void) | null = null;
  let interrupted: Promise<void> | undefined;
  Object.defineProperty(ctx, 'interrupted', {
    configurable: true,
    get: () =>
      (interrupted ??= new Promise<void>((resolve) => {
        onSigint = () => resolve();
        process.once('SIGINT', onSigint);
      })),
  });
  try {
    return await runArgv(argv, ctx);
  } finally {
    if (onSigint) process.off('SIGINT', onSigint);
  }
}

/** Entry point of bin/firn. */
export function run(): void {
  main().then(
    (code) => {
      process.exitCode = code;
    },
    (e: unknown) => {
      process.stderr.write(`firn: ${coerceError(e).message}\n`);
      process.exitCode = 1;
    },
  );
}

// Run when this file is the program (node dist/cli.js …) — not when a bundle that merely includes it is.
if (require.main === module && /^cli\.[cm]?js$/.test(path.basename(require.main.filename))) run();
