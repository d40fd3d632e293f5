import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { PassThrough } from 'node:stream';
import { Command } from 'commander';
import { RpcError, RpcErrorCode, RpcTransportError } from '@firn/core';
import { buildProgram, createContext, main } from './cli';
import { cachedFor } from './commands/completion';
import { completer, splitArgs } from './commands/shell';
import { parseTarget } from './context';
import { CliError, ExitCode, exitCodeOf } from './exit-codes';
import { countBars, table, time } from './output';
import { configDir, loadSettings, saveSettings } from './settings';

function io(env: Record<string, string | undefined> = {}, input = '') {
  const stdin = new PassThrough();
  stdin.end(input);
  const out: string[] = [];
  const err: string[] = [];
  const stdout = new PassThrough();
  stdout.on('data', (d: Buffer) => out.push(d.toString()));
  const stderr = new PassThrough();
  stderr.on('data', (d: Buffer) => err.push(d.toString()));
  return { io: { stdin, stdout, stderr, env }, out: () => out.join(''), err: () => err.join('') };
}

describe('splitArgs', () => {
  it('splits like a shell: quotes, escapes, no expansion', () => {
    expect(splitArgs('submit  a.json --jobs 3')).toEqual(['submit', 'a.json', '--jobs', '3']);
    expect(splitArgs(`suspend 3 --reason 'it is $HOME broken'`)).toEqual(['suspend', '3', '--reason', 'it is $HOME broken']);
    expect(splitArgs('x "a \\"b\\" c" d\\ e ""')).toEqual(['x', 'a "b" c', 'd e', '']);
    expect(splitArgs('   ')).toEqual([]);
    expect(() => splitArgs("a 'b")).toThrow(CliError);
    expect(() => splitArgs('a "b')).toThrow(/unterminated double quote/);
  });
});

describe('completion', () => {
  const ctx = createContext(io().io);
  const program = buildProgram(ctx);
  const complete = completer(program);
  it('completes command names, sub-commands and options', async () => {
    expect(await complete('sta')).toEqual([['stats', 'status'], 'sta']);
    expect((await complete('gr'))[0]).toEqual(['grid']);
    expect((await complete('grid '))[0]).toEqual(['add', 'clear-hole', 'disable', 'enable', 'holes', 'ls', 'rm']);
    expect((await complete('grid d'))[0]).toEqual(['disable']);
    expect((await complete('submit x.json --jo'))[0]).toEqual(['--jobs']);
    expect((await complete('ex'))[0]).toEqual(['exit', 'expand']);
    expect((await complete('nonsense '))[0]).toEqual([]);
    expect(await complete('ls --status P')).toEqual([['PROCESSING'], 'P']);
  });
  it('completes file paths where a command takes a file, and nowhere else', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'firn-complete-'));
    fs.mkdirSync(path.join(dir, 'configs'));
    fs.writeFileSync(path.join(dir, 'configs', 'sim.json'), '{}');
    fs.writeFileSync(path.join(dir, 'configs', 'sim 2.json'), '{}');
    fs.writeFileSync(path.join(dir, 'configs', '.hidden.json'), '{}');
    fs.writeFileSync(path.join(dir, 'notes.txt'), '');
    const files = completer(program, { cwd: dir, home: dir });
    expect(await files('submit ')).toEqual([['configs/', 'notes.txt'], '']);
    expect(await files('submit co')).toEqual([['configs/'], 'co']);
    expect(await files('submit configs/s')).toEqual([['configs/sim.json', 'configs/sim\\ 2.json'], 'configs/s']);
    expect(await files('submit configs/sim\\ ')).toEqual([['configs/sim\\ 2.json'], 'configs/sim\\ ']);
    expect((await files('submit configs/.'))[0]).toEqual(['configs/.hidden.json']);
    expect((await files('validate ~/conf'))[0]).toEqual(['~/configs/']);
    expect((await files(`expand ${dir}/no`))[0]).toEqual([`${dir}/notes.txt`]);
    expect((await files('run --jobs 2 n'))[0]).toEqual(['notes.txt']); // an option's value is skipped
    expect((await files('add-jobs 3 n'))[0]).toEqual(['notes.txt']); // the second argument
    expect((await files('--ca n'))[0]).toEqual([]); // not a command
    expect((await files('submit x.json --ca n'))[0]).toEqual(['notes.txt']); // --ca <file>
    expect((await files('status n'))[0]).toEqual([]); // a dataset, not a file
    expect((await files('submit missing/x'))[0]).toEqual([]);
    fs.rmSync(dir, { recursive: true, force: true });
  });
  it('completes dataset ids from the source, and caches a source for its ttl', async () => {
    let calls = 0;
    let now = 0;
    const source = cachedFor(5000, async () => (calls++, ['12', '11', '3']), () => now);
    const ids = completer(program, { datasetIds: source });
    expect(await ids('status ')).toEqual([['12', '11', '3'], '']);
    expect((await ids('reset 1'))[0]).toEqual(['12', '11']);
    expect((await ids('priority 1'))[0]).toEqual(['12', '11']);
    expect((await ids('priority 12 '))[0]).toEqual([]); // the priority, not a dataset
    expect((await ids('why '))[0]).toEqual(['12', '11', '3']);
    expect((await ids('logs '))[0]).toEqual([]); // a task id
    expect(calls).toBe(1);
    now = 5000;
    await ids('status ');
    expect(calls).toBe(2);
  });
  it('has every command group the issue names', () => {
    const names = program.commands.map((c: Command) => c.name());
    for (const n of ['login', 'submit', 'ls', 'status', 'config', 'suspend', 'resume', 'reset', 'priority', 'grid', 'stats', 'logs', 'user', 'shell', 'validate', 'expand', 'db']) {
      expect(names).toContain(n);
    }
  });
});

describe('exit codes', () => {
  it('maps server error codes to the documented exit codes', () => {
    expect(exitCodeOf(new RpcError(RpcErrorCode.UNAUTHENTICATED, 'x'))).toBe(ExitCode.AUTH);
    expect(exitCodeOf(new RpcError(RpcErrorCode.FORBIDDEN, 'x'))).toBe(3);
    expect(exitCodeOf(new RpcError(RpcErrorCode.RATE_LIMITED, 'x'))).toBe(3);
    expect(exitCodeOf(new RpcError(RpcErrorCode.NOT_FOUND, 'x'))).toBe(4);
    expect(exitCodeOf(new RpcError(RpcErrorCode.CONFLICT, 'x'))).toBe(5);
    expect(exitCodeOf(new RpcError(RpcErrorCode.INVALID_PARAMS, 'x'))).toBe(1);
    expect(exitCodeOf(new RpcTransportError('down'))).toBe(1);
    expect(exitCodeOf(new Error('boom'))).toBe(1);
  });

  it('usage errors exit 2, --help exits 0 and documents the exit codes', async () => {
    const a = io();
    expect(await main(['no-such-command'], a.io)).toBe(2);
    expect(a.err()).toMatch(/unknown command/);
    const b = io();
    expect(await main(['status'], b.io)).toBe(2);
    expect(b.err()).toMatch(/missing required argument/);
    const c = io();
    expect(await main(['suspend', 'twelve'], c.io)).toBe(2);
    expect(c.err()).toMatch(/expected DATASET or DATASET\.JOB/);
    const d = io();
    expect(await main(['--help'], d.io)).toBe(0);
    expect(d.out()).toMatch(/Exit codes:[\s\S]*3 +not logged in[\s\S]*5 +conflict/);
  });

  it('a server that is not there is an error (1) naming it', async () => {
    const a = io({ FIRN_CONFIG_DIR: fs.mkdtempSync(path.join(os.tmpdir(), 'firn-cli-')) });
    expect(await main(['--url', 'http://127.0.0.1:1', 'ls'], a.io)).toBe(1);
    expect(a.err()).toMatch(/cannot reach http:\/\/127\.0\.0\.1:1/);
  });
});

describe('targets and rendering', () => {
  it('parses DATASET and DATASET.JOB', () => {
    expect(parseTarget('12')).toEqual({ dataset: 12 });
    expect(parseTarget('12.0')).toEqual({ dataset: 12, job: 0 });
    expect(() => parseTarget('12.x')).toThrow(CliError);
    expect(() => parseTarget('0')).toThrow(/start at 1/);
  });
  it('renders tables and bars', () => {
    expect(table(['A', 'BB'], [[1, 'x'], ['long', null]])).toBe('A     BB\n1     x\nlong\n');
    const bars = countBars('tasks', { WAITING: 1, OK: 3, FAILED: 0 }, 4);
    expect(bars).toBe('tasks (4)\n  WAITING    █░░░ 1/4  25.0%\n  OK         ███░ 3/4  75.0%\n');
  });
  it('prints times as ISO 8601 UTC to the second, from epoch ms or an ISO string', () => {
    const ms = Date.UTC(2026, 11, 4, 18, 42, 0, 789);
    expect(time(ms)).toBe('2026-12-04T18:42:00Z');
    expect(time(new Date(ms).toISOString())).toBe('2026-12-04T18:42:00Z');
    expect(time(null)).toBe('');
    expect(time(undefined)).toBe('');
    expect(time('not a time')).toBe('not a time');
    expect(time(Number.NaN)).toBe('');
  });
});

describe('settings', () => {
  it('honours FIRN_CONFIG_DIR, then XDG_CONFIG_HOME, then ~/.config; writes mode 0600', () => {
    expect(configDir({ FIRN_CONFIG_DIR: '/x/y' })).toBe('/x/y');
    expect(configDir({ XDG_CONFIG_HOME: '/cfg' })).toBe('/cfg/firn');
    expect(configDir({ HOME: '/home/u' })).toBe('/home/u/.config/firn');
    const base = fs.mkdtempSync(path.join(os.tmpdir(), 'firn-xdg-'));
    const env = { XDG_CONFIG_HOME: base };
    const file = saveSettings(env, { url: 'https://h:1', token: 'secret-token' });
    expect(file).toBe(path.join(base, 'firn', 'client.json'));
    expect(fs.statSync(file).mode & 0o777).toBe(0o600);
    expect(fs.statSync(path.dirname(file)).mode & 0o777).toBe(0o700);
    expect(loadSettings(env)).toEqual({ url: 'https://h:1', token: 'secret-token' });
    fs.chmodSync(file, 0o644);
    saveSettings(env, { url: 'https://h:2' });
    expect(fs.statSync(file).mode & 0o777).toBe(0o600);
    fs.rmSync(base, { recursive: true, force: true });
  });
});
