/**
 * Everything docs/ quotes must exist:
 *  - config keys written `[section] key` (in backticks), keys of ```ini blocks, and
 *    FIRN_<SECTION>_<KEY> variables → schemas/config.schema.json;
 *  - RPC methods written `namespace.method` (auth, dataset, job, task, grid, user, system,
 *    pilot) → schemas/rpc/<method>.json;
 *  - commands in ```sh blocks starting with firn, firn-tray, firn-queue, firn-mon, firn-dh,
 *    firn-pilot, firn-web or install-site.sh → the subcommand and every flag appear in that
 *    program's --help (the built bins, packages/<pkg>/bin/<name>: `npm test` builds first);
 *  - repository paths in backticks (config/…, deploy/…, …) exist;
 *  - docs/rpc.md is what scripts/gen-rpc-docs.js generates.
 */
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';

const ROOT = path.resolve(__dirname, '..', '..');
const DOCS = path.join(ROOT, 'docs');

// ---------------------------------------------------------------------------------------
// Markdown

interface Block {
  lang: string;
  text: string;
  line: number;
}
interface ParsedDoc {
  prose: Array<{ text: string; line: number }>;
  blocks: Block[];
}

export function parseMarkdown(md: string): ParsedDoc {
  const prose: ParsedDoc['prose'] = [];
  const blocks: Block[] = [];
  const lines = md.split('\n');
  let fence: { marker: string; lang: string; line: number; body: string[] } | null = null;
  lines.forEach((line, i) => {
    const m = /^\s*(```+|~~~+)\s*([\w-]*)/.exec(line);
    if (fence) {
      if (m && m[1]!.startsWith(fence.marker) && !m[2]) {
        blocks.push({ lang: fence.lang, text: fence.body.join('\n'), line: fence.line });
        fence = null;
      } else fence.body.push(line);
    } else if (m) {
      fence = { marker: m[1]!, lang: (m[2] ?? '').toLowerCase(), line: i + 1, body: [] };
    } else prose.push({ text: line, line: i + 1 });
  });
  return { prose, blocks };
}

/** Backtick spans of one line of prose. */
function codeSpans(text: string): string[] {
  const out: string[] = [];
  const re = /(`+)([^`]|[^`][\s\S]*?[^`])\1(?!`)/g;
  for (let m = re.exec(text); m; m = re.exec(text)) out.push(m[2]!.trim());
  return out;
}

// ---------------------------------------------------------------------------------------
// Config keys

interface JsonSchema {
  properties?: Record<string, JsonSchema>;
  additionalProperties?: unknown;
}
const configSchema = JSON.parse(fs.readFileSync(path.join(ROOT, 'schemas', 'config.schema.json'), 'utf8')) as JsonSchema;
const SECTIONS = Object.keys(configSchema.properties ?? {});

export function configKeyProblem(section: string, key: string | null): string | null {
  const s = configSchema.properties?.[section];
  if (!s) return `config section [${section}] does not exist in schemas/config.schema.json`;
  if (key === null || section === 'environment') return null; // [environment] takes any NAME
  if (!s.properties?.[key]) return `config key [${section}] ${key} does not exist in schemas/config.schema.json`;
  return null;
}

const ENV_RE = new RegExp(`\\bFIRN_(${SECTIONS.filter((s) => s !== 'environment').map((s) => s.toUpperCase()).join('|')})_([A-Z0-9_]+)\\b`, 'g');

function iniProblems(text: string): string[] {
  const problems: string[] = [];
  let section: string | null = null;
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    if (!line || line.startsWith(';') || line.startsWith('#')) continue;
    const sec = /^\[([^\]]+)\]$/.exec(line);
    if (sec) {
      section = sec[1]!;
      // a systemd drop-in in an ini block
      if (/^(Service|Unit|Install)$/.test(section)) {
        section = null;
        continue;
      }
      const p = configKeyProblem(section, null);
      if (p) problems.push(p);
      continue;
    }
    const kv = /^([A-Za-z_][\w.-]*)\s*=/.exec(line);
    if (kv && section) {
      const p = configKeyProblem(section, kv[1]!);
      if (p) problems.push(p);
    }
  }
  return problems;
}

// ---------------------------------------------------------------------------------------
// RPC methods

const RPC_RE = /^(auth|dataset|job|task|grid|user|system|pilot)\.([a-z_]+)$/;
function rpcProblem(span: string): string | null {
  const m = RPC_RE.exec(span);
  if (!m) return null;
  return fs.existsSync(path.join(ROOT, 'schemas', 'rpc', `${span}.json`)) ? null : `RPC method ${span} has no schemas/rpc/${span}.json`;
}

// ---------------------------------------------------------------------------------------
// Repository paths

const PATH_RE = /^(config|deploy|docs|schemas|examples|scripts|packages|test|bench)\/[\w.@/-]*[\w/]$/;
function pathProblem(span: string): string | null {
  if (!PATH_RE.test(span) || span.includes('*') || span.includes('<')) return null;
  return fs.existsSync(path.join(ROOT, span)) ? null : `path ${span} does not exist in the repository`;
}

// ---------------------------------------------------------------------------------------
// Commands and their --help

/** Programs checked, and how to run them. */
const PROGRAMS: Record<string, string[]> = {
  firn: [process.execPath, path.join(ROOT, 'packages/client/bin/firn')],
  'firn-tray': [process.execPath, path.join(ROOT, 'packages/tray/bin/firn-tray')],
  'firn-queue': [process.execPath, path.join(ROOT, 'packages/queue/bin/firn-queue')],
  'firn-mon': [process.execPath, path.join(ROOT, 'packages/mon/bin/firn-mon')],
  'firn-dh': [process.execPath, path.join(ROOT, 'packages/dh/bin/firn-dh')],
  'firn-pilot': [process.execPath, path.join(ROOT, 'packages/pilot/bin/firn-pilot')],
  'firn-web': [process.execPath, path.join(ROOT, 'packages/web/bin/firn-web')],
  'install-site.sh': ['bash', path.join(ROOT, 'deploy/site/install-site.sh')],
};

interface HelpInfo {
  ok: boolean;
  text: string;
  commands: string[];
  /** long and short flags → takes a value */
  flags: Map<string, boolean>;
}

const helpCache = new Map<string, HelpInfo>();

export function parseHelp(text: string): Omit<HelpInfo, 'ok' | 'text'> {
  const commands: string[] = [];
  const flags = new Map<string, boolean>();
  let inCommands = false;
  for (const line of text.split('\n')) {
    if (/^\S.*:\s*$/.test(line)) inCommands = /^Commands:/.test(line);
    else if (inCommands) {
      const c = /^ {2}([a-z][\w-]*)(?:\|[\w-]+)?(?:\s|$)/.exec(line);
      if (c) commands.push(c[1]!);
    }
    const re = /(^|[\s,[|(])(--?[A-Za-z0-9][\w-]*)(?:[ =](<[^>]*>|\[[^\]]*\]|[A-Z][A-Z0-9_|.:]*(?![a-z])))?/g;
    for (let m = re.exec(line); m; m = re.exec(line)) {
      const flag = m[2]!;
      if (!/^--?[A-Za-z]/.test(flag)) continue;
      const takes = Boolean(m[3]) && !/^\[options\]$/.test(m[3]!);
      flags.set(flag, (flags.get(flag) ?? false) || takes);
    }
  }
  return { commands, flags };
}

function help(program: string, sub: string[]): HelpInfo {
  const key = [program, ...sub].join(' ');
  const cached = helpCache.get(key);
  if (cached) return cached;
  const cmd = PROGRAMS[program]!;
  let info: HelpInfo;
  if (!fs.existsSync(cmd[cmd.length - 1]!)) {
    info = { ok: false, text: `${cmd[cmd.length - 1]} does not exist`, commands: [], flags: new Map() };
  } else {
    const r = spawnSync(cmd[0]!, [...cmd.slice(1), ...sub, '--help'], {
      encoding: 'utf8', timeout: 60_000, cwd: ROOT, env: { ...process.env, NO_COLOR: '1', COLUMNS: '200' },
    });
    const text = `${r.stdout ?? ''}\n${r.stderr ?? ''}`;
    const ok = !r.error && /--help|-h\b|Usage|usage/.test(text) && !/Cannot find module|is missing/.test(text);
    info = { ok, text: ok ? text : `${text}${r.error ? String(r.error) : ''}`.trim().slice(0, 400), ...parseHelp(ok ? text : '') };
  }
  helpCache.set(key, info);
  return info;
}

/** Split a shell line into words and operators (quotes respected; no expansion). */
export function shellWords(line: string): string[] {
  const out: string[] = [];
  let cur = '';
  let inWord = false;
  for (let i = 0; i < line.length; i++) {
    const c = line[i]!;
    if (c === "'") {
      const end = line.indexOf("'", i + 1);
      cur += line.slice(i + 1, end < 0 ? line.length : end);
      i = end < 0 ? line.length : end;
      inWord = true;
    } else if (c === '"') {
      let j = i + 1;
      for (; j < line.length && line[j] !== '"'; j++) {
        if (line[j] === '\\' && j + 1 < line.length) j++;
        cur += line[j];
      }
      i = j;
      inWord = true;
    } else if (c === '\\' && i + 1 < line.length) {
      cur += line[++i];
      inWord = true;
    } else if (/\s/.test(c)) {
      if (inWord) out.push(cur);
      cur = '';
      inWord = false;
    } else if ('|&;'.includes(c)) {
      if (inWord) out.push(cur);
      cur = '';
      inWord = false;
      const two = line.slice(i, i + 2);
      if (two === '||' || two === '&&') {
        out.push(two);
        i++;
      } else out.push(c);
    } else if (c === '#' && !inWord) {
      break; // comment
    } else {
      cur += c;
      inWord = true;
    }
  }
  if (inWord) out.push(cur);
  return out;
}

/** Simple commands of a ```sh block: continuation lines joined, prompts and comments dropped. */
export function shellCommands(block: string): string[][] {
  const joined = block.replace(/\\\n/g, ' ');
  const cmds: string[][] = [];
  for (const raw of joined.split('\n')) {
    const line = raw.replace(/^\s*\$\s+/, '');
    if (!line.trim() || line.trim().startsWith('#')) continue;
    let cur: string[] = [];
    for (const w of shellWords(line)) {
      if (['|', '||', '&&', ';', '&'].includes(w)) {
        if (cur.length) cmds.push(cur);
        cur = [];
      } else cur.push(w);
    }
    if (cur.length) cmds.push(cur);
  }
  return cmds;
}

/** Drop `NAME=value` prefixes and wrappers such as sudo, env, exec. */
function stripWrappers(words: string[]): string[] {
  let w = [...words];
  for (;;) {
    if (w.length && /^[A-Za-z_][A-Za-z0-9_]*=/.test(w[0]!)) w = w.slice(1);
    else if (w[0] === 'sudo') {
      w = w.slice(1);
      while (w.length && w[0]!.startsWith('-')) w = w.slice(['-u', '-g'].includes(w[0]!) ? 2 : 1);
    } else if (w[0] === 'runuser') {
      const dd = w.indexOf('--');
      w = dd >= 0 ? w.slice(dd + 1) : w.slice(1);
    } else if (['env', 'exec', 'time', 'nohup', 'command'].includes(w[0] ?? '')) w = w.slice(1);
    else return w;
  }
}

/** Problems with one command line, or null when it is not one of ours. */
export function commandProblems(words: string[]): string[] | null {
  const w = stripWrappers(words);
  if (!w.length) return null;
  const program = path.basename(w[0]!);
  if (!Object.hasOwn(PROGRAMS, program)) return null;
  const problems: string[] = [];
  const text = `\`${words.join(' ')}\``;
  const sub: string[] = [];
  const chain: HelpInfo[] = [];
  let info = help(program, sub);
  if (!info.ok) return [`${text}: ${program} --help failed (${info.text.split('\n')[0]})`];
  chain.push(info);
  const known = (flag: string) => flag === '--help' || flag === '-h' || chain.some((h) => h.flags.has(flag));
  const takesValue = (flag: string) => chain.some((h) => h.flags.get(flag));
  let descend = true;
  for (let i = 1; i < w.length; i++) {
    const word = w[i]!;
    if (word === '--') break;
    if (/^--?[A-Za-z]/.test(word)) {
      const flag = word.split('=')[0]!;
      if (!known(flag)) problems.push(`${text}: ${flag} is not in \`${[program, ...sub].join(' ')} --help\``);
      else if (!word.includes('=') && takesValue(flag)) i++;
      continue;
    }
    if (descend && info.commands.length) {
      if (info.commands.includes(word)) {
        sub.push(word);
        info = help(program, sub);
        if (!info.ok) {
          problems.push(`${text}: \`${[program, ...sub].join(' ')} --help\` failed`);
          return problems;
        }
        chain.push(info);
        continue;
      }
      problems.push(`${text}: ${program}${sub.length ? ' ' + sub.join(' ') : ''} has no subcommand "${word}" (it has: ${info.commands.join(', ')})`);
      return problems;
    }
    descend = false; // a positional argument
  }
  return problems;
}

// ---------------------------------------------------------------------------------------

export function docProblems(md: string): string[] {
  const problems: string[] = [];
  const { prose, blocks } = parseMarkdown(md);
  const at = (line: number, p: string) => `line ${line}: ${p}`;
  for (const { text, line } of prose) {
    for (const span of codeSpans(text)) {
      const k = /^\[([a-z_]+)\]\s+([A-Za-z_]\w*)/.exec(span);
      if (k) {
        const p = configKeyProblem(k[1]!, k[2]!);
        if (p) problems.push(at(line, p));
      }
      const r = rpcProblem(span);
      if (r) problems.push(at(line, r));
      const f = pathProblem(span);
      if (f) problems.push(at(line, f));
    }
  }
  const all = [...prose.map((p) => ({ text: p.text, line: p.line })), ...blocks.map((b) => ({ text: b.text, line: b.line }))];
  for (const { text, line } of all) {
    for (const m of text.matchAll(ENV_RE)) {
      const p = configKeyProblem(m[1]!.toLowerCase(), m[2]!.toLowerCase());
      if (p) problems.push(at(line, `${m[0]}: ${p}`));
    }
  }
  for (const b of blocks) {
    if (b.lang === 'ini') for (const p of iniProblems(b.text)) problems.push(at(b.line, p));
    if (['sh', 'bash', 'shell', 'console'].includes(b.lang)) {
      for (const words of shellCommands(b.text)) for (const p of commandProblems(words) ?? []) problems.push(at(b.line, p));
    }
  }
  return problems;
}

const docFiles = fs.existsSync(DOCS) ? fs.readdirSync(DOCS).filter((f) => f.endsWith('.md')).sort() : [];

describe('docs/ quotes only what exists', () => {
  it('has the guides', () => {
    expect(docFiles).toEqual(expect.arrayContaining(['architecture.md', 'operator.md', 'production-manager.md', 'rpc.md', 'site-admin.md']));
  });

  // Each distinct `<program> <subcommand> --help` starts a node process (about a second for
  // `firn`, which loads every package): allow minutes, not the default 60 s.
  it.each(docFiles)('%s: every config key, RPC method, command, flag and path exists', (file) => {
    const problems = docProblems(fs.readFileSync(path.join(DOCS, file), 'utf8'));
    expect(problems).toEqual([]);
  }, 300_000);

  it('docs/rpc.md is generated from schemas/rpc (node scripts/gen-rpc-docs.js --check)', () => {
    const r = spawnSync(process.execPath, [path.join(ROOT, 'scripts', 'gen-rpc-docs.js'), '--check'], { encoding: 'utf8', cwd: ROOT });
    expect({ status: r.status, stderr: r.stderr }).toEqual({ status: 0, stderr: '' });
  });

  it('docs/rpc.md documents every RPC method and every parameter', () => {
    const rpc = fs.readFileSync(path.join(DOCS, 'rpc.md'), 'utf8');
    for (const f of fs.readdirSync(path.join(ROOT, 'schemas', 'rpc'))) {
      const method = f.replace(/\.json$/, '');
      expect(rpc).toContain(`### \`${method}\``);
      const schema = JSON.parse(fs.readFileSync(path.join(ROOT, 'schemas', 'rpc', f), 'utf8')) as JsonSchema;
      for (const p of Object.keys(schema.properties ?? {})) expect(rpc).toContain(`| \`${p}\` |`);
    }
  });
});

describe('the docs checker itself', () => {
  it('finds an unknown config key, section, RPC method, path and environment variable', () => {
    const md = [
      'Set `[queue] max_queued` and `[queue] no_such_key`, `[nosection] x`.',
      'Call `dataset.submit` or `dataset.no_such_method`; see `config/no-such.ini` and `config/dh.ini`.',
      '`FIRN_DB_URL` is fine, `FIRN_TRAY_NO_SUCH` is not.',
      '```ini',
      '[mon]',
      'url = https://x',
      'bogus = 1',
      '[environment]',
      'ANY_NAME = 1',
      '```',
    ].join('\n');
    const problems = docProblems(md);
    expect(problems).toEqual([
      'line 1: config key [queue] no_such_key does not exist in schemas/config.schema.json',
      'line 1: config section [nosection] does not exist in schemas/config.schema.json',
      'line 2: RPC method dataset.no_such_method has no schemas/rpc/dataset.no_such_method.json',
      'line 2: path config/no-such.ini does not exist in the repository',
      'line 3: FIRN_TRAY_NO_SUCH: config key [tray] no_such does not exist in schemas/config.schema.json',
      'line 4: config key [mon] bogus does not exist in schemas/config.schema.json',
    ]);
  });

  it('splits shell lines into commands, through pipes, continuations, sudo and env prefixes', () => {
    expect(shellCommands("echo pw | sudo -u firn FIRN_X=1 firn-tray user add admin --role admin # first\nfirn submit a.json \\\n  --jobs 3 && firn status 1")).toEqual([
      ['echo', 'pw'],
      ['sudo', '-u', 'firn', 'FIRN_X=1', 'firn-tray', 'user', 'add', 'admin', '--role', 'admin'],
      ['firn', 'submit', 'a.json', '--jobs', '3'],
      ['firn', 'status', '1'],
    ]);
  });

  it('parses commander help: commands, and flags with or without a value', () => {
    const h = parseHelp([
      'Usage: firn [options] [command]',
      '',
      'Options:',
      '  -V, --version        output the version number',
      '  --url <url>          firn-tray URL',
      '  --json               print JSON',
      '',
      'Commands:',
      '  login [options] [url]  log in',
      '  grid                   grids',
      '                         (continued description)',
    ].join('\n'));
    expect(h.commands).toEqual(['login', 'grid']);
    expect(h.flags.get('--url')).toBe(true);
    expect(h.flags.get('--json')).toBe(false);
    expect(h.flags.get('-V')).toBe(false);
  });

  it('flags an unknown subcommand and an unknown flag of a real program', () => {
    expect(commandProblems(['firn', 'sumbit', 'x.json'])).toEqual([expect.stringContaining('has no subcommand "sumbit"')]);
    expect(commandProblems(['firn', 'submit', 'x.json', '--jobs', '3', '--no-such-flag'])).toEqual([
      expect.stringContaining('--no-such-flag is not in `firn submit --help`'),
    ]);
    expect(commandProblems(['firn', '--url', 'https://x', 'grid', 'add', 'g', '--plugin', 'slurm', '--cpu', '4'])).toEqual([]);
    expect(commandProblems(['ls', '-l'])).toBeNull();
  }, 120_000);
});
