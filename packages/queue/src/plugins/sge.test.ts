import { BatchSystemError, ValidationError } from '@firn/core';
import { FakeExecutor, fixtureCase } from './fake-executor';
import { gridJobPrefix, type PluginOptions, type SubmitBatch, type SubmitTask } from './plugin';
import { SgePlugin, sgeExcludeExpression } from './sge';

const sge = (name: string) => fixtureCase('sge', name);
const DIR = '/srv/firn/submit/b3';
const SCRIPT = `${DIR}/submit.sh`;

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
  grid: 'grid-s',
  monUrl: 'http://mon:8081/rpc',
  pilotCommand: 'node /opt/firn/firn-pilot.js',
  environment: { FOO: "a'b; rm -rf /" },
  ...over,
});
const directives = (script: string) => script.split('\n').filter((l) => l.startsWith('#$'));
/** Job names of grid `grid-s` (it contains a `-`, so its tag is sanitised and hashed). */
const P = 'firn-grid_s_f4868d29-';

describe('SgePlugin.writeConfig', () => {
  it('requests slots through the parallel environment and memory as mem_free (not h_vmem: node cannot start under it)', async () => {
    const ex = new FakeExecutor();
    const p = new SgePlugin(ex, options({ parallelEnvironment: 'smp', queue: 'all.q', account: 'icecube', extraDirectives: ['-P physics'] }));
    await p.writeConfig(batch([40, 41, 42], { cpu: 4, gpu: 1, memory: 2000, time: 90 }));
    expect(directives(ex.file(SCRIPT))).toEqual([
      '#$ -S /bin/sh',
      `#$ -N ${P}a40`,
      '#$ -t 1-3',
      '#$ -pe smp 4',
      '#$ -l h_rt=01:30:00',
      '#$ -l mem_free=2000M',
      '#$ -l gpu=1',
      '#$ -q all.q',
      '#$ -A icecube',
      '#$ -P physics',
    ]);
    expect(ex.file(SCRIPT)).toContain(`  ${P}a[0-9]*) firn_task=$(( \${firn_name#${P}a} + \${SGE_TASK_ID:?not an array element} - 1 )) ;;\n  ${P}[0-9]*) firn_task=\${firn_name#${P}} ;;\n`);
    expect(ex.file(SCRIPT)).toContain("FOO='a'\\''b; rm -rf /'");
  });
  it('without a parallel environment asks for one slot and says so', async () => {
    const ex = new FakeExecutor();
    await new SgePlugin(ex, options()).writeConfig(batch([7], { cpu: 4, memory: 2000 }));
    const script = ex.file(SCRIPT);
    expect(directives(script)).toEqual(['#$ -S /bin/sh', `#$ -N ${P}7`, '#$ -l mem_free=2000M']);
    expect(script).toContain('# 4 cpus requested but no parallel environment is configured (options.parallelEnvironment): one slot.');
  });
  it('splits non-consecutive ids into several arrays', async () => {
    const ex = new FakeExecutor();
    await new SgePlugin(ex, options()).writeConfig(batch([40, 41, 50]));
    expect(directives(ex.file(SCRIPT))).toEqual(['#$ -S /bin/sh']);
    expect(ex.file(SCRIPT)).toContain(`# Split into 2 submissions: ${P}a40 ${P}50`);
    expect(ex.file(`${DIR}/tasks.txt`)).toContain(`41\tfirn-41\t${P}a40\t2\t${DIR}/41`);
  });
  it('names jobs firn-<grid tag>-…: a plain grid name is its own tag', async () => {
    expect(gridJobPrefix('grid-s')).toBe(P);
    const ex = new FakeExecutor();
    await new SgePlugin(ex, options({ grid: 'wisc_sge.2' })).writeConfig(batch([7, 8]));
    expect(directives(ex.file(SCRIPT))).toContain('#$ -N firn-wisc_sge.2-a7');
  });
  it('keeps jobs off black-holed hosts with a hostname expression (short names also fully qualified); malformed names are dropped', async () => {
    const ex = new FakeExecutor();
    await new SgePlugin(ex, options({ queue: 'all.q' })).writeConfig({ ...batch([7]), excludeHosts: ['node1', 'gpu2.example.org', 'x&y', "$(reboot)", 'node1'] });
    const d = directives(ex.file(SCRIPT));
    expect(d).toContain('#$ -l hostname=!node1&!node1.*&!gpu2.example.org');
    expect(d.indexOf('#$ -l hostname=!node1&!node1.*&!gpu2.example.org')).toBe(d.indexOf('#$ -q all.q') - 1);
    expect(ex.file(SCRIPT)).toContain('# Black-holed hosts excluded: node1 gpu2.example.org\n');
    expect(ex.file(SCRIPT)).not.toContain('reboot');
    expect(sgeExcludeExpression(['localhost'])).toBe('!localhost&!localhost.*');
    // the expression real SGE accepted and kept the job off the host with (qstat -j: scheduling info)
    expect(sge('qstat-j-excluded-host').stdout).toContain(`hard resource_list:         hostname=${sgeExcludeExpression(['localhost'])}`);
    expect(sge('qstat-j-excluded-host').stdout).toContain('cannot run in queue "all.q@localhost" because it offers only qf:hostname=localhost');
    const none = new FakeExecutor();
    await new SgePlugin(none, options()).writeConfig({ ...batch([7]), excludeHosts: [] });
    expect(none.file(SCRIPT)).not.toContain('hostname=');
  });
  it('rejects directories with : or $ (SGE -o syntax)', async () => {
    await expect(new SgePlugin(new FakeExecutor(), options()).writeConfig({ dir: '/srv/$HOME', tasks: [task(1)] })).rejects.toThrow(ValidationError);
  });
});

describe('SgePlugin.submit', () => {
  it('submits runs of consecutive ids as arrays and single ids as plain jobs', async () => {
    const ex = new FakeExecutor().once('qsub', undefined, sge('qsub-terse-array')).once('qsub', undefined, sge('qsub-terse'));
    const res = await new SgePlugin(ex, options()).submit(batch([40, 41, 42, 43, 50]), SCRIPT);
    expect(ex.calls).toEqual([
      { command: 'qsub', args: ['-terse', '-N', `${P}a40`, '-j', 'y', '-t', '1-4', '-o', `${DIR}/sge-$JOB_ID.$TASK_ID.out`, SCRIPT], options: { cwd: DIR } },
      { command: 'qsub', args: ['-terse', '-N', `${P}50`, '-j', 'y', '-o', `${DIR}/50/sge-$JOB_ID.out`, SCRIPT], options: { cwd: DIR } },
    ]);
    expect(res.batchIds).toEqual(
      new Map([
        [40, '7.1'],
        [41, '7.2'],
        [42, '7.3'],
        [43, '7.4'],
        [50, '5'],
      ]),
    );
  });
  it('throws with qsub’s message', async () => {
    const ex = new FakeExecutor().on('qsub', undefined, sge('qsub-error-bad-queue'));
    const err = (await new SgePlugin(ex, options()).submit(batch([1]), SCRIPT).catch((e: unknown) => e)) as BatchSystemError;
    expect(err).toBeInstanceOf(BatchSystemError);
    expect(err.message).toBe('qsub failed (exit 1): Unable to run job: Job was rejected because job requests unknown queue "nosuch.q"');
    expect(err.exitCode).toBe(1);
  });
  it('throws (and deletes the job) when an array comes back with the wrong number of tasks', async () => {
    const ex = new FakeExecutor().on('qsub', undefined, sge('qsub-terse-array')).on('qdel', ['7'], { stdout: 'root has registered the job-array 7 for deletion\n' });
    await expect(new SgePlugin(ex, options()).submit(batch([1, 2]), SCRIPT)).rejects.toThrow(/qsub printed no usable job id/);
    expect(ex.callsOf('qdel').map((c) => c.args)).toEqual([['7']]);
  });
});

describe('SgePlugin.checkJobStatus', () => {
  it('reads qstat -xml and falls back to qacct for jobs that left the queue', async () => {
    const ex = new FakeExecutor()
      .on('id', ['-un'], { stdout: 'root\n' })
      .on('qstat', ['-xml', '-u', 'root'], sge('qstat-xml'))
      .on('qstat', (a) => a[0] === '-j', sge('qstat-j-unknown'))
      .on('qacct', ['-j', '3'], sge('qacct-ok'))
      .on('qacct', ['-j', '4'], sge('qacct-failed'))
      .on('qacct', ['-j', '11'], sge('qacct-deleted'))
      .on('qacct', ['-j', '999999'], sge('qacct-unknown'));
    const got = await new SgePlugin(ex, options()).checkJobStatus(['7.2', '8.3', '9', '3', '4', '11', '999999']);
    expect(Object.fromEntries([...got].map(([id, s]) => [id, `${s.state}/${s.rawState}/${s.exitCode ?? '-'}`]))).toEqual({
      '7.2': 'RUNNING/r/-',
      '8.3': 'QUEUED/qw/-',
      '9': 'QUEUED/hqw/-',
      '3': 'COMPLETED/failed=0 exit_status=0/0',
      '4': 'FAILED/failed=0 exit_status=3/3',
      '11': 'UNKNOWN/unknown/-', // qacct -j 11 answered for job 5: not ours
      '999999': 'UNKNOWN/unknown/-',
    });
    expect(ex.callsOf('qacct').map((c) => c.args[1])).toEqual(['3', '4', '11', '999999']);
  });
  it('a job qstat does not list but qstat -j still knows is UNOBSERVED, never lost; a failed qacct leaves it open too', async () => {
    const ex = new FakeExecutor()
      .on('id', ['-un'], { stdout: 'root\n' })
      .on('qstat', ['-xml', '-u', 'root'], sge('ref-qstat-xml-empty'))
      .on('qstat', ['-j', '5'], sge('qstat-j-running'))
      .on('qstat', ['-j', '6'], sge('qstat-j-unknown'))
      .on('qacct', ['-j', '5'], sge('qacct-unknown'))
      .on('qacct', ['-j', '6'], { code: 1, stderr: 'error: unable to open accounting file "/var/lib/gridengine/default/common/accounting"\n' });
    const got = await new SgePlugin(ex, options()).checkJobStatus(['5', '6']);
    expect(got.get('5')).toMatchObject({ state: 'UNOBSERVED', rawState: 'known' });
    expect(got.get('6')).toMatchObject({ state: 'UNOBSERVED', rawState: 'not confirmed' });
  });
  it('asks qacct once per array job', async () => {
    const ex = new FakeExecutor()
      .on('id', ['-un'], { stdout: 'root\n' })
      .on('qstat', undefined, sge('ref-qstat-xml-empty'))
      .on('qacct', ['-j', '12'], {
        stdout: '==============================================================\njobname      firn-a40\njobnumber    12\ntaskid       1\nfailed       0\nexit_status  0\n==============================================================\njobname      firn-a40\njobnumber    12\ntaskid       2\nfailed       0\nexit_status  1\n',
      });
    const got = await new SgePlugin(ex, options()).checkJobStatus(['12.1', '12.2']);
    expect(got.get('12.1')?.state).toBe('COMPLETED');
    // an untagged name (submitted before grid tags) still maps to its task
    expect(got.get('12.2')).toMatchObject({ state: 'FAILED', exitCode: 1, name: 'firn-41' });
    expect(ex.callsOf('qacct')).toHaveLength(1);
  });
  it('gives array tasks of tagged names their own firn-<taskId> (real qstat -xml)', async () => {
    const ex = new FakeExecutor().on('id', ['-un'], { stdout: 'root\n' }).on('qstat', ['-xml', '-u', 'root'], sge('qstat-xml-grids'));
    const got = await new SgePlugin(ex, options()).checkJobStatus(['47.2', '46', '48', '50.2']);
    expect(got.get('47.2')).toMatchObject({ state: 'QUEUED', name: 'firn-41' });
    expect(got.get('46')).toMatchObject({ state: 'QUEUED', name: 'firn-7' });
    expect(got.get('50.2')).toMatchObject({ state: 'QUEUED', name: 'firn-51' });
    expect(got.get('48')).toMatchObject({ state: 'QUEUED', name: 'firn-other-8' }); // not a name of ours: left as SGE reports it
  });
  it('fails loudly when qmaster cannot be reached', async () => {
    const ex = new FakeExecutor()
      .on('id', ['-un'], { stdout: 'root\n' })
      .on('qstat', undefined, { code: 1, stderr: 'error: commlib error: got select error (Connection refused)\nerror: unable to send message to qmaster using port 6444 on host "localhost": got send error\n' });
    await expect(new SgePlugin(ex, options()).checkJobStatus(['5'])).rejects.toThrow(/qstat failed \(exit 1\): error: unable to send message to qmaster/);
  });
});

describe('SgePlugin.remove / listJobs / cleanQ', () => {
  it('deletes jobs and array tasks; unknown ids are fine', async () => {
    const ex = new FakeExecutor()
      .once('qdel', ['5', '7.2'], { stdout: sge('qdel-running').stdout + sge('qdel-array-task').stdout })
      .once('qdel', ['999999'], sge('qdel-unknown'))
      .once('qdel', ['5', '999999'], { code: 1, stdout: sge('ref-qdel-held').stdout + sge('qdel-unknown').stdout });
    const p = new SgePlugin(ex, options());
    await p.remove(['5', '7.2']);
    await p.remove(['999999']);
    await p.remove(['5', '999999']);
    expect(ex.calls).toHaveLength(3);
  });
  it('throws when qdel is refused', async () => {
    const ex = new FakeExecutor().on('qdel', undefined, { code: 1, stdout: 'firn - you do not have the necessary privileges to delete the job "5"\n' });
    await expect(new SgePlugin(ex, options()).remove(['5'])).rejects.toThrow(BatchSystemError);
  });
  // the recorded listing with Firn names: job 8 is array firn-a40 (tasks 1 running, 2-3 pending)
  const listing = () =>
    sge('qstat-xml')
      .stdout.replace(/firn-array2/g, `${P}a40`)
      .replace(/firn-single/g, `${P}12`)
      .replace(/firn-held/g, `${P}13`);
  it('lists Firn jobs with the task of every array task, pending ranges expanded', async () => {
    const ex = new FakeExecutor().on('id', ['-un'], { stdout: 'root\n' }).on('qstat', ['-xml', '-u', 'root'], { stdout: listing() });
    expect(await new SgePlugin(ex, options()).listJobs()).toEqual([
      { batchId: '5', name: 'firn-12', state: 'RUNNING' },
      { batchId: '8.1', name: 'firn-40', state: 'RUNNING' },
      { batchId: '8.2', name: 'firn-41', state: 'QUEUED' },
      { batchId: '8.3', name: 'firn-42', state: 'QUEUED' },
      { batchId: '9', name: 'firn-13', state: 'QUEUED' },
    ]);
  });
  it('lists only this grid\'s jobs: never another grid\'s, an untagged or a foreign one (real qstat -xml)', async () => {
    const run = async (grid: string) => {
      const ex = new FakeExecutor().on('id', ['-un'], { stdout: 'root\n' }).on('qstat', ['-xml', '-u', 'root'], sge('qstat-xml-grids'));
      return new SgePlugin(ex, options({ grid })).listJobs();
    };
    expect(await run('grid-s')).toEqual([
      { batchId: '46', name: 'firn-7', state: 'QUEUED' },
      { batchId: '47.1', name: 'firn-40', state: 'QUEUED' },
      { batchId: '47.2', name: 'firn-41', state: 'QUEUED' },
      { batchId: '47.3', name: 'firn-42', state: 'QUEUED' },
    ]);
    expect(await run('other')).toEqual([{ batchId: '48', name: 'firn-8', state: 'QUEUED' }]);
    expect(await run('grid_s')).toEqual([]); // a different grid whose name looks alike
  });
  it('cleanQ removes tasks no longer active', async () => {
    const ex = new FakeExecutor()
      .on('id', ['-un'], { stdout: 'root\n' })
      .on('qstat', ['-xml', '-u', 'root'], { stdout: listing() })
      .on('qdel', undefined, { stdout: '' });
    const removed = await new SgePlugin(ex, options()).cleanQ((_j, taskId) => taskId === 12 || taskId === 40);
    expect(removed.map((j) => j.batchId)).toEqual(['8.2', '8.3', '9']);
    expect(ex.callsOf('qdel').map((c) => c.args)).toEqual([['8.2', '8.3', '9']]);
  });
});
