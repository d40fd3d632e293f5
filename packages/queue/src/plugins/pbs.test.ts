import { BatchSystemError, ValidationError } from '@firn/core';
import { FakeExecutor, fixtureCase } from './fake-executor';
import { PbsPlugin } from './pbs';
import type { PluginOptions, SubmitBatch, SubmitTask } from './plugin';

const torque = (name: string) => fixtureCase('torque', name);
const DIR = '/srv/firn/submit/b2';
const SCRIPT = `${DIR}/submit.sh`;
const BIN = '/opt/slurm-torque/usr/bin';

function task(taskId: number, req: Partial<SubmitTask['requirements']> = {}): SubmitTask {
  return {
    taskId,
    datasetId: 3,
    jobIndex: taskId,
    taskName: 'main',
    requirements: { cpu: 1, gpu: 0, memory: 0, disk: 0, time: 0, ...req },
    passkeyFile: `${DIR}/${taskId}/passkey`,
    taskDir: `${DIR}/${taskId}`,
  };
}
const batch = (ids: number[], req: Partial<SubmitTask['requirements']> = {}): SubmitBatch => ({ dir: DIR, tasks: ids.map((id) => task(id, req)) });
const options = (over: Partial<PluginOptions> = {}): PluginOptions => ({
  grid: 'grid-p',
  monUrl: 'http://mon:8081/rpc',
  pilotCommand: '/opt/firn/firn-pilot',
  environment: { FOO: "a'b; rm -rf /" },
  binDir: BIN,
  ...over,
});

describe('PbsPlugin.writeConfig', () => {
  it('writes Torque resource directives and reads the task from the job name', async () => {
    const ex = new FakeExecutor();
    const path = await new PbsPlugin(ex, options({ queue: 'debug', account: 'icecube', extraDirectives: ['-l file=10gb'] })).writeConfig(
      batch([5, 6], { cpu: 2, gpu: 1, memory: 2000, time: 90 }),
    );
    expect(path).toBe(SCRIPT);
    const script = ex.file(SCRIPT);
    expect(script.split('\n').filter((l) => l.startsWith('#PBS'))).toEqual([
      '#PBS -S /bin/sh',
      '#PBS -l nodes=1:ppn=2:gpus=1,mem=2000mb,walltime=01:30:00',
      '#PBS -q debug',
      '#PBS -A icecube',
      '#PBS -l file=10gb',
    ]);
    expect(script).toContain('firn_name=${PBS_JOBNAME:-${SLURM_JOB_NAME:-}}');
    expect(script).not.toContain('firn-a[0-9]*)');
    expect(script).toContain("FOO='a'\\''b; rm -rf /'");
    expect(ex.file(`${DIR}/tasks.txt`)).toContain(`6\tfirn-6\tfirn-6\t-\t${DIR}/6`);
  });
  it('leaves out mem and walltime when not required', async () => {
    const ex = new FakeExecutor();
    await new PbsPlugin(ex, options()).writeConfig(batch([5]));
    expect(ex.file(SCRIPT)).toContain('#PBS -l nodes=1:ppn=1\n');
  });
  it('rejects directories PBS would read as host:path or the wrappers’ shell would split', async () => {
    const p = new PbsPlugin(new FakeExecutor(), options());
    await expect(p.writeConfig({ dir: '/srv/a:b', tasks: [task(1)] })).rejects.toThrow(ValidationError);
    await expect(p.writeConfig({ dir: '/srv/with space', tasks: [task(1)] })).rejects.toThrow(/the Torque wrappers pass it through a shell/);
    await expect(p.submit({ dir: DIR, tasks: [{ ...task(1), taskDir: `${DIR}/1;reboot` }] }, SCRIPT)).rejects.toThrow(ValidationError);
  });
});

describe('PbsPlugin.submit', () => {
  it('submits one job per task, named firn-<taskId>, through the wrappers in binDir', async () => {
    const ex = new FakeExecutor().once('qsub', undefined, torque('qsub')).once('qsub', undefined, torque('qsub-named'));
    const res = await new PbsPlugin(ex, options()).submit(batch([5, 6]), SCRIPT);
    expect(ex.calls).toEqual([
      { command: `${BIN}/qsub`, args: ['-N', 'firn-5', '-v', 'FIRN_BATCH_SYSTEM=pbs', '-j', 'oe', '-o', `${DIR}/5/pbs.out`, SCRIPT], options: { cwd: DIR } },
      { command: `${BIN}/qsub`, args: ['-N', 'firn-6', '-v', 'FIRN_BATCH_SYSTEM=pbs', '-j', 'oe', '-o', `${DIR}/6/pbs.out`, SCRIPT], options: { cwd: DIR } },
    ]);
    expect(res.batchIds).toEqual(
      new Map([
        [5, '27'],
        [6, '28'],
      ]),
    );
  });
  it('reads Torque server ids', async () => {
    const ex = new FakeExecutor().on('qsub', undefined, { stdout: '123.torque.example.org\n' });
    expect((await new PbsPlugin(ex, options({ binDir: undefined })).submit(batch([5]), SCRIPT)).batchIds.get(5)).toBe('123.torque.example.org');
    expect(ex.calls[0]?.command).toBe('qsub');
  });
  it('reports the wrappers’ error paragraph (on stdout) and removes what was submitted', async () => {
    const bad = torque('qsub-bad-queue');
    const ex = new FakeExecutor().once('qsub', undefined, torque('qsub')).once('qsub', undefined, bad).on('qdel', ['27'], torque('qdel-running'));
    const err = (await new PbsPlugin(ex, options()).submit(batch([5, 6]), SCRIPT).catch((e: unknown) => e)) as BatchSystemError;
    expect(err).toBeInstanceOf(BatchSystemError);
    expect(err.message).toBe('qsub failed (exit 1): sbatch: error: Batch job submission failed: Invalid partition name specified');
    expect(err.stderr).toBe(bad.stdout);
    expect(ex.callsOf('qdel').map((c) => c.args)).toEqual([['27']]);
  });
});

describe('PbsPlugin.checkJobStatus', () => {
  it('reads qstat -f of the ids; unknown ids are UNKNOWN', async () => {
    const listing = torque('qstat-f-running').stdout + torque('qstat-f-failed').stdout + torque('qstat-f-held').stdout;
    const ex = new FakeExecutor().on('qstat', ['-f', '27', '25', '29', '999999'], { stdout: listing });
    const got = await new PbsPlugin(ex, options()).checkJobStatus(['27', '25', '29', '999999']);
    expect([...got.values()]).toEqual([
      { batchId: '27', name: 'tjob', state: 'RUNNING', rawState: 'R' },
      { batchId: '25', name: 'tfail', state: 'COMPLETED', rawState: 'C' },
      { batchId: '29', name: 'held', state: 'QUEUED', rawState: 'Q' },
      { batchId: '999999', state: 'UNKNOWN', rawState: 'unknown' },
    ]);
  });
  it('takes exit 153 with no output as “all unknown”', async () => {
    const ex = new FakeExecutor().on('qstat', undefined, torque('qstat-f-unknown'));
    const got = await new PbsPlugin(ex, options()).checkJobStatus(['999999']);
    expect(got.get('999999')).toEqual({ batchId: '999999', state: 'UNKNOWN', rawState: 'unknown' });
  });
  it('matches Torque ids with and without the server part, and uses exit_status', async () => {
    const ex = new FakeExecutor().on('qstat', undefined, {
      code: 153,
      stdout: 'Job Id: 123.torque.example.org\n    Job_Name = firn-5\n    job_state = C\n    exit_status = 2\n\nJob Id: 124.torque.example.org\n    Job_Name = firn-6\n    job_state = R\n',
      stderr: 'qstat: Unknown Job Id Error 125.torque.example.org\n',
    });
    const got = await new PbsPlugin(ex, options()).checkJobStatus(['123.torque.example.org', '124', '125.torque.example.org']);
    expect(got.get('123.torque.example.org')).toEqual({ batchId: '123.torque.example.org', name: 'firn-5', state: 'FAILED', rawState: 'C', exitCode: 2, reason: 'exit status 2' });
    expect(got.get('124')).toMatchObject({ batchId: '124', state: 'RUNNING' });
    expect(got.get('125.torque.example.org')?.state).toBe('UNKNOWN');
  });
  it('fails loudly when the server cannot be reached', async () => {
    const ex = new FakeExecutor().on('qstat', undefined, { code: 111, stderr: "Cannot connect to default server host 'torque' - check pbs_server daemon.\n" });
    await expect(new PbsPlugin(ex, options()).checkJobStatus(['27'])).rejects.toThrow(/qstat failed \(exit 111\): Cannot connect/);
    const usage = new FakeExecutor().on('qstat', undefined, torque('qstat-x-unsupported'));
    await expect(new PbsPlugin(usage, options()).checkJobStatus(['27'])).rejects.toThrow(BatchSystemError);
  });
});

describe('PbsPlugin.remove / listJobs / cleanQ', () => {
  it('treats the wrappers’ silent failure for unknown ids as done', async () => {
    const ex = new FakeExecutor().once('qdel', ['27'], torque('qdel-running')).once('qdel', ['999999'], torque('qdel-unknown'));
    const p = new PbsPlugin(ex, options());
    await p.remove(['27']);
    await p.remove(['999999']);
    expect(ex.calls.map((c) => [c.command, ...c.args])).toEqual([
      [`${BIN}/qdel`, '27'],
      [`${BIN}/qdel`, '999999'],
    ]);
    const torqueUnknown = new FakeExecutor().on('qdel', undefined, { code: 153, stderr: 'qdel: Unknown Job Id 9.torque\n' });
    await expect(new PbsPlugin(torqueUnknown, options()).remove(['9.torque'])).resolves.toBeUndefined();
  });
  it('throws when qdel reports a real error', async () => {
    const ex = new FakeExecutor().on('qdel', undefined, { code: 1, stdout: 'qdel: Kill job error on job id 5: Access/permission denied\n' });
    await expect(new PbsPlugin(ex, options()).remove(['5'])).rejects.toThrow('qdel failed (exit 1): qdel: Kill job error on job id 5: Access/permission denied');
  });
  const record = (id: string, name: string, state: string, owner = 'firn') =>
    `Job Id:\t${id}\n\tJob_Name = ${name}\n\tJob_Owner = ${owner}@localhost\n\tjob_state = ${state}\n\tqueue = debug\n\n`;
  const LISTING =
    record('40', 'firn-5', 'R') + record('41', 'firn-6', 'C') + record('42', 'tjob', 'R') + record('43', 'firn-7', 'Q', 'someoneelse') + record('44', 'firn-8', 'Q');
  it('lists this user’s unfinished Firn jobs from qstat -f', async () => {
    const ex = new FakeExecutor().on('id', ['-un'], { stdout: 'firn\n' }).on('qstat', ['-f'], { stdout: LISTING });
    const p = new PbsPlugin(ex, options());
    expect(await p.listJobs()).toEqual([
      { batchId: '40', name: 'firn-5', state: 'RUNNING' },
      { batchId: '44', name: 'firn-8', state: 'QUEUED' },
    ]);
    await p.listJobs();
    expect(ex.callsOf('id')).toHaveLength(1);
  });
  it('lists nothing when qstat knows no jobs (exit 153)', async () => {
    const ex = new FakeExecutor().on('id', ['-un'], { stdout: 'firn\n' }).on('qstat', ['-f'], { code: 153 });
    expect(await new PbsPlugin(ex, options()).listJobs()).toEqual([]);
  });
  it('cleanQ removes jobs whose task is not kept', async () => {
    const ex = new FakeExecutor()
      .on('id', ['-un'], { stdout: 'firn\n' })
      .on('qstat', ['-f'], { stdout: LISTING })
      .on('qdel', undefined, { code: 0 });
    const removed = await new PbsPlugin(ex, options()).cleanQ((_job, taskId) => taskId !== 8);
    expect(removed).toEqual([{ batchId: '44', name: 'firn-8', state: 'QUEUED' }]);
    expect(ex.callsOf('qdel').map((c) => c.args)).toEqual([['44']]);
  });
});
