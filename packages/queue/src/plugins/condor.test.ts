/** HTCondor plugin against the documented-format fixtures in test/fixtures/condor (see its README). */
import { BatchSystemError, ConfigError, ValidationError } from '@firn/core';
import { CondorPlugin, condorExcludeClause, condorSubmitCommands } from './condor';
import { CONDOR_ATTRS } from './condor-parse';
import { FakeExecutor, fixtureTranscript, parseTranscript } from './fake-executor';
import type { PluginOptions, SubmitBatch, SubmitTask } from './plugin';

const DIR = '/srv/firn/submit/b4';
const SUB = `${DIR}/submit.sub`;
const AF = ['-af:jt', ...CONDOR_ATTRS];
const submitT = parseTranscript(fixtureTranscript('condor', 'submit.txt'));
const qT = parseTranscript(fixtureTranscript('condor', 'q.txt'));
const historyT = parseTranscript(fixtureTranscript('condor', 'history.txt'));
const rmT = parseTranscript(fixtureTranscript('condor', 'rm.txt'));
const asStdout = (e: { output: string; code: number }) => ({ stdout: e.output, code: e.code });
const asStderr = (e: { output: string; code: number }) => ({ stderr: e.output, code: e.code });

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
  grid: 'grid-a',
  monUrl: 'http://mon:8081/rpc',
  pilotCommand: 'node /opt/firn/firn-pilot.js',
  environment: { FOO: "a'b; rm -rf /" },
  ...over,
});

describe('CondorPlugin.writeConfig', () => {
  it('writes one cluster with a queue block per task, and the executable script', async () => {
    const ex = new FakeExecutor();
    const p = new CondorPlugin(ex, options({ account: 'group_icecube.prod', extraDirectives: ['requirements = (OpSysMajorVer == 9)', '#ignored'] }));
    const path = await p.writeConfig(batch([101, 102], { cpu: 2, gpu: 1, memory: 2000, disk: 4000, time: 90 }));
    expect(path).toBe(SUB);
    expect(ex.file(SUB)).toBe(
      [
        '# Firn pilot submission for grid "grid-a", written by firn-queue; do not edit.',
        '# One cluster; proc N runs the N-th task below.',
        'universe = vanilla',
        `executable = ${DIR}/pilot.sh`,
        'transfer_executable = true',
        'should_transfer_files = IF_NEEDED',
        'when_to_transfer_output = ON_EXIT',
        'getenv = false',
        `log = ${DIR}/condor.log`,
        'batch_name = firn-a101',
        'request_cpus = 2',
        'request_memory = 2000',
        'request_disk = 4096000',
        'request_gpus = 1',
        '+MaxRuntime = 5400',
        '+FirnGrid = "grid-a"',
        'accounting_group = group_icecube.prod',
        'requirements = (OpSysMajorVer == 9)',
        '',
        'arguments = 101',
        `output = ${DIR}/101/stdout`,
        `error = ${DIR}/101/stderr`,
        `transfer_input_files = ${DIR}/101/passkey`,
        '+FirnTaskId = 101',
        '+FirnJobName = "firn-101"',
        'queue 1',
        '',
        'arguments = 102',
        `output = ${DIR}/102/stdout`,
        `error = ${DIR}/102/stderr`,
        `transfer_input_files = ${DIR}/102/passkey`,
        '+FirnTaskId = 102',
        '+FirnJobName = "firn-102"',
        'queue 1',
        '',
      ].join('\n'),
    );
    const script = ex.file(`${DIR}/pilot.sh`);
    expect(ex.files.get(`${DIR}/pilot.sh`)?.mode).toBe(0o700);
    expect(script).toContain('firn_task=${1:?usage: $0 TASK_ID}');
    expect(script).toContain('[ -r "$firn_passkey" ] || firn_passkey=${_CONDOR_SCRATCH_DIR:-$PWD}/${firn_passkey##*/}');
    expect(script).toContain('exec node /opt/firn/firn-pilot.js --mon http://mon:8081/rpc --task "$firn_task" --passkey-file "$firn_passkey" </dev/null');
    expect(script).toContain("FOO='a'\\''b; rm -rf /'");
  });
  it('ANDs black-holed hosts into the configured requirements (short names also fully qualified)', async () => {
    const ex = new FakeExecutor();
    const p = new CondorPlugin(ex, options({ extraDirectives: ['requirements = (OpSysMajorVer == 9)', '+Site = "x"'] }));
    await p.writeConfig({ ...batch([1]), excludeHosts: ['node7', 'gpu1.example.org', 'bad"host'] });
    expect(ex.file(SUB)).toContain(
      '\nrequirements = ((OpSysMajorVer == 9)) && (Machine != "node7" && substr(Machine, 0, 6) != "node7.") && (Machine != "gpu1.example.org")\n+Site = "x"\n',
    );
    expect(ex.file(SUB)).not.toContain('bad');
    const bare = new FakeExecutor();
    await new CondorPlugin(bare, options()).writeConfig({ ...batch([1]), excludeHosts: ['gpu1.example.org'] });
    expect(bare.file(SUB)).toContain('\nrequirements = (Machine != "gpu1.example.org")\n');
    const none = new FakeExecutor();
    await new CondorPlugin(none, options()).writeConfig({ ...batch([1]), excludeHosts: [] });
    expect(none.file(SUB)).not.toContain('requirements');
  });
  it('merges into the last requirements line only (the one condor_submit uses)', () => {
    expect(condorSubmitCommands(['requirements = A', 'x = 1', 'Requirements=B', '# note'], ['h.example.org'])).toEqual([
      'requirements = A', 'x = 1', 'requirements = (B) && (Machine != "h.example.org")',
    ]);
    expect(condorSubmitCommands(['x = 1'], [])).toEqual(['x = 1']);
    expect(condorExcludeClause('n1')).toBe('(Machine != "n1" && substr(Machine, 0, 3) != "n1.")');
  });
  it('escapes the grid name in ClassAd strings', async () => {
    const ex = new FakeExecutor();
    await new CondorPlugin(ex, options({ grid: 'odd "grid"\\x' })).writeConfig(batch([1]));
    expect(ex.file(SUB)).toContain('+FirnGrid = "odd \\"grid\\"\\\\x"\n');
    expect(ex.file(SUB)).toContain('batch_name = firn-1\n');
    expect(() => new CondorPlugin(ex, options({ grid: 'a\nb' }))).toThrow();
    expect(() => new CondorPlugin(ex, options({ monUrl: '' }))).toThrow(ConfigError);
  });
  it('refuses paths a submit file cannot carry', async () => {
    const p = new CondorPlugin(new FakeExecutor(), options());
    await expect(p.writeConfig({ dir: DIR, tasks: [{ ...task(1), passkeyFile: '/srv/a,b/passkey' }] })).rejects.toThrow(ValidationError);
    await expect(p.writeConfig({ dir: '/srv/$(HOME)', tasks: [task(1)] })).rejects.toThrow(ValidationError);
  });
});

describe('CondorPlugin.submit', () => {
  it('maps the procs of the cluster to the tasks in order', async () => {
    const ex = new FakeExecutor().on('condor_submit', ['-terse', SUB], asStdout(submitT[0]!));
    const res = await new CondorPlugin(ex, options()).submit(batch([101, 102, 103]), SUB);
    expect(ex.calls[0]?.options).toEqual({ cwd: DIR });
    expect(res.batchIds).toEqual(
      new Map([
        [101, '12.0'],
        [102, '12.1'],
        [103, '12.2'],
      ]),
    );
  });
  it('throws with condor_submit’s error', async () => {
    const ex = new FakeExecutor().on('condor_submit', undefined, asStderr(submitT[3]!));
    const err = (await new CondorPlugin(ex, options()).submit(batch([1]), SUB).catch((e: unknown) => e)) as BatchSystemError;
    expect(err).toBeInstanceOf(BatchSystemError);
    expect(err.message).toBe(`condor_submit failed (exit 1): ERROR: Executable file ${'/srv/firn/submit/b4'}/pilot.sh does not exist`);
  });
  it('removes the jobs and throws when the number of jobs does not match', async () => {
    const ex = new FakeExecutor().on('condor_submit', undefined, asStdout(submitT[0]!)).on('condor_rm', undefined, asStdout(rmT[0]!));
    await expect(new CondorPlugin(ex, options()).submit(batch([1, 2]), SUB)).rejects.toThrow('condor_submit created 3 jobs for 2 tasks');
    expect(ex.callsOf('condor_rm').map((c) => c.args)).toEqual([['12.0', '12.1', '12.2']]);
  });
});

describe('CondorPlugin.checkJobStatus', () => {
  it('asks condor_q -better-analyze why idle jobs wait (at most CONDOR_ANALYZE_MAX), and keeps a held job\'s own reason', async () => {
    const analyze = parseTranscript(fixtureTranscript('condor', 'analyze.txt'))[0]!;
    const listing = { command: '', code: 0, output: '40.0\t1\tundefined\tundefined\tundefined\tfirn-401\tundefined\tundefined\n41.0\t1\tundefined\tundefined\tundefined\tfirn-402\tundefined\tundefined\n' };
    const ex = new FakeExecutor().on('condor_q', ['40.0', '41.0', ...AF], asStdout(listing)).on('condor_q', ['-better-analyze', '40.0', '41.0'], asStdout(analyze));
    const got = await new CondorPlugin(ex, options()).checkJobStatus(['40.0', '41.0']);
    expect(got.get('40.0')).toMatchObject({ state: 'QUEUED', reason: '0 of 10 machines can run it (10 rejected by its requirements); no slot matches TARGET.GPUs >= RequestGPUs' });
    expect(got.get('41.0')?.reason).toContain('TARGET.Memory >= RequestMemory');
    expect(ex.callsOf('condor_q').map((c) => c.args[0])).toEqual(['40.0', '-better-analyze']);
  });
  it('asks condor_q, then condor_history for jobs that left the queue', async () => {
    const ids = ['12.0', '12.1', '12.2', '12.3', '12.4', '12.5', '12.6', '12.7', '12.8', '99.0', '11.0', '11.1', '11.2'];
    const ex = new FakeExecutor().on('condor_q', [...ids, ...AF], asStdout(qT[0]!)).on('condor_history', undefined, asStdout(historyT[0]!));
    const got = await new CondorPlugin(ex, options()).checkJobStatus(ids);
    expect(Object.fromEntries([...got].map(([id, s]) => [id, s.state]))).toEqual({
      '12.0': 'QUEUED',
      '12.1': 'RUNNING',
      '12.2': 'CANCELLED',
      '12.3': 'COMPLETED',
      '12.4': 'FAILED',
      '12.5': 'RUNNING',
      '12.6': 'RUNNING',
      '12.7': 'FAILED',
      '12.8': 'FAILED',
      '99.0': 'UNKNOWN',
      '11.0': 'COMPLETED',
      '11.1': 'FAILED',
      '11.2': 'CANCELLED',
    });
    expect(ex.callsOf('condor_history')[0]?.args).toEqual([
      '-constraint',
      '(ClusterId == 99 && (ProcId == 0)) || (ClusterId == 11 && (ProcId == 0 || ProcId == 1 || ProcId == 2))',
      '-limit',
      '4',
      ...AF,
    ]);
  });
  it('fails loudly when the schedd cannot be reached', async () => {
    const ex = new FakeExecutor().on('condor_q', undefined, asStderr(qT[3]!));
    await expect(new CondorPlugin(ex, options()).checkJobStatus(['12.0'])).rejects.toThrow(/condor_q failed \(exit 1\): SECMAN:2007:Failed to end classad message/);
  });
  it('rejects ids that are not cluster.proc', async () => {
    await expect(new CondorPlugin(new FakeExecutor(), options()).checkJobStatus(['12'])).rejects.toThrow(ValidationError);
  });
});

describe('CondorPlugin.remove / listJobs / cleanQ', () => {
  it('removes jobs; unknown ids are fine, schedd failures are not', async () => {
    const ok = new FakeExecutor().on('condor_rm', ['12.0', '12.1'], asStdout(rmT[0]!));
    await new CondorPlugin(ok, options()).remove(['12.0', '12.1']);
    expect(ok.calls).toHaveLength(1);
    const unknown = new FakeExecutor().on('condor_rm', undefined, asStderr(rmT[2]!));
    await expect(new CondorPlugin(unknown, options()).remove(['99.0'])).resolves.toBeUndefined();
    const down = new FakeExecutor().on('condor_rm', undefined, asStderr(rmT[4]!));
    await expect(new CondorPlugin(down, options()).remove(['12.3'])).rejects.toThrow(BatchSystemError);
  });
  it('lists this grid’s jobs still in the queue', async () => {
    const ex = new FakeExecutor().on('condor_q', ['-constraint', 'FirnGrid == "grid-a"', ...AF], asStdout(qT[1]!));
    expect(await new CondorPlugin(ex, options()).listJobs()).toEqual([
      { batchId: '12.0', name: 'firn-101', state: 'QUEUED' },
      { batchId: '12.1', name: 'firn-102', state: 'RUNNING' },
      { batchId: '12.4', name: 'firn-105', state: 'FAILED' },
    ]);
  });
  it('cleanQ removes held and orphaned jobs whose task is not kept', async () => {
    const ex = new FakeExecutor().on('condor_q', undefined, asStdout(qT[1]!)).on('condor_rm', undefined, { stdout: 'Job 12.4 marked for removal\n' });
    const removed = await new CondorPlugin(ex, options()).cleanQ((_j, taskId) => taskId !== 105);
    expect(removed).toEqual([{ batchId: '12.4', name: 'firn-105', state: 'FAILED' }]);
    expect(ex.callsOf('condor_rm').map((c) => c.args)).toEqual([['12.4']]);
  });
});
