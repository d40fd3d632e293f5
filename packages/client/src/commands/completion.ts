import fs from 'node:fs';
import path from 'node:path';
import type { Argument, Command, Option } from 'commander';
import { RpcClient } from '@firn/core';
import { rpcClient } from '../context';

/**
 * Tab completion for `firn shell`: command names, sub-commands and options from the commander
 * program itself; file paths where an argument or option takes a file (`<file>`, `--ca <file>`);
 * dataset ids, from dataset.list, where an argument takes a dataset (`<dataset>`, `<target>`);
 * an option's choices (`ls --status`). What an argument takes is read from its name, so a new
 * command with a `<file>` or `<dataset>` argument completes without a change here.
 */

/** Words the shell itself knows (not commands of the program). */
export const SHELL_WORDS = ['exit', 'quit', 'help'];

const PATH_ARGS = new Set(['file', 'dir']);
const DATASET_ARGS = new Set(['dataset', 'target']);
/** An option whose value is a path: `--ca <file>`, `--out <dir>`, `-o, --output <file>`. */
const PATH_VALUE = /[<[](?:file|dir)[>\]]/;
/** Entries listed from one directory at most (a completion must stay quick in a huge one). */
const MAX_DIR_ENTRIES = 2000;

export interface CompletionSources {
  /** Directory relative paths start from (default: the process's). */
  cwd?: string;
  /** For `~/…` (default: $HOME of the process). */
  home?: string;
  /** Dataset ids to offer, newest first (see datasetIdSource); none when absent. */
  datasetIds?: () => Promise<string[]>;
}

/** readline's [candidates, the text they complete]; every candidate starts with that text. */
export type Completer = (line: string) => Promise<[string[], string]>;

/** A command's positional arguments (commander 10 keeps them in `_args`; later ones in `registeredArguments`). */
function argumentsOf(cmd: Command): readonly Argument[] {
  const c = cmd as unknown as { registeredArguments?: Argument[]; _args?: Argument[] };
  return c.registeredArguments ?? c._args ?? [];
}

function findOption(cmds: readonly Command[], word: string): Option | undefined {
  const flag = word.split('=')[0];
  for (const c of cmds) {
    const o = c.options.find((x) => x.long === flag || x.short === flag);
    if (o) return o;
  }
  return undefined;
}

/**
 * The line's words as typed (quotes and backslashes kept, as readline needs them to insert the
 * rest), and the word under the cursor ('' after a blank).
 */
export function typedWords(line: string): { done: string[]; last: string } {
  const words: string[] = [];
  let cur = '';
  let inWord = false;
  let quote: string | null = null;
  for (let i = 0; i < line.length; i++) {
    const c = line[i]!;
    if (quote) {
      cur += c;
      if (c === quote) quote = null;
      else if (c === '\\' && quote === '"' && i + 1 < line.length) cur += line[++i]!;
    } else if (c === ' ' || c === '\t') {
      if (inWord) words.push(cur);
      cur = '';
      inWord = false;
    } else {
      cur += c;
      inWord = true;
      if (c === "'" || c === '"') quote = c;
      else if (c === '\\' && i + 1 < line.length) cur += line[++i]!;
    }
  }
  return inWord || quote ? { done: words, last: cur } : { done: words, last: '' };
}

/** The value of a typed word (quotes removed, escapes resolved), leniently: it may be unfinished. */
function wordValue(raw: string): string {
  return raw.replace(/\\(.)|['"]/g, (_m, esc: string | undefined) => esc ?? '');
}

/** A path as a shell word: blanks, quotes and backslashes escaped (splitArgs reads them back). */
function escapePath(p: string): string {
  return p.replace(/[ \t'"\\]/g, (c) => `\\${c}`);
}

/** Paths that complete `raw` (directories end in '/'), at most MAX_DIR_ENTRIES looked at. */
export function pathCandidates(raw: string, sources: CompletionSources = {}): string[] {
  if (/['"]/.test(raw)) return []; // quoted partial paths: readline could not insert the rest
  const typed = wordValue(raw);
  const slash = typed.lastIndexOf('/');
  const dirPart = typed.slice(0, slash + 1);
  const base = typed.slice(slash + 1);
  const home = sources.home ?? process.env.HOME ?? '';
  const dir = dirPart.startsWith('~/') && home ? path.join(home, dirPart.slice(2)) : path.resolve(sources.cwd ?? process.cwd(), dirPart || '.');
  const out: string[] = [];
  let d: fs.Dir | undefined;
  try {
    d = fs.opendirSync(dir);
    for (let i = 0; i < MAX_DIR_ENTRIES; i++) {
      const e = d.readSync();
      if (!e) break;
      if (!e.name.startsWith(base) || (e.name.startsWith('.') && !base.startsWith('.'))) continue;
      let isDir = e.isDirectory();
      if (e.isSymbolicLink()) {
        try {
          isDir = fs.statSync(path.join(dir, e.name)).isDirectory();
        } catch {
          /* a dangling link completes as a file */
        }
      }
      out.push(escapePath(dirPart + e.name) + (isDir ? '/' : ''));
    }
  } catch {
    return []; // no such directory, or not readable: nothing to offer
  } finally {
    d?.closeSync();
  }
  return out.filter((c) => c.startsWith(raw)).sort();
}

/** What the word under the cursor is, found by walking the words before it. */
type Slot =
  | { kind: 'command' }
  | { kind: 'sub'; cmd: Command }
  | { kind: 'option'; cmds: Command[] }
  | { kind: 'option-value'; option: Option }
  | { kind: 'argument'; name: string }
  | { kind: 'none' };

function slotOf(program: Command, done: readonly string[], last: string): Slot {
  if (done.length === 0) return { kind: 'command' };
  const first = wordValue(done[0]!);
  let cmd = program.commands.find((c) => c.name() === first || c.aliases().includes(first));
  if (!cmd) return { kind: 'none' };
  let rest = done.slice(1);
  if (cmd.commands.length) {
    if (rest.length === 0 && !last.startsWith('-')) return { kind: 'sub', cmd };
    const sub = rest.length ? cmd.commands.find((c) => c.name() === wordValue(rest[0]!)) : undefined;
    if (sub) {
      cmd = sub;
      rest = rest.slice(1);
    }
  }
  const cmds = [cmd, program];
  let positional = 0;
  for (let i = 0; i < rest.length; i++) {
    const w = rest[i]!;
    if (w.startsWith('-') && w !== '-') {
      const o = findOption(cmds, w);
      if (o && (o.required || o.optional) && !w.includes('=')) {
        if (i === rest.length - 1) return { kind: 'option-value', option: o };
        i++;
      }
    } else positional++;
  }
  if (last.startsWith('-')) return { kind: 'option', cmds };
  const args = argumentsOf(cmd);
  const arg = args[positional] ?? (args[args.length - 1]?.variadic ? args[args.length - 1] : undefined);
  return arg ? { kind: 'argument', name: arg.name() } : { kind: 'none' };
}

/** Tab completion over the program's commands, options, file arguments and dataset ids. */
export function completer(program: Command, sources: CompletionSources = {}): Completer {
  return async (line: string) => {
    const { done, last } = typedWords(line);
    const slot = slotOf(program, done, last);
    const starting = (candidates: readonly string[]) => candidates.filter((c) => c.startsWith(last)).sort();
    switch (slot.kind) {
      case 'command':
        return [starting([...program.commands.map((c) => c.name()), ...SHELL_WORDS]), last];
      case 'sub':
        return [starting(slot.cmd.commands.map((c) => c.name())), last];
      case 'option':
        return [starting(slot.cmds.flatMap((c) => c.options).map((o) => o.long ?? o.short ?? '').filter(Boolean)), last];
      case 'option-value':
        if (PATH_VALUE.test(slot.option.flags)) return [pathCandidates(last, sources), last];
        return [starting(slot.option.argChoices ?? []), last];
      case 'argument':
        if (PATH_ARGS.has(slot.name)) return [pathCandidates(last, sources), last];
        if (DATASET_ARGS.has(slot.name) && sources.datasetIds) {
          // newest first, as `firn ls` lists them (readline shows them in this order)
          const ids = (await sources.datasetIds()).filter((id) => id.startsWith(last));
          return [ids, last];
        }
        return [[], last];
      default:
        return [[], last];
    }
  };
}

/** Memoise `load` for ttlMs (a failed load is remembered as long, so a dead server is not asked on every Tab). */
export function cachedFor<T>(ttlMs: number, load: () => Promise<T>, now: () => number = Date.now): () => Promise<T> {
  let entry: { at: number; value: Promise<T> } | null = null;
  return () => {
    if (!entry || now() - entry.at >= ttlMs) entry = { at: now(), value: load() };
    return entry.value;
  };
}

export interface DatasetIdOptions {
  /** How long one dataset.list answers Tab (default 5 s). */
  ttlMs?: number;
  /** A completion waits at most this long for the server (default 2 s), then offers nothing. */
  timeoutMs?: number;
  /** At most this many ids, newest first (default 200). */
  limit?: number;
  now?: () => number;
}

/**
 * Dataset ids from dataset.list through the program's connection (URL, token, CA as for any
 * command), cached for a few seconds. Never throws: not logged in, unreachable or slow → [].
 */
export function datasetIdSource(program: Command, o: DatasetIdOptions = {}): () => Promise<string[]> {
  const timeoutMs = o.timeoutMs ?? 2000;
  const load = async (): Promise<string[]> => {
    let client: RpcClient | undefined;
    let timer: NodeJS.Timeout | undefined;
    try {
      client = rpcClient(program);
      const c = client;
      const gaveUp = new Promise<never>((_r, reject) => {
        timer = setTimeout(() => {
          c.close(); // ends the request
          reject(new Error('timed out'));
        }, timeoutMs);
      });
      const r = await Promise.race([c.call<{ datasets: Array<{ id: number }> }>('dataset.list', { limit: o.limit ?? 200 }), gaveUp]);
      return r.datasets.map((d) => String(d.id));
    } catch {
      return [];
    } finally {
      clearTimeout(timer);
      client?.close();
    }
  };
  return cachedFor(o.ttlMs ?? 5000, load, o.now);
}
