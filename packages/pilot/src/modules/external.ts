/**
 * `external`: a module whose `src` (an https URL) was fetched and cached by firn-tray at
 * submission and is delivered by mon in pilot.start's `external_modules`. The pilot never
 * fetches it itself: it decodes the delivered copy, checks its sha256 (and md5), writes it to
 * the module's private directory and runs it — through its `#!` line, or by suffix
 * (.py → python3, .sh → /bin/sh, .js → node) — with the module's `args`. The module's
 * parameters are in FIRN_PARAMETERS (JSON).
 */
import fs from 'node:fs';
import path from 'node:path';
import { checksumBuffer } from '../core-pure';
import { ModuleConfigError, runModuleProcess, type ModuleContext, type ModuleResult, type PilotModule } from './module';

export const externalModule: PilotModule = {
  className: 'external',
  parameters: {},
  async execute(ctx: ModuleContext): Promise<ModuleResult> {
    const where = `${ctx.tray}/${ctx.module}`;
    const copy = ctx.external;
    if (!copy) {
      throw new ModuleConfigError(`${where}: external module ${ctx.config.src ?? ''} was not delivered by mon (the pilot never fetches module code itself)`);
    }
    const src = copy.src ?? ctx.config.src ?? 'module';
    const content = Buffer.from(copy.content_base64, 'base64');
    const sums = checksumBuffer(content);
    if (!copy.sha256) throw new ModuleConfigError(`${where}: the delivered copy of ${src} has no sha256`);
    if (copy.sha256.toLowerCase() !== sums.sha256 || (copy.md5 && copy.md5.toLowerCase() !== sums.md5)) {
      throw new ModuleConfigError(`${where}: checksum mismatch for the delivered copy of ${src} (sha256 ${sums.sha256} != ${copy.sha256})`);
    }
    const name = path.posix.basename(new URL(src, 'https://x/').pathname).replace(/[^A-Za-z0-9._-]/g, '_') || 'module';
    const file = path.join(ctx.privateDir, name);
    fs.writeFileSync(file, content, { mode: 0o755 });
    const argv = [...interpreterFor(file, content, where), ...argsOf(ctx.config.args, where)];
    ctx.logger.info('running external module', { src, sha256: sums.sha256 });
    return runModuleProcess({ ...ctx, env: { ...ctx.env, FIRN_PARAMETERS: JSON.stringify(ctx.parameters) } }, argv);
  },
};

/** How to start a script: itself when it has a `#!` line, else an interpreter chosen by suffix. */
export function interpreterFor(file: string, content: Buffer, where = 'module'): string[] {
  if (content.subarray(0, 2).toString() === '#!') return [file];
  const ext = path.extname(file).toLowerCase();
  if (ext === '.py') return ['python3', file];
  if (ext === '.sh') return ['/bin/sh', file];
  if (ext === '.js' || ext === '.cjs' || ext === '.mjs') return [process.execPath, file];
  if (content.subarray(0, 4).toString('latin1') === '\x7fELF') return [file];
  throw new ModuleConfigError(`${where}: cannot tell how to run ${path.basename(file)} (no #! line; known suffixes .py .sh .js)`);
}

/** Module `args`: an array as-is, an object as --key=value, a string split like a shell would (quotes honoured). */
export function argsOf(args: unknown, where = 'module'): string[] {
  if (args === undefined || args === null || args === '') return [];
  if (Array.isArray(args)) return args.map((a) => (typeof a === 'string' ? a : JSON.stringify(a)));
  if (typeof args === 'object') {
    return Object.entries(args as Record<string, unknown>).map(([k, v]) => `--${k}=${typeof v === 'string' ? v : JSON.stringify(v)}`);
  }
  if (typeof args === 'string') return splitWords(args, where);
  return [String(args)];
}

/** Split a command line into words: whitespace separates, '…' and "…" quote, \ escapes. */
export function splitWords(s: string, where = 'module'): string[] {
  const out: string[] = [];
  let cur = '';
  let has = false;
  let q: '"' | "'" | null = null;
  for (let i = 0; i < s.length; i++) {
    const c = s[i] as string;
    if (q) {
      if (c === q) q = null;
      else if (c === '\\' && q === '"' && i + 1 < s.length) cur += s[++i];
      else cur += c;
      continue;
    }
    if (c === "'" || c === '"') {
      q = c;
      has = true;
    } else if (c === '\\' && i + 1 < s.length) {
      cur += s[++i];
      has = true;
    } else if (/\s/.test(c)) {
      if (has) out.push(cur);
      cur = '';
      has = false;
    } else {
      cur += c;
      has = true;
    }
  }
  if (q) throw new ModuleConfigError(`${where}: unbalanced quote in args ${JSON.stringify(s)}`);
  if (has) out.push(cur);
  return out;
}
