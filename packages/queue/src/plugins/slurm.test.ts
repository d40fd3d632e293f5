import { BatchSystemError, ConfigError, ValidationError } from '@firn/core';
import { FakeExecutor, fixtureCase } from './fake-executor';
import type { PluginOptions, SubmitBatch, SubmitTask } from './plugin';
import { SlurmPlugin, slurmComment } from './slurm';

const slurm = (name: string) => fixtureCase('slurm', name);
const DIR = '/srv/firn/submit/b1';
const SCRIPT = `${DIR}/submit.sh`;
const SQUEUE_ALL = ['--me', '--noheader', '--array', '--states=all', '--format=%i|%A|%T|%r|%j'];
const SQUEUE_ACTIVE = ['--me', '--noheader', '--array', '--format=%i|%A|%T|%r|%k|%j'];
const SINFO = ['-h', '-a', '-N', '-o', '%N|%n'];

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

function options(over: Partial<PluginOptions> = {}): PluginOptions {
  return { grid: 'grid-a', monUrl: 'https://mon.example.org:8443/rpc', pilotCommand: 'node /opt/firn/firn-pilot.js', environment: {}, ...over };
}

/** A recorded `-o %i|%j|%T|%r` listing rewritten into the plugin's format (%A = the id's job part). */
function inPluginFormat(recorded: string): string {
  return recorded
    .split('\n')
    .filter(Boolean)
    .map((l) => {
      const [i = '', j = '', t = '', r = ''] = l.split('|');
      return `${i}|${i.split('_')[0]}|${t}|${r}|${j}`;
    })
    .join('\n');
}

function directives(script: string): string[] {
  return script.split('\n').filter((l) => l.startsWith('#SBATCH'));
}
/** The script a FakeExecutor was given. */
const ex0 = (ex: FakeExecutor): string => ex.file(SCRIPT);

describe('SlurmPlugin.writeConfig', () => {
  it('writes directives for the requirements, partition, account and extra lines', async () => {
    const ex = new FakeExecutor();
    const p = new SlurmPlugin(ex, options({ partition: 'debug', account: 'icecube', extraDirectives: ['--qos=low', '#SBATCH --exclusive'] }));
    const path = await p.writeConfig(batch([7], { cpu: 4, gpu: 2, memory: 3000, time: 90 }));
    expect(path).toBe(SCRIPT);
    expect(directives(ex.file(SCRIPT))).toEqual([
      '#SBATCH --job-name=firn-7',
      '#SBATCH --nodes=1',
      '#SBATCH --ntasks=1',
      '#SBATCH --cpus-per-task=4',
      '#SBATCH --mem=3000M',
      '#SBATCH --gres=gpu:2',
      '#SBATCH --time=90',
      '#SBATCH --partition=debug',
      '#SBATCH --account=icecube',
      '#SBATCH --export=NONE',
      '#SBATCH --qos=low',
      '#SBATCH --exclusive',
    ]);
    expect(ex.files.get(SCRIPT)?.mode).toBe(0o700);
    expect(ex.dirs).toEqual([DIR, `${DIR}/7`]);
    expect(ex.file(SCRIPT)).toContain('node /opt/firn/firn-pilot.js --mon https://mon.example.org:8443/rpc --task "$firn_task" --passkey-file "$firn_passkey"');
  });
  it('leaves out limits that are zero and takes queue as the partition', async () => {
    const ex = new FakeExecutor();
    await new SlurmPlugin(ex, options({ queue: 'short' })).writeConfig(batch([7]));
    expect(directives(ex.file(SCRIPT))).toEqual([
      '#SBATCH --job-name=firn-7',
      '#SBATCH --nodes=1',
      '#SBATCH --ntasks=1',
      '#SBATCH --cpus-per-task=1',
      '#SBATCH --partition=short',
      '#SBATCH --export=NONE',
    ]);
  });
  it('names an array firn-a<base> and lists its indexes; tasks.txt maps elements to tasks', async () => {
    const ex = new FakeExecutor();
    await new SlurmPlugin(ex, options()).writeConfig(batch([103, 100, 101]));
    expect(directives(ex.file(SCRIPT)).slice(0, 2)).toEqual(['#SBATCH --job-name=firn-a100', '#SBATCH --array=0,1,3']);
    expect(ex.file(`${DIR}/tasks.txt`)).toBe(
      [
        '# task_id\tjob_name\tsubmitted_as\tarray_index\ttask_dir',
        `100\tfirn-100\tfirn-a100\t0\t${DIR}/100`,
        `101\tfirn-101\tfirn-a100\t1\t${DIR}/101`,
        `103\tfirn-103\tfirn-a100\t3\t${DIR}/103`,
        '',
      ].join('\n'),
    );
    expect(ex.file(SCRIPT)).toContain('firn-a[0-9]*) firn_task=$(( ${firn_name#firn-a} + ${SLURM_ARRAY_TASK_ID:?not an array element} )) ;;');
  });
  it('leaves name and array to the command line when the batch needs several submissions', async () => {
    const ex = new FakeExecutor();
    await new SlurmPlugin(ex, options({ maxArrayIndex: 10 })).writeConfig(batch([1, 2, 50]));
    const script = ex.file(SCRIPT);
    expect(directives(script)[0]).toBe('#SBATCH --nodes=1');
    expect(script).toContain('# Split into 2 submissions: firn-a1 firn-50');
  });
  it('quotes hostile environment values', async () => {
    const ex = new FakeExecutor();
    await new SlurmPlugin(ex, options({ environment: { FOO: "a'b; rm -rf /", EMPTY: '' } })).writeConfig(batch([7]));
    expect(ex.file(SCRIPT)).toContain("FOO='a'\\''b; rm -rf /'\nexport FOO\nEMPTY=''\nexport EMPTY\n");
  });
  it('excludes black-holed hosts Slurm knows (by node name or hostname, short or qualified); unknown or malformed ones are left out', async () => {
    const ex = new FakeExecutor().on('sinfo', SINFO, { stdout: 'vm|vm\nn01|n01.cluster.example.org\nn02|n02\nn02|n02\n' });
    const p = new SlurmPlugin(ex, options({ partition: 'debug' }));
    await p.writeConfig({ ...batch([7]), excludeHosts: ['n02', 'VM.example.org', 'n01.cluster.example.org', 'ghost', 'bad host;rm -rf /', 'n02'] });
    const script = ex.file(SCRIPT);
    expect(directives(script)).toContain('#SBATCH --exclude=n01,n02,vm');
    expect(directives(script).indexOf('#SBATCH --exclude=n01,n02,vm')).toBe(directives(script).indexOf('#SBATCH --partition=debug') + 1);
    expect(script).toContain('# Black-holed hosts excluded: n01 n02 vm\n');
    expect(script).toContain('# Black-holed hosts Slurm does not know (not excluded): ghost\n');
    expect(script).not.toContain('rm -rf');
    // the node list is reused for a minute
    await p.writeConfig({ ...batch([8]), excludeHosts: ['n02'] });
    expect(directives(ex.file(SCRIPT))).toContain('#SBATCH --exclude=n02');
    expect(ex.callsOf('sinfo')).toHaveLength(1);
  });
  it('runs no sinfo and writes no --exclude when nothing is black-holed, or nothing Slurm knows (real sinfo output)', async () => {
    const none = new FakeExecutor();
    await new SlurmPlugin(none, options()).writeConfig({ ...batch([7]), excludeHosts: [] });
    expect(none.calls).toEqual([]);
    expect(ex0(none)).not.toContain('--exclude');
    const ghost = new FakeExecutor().on('sinfo', SINFO, slurm('sinfo-nodes'));
    await new SlurmPlugin(ghost, options()).writeConfig({ ...batch([7]), excludeHosts: ['ghost.invalid'] });
    expect(ex0(ghost)).not.toContain('--exclude');
    expect(ex0(ghost)).toContain('# Black-holed hosts Slurm does not know (not excluded): ghost.invalid');
    const real = new FakeExecutor().on('sinfo', SINFO, slurm('sinfo-nodes'));
    await new SlurmPlugin(real, options()).writeConfig({ ...batch([7]), excludeHosts: ['vm'] });
    expect(directives(ex0(real))).toContain('#SBATCH --exclude=vm');
  });
  it('excludes nothing, and says so, when sinfo fails', async () => {
    const ex = new FakeExecutor().on('sinfo', undefined, { code: 1, stderr: 'slurm_load_partitions: Unable to contact slurm controller (connect failure)\n' });
    await new SlurmPlugin(ex, options()).writeConfig({ ...batch([7]), excludeHosts: ['vm'] });
    expect(ex0(ex)).not.toContain('--exclude');
    expect(ex0(ex)).toContain('# Black-holed hosts NOT excluded (sinfo failed: slurm_load_partitions: Unable to contact slurm controller (connect failure)): vm');
  });
  it('rejects bad options and paths Slurm would mangle', async () => {
    expect(() => new SlurmPlugin(new FakeExecutor(), options({ partition: 'a b' }))).toThrow(ConfigError);
    expect(() => new SlurmPlugin(new FakeExecutor(), options({ environment: { 'BAD NAME': 'x' } }))).toThrow(/environment\.BAD NAME/);
    await expect(new SlurmPlugin(new FakeExecutor(), options()).writeConfig({ dir: '/srv/100%', tasks: [task(1)] })).rejects.toThrow(ValidationError);
  });
});

describe('SlurmPlugin.submit', () => {
  it('submits one task as a plain job and reads --parsable output', async () => {
    const ex = new FakeExecutor().on('sbatch', undefined, slurm('sbatch-parsable'));
    const res = await new SlurmPlugin(ex, options()).submit(batch([7]), SCRIPT);
    expect(ex.calls).toEqual([
      { command: 'sbatch', args: ['--parsable', '--job-name=firn-7', '--comment=firn:grid-a', `--output=${DIR}/7/slurm-%j.out`, SCRIPT], options: { cwd: DIR } },
    ]);
    expect(res.batchIds).toEqual(new Map([[7, '11']]));
  });
  it('submits an array and gives each task its element id', async () => {
    const ex = new FakeExecutor().on('sbatch', undefined, slurm('sbatch-array-parsable'));
    const res = await new SlurmPlugin(ex, options({ binDir: '/opt/slurm/bin' })).submit(batch([100, 101, 103]), SCRIPT);
    expect(ex.calls.map((c) => [c.command, ...c.args])).toEqual([
      ['/opt/slurm/bin/sbatch', '--parsable', '--job-name=firn-a100', '--comment=firn:grid-a', '--array=0,1,3', `--output=${DIR}/slurm-%A_%a.out`, SCRIPT],
    ]);
    expect(res.batchIds).toEqual(
      new Map([
        [100, '13_0'],
        [101, '13_1'],
        [103, '13_3'],
      ]),
    );
  });
  it('splits ids further apart than maxArrayIndex into several submissions', async () => {
    const ex = new FakeExecutor().once('sbatch', undefined, { stdout: '40\n' }).once('sbatch', undefined, { stdout: '41;cluster\n' });
    const res = await new SlurmPlugin(ex, options({ maxArrayIndex: 10 })).submit(batch([1, 2, 50]), SCRIPT);
    expect(ex.calls.map((c) => c.args.slice(1, 4))).toEqual([
      ['--job-name=firn-a1', '--comment=firn:grid-a', '--array=0,1'],
      ['--job-name=firn-50', '--comment=firn:grid-a', `--output=${DIR}/50/slurm-%j.out`],
    ]);
    expect(res.batchIds).toEqual(
      new Map([
        [1, '40_0'],
        [2, '40_1'],
        [50, '41'],
      ]),
    );
  });
  it('throws BatchSystemError with sbatch’s stderr on failure', async () => {
    const ex = new FakeExecutor().on('sbatch', undefined, slurm('sbatch-bad-option'));
    const err = await new SlurmPlugin(ex, options()).submit(batch([7]), SCRIPT).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(BatchSystemError);
    const e = err as BatchSystemError;
    expect(e.message).toBe("sbatch failed (exit 255): sbatch: unrecognized option '--no-such-option'");
    expect(e.exitCode).toBe(255);
    expect(e.stderr).toBe(slurm('sbatch-bad-option').stderr);
    expect(e.command).toBe(`sbatch --parsable --job-name=firn-7 --comment=firn:grid-a --output=${DIR}/7/slurm-%j.out ${SCRIPT}`);
  });
  it('throws on output without a job id', async () => {
    const ex = new FakeExecutor().on('sbatch', undefined, { stdout: 'sbatch: warning: something\n' });
    await expect(new SlurmPlugin(ex, options()).submit(batch([7]), SCRIPT)).rejects.toThrow(/sbatch printed no job id/);
  });
  it('cancels the submissions that worked when a later one fails', async () => {
    const ex = new FakeExecutor()
      .once('sbatch', undefined, { stdout: '40\n' })
      .once('sbatch', undefined, { code: 1, stderr: 'sbatch: error: Batch job submission failed: Job violates accounting/QOS policy\n' })
      .on('scancel', ['40'], { code: 0 });
    await expect(new SlurmPlugin(ex, options({ maxArrayIndex: 10 })).submit(batch([1, 50]), SCRIPT)).rejects.toThrow(
      'sbatch failed (exit 1): sbatch: error: Batch job submission failed: Job violates accounting/QOS policy',
    );
    expect(ex.callsOf('scancel').map((c) => c.args)).toEqual([['40']]);
  });
});

/** A look-up by id: `squeue --noheader --array --states=all --jobs=…`. */
const BY_ID = (a: string[]) => a.some((x) => x.startsWith('--jobs='));

describe('SlurmPlugin.checkJobStatus', () => {
  it('reads the live queue and falls back to sacct -c where accounting storage is disabled', async () => {
    const ex = new FakeExecutor()
      .on('squeue', SQUEUE_ALL, { stdout: inPluginFormat(slurm('squeue-after-cancel').stdout) })
      .on('squeue', BY_ID, slurm('squeue-by-id-unknown'))
      .on('sacct', ['-X', '-P', '-j', '999999', '-o', 'JobID,JobName,State,ExitCode'], slurm('sacct-disabled'))
      .on('sacct', ['-c', '-P', '-j', '999999', '-o', 'JobID,JobName,State,ExitCode'], { stdout: 'JobID|JobName|State|ExitCode\n' });
    const p = new SlurmPlugin(ex, options());
    const got = await p.checkJobStatus(['7', '8', '9', '10', '6', '16', '13_1', '13_3', '999999']);
    expect(Object.fromEntries([...got].map(([id, s]) => [id, `${s.state}/${s.rawState}`]))).toEqual({
      '7': 'COMPLETED/COMPLETED',
      '8': 'FAILED/FAILED',
      '9': 'FAILED/FAILED',
      '10': 'CANCELLED/CANCELLED',
      '6': 'RUNNING/RUNNING',
      '16': 'QUEUED/PENDING',
      '13_1': 'CANCELLED/CANCELLED',
      '13_3': 'RUNNING/RUNNING',
      '999999': 'UNKNOWN/unknown',
    });
    expect(got.get('8')).toEqual({ batchId: '8', name: 'firn-fail', state: 'FAILED', rawState: 'FAILED', reason: 'FAILED: NonZeroExitCode' });
    expect(ex.calls.map((c) => c.args[0])).toEqual(['--me', '--noheader', '-X', '-c']);
    // the plugin remembers that plain sacct does not work here
    await p.checkJobStatus(['999999']);
    expect(ex.calls.map((c) => c.args[0])).toEqual(['--me', '--noheader', '-X', '-c', '--me', '--noheader', '-c']);
  });
  it('finds a finished array element in the jobcomp log under the job id squeue showed while it ran', async () => {
    const ex = new FakeExecutor()
      .once('squeue', SQUEUE_ALL, { stdout: '30_0|32|RUNNING|None|firn-a500\n30_1|30|PENDING|Priority|firn-a500\n' })
      .once('squeue', SQUEUE_ALL, { stdout: '' })
      .on('squeue', BY_ID, slurm('squeue-by-id-unknown'))
      .on('sacct', (a) => a[0] === '-X', slurm('sacct-disabled'))
      .on('sacct', ['-c', '-P', '-j', '32', '-o', 'JobID,JobName,State,ExitCode'], { stdout: 'JobID|JobName|State|ExitCode\n32|firn-a500|FAILED|3:0\n' });
    const p = new SlurmPlugin(ex, options());
    const first = await p.checkJobStatus(['30_0', '30_1']);
    // array elements report their own firn-<taskId>, not the array's name
    expect(first.get('30_0')).toEqual({ batchId: '30_0', name: 'firn-500', state: 'RUNNING', rawState: 'RUNNING' });
    expect(first.get('30_1')).toEqual({ batchId: '30_1', name: 'firn-501', state: 'QUEUED', rawState: 'PENDING', reason: 'Priority' });
    const later = await p.checkJobStatus(['30_0', '30_1']);
    expect(later.get('30_0')).toEqual({ batchId: '30_0', name: 'firn-500', state: 'FAILED', rawState: 'FAILED', exitCode: 3, reason: 'FAILED: exit code 3' });
    // never seen running: the jobcomp log cannot be asked about it
    expect(later.get('30_1')).toMatchObject({ batchId: '30_1', state: 'UNKNOWN', rawState: 'unknown' });
  });
  it('uses sacct with slurmdbd', async () => {
    const ex = new FakeExecutor()
      .on('squeue', SQUEUE_ALL, { stdout: '' })
      .on('squeue', BY_ID, slurm('squeue-by-id-unknown'))
      .on('sacct', ['-X', '-P', '-j', '12,99999', '-o', 'JobID,JobName,State,ExitCode'], slurm('ref-slurmdbd-sacct-j-cancelled'));
    const got = await new SlurmPlugin(ex, options()).checkJobStatus(['12', '99999']);
    expect(got.get('12')).toEqual({ batchId: '12', state: 'CANCELLED', rawState: 'CANCELLED', exitCode: 0, reason: 'CANCELLED: cancelled by uid 0' });
    expect(got.get('99999')?.state).toBe('UNKNOWN');
  });
  it('a stepped array\'s last pending element, left out by squeue --array (Slurm 22.05), is found by id: never lost', async () => {
    const ex = new FakeExecutor()
      .on('squeue', SQUEUE_ALL, slurm('squeue-stepped-array-omits-last'))
      .on('squeue', ['--noheader', '--array', '--states=all', '--jobs=1_18', '--format=%i|%A|%T|%r|%j'], slurm('squeue-by-id-mixed'));
    const got = await new SlurmPlugin(ex, options()).checkJobStatus(['1_0', '1_15', '1_18']);
    expect(Object.fromEntries([...got].map(([id, s]) => [id, `${s.state}/${s.rawState}`]))).toEqual({
      '1_0': 'QUEUED/PENDING', '1_15': 'QUEUED/PENDING', '1_18': 'QUEUED/PENDING',
    });
    expect(ex.calls.filter((c) => c.command.endsWith('sacct'))).toEqual([]); // found by id: accounting not asked
  });
  it('a listed job in a state word it does not know is UNOBSERVED, not lost, when look-up by id and accounting know nothing more', async () => {
    const ex = new FakeExecutor()
      .on('squeue', SQUEUE_ALL, slurm('squeue-odd-state'))
      .on('squeue', BY_ID, slurm('squeue-odd-state'))
      .on('sacct', undefined, slurm('sacct-c-unknown'));
    const got = await new SlurmPlugin(ex, options()).checkJobStatus(['1_3', '1_6']);
    expect(Object.fromEntries([...got].map(([id, s]) => [id, `${s.state}/${s.rawState}`]))).toEqual({ '1_3': 'QUEUED/PENDING', '1_6': 'UNOBSERVED/EXPEDITING' });
  });
  it('a job missing from the listing whose look-ups fail is UNOBSERVED (not lost), not UNKNOWN', async () => {
    const ex = new FakeExecutor()
      .on('squeue', SQUEUE_ALL, { stdout: '' })
      .on('squeue', BY_ID, { code: 1, stderr: 'slurm_load_jobs error: Socket timed out on send/recv operation\n' })
      .on('sacct', undefined, { code: 1, stderr: 'sacct: error: Problem talking to the database: Connection refused\n' });
    const got = await new SlurmPlugin(ex, options()).checkJobStatus(['41', '42_3']);
    expect([...got.values()].map((s) => s.state)).toEqual(['UNOBSERVED', 'UNOBSERVED']);
  });
  it('fails loudly when the controller cannot be reached (never reports jobs lost)', async () => {
    const ex = new FakeExecutor().on('squeue', undefined, { code: 1, stderr: 'slurm_load_jobs error: Unable to contact slurm controller (connect failure)\n' });
    await expect(new SlurmPlugin(ex, options()).checkJobStatus(['7'])).rejects.toThrow(
      'squeue failed (exit 1): slurm_load_jobs error: Unable to contact slurm controller (connect failure)',
    );
  });
  it('asks nothing for no ids', async () => {
    const ex = new FakeExecutor();
    expect((await new SlurmPlugin(ex, options()).checkJobStatus([])).size).toBe(0);
    expect(ex.calls).toEqual([]);
  });
});

describe('SlurmPlugin.remove / listJobs / cleanQ', () => {
  it('cancels with scancel; unknown ids are fine', async () => {
    const ex = new FakeExecutor().once('scancel', ['10', '13_1'], slurm('scancel-running')).once('scancel', ['999999'], slurm('scancel-unknown'));
    const p = new SlurmPlugin(ex, options());
    await p.remove(['10', '13_1', '10']);
    await p.remove(['999999']);
    expect(ex.calls.map((c) => c.args)).toEqual([['10', '13_1'], ['999999']]);
    const verbose = new FakeExecutor().on('scancel', undefined, { code: 1, stderr: slurm('scancel-unknown-verbose').stderr });
    await expect(new SlurmPlugin(verbose, options()).remove(['999999'])).resolves.toBeUndefined();
  });
  it('throws when scancel really fails', async () => {
    const ex = new FakeExecutor().on('scancel', undefined, { code: 1, stderr: 'scancel: error: Kill job error on job id 5: Access/permission denied\n' });
    await expect(new SlurmPlugin(ex, options()).remove(['5'])).rejects.toThrow(BatchSystemError);
  });
  const LISTING = [
    '13_0|20|RUNNING|None|firn:grid-a|firn-a100',
    '13_3|13|PENDING|None|firn:grid-a|firn-a100',
    '11|11|RUNNING|None|firn:grid-a|firn-7',
    '12|12|RUNNING|None|(null)|wrap',
    '14_1|14|PENDING|None|firn:grid-a|firn-array',
    '9|9|COMPLETING|JobLaunchFailure|firn:grid-a|firn-9',
    '15|15|RUNNING|None|firn:grid-b|firn-8', // another grid's job on the same account
    '16|16|RUNNING|None|(null)|firn-6', // no comment: submitted before grids were marked
    '',
  ].join('\n');
  it('lists Firn jobs with the task of every array element', async () => {
    const ex = new FakeExecutor().on('squeue', SQUEUE_ACTIVE, { stdout: LISTING });
    expect(await new SlurmPlugin(ex, options()).listJobs()).toEqual([
      { batchId: '13_0', name: 'firn-100', state: 'RUNNING' },
      { batchId: '13_3', name: 'firn-103', state: 'QUEUED' },
      { batchId: '11', name: 'firn-7', state: 'RUNNING' },
      { batchId: '9', name: 'firn-9', state: 'RUNNING' },
    ]);
  });
  it('lists only this grid\'s jobs: the job comment carries the grid (real squeue output)', async () => {
    const recorded = slurm('squeue-fmt-comment');
    const mine = new FakeExecutor().on('squeue', SQUEUE_ACTIVE, recorded);
    expect(await new SlurmPlugin(mine, options()).listJobs()).toEqual([
      { batchId: '389_0', name: 'firn-100', state: 'QUEUED' },
      { batchId: '389_1', name: 'firn-101', state: 'QUEUED' },
      { batchId: '389_3', name: 'firn-103', state: 'QUEUED' },
      { batchId: '388', name: 'firn-7', state: 'QUEUED' },
    ]);
    const other = new FakeExecutor().on('squeue', SQUEUE_ACTIVE, recorded);
    expect(await new SlurmPlugin(other, options({ grid: 'other grid' })).listJobs()).toEqual([{ batchId: '390', name: 'firn-8', state: 'QUEUED' }]);
    // the untagged firn-9 and the foreign job belong to nobody here
    const third = new FakeExecutor().on('squeue', SQUEUE_ACTIVE, recorded);
    expect(await new SlurmPlugin(third, options({ grid: 'grid-c' })).listJobs()).toEqual([]);
  });
  it('encodes the grid into the comment so that it never contains | or spaces', () => {
    expect(slurmComment('grid-a')).toBe('firn:grid-a');
    expect(slurmComment('wisc | gpu\nfarm')).toBe('firn:wisc%20%7C%20gpu%0Afarm');
  });
  it('cleanQ removes the jobs whose task is no longer active', async () => {
    const ex = new FakeExecutor().on('squeue', SQUEUE_ACTIVE, { stdout: LISTING }).on('scancel', undefined, { code: 0 });
    const seen: number[] = [];
    const removed = await new SlurmPlugin(ex, options()).cleanQ((job, taskId) => {
      seen.push(taskId);
      return taskId === 7 || taskId === 103;
    });
    expect(seen).toEqual([100, 103, 7, 9]);
    expect(removed.map((j) => j.batchId)).toEqual(['13_0', '9']);
    expect(ex.callsOf('scancel').map((c) => c.args)).toEqual([['13_0', '9']]);
  });
});
