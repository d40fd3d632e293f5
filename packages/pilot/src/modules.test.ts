import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { checksumBuffer } from './core-pure';
import {
  AbortedError,
  ModuleConfigError,
  ModuleExitError,
  ResourceLimitError,
  argsOf,
  externalModule,
  moduleFor,
  parseStats,
  shellModule,
  splitWords,
  tarballModule,
  transferModule,
  type ModuleContext,
} from './modules';
import { externalModule as ext } from './modules/external';
import { PilotLogger } from './logger';
import { Stager } from './staging';
import type { ExternalModuleCopy, ModuleConfig } from './protocol';

let dir: string;
let stager: Stager;
beforeEach(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'firn-mod-'));
  fs.mkdirSync(path.join(dir, 'work'));
  fs.mkdirSync(path.join(dir, 'priv'));
  stager = new Stager({ attempts: 1 });
});
afterEach(async () => {
  await stager.close();
  fs.rmSync(dir, { recursive: true, force: true });
});

function ctx(config: Partial<ModuleConfig> & { parameters?: Record<string, unknown> }, extra: Partial<ModuleContext> = {}): ModuleContext {
  const work = path.join(dir, 'work');
  const priv = path.join(dir, 'priv');
  const statsFile = path.join(priv, 'stats');
  fs.writeFileSync(statsFile, '');
  const full: ModuleConfig = { name: 'm', class: 'shell', ...config } as ModuleConfig;
  return {
    tray: 't',
    module: full.name,
    iteration: 0,
    config: full,
    parameters: full.parameters ?? {},
    scratch: work,
    privateDir: priv,
    env: { PATH: process.env.PATH, FIRN_SCRATCH: work, FIRN_STATS: statsFile, FIRN_TASK: 'task1', FIRN_JOB: '3' },
    statsFile,
    stdoutFile: path.join(priv, 'stdout'),
    stderrFile: path.join(priv, 'stderr'),
    limits: {},
    signal: new AbortController().signal,
    stager,
    logger: PilotLogger.create({ stream: null }),
    onSample: () => undefined,
    ...extra,
  };
}

describe('parseStats', () => {
  it('sums values per name and reports lines that do not parse', () => {
    const { stats, bad } = parseStats('events 10\nenergy 1.5e3\n# comment\n\nevents=5\nbad line here\nx nan\n');
    expect(stats).toEqual({ events: 15, energy: 1500 });
    expect(bad).toEqual(['bad line here', 'x nan']);
  });
});

describe('shell', () => {
  it('runs parameters.command in the scratch directory with the FIRN_* environment', async () => {
    const c = ctx({ parameters: { command: 'pwd > where; echo "$FIRN_TASK $FIRN_JOB" > env; echo "events 7" >> "$FIRN_STATS"' } });
    const r = await shellModule.execute(c);
    expect(fs.readFileSync(path.join(c.scratch, 'where'), 'utf8').trim()).toBe(fs.realpathSync(c.scratch));
    expect(fs.readFileSync(path.join(c.scratch, 'env'), 'utf8')).toBe('task1 3\n');
    expect(typeof r.stats.cpu_seconds).toBe('number');
    expect(fs.readFileSync(c.statsFile, 'utf8')).toBe('events 7\n');
  });
  it('execs parameters.args without a shell', async () => {
    const c = ctx({ parameters: { args: ['/bin/echo', '$HOME', 'a b'] } });
    await shellModule.execute(c);
    expect(fs.readFileSync(c.stdoutFile, 'utf8')).toBe('$HOME a b\n');
  });
  it('reports a non-zero exit with the last stderr line', async () => {
    const c = ctx({ parameters: { command: 'echo first >&2; echo "it broke" >&2; exit 4' } });
    const e = await shellModule.execute(c).catch((x: unknown) => x);
    expect(e).toBeInstanceOf(ModuleExitError);
    expect((e as ModuleExitError).exitCode).toBe(4);
    expect((e as ModuleExitError).lastStderrLine).toBe('it broke');
  });
  it('needs command or args', async () => {
    await expect(shellModule.execute(ctx({ parameters: {} }))).rejects.toThrow(ModuleConfigError);
  });
  it('is killed over the memory limit', async () => {
    const c = ctx(
      { parameters: { command: `${JSON.stringify(process.execPath)} -e "const b=Buffer.alloc(200*1024*1024,1); setTimeout(()=>{}, 20000)"` } },
      { limits: { memoryMb: 64 } },
    );
    const e = await shellModule.execute(c).catch((x: unknown) => x);
    expect(e).toBeInstanceOf(ResourceLimitError);
    expect((e as Error).message).toMatch(/memory limit exceeded \(rss \d+ MB > 64 MB\)/);
  });
  it('stops when the pilot aborts', async () => {
    const ac = new AbortController();
    const p = shellModule.execute(ctx({ parameters: { command: 'sleep 30' } }, { signal: ac.signal }));
    setTimeout(() => ac.abort(), 100);
    await expect(p).rejects.toThrow(AbortedError);
  });
});

describe('transfer', () => {
  it('copies between scratch paths and URLs, checking the given checksum', async () => {
    const c = ctx({ class: 'transfer', parameters: {} });
    const data = crypto.randomBytes(5000);
    fs.writeFileSync(path.join(c.scratch, 'a.bin'), data);
    const sums = checksumBuffer(data);
    const dest = `file://${path.join(dir, 'elsewhere', 'b.bin')}`;
    const r = await transferModule.execute({ ...c, parameters: { from: 'a.bin', to: dest, sha256: sums.sha256 } });
    expect(fs.readFileSync(path.join(dir, 'elsewhere', 'b.bin')).equals(data)).toBe(true);
    expect(r.stats.cpu_seconds).toBeGreaterThanOrEqual(0);
    await expect(transferModule.execute({ ...c, parameters: { from: 'a.bin', to: 'c.bin', checksum: `md5:${'0'.repeat(32)}` } })).rejects.toThrow(/checksum mismatch/);
    expect(fs.existsSync(path.join(c.scratch, 'c.bin'))).toBe(false);
    await expect(transferModule.execute({ ...c, parameters: { from: 'a.bin' } })).rejects.toThrow(/parameters.to is required/);
  });
});

describe('tarball', () => {
  it('creates an archive of a directory and extracts it elsewhere', async () => {
    const c = ctx({ class: 'tarball' });
    fs.mkdirSync(path.join(c.scratch, 'out', 'sub'), { recursive: true });
    fs.writeFileSync(path.join(c.scratch, 'out', 'sub', 'f.txt'), 'payload\n');
    await tarballModule.execute({ ...c, parameters: { create: 'pack.tar.gz', path: 'out' } });
    expect(fs.readFileSync(path.join(c.scratch, 'pack.tar.gz')).subarray(0, 2).toString('hex')).toBe('1f8b'); // gzip
    await tarballModule.execute({ ...c, parameters: { extract: 'pack.tar.gz', path: 'unpacked' } });
    expect(fs.readFileSync(path.join(c.scratch, 'unpacked', 'out', 'sub', 'f.txt'), 'utf8')).toBe('payload\n');
  });
  it('packs the whole scratch directory without including the archive itself', async () => {
    const c = ctx({ class: 'tarball' });
    fs.writeFileSync(path.join(c.scratch, 'x.txt'), 'x');
    await tarballModule.execute({ ...c, parameters: { create: 'all.tar' } });
    await tarballModule.execute({ ...c, parameters: { extract: 'all.tar', path: 'check' } });
    expect(fs.readdirSync(path.join(c.scratch, 'check')).sort()).toEqual(['x.txt']);
  });
  it('needs exactly one of create / extract', async () => {
    await expect(tarballModule.execute(ctx({ class: 'tarball', parameters: {} }))).rejects.toThrow(/exactly one/);
  });
  it('fails on a missing archive', async () => {
    await expect(tarballModule.execute(ctx({ class: 'tarball', parameters: { extract: 'none.tar' } }))).rejects.toThrow(ModuleExitError);
  });
});

function delivered(content: string, src: string, sha256?: string): ExternalModuleCopy {
  const sums = checksumBuffer(content);
  return { tray: 't', module: 'm', src, sha256: sha256 ?? sums.sha256, md5: sums.md5, content_base64: Buffer.from(content).toString('base64') };
}

describe('external', () => {
  it('runs the delivered copy through its #! line with args and parameters', async () => {
    const script = '#!/bin/sh\necho "args: $*" > "$FIRN_SCRATCH/ext.out"\necho "$FIRN_PARAMETERS" >> "$FIRN_SCRATCH/ext.out"\necho "hits 2" >> "$FIRN_STATS"\n';
    const c = ctx({ class: 'mymod', src: 'https://example.org/mods/run.sh', args: { n: 3, flag: 'yes' }, parameters: { p: 1 } });
    expect(moduleFor(c.config, 't/m')).toBe(ext);
    await externalModule.execute({ ...c, external: delivered(script, 'https://example.org/mods/run.sh') });
    expect(fs.readFileSync(path.join(c.scratch, 'ext.out'), 'utf8')).toBe('args: --n=3 --flag=yes\n{"p":1}\n');
    expect(fs.readFileSync(c.statsFile, 'utf8')).toBe('hits 2\n');
  });
  it('runs a python module without #! by its suffix', async () => {
    const c = ctx({ class: 'py', src: 'https://example.org/m.py', args: ['a', 'b'] });
    await externalModule.execute({ ...c, external: delivered('import sys, os\nopen(os.environ["FIRN_SCRATCH"] + "/py.out", "w").write(" ".join(sys.argv[1:]))\n', 'https://example.org/m.py') });
    expect(fs.readFileSync(path.join(c.scratch, 'py.out'), 'utf8')).toBe('a b');
  });
  it('refuses a copy whose checksum does not match, and one that was not delivered', async () => {
    const c = ctx({ class: 'x', src: 'https://example.org/run.sh' });
    await expect(externalModule.execute({ ...c, external: delivered('#!/bin/sh\ntrue\n', 'https://example.org/run.sh', 'f'.repeat(64)) })).rejects.toThrow(/checksum mismatch/);
    await expect(externalModule.execute(c)).rejects.toThrow(/not delivered by mon/);
  });
});

describe('moduleFor / args', () => {
  it('maps classes to built-ins and refuses unknown classes without src', () => {
    expect(moduleFor({ name: 'a', class: 'shell' }, 'x')).toBe(shellModule);
    expect(moduleFor({ name: 'a', class: 'tarball' }, 'x')).toBe(tarballModule);
    expect(() => moduleFor({ name: 'a', class: 'nope' }, 't/a')).toThrow(/t\/a: unknown module class "nope"/);
    expect(() => moduleFor({ name: 'a', class: 'toString' }, 't/a')).toThrow(/unknown module class/);
  });
  it('splits argument strings like a shell', () => {
    expect(splitWords(`a "b c" 'd e' f\\ g`)).toEqual(['a', 'b c', 'd e', 'f g']);
    expect(() => splitWords('a "b')).toThrow(/unbalanced/);
    expect(argsOf(['x', 2])).toEqual(['x', '2']);
  });
});
