import fs from 'node:fs';
import type { Command } from 'commander';
import { RpcClient } from '@firn/core';
import { CliError, ExitCode } from './exit-codes';
import { loadSettings, type ClientSettings } from './settings';

/** Where the CLI reads and writes: the real process, a test's streams, or the shell. */
export interface CliIo {
  stdin: NodeJS.ReadableStream & { isTTY?: boolean; setRawMode?: (raw: boolean) => unknown };
  stdout: NodeJS.WritableStream & { isTTY?: boolean; columns?: number };
  stderr: NodeJS.WritableStream;
  env: Record<string, string | undefined>;
}

export interface CliContext {
  io: CliIo;
  /** Read a secret (password): hidden on a terminal, the next input line otherwise. */
  readSecret(prompt: string): Promise<string>;
  /** Read one visible line (e.g. a user name). */
  readLine(prompt: string): Promise<string>;
  /** Running inside `firn shell` (so `shell` is refused, `exit` works). */
  inShell: boolean;
  /** Resolves when the user interrupts (Ctrl-C), for loops like `status --watch`. */
  interrupted?: Promise<void>;
  /** Set by a command that decides the exit code itself (the shell: its last command's). */
  exitCode?: number;
  /** Run one command line (argv without `firn`) in a fresh program; returns its exit code. */
  runArgv(argv: string[], ctx: CliContext): Promise<number>;
  /** A fresh program bound to a context (the shell's completion lists its commands). */
  makeProgram(ctx: CliContext): Command;
}

/** Options every command accepts (defined on the root program). */
export interface GlobalOptions {
  url?: string;
  json?: boolean;
  ca?: string;
  insecure?: boolean;
}

const contexts = new WeakMap<Command, CliContext>();

export function attachContext(program: Command, ctx: CliContext): void {
  contexts.set(program, ctx);
}

/** The context of the program a command belongs to. */
export function contextOf(cmd: Command): CliContext {
  let c: Command | null = cmd;
  while (c) {
    const ctx = contexts.get(c);
    if (ctx) return ctx;
    c = c.parent;
  }
  throw new Error('command is not part of a firn program');
}

export function globals(cmd: Command): GlobalOptions {
  return cmd.optsWithGlobals() as GlobalOptions;
}

export const DEFAULT_URL = 'http://127.0.0.1:8580';

/** Server URL, token and TLS options: flags > environment (FIRN_URL, FIRN_TOKEN) > saved settings. */
export function connection(cmd: Command): { url: string; token: string | null; ca?: string; insecure: boolean; settings: ClientSettings } {
  const { io } = contextOf(cmd);
  const g = globals(cmd);
  const settings = loadSettings(io.env);
  const url = g.url ?? io.env.FIRN_URL ?? settings.url ?? DEFAULT_URL;
  // a token belongs to the server it came from
  const sameServer = !settings.url || settings.url === url;
  const token = io.env.FIRN_TOKEN ?? (sameServer ? (settings.token ?? null) : null);
  return { url, token, ca: g.ca ?? io.env.FIRN_CA ?? settings.ca, insecure: Boolean(g.insecure ?? settings.insecure), settings };
}

export function rpcClient(cmd: Command, override: { url?: string; token?: string | null } = {}): RpcClient {
  const c = connection(cmd);
  let ca: Buffer | undefined;
  if (c.ca) {
    try {
      ca = fs.readFileSync(c.ca);
    } catch (e) {
      throw new CliError(`cannot read CA file ${c.ca}: ${(e as Error).message}`, ExitCode.ERROR);
    }
  }
  return new RpcClient(override.url ?? c.url, { token: override.token !== undefined ? override.token : c.token, ca, insecure: c.insecure, timeoutMs: 300_000 });
}

/** Call one method and close the connection. */
export async function call<T = any>(cmd: Command, method: string, params: Record<string, unknown> = {}): Promise<T> {
  const client = rpcClient(cmd);
  try {
    return await client.call<T>(method, params);
  } finally {
    client.close();
  }
}

export function print(cmd: Command, text: string): void {
  contextOf(cmd).io.stdout.write(text.endsWith('\n') ? text : text + '\n');
}

/** With --json print the value as JSON; otherwise run `human` to print it for people. */
export function output(cmd: Command, value: unknown, human: () => string): void {
  if (globals(cmd).json) print(cmd, JSON.stringify(value, null, 2));
  else {
    const text = human();
    if (text) print(cmd, text);
  }
}

/** DATASET or DATASET.JOB → ids; a usage error otherwise. */
export function parseTarget(text: string): { dataset: number; job?: number } {
  const m = /^(\d+)(?:\.(\d+))?$/.exec(text.trim());
  if (!m) throw new CliError(`expected DATASET or DATASET.JOB (e.g. 12 or 12.345), got ${JSON.stringify(text)}`, ExitCode.USAGE);
  const dataset = Number(m[1]);
  if (dataset < 1) throw new CliError(`dataset ids start at 1, got ${dataset}`, ExitCode.USAGE);
  return m[2] === undefined ? { dataset } : { dataset, job: Number(m[2]) };
}

export function parseIntArg(name: string, min = 0): (v: string) => number {
  return (v: string) => {
    if (!/^-?\d+$/.test(v.trim())) throw new CliError(`${name} must be an integer, got ${JSON.stringify(v)}`, ExitCode.USAGE);
    const n = Number(v);
    if (n < min) throw new CliError(`${name} must be ≥ ${min}, got ${n}`, ExitCode.USAGE);
    return n;
  };
}

export function datasetId(v: string): number {
  const t = parseTarget(v);
  if (t.job !== undefined) throw new CliError(`expected a dataset id, got ${JSON.stringify(v)}`, ExitCode.USAGE);
  return t.dataset;
}

export function readJsonFile(file: string): unknown {
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (e) {
    throw new CliError(`cannot read ${file}: ${(e as Error).message}`);
  }
  try {
    return JSON.parse(text) as unknown;
  } catch (e) {
    throw new CliError(`${file}: not valid JSON: ${(e as Error).message}`);
  }
}
