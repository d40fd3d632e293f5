import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { ConfigError, ValidationError } from '@firn/core';
import type { PluginOptions, SubmitTask } from './plugin';
import { shellQuote } from './shell-quote';
import {
  SCRIPT_SELECT_FAILURE,
  batchRequirements,
  checkTasks,
  excludableHosts,
  extraDirectiveLines,
  formatHms,
  renderPilotScript,
  resolveOptions,
  type PilotScriptSpec,
  type TaskSelector,
} from './submit-script';

const HOSTILE = "a'b; rm -rf /";

let tmp: string;
beforeEach(() => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), "firn script test's dir "));
});
afterEach(() => {
  fs.rmSync(tmp, { recursive: true, force: true });
});

/** A stand-in pilot: prints its arguments one per line and FOO, then exits with $FAKE_RC (default 0). */
function fakePilot(): string {
  const p = path.join(tmp, 'fake pilot.sh');
  fs.writeFileSync(p, `printf 'arg:%s\\n' "$@"\nprintf 'FOO=%s\\n' "$FOO"\nprintf 'BAR=%s\\n' "$BAR"\necho oops >&2\nexit "\${FAKE_RC:-0}"\n`);
  return p;
}

function task(taskId: number, extra: Partial<SubmitTask> = {}): SubmitTask {
  const dir = path.join(tmp, `task ${taskId}`);
  fs.mkdirSync(dir, { recursive: true });
  return {
    taskId,
    datasetId: 1,
    jobIndex: taskId,
    taskName: 'main',
    requirements: { cpu: 1, gpu: 0, memory: 1000, disk: 0, time: 60 },
    passkeyFile: path.join(dir, 'passkey'),
    taskDir: dir,
    ...extra,
  };
}

function options(over: Partial<PluginOptions> = {}): PluginOptions {
  return {
    grid: 'test-grid',
    monUrl: 'http://127.0.0.1:8081/rpc',
    pilotCommand: `/bin/sh ${shellQuote(fakePilot())}`,
    scratch: '/tmp/scratch dir',
    environment: { FOO: HOSTILE, BAR: '$(echo pwned) `id` $HOME' },
    ...over,
  };
}

function render(tasks: SubmitTask[], selector: TaskSelector, over: Partial<PilotScriptSpec> = {}, opts: Partial<PluginOptions> = {}): string {
  const script = renderPilotScript({ options: resolveOptions(options(opts), 'test'), tasks, directives: ['#X --directive'], selector, taskFiles: true, ...over });
  const file = path.join(tmp, 'submit.sh');
  fs.writeFileSync(file, script);
  return file;
}

function run(script: string, args: string[], env: Record<string, string>) {
  return spawnSync('/bin/sh', [script, ...args], { encoding: 'utf8', env: { PATH: '/usr/bin:/bin', ...env }, cwd: tmp });
}

const SLURM: TaskSelector = { kind: 'job-name', nameVars: ['SLURM_JOB_NAME'], indexVar: 'SLURM_ARRAY_TASK_ID', firstIndex: 0 };
const SGE: TaskSelector = { kind: 'job-name', nameVars: ['JOB_NAME'], indexVar: 'SGE_TASK_ID', firstIndex: 1 };
const PBS: TaskSelector = { kind: 'job-name', nameVars: ['PBS_JOBNAME', 'SLURM_JOB_NAME'], firstIndex: 0 };

function expectPilotRan(t: SubmitTask, exitCode: number) {
  const out = fs.readFileSync(path.join(t.taskDir, 'stdout'), 'utf8');
  expect(out).toBe(
    [
      'arg:--mon',
      'arg:http://127.0.0.1:8081/rpc',
      'arg:--task',
      `arg:${t.taskId}`,
      'arg:--passkey-file',
      `arg:${t.passkeyFile}`,
      'arg:--scratch',
      'arg:/tmp/scratch dir',
      `FOO=${HOSTILE}`,
      'BAR=$(echo pwned) `id` $HOME',
      '',
    ].join('\n'),
  );
  expect(fs.readFileSync(path.join(t.taskDir, 'stderr'), 'utf8')).toBe('oops\n');
  expect(fs.readFileSync(path.join(t.taskDir, 'exit_code'), 'utf8')).toBe(`${exitCode}\n`);
}

describe('renderPilotScript, run by /bin/sh', () => {
  it('runs the task named by a Slurm array element, with hostile values intact', () => {
    const tasks = [task(100), task(101), task(103)];
    const script = render(tasks, SLURM);
    const r = run(script, [], { SLURM_JOB_NAME: 'firn-a100', SLURM_ARRAY_TASK_ID: '3', FAKE_RC: '3' });
    expect(r.stderr).toBe('');
    expect(r.status).toBe(3);
    expectPilotRan(tasks[2]!, 3);
    expect(fs.existsSync(path.join(tasks[0]!.taskDir, 'stdout'))).toBe(false);
    expect(fs.existsSync(path.join(tmp, 'pwned'))).toBe(false);
  });
  it('runs a plain job named firn-<taskId>', () => {
    const tasks = [task(7)];
    const r = run(render(tasks, SLURM), [], { SLURM_JOB_NAME: 'firn-7' });
    expect(r.status).toBe(0);
    expectPilotRan(tasks[0]!, 0);
  });
  it('counts SGE array indexes from 1', () => {
    const tasks = [task(40), task(41)];
    const r = run(render(tasks, SGE), [], { JOB_NAME: 'firn-a40', SGE_TASK_ID: '2' });
    expect(r.status).toBe(0);
    expectPilotRan(tasks[1]!, 0);
  });
  it('reads tasks from names carrying the grid (SGE), and refuses another grid\'s name', () => {
    const tasks = [task(40), task(41), task(45)];
    const script = render(tasks, { ...SGE, prefix: 'firn-wisc_1.b-' });
    expect(run(script, [], { JOB_NAME: 'firn-wisc_1.b-a40', SGE_TASK_ID: '2' }).status).toBe(0);
    expectPilotRan(tasks[1]!, 0);
    expect(run(script, [], { JOB_NAME: 'firn-wisc_1.b-45' }).status).toBe(0);
    expectPilotRan(tasks[2]!, 0);
    const other = run(script, [], { JOB_NAME: 'firn-other-a40', SGE_TASK_ID: '1' });
    expect(other.status).toBe(SCRIPT_SELECT_FAILURE);
    expect(other.stderr).toContain("cannot tell the task from the job name 'firn-other-a40'");
    expect(fs.existsSync(path.join(tasks[0]!.taskDir, 'stdout'))).toBe(false);
    expect(() => render(tasks, { ...SGE, prefix: 'firn-a*b-' })).toThrow(ValidationError);
  });
  it('finds the name in $SLURM_JOB_NAME when $PBS_JOBNAME is not set (Torque wrappers)', () => {
    const tasks = [task(5), task(6)];
    const script = render(tasks, PBS);
    expect(run(script, [], { SLURM_JOB_NAME: 'firn-6' }).status).toBe(0);
    expectPilotRan(tasks[1]!, 0);
    expect(run(script, [], { PBS_JOBNAME: 'firn-5', SLURM_JOB_NAME: 'firn-6', FAKE_RC: '1' }).status).toBe(1);
    expectPilotRan(tasks[0]!, 1);
  });
  it('takes the task from $1 for the local plugin', () => {
    const tasks = [task(9)];
    expect(run(render(tasks, { kind: 'argument' }), ['9'], {}).status).toBe(0);
    expectPilotRan(tasks[0]!, 0);
  });
  it('refuses tasks that are not in the submission, and names it cannot read', () => {
    const tasks = [task(100), task(101)];
    const script = render(tasks, SLURM);
    const outside = run(script, [], { SLURM_JOB_NAME: 'firn-a100', SLURM_ARRAY_TASK_ID: '5' });
    expect(outside.status).toBe(SCRIPT_SELECT_FAILURE);
    expect(outside.stderr).toBe("firn: task '105' is not part of this submission\n");
    const wrongName = run(script, [], { SLURM_JOB_NAME: 'something-else' });
    expect(wrongName.status).toBe(SCRIPT_SELECT_FAILURE);
    expect(wrongName.stderr).toMatch(/cannot tell the task from the job name 'something-else'/);
    const noIndex = run(script, [], { SLURM_JOB_NAME: 'firn-a100' });
    expect(noIndex.status).not.toBe(0);
    expect(noIndex.stderr).toMatch(/not an array element/);
    expect(run(render(tasks, { kind: 'argument' }), [], {}).status).not.toBe(0);
  });
  it('finds the passkey in the HTCondor sandbox when not on a shared filesystem', () => {
    const t = task(12, { passkeyFile: '/nonexistent/dir/passkey-12' });
    const sandbox = path.join(tmp, 'sandbox');
    fs.mkdirSync(sandbox);
    fs.writeFileSync(path.join(sandbox, 'passkey-12'), 'secret');
    const script = render([t], { kind: 'argument' }, { taskFiles: false });
    const r = run(script, ['12'], { _CONDOR_SCRATCH_DIR: sandbox });
    expect(r.status).toBe(0);
    expect(r.stdout).toContain(`arg:${sandbox}/passkey-12\n`);
    expect(r.stdout).toContain(`FOO=${HOSTILE}\n`);
    expect(fs.existsSync(path.join(t.taskDir, 'exit_code'))).toBe(false);
  });
  it('quotes every value in the script text', () => {
    const script = fs.readFileSync(render([task(1)], SLURM), 'utf8');
    expect(script.startsWith('#!/bin/sh\n#X --directive\n#\n')).toBe(true);
    expect(script).toContain(`FOO='a'\\''b; rm -rf /'\nexport FOO\n`);
    expect(script).toContain("--mon http://127.0.0.1:8081/rpc --task \"$firn_task\" --passkey-file \"$firn_passkey\" --scratch '/tmp/scratch dir'");
    expect(script).toContain(`/bin/sh ${shellQuote(path.join(tmp, 'fake pilot.sh'))} --mon`);
  });
  it('runs a task’s own command (firn run) instead of the pilot, words intact, beside pilot tasks', () => {
    const printer = path.join(tmp, 'print args.sh');
    fs.writeFileSync(printer, `printf 'cmd:%s\\n' "$@"\nexit 4\n`);
    const own = task(31, { command: ['/bin/sh', printer, HOSTILE, '$(touch pwned)', ''] });
    const plain = task(32);
    const script = render([own, plain], SLURM);
    const r = run(script, [], { SLURM_JOB_NAME: 'firn-31' });
    expect(r.status).toBe(4);
    expect(fs.readFileSync(path.join(own.taskDir, 'stdout'), 'utf8')).toBe(`cmd:${HOSTILE}\ncmd:$(touch pwned)\ncmd:\n`);
    expect(fs.readFileSync(path.join(own.taskDir, 'exit_code'), 'utf8')).toBe('4\n');
    expect(run(script, [], { SLURM_JOB_NAME: 'firn-32' }).status).toBe(0);
    expectPilotRan(plain, 0);
    expect(fs.existsSync(path.join(tmp, 'pwned'))).toBe(false);
    expect(() => checkTasks([task(33, { command: [] })])).toThrow(/non-empty argument vector/);
  });
  it('omits --scratch when no scratch is configured', () => {
    const script = fs.readFileSync(render([task(1)], SLURM, {}, { scratch: '' }), 'utf8');
    expect(script).not.toContain('--scratch');
  });
});

describe('resolveOptions', () => {
  const base = (): PluginOptions => ({ grid: 'g', monUrl: 'http://m/rpc', pilotCommand: 'firn-pilot', environment: {} });
  const bad = (over: Partial<PluginOptions>, message: RegExp) => {
    let err: unknown;
    try {
      resolveOptions({ ...base(), ...over }, 'slurm');
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(ConfigError);
    expect((err as Error).message).toMatch(message);
  };
  it('accepts good options and splits the pilot command', () => {
    const o = resolveOptions({ ...base(), pilotCommand: "node '/opt/firn dir/pilot.js'", extraDirectives: [' --qos=low ', ''] }, 'slurm');
    expect(o.pilotWords).toEqual(['node', '/opt/firn dir/pilot.js']);
    expect(o.extraDirectives).toEqual(['--qos=low']);
    expect(o.maxArrayIndex).toBe(1000);
  });
  it('names the failing field', () => {
    bad({ monUrl: 'mon:8080' }, /^slurm plugin: monUrl must be an http\(s\) URL/);
    bad({ pilotCommand: '  ' }, /pilotCommand must name the pilot command/);
    bad({ pilotCommand: "node 'x" }, /pilotCommand cannot be split into words: unterminated '/);
    bad({ environment: { 'A-B': 'x' } }, /environment\.A-B is not a valid variable name/);
    bad({ environment: { A: 'x\0y' } }, /environment\.A must not contain NUL/);
    bad({ partition: 'debug; rm' }, /partition must contain only letters/);
    bad({ account: 'a b' }, /account must contain only/);
    bad({ extraDirectives: ['--a\n--b'] }, /extraDirectives\[0\] must be a single line/);
    bad({ concurrency: 0 }, /concurrency must be a positive integer, got 0/);
    bad({ maxArrayIndex: -3 }, /maxArrayIndex must be a positive integer, got -3/);
    bad({ grid: '' }, /grid must be a non-empty string/);
  });
});

describe('excludableHosts', () => {
  it('keeps plain hostnames once (case-insensitively), in order; drops anything a directive could not carry', () => {
    expect(excludableHosts(undefined)).toEqual([]);
    expect(
      excludableHosts(['node1', 'gpu-2.example.org', 'NODE1', 'a b', 'x\ny', '-flag', '.hidden', '$(id)', 'h;rm', 'h*', 'n_3', 'x'.repeat(254)]),
    ).toEqual(['node1', 'gpu-2.example.org', 'n_3']);
  });
});

describe('requirements and helpers', () => {
  it('takes the maximum of each requirement, rounded up, at least one cpu', () => {
    const a = task(1, { requirements: { cpu: 0, gpu: 0, memory: 1000.2, disk: 10, time: 30 } });
    const b = task(2, { requirements: { cpu: 2, gpu: 1, memory: 500, disk: 0, time: 90.5 } });
    expect(batchRequirements([a])).toEqual({ cpu: 1, gpu: 0, memory: 1001, disk: 10, time: 30 });
    expect(batchRequirements([a, b])).toEqual({ cpu: 2, gpu: 1, memory: 1001, disk: 10, time: 91 });
    expect(() => batchRequirements([task(3, { requirements: { cpu: 1, gpu: -1, memory: 1, disk: 0, time: 1 } })])).toThrow(ValidationError);
    expect(() => batchRequirements([])).toThrow(ValidationError);
  });
  it('checks tasks', () => {
    expect(() => checkTasks([task(1), task(1)])).toThrow(/twice/);
    expect(() => checkTasks([task(1, { taskDir: 'relative' })])).toThrow(/taskDir must be an absolute path/);
    expect(() => checkTasks([task(1, { passkeyFile: '/a\nb' })])).toThrow(/newlines/);
  });
  it('formats walltimes and extra directives', () => {
    expect(formatHms(0)).toBe('00:00:00');
    expect(formatHms(90)).toBe('01:30:00');
    expect(formatHms(6000)).toBe('100:00:00');
    expect(extraDirectiveLines('#SBATCH', ['--qos=low', '#BSUB -x'])).toEqual(['#SBATCH --qos=low', '#BSUB -x']);
  });
});
