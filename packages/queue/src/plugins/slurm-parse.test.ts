import { fixtureCase } from './fake-executor';
import { BatchState } from './plugin';
import {
  SLURM_SHORT_STATES,
  SLURM_STATES,
  arrayElementIds,
  isSlurmAccountingDisabled,
  isSlurmInvalidJobId,
  normaliseSlurmState,
  parseArrayElementId,
  parseSacct,
  parseSbatchOutput,
  parseSlurmExitCode,
  parseSinfoNodes,
  parseSqueue,
  SQUEUE_LIST_FORMAT,
  slurmExcludeNodes,
  slurmState,
} from './slurm-parse';

const slurm = (name: string) => fixtureCase('slurm', name);
const FIXTURE_FMT = '%i|%j|%T|%r'; // the format the fixture recordings used

describe('parseSbatchOutput', () => {
  it('reads --parsable, plain and array output', () => {
    expect(parseSbatchOutput(slurm('sbatch-parsable').stdout)).toEqual({ jobId: '11' });
    expect(parseSbatchOutput(slurm('sbatch-plain').stdout)).toEqual({ jobId: '12' });
    expect(parseSbatchOutput(slurm('sbatch-array-parsable').stdout)).toEqual({ jobId: '13' });
    expect(parseSbatchOutput(slurm('ref-sbatch-plain').stdout)).toEqual({ jobId: '1' });
    expect(parseSbatchOutput(slurm('ref-sbatch-parsable').stdout)).toEqual({ jobId: '2' });
  });
  it('reads the cluster of --parsable on a multi-cluster setup', () => {
    expect(parseSbatchOutput('1234;cluster2\n')).toEqual({ jobId: '1234', cluster: 'cluster2' });
    expect(parseSbatchOutput('Submitted batch job 77 on cluster east\n')).toEqual({ jobId: '77', cluster: 'east' });
  });
  it('returns null when there is no job id (bad option: nothing on stdout)', () => {
    const bad = slurm('sbatch-bad-option');
    expect(bad.code).toBe(255);
    expect(parseSbatchOutput(bad.stdout)).toBeNull();
    expect(parseSbatchOutput('sbatch: error: Batch job submission failed: Invalid partition name specified\n')).toBeNull();
  });
  it('builds element ids of arrays', () => {
    expect(arrayElementIds('13', [0, 1, 3])).toEqual(['13_0', '13_1', '13_3']);
    expect(parseArrayElementId('13_3')).toEqual({ jobId: '13', index: 3 });
    expect(parseArrayElementId('13')).toBeNull();
    expect(parseArrayElementId('14_[0-3%1]')).toBeNull();
  });
});

describe('Slurm states', () => {
  it('maps every long state word', () => {
    const expected: Record<string, BatchState> = {
      PENDING: 'QUEUED',
      REQUEUED: 'QUEUED',
      REQUEUE_FED: 'QUEUED',
      REQUEUE_HOLD: 'QUEUED',
      RESV_DEL_HOLD: 'QUEUED',
      RUNNING: 'RUNNING',
      CONFIGURING: 'RUNNING',
      COMPLETING: 'RUNNING',
      SUSPENDED: 'RUNNING',
      STOPPED: 'RUNNING',
      SIGNALING: 'RUNNING',
      STAGE_OUT: 'RUNNING',
      RESIZING: 'RUNNING',
      COMPLETED: 'COMPLETED',
      FAILED: 'FAILED',
      TIMEOUT: 'FAILED',
      OUT_OF_MEMORY: 'FAILED',
      NODE_FAIL: 'FAILED',
      BOOT_FAIL: 'FAILED',
      DEADLINE: 'FAILED',
      SPECIAL_EXIT: 'FAILED',
      CANCELLED: 'CANCELLED',
      PREEMPTED: 'CANCELLED',
      REVOKED: 'CANCELLED',
    };
    expect(SLURM_STATES).toEqual(expected);
    for (const [word, state] of Object.entries(expected)) expect(slurmState(word)).toBe(state);
  });
  it('maps every compact code through its long name', () => {
    for (const [code, word] of Object.entries(SLURM_SHORT_STATES)) {
      expect(normaliseSlurmState(code).word).toBe(word);
      expect(slurmState(code)).toBe(SLURM_STATES[word]);
    }
    expect(slurmState('PD')).toBe('QUEUED');
    expect(slurmState('CG')).toBe('RUNNING');
    expect(slurmState('OOM')).toBe('FAILED');
    expect(slurmState('CA')).toBe('CANCELLED');
  });
  it('understands sacct spellings and unknown words', () => {
    expect(normaliseSlurmState('CANCELLED by 0')).toEqual({ word: 'CANCELLED', by: '0' });
    expect(normaliseSlurmState('CANCELLED+')).toEqual({ word: 'CANCELLED' });
    expect(slurmState('cancelled by 1000')).toBe('CANCELLED');
    // a listed job in a state word nobody taught us is not known to be gone
    expect(slurmState('WHATEVER')).toBe('UNOBSERVED');
    expect(slurmState('')).toBe('UNOBSERVED');
  });
  it('a listed job in a state word it does not know is UNOBSERVED, never UNKNOWN (squeue, sacct)', () => {
    const jobs = parseSqueue(slurm('squeue-odd-state').stdout, '%i|%A|%T|%r|%j');
    expect(jobs.map((j) => [j.batchId, j.state, j.rawState])).toEqual([
      ['1_0', 'QUEUED', 'PENDING'], ['1_3', 'QUEUED', 'PENDING'], ['1_6', 'UNOBSERVED', 'EXPEDITING'],
      ['1_9', 'QUEUED', 'PENDING'], ['1_12', 'QUEUED', 'PENDING'], ['1_15', 'QUEUED', 'PENDING'],
    ]);
    expect(jobs[2]?.reason).toBe('state EXPEDITING not known: JobHeldUser');
    const sacct = slurm('ref-slurmdbd-sacct-j-cancelled').stdout.replace(/CANCELLED by 0/, 'EXPEDITING');
    expect(parseSacct(sacct).map((s) => s.state)).toEqual(['UNOBSERVED']);
  });
  it('turns ExitCode code:signal into a shell-style exit code', () => {
    expect(parseSlurmExitCode('3:0')).toEqual({ exitCode: 3, code: 3, signal: 0 });
    expect(parseSlurmExitCode('0:15')).toEqual({ exitCode: 143, code: 0, signal: 15 });
    expect(parseSlurmExitCode('0:9')?.exitCode).toBe(137);
    expect(parseSlurmExitCode('x')).toBeNull();
  });
});

describe('parseSqueue', () => {
  it('reads the plugin format with the element’s own job id', () => {
    const jobs = parseSqueue('13_0|20|RUNNING|None|firn-a100\n13_3|13|PENDING|Resources|firn-a100\n7|7|COMPLETED|None|firn-7\n');
    expect(jobs).toEqual([
      { batchId: '13_0', rawJobId: '20', state: 'RUNNING', rawState: 'RUNNING', name: 'firn-a100' },
      { batchId: '13_3', rawJobId: '13', state: 'QUEUED', rawState: 'PENDING', name: 'firn-a100', reason: 'Resources' },
      { batchId: '7', rawJobId: '7', state: 'COMPLETED', rawState: 'COMPLETED', name: 'firn-7' },
    ]);
  });
  it('keeps a | inside the last field (the name)', () => {
    expect(parseSqueue('5|5|RUNNING|None|a|b\n')[0]?.name).toBe('a|b');
  });
  it('reads a recorded -h -o listing, folded arrays included', () => {
    const jobs = parseSqueue(slurm('squeue-fmt').stdout, FIXTURE_FMT);
    expect(jobs).toHaveLength(15);
    expect(jobs[0]).toEqual({ batchId: '13_3', name: 'firn-array', state: 'QUEUED', rawState: 'PENDING' });
    expect(jobs.find((j) => j.batchId === '14_[0-3%1]')).toMatchObject({ state: 'QUEUED', name: 'firn-throttled' });
    expect(jobs.find((j) => j.batchId === '16')).toMatchObject({ state: 'QUEUED', reason: 'Dependency' });
    expect(jobs.find((j) => j.batchId === '15')).toMatchObject({ state: 'QUEUED', reason: 'JobHeldUser' });
    expect(jobs.find((j) => j.batchId === '13_2')).toMatchObject({ state: 'RUNNING', name: 'firn-array' });
  });
  it('reads -r listings with one line per element, and COMPLETING', () => {
    const jobs = parseSqueue(slurm('squeue-fmt-array').stdout, FIXTURE_FMT);
    expect(jobs.filter((j) => j.batchId.startsWith('14_')).map((j) => j.batchId)).toEqual(['14_0', '14_1', '14_2', '14_3']);
    expect(jobs[0]).toEqual({ batchId: '9', name: 'firn-oom', state: 'RUNNING', rawState: 'COMPLETING', reason: 'JobLaunchFailure' });
  });
  it('reads raw job ids from %A (recorded)', () => {
    const jobs = parseSqueue(slurm('squeue-fmt-array-ids').stdout, '%i|%A|%a|%F|%K|%j|%u|%T|%r|%M|%l|%N');
    expect(jobs.find((j) => j.batchId === '13_0')).toMatchObject({ rawJobId: '20', state: 'RUNNING', name: 'firn-array' });
    expect(jobs.find((j) => j.batchId === '13_3')).toMatchObject({ rawJobId: '13', state: 'QUEUED' });
  });
  it('reads finished jobs of squeue -t all: every terminal state with its reason', () => {
    const jobs = new Map(parseSqueue(slurm('squeue-after-cancel').stdout, FIXTURE_FMT).map((j) => [j.batchId, j]));
    expect(jobs.get('10')).toEqual({ batchId: '10', name: 'firn-cancel', state: 'CANCELLED', rawState: 'CANCELLED', reason: 'CANCELLED' });
    expect(jobs.get('13_1')).toMatchObject({ state: 'CANCELLED' });
    expect(jobs.get('7')).toEqual({ batchId: '7', name: 'firn-ok', state: 'COMPLETED', rawState: 'COMPLETED' });
    expect(jobs.get('8')).toEqual({ batchId: '8', name: 'firn-fail', state: 'FAILED', rawState: 'FAILED', reason: 'FAILED: NonZeroExitCode' });
    expect(jobs.get('9')).toMatchObject({ state: 'FAILED', reason: 'FAILED: JobLaunchFailure' });
    expect(jobs.get('14_1')).toMatchObject({ state: 'QUEUED', reason: 'JobArrayTaskLimit' });
    expect(jobs.get('6')).toMatchObject({ state: 'RUNNING', name: 'firn-timeout' });
  });
  it('reads the default table (letters) and squeue -l (words); names are cut to 8', () => {
    const table = parseSqueue(slurm('squeue-default').stdout);
    expect(table).toHaveLength(14);
    expect(table[0]).toEqual({ batchId: '13_3', name: 'firn-arr', state: 'QUEUED', rawState: 'PENDING' });
    expect(table.find((j) => j.batchId === '16')).toMatchObject({ reason: 'Dependency' });
    expect(table.find((j) => j.batchId === '6')).toEqual({ batchId: '6', name: 'firn-tim', state: 'RUNNING', rawState: 'RUNNING' });
    const completing = parseSqueue(slurm('ref-squeue-default-completing').stdout);
    expect(completing[0]).toEqual({ batchId: '2', name: 'wrap', state: 'RUNNING', rawState: 'COMPLETING' });
    const long = parseSqueue(slurm('ref-squeue-l').stdout);
    expect(long.map((j) => `${j.batchId}:${j.rawState}`)).toEqual(['3:PENDING', '4:PENDING', '5:PENDING', '6:PENDING', '2:RUNNING']);
    expect(long[0]?.reason).toBe('Resources');
  });
  it('reads the %R node-list/reason column without taking node names for reasons', () => {
    const jobs = parseSqueue(slurm('ref-squeue-fmt').stdout, '%i|%j|%u|%T|%t|%M|%D|%R');
    expect(jobs.find((j) => j.batchId === '3')).toMatchObject({ state: 'QUEUED', reason: 'Resources', name: 'wrap' });
    expect(jobs.find((j) => j.batchId === '2')).toEqual({ batchId: '2', name: 'wrap', state: 'RUNNING', rawState: 'RUNNING' });
  });
  it('gives nothing for an empty queue and for an error', () => {
    expect(parseSqueue(slurm('ref-squeue-default-empty').stdout)).toEqual([]);
    expect(parseSqueue(slurm('squeue-unknown-fmt').stdout, FIXTURE_FMT)).toEqual([]);
  });
});

describe('parseSacct', () => {
  it('reads sacct -X -P with ExitCode (slurmdbd)', () => {
    const rows = parseSacct(slurm('ref-slurmdbd-sacct-parsable').stdout, ['JobID', 'JobName', 'State', 'ExitCode', 'Elapsed', 'Start', 'End', 'NodeList']);
    const byId = new Map(rows.map((r) => [r.batchId, r]));
    expect(rows).toHaveLength(15);
    expect(byId.get('1')).toEqual({ batchId: '1', name: 'wrap', state: 'COMPLETED', rawState: 'COMPLETED', exitCode: 0 });
    expect(byId.get('2')).toEqual({ batchId: '2', name: 'wrap', state: 'CANCELLED', rawState: 'CANCELLED', exitCode: 143, reason: 'CANCELLED: killed by signal 15' });
    expect(byId.get('3')).toEqual({ batchId: '3', name: 'wrap', state: 'FAILED', rawState: 'FAILED', exitCode: 3, reason: 'FAILED: exit code 3' });
    expect(byId.get('12')).toEqual({ batchId: '12', name: 'wrap', state: 'CANCELLED', rawState: 'CANCELLED', exitCode: 0, reason: 'CANCELLED: cancelled by uid 0' });
    expect(byId.get('15')).toEqual({ batchId: '15', name: 'wrap', state: 'RUNNING', rawState: 'RUNNING' });
  });
  it('reads -P with a header and skips steps', () => {
    const rows = parseSacct(slurm('ref-slurmdbd-sacct-j-cancelled').stdout);
    expect(rows).toEqual([{ batchId: '12', state: 'CANCELLED', rawState: 'CANCELLED', exitCode: 0, reason: 'CANCELLED: cancelled by uid 0' }]);
  });
  it('reads the fixed-width table, truncated CANCELLED+ included', () => {
    const rows = parseSacct(slurm('ref-slurmdbd-sacct-default').stdout);
    expect(rows.map((r) => r.batchId)).toEqual(['1', '2', '3', '4', '5', '6', '7', '8', '9', '10', '11', '12', '13', '14', '15']);
    expect(rows.find((r) => r.batchId === '12')).toMatchObject({ state: 'CANCELLED', rawState: 'CANCELLED', exitCode: 0 });
    expect(rows.find((r) => r.batchId === '14')).toMatchObject({ state: 'FAILED', exitCode: 3, name: 'wrap' });
    expect(rows.find((r) => r.batchId === '15')).toMatchObject({ state: 'RUNNING' });
  });
  it('reads sacct -c (jobcomp), table and -P, which have no ExitCode', () => {
    const table = parseSacct(slurm('ref-sacct-c-default').stdout);
    expect(table.map((r) => `${r.batchId}:${r.state}`)).toEqual(['1:COMPLETED', '2:CANCELLED', '3:FAILED', '6:CANCELLED', '4:CANCELLED', '5:CANCELLED']);
    expect(table[2]).toEqual({ batchId: '3', name: 'wrap', state: 'FAILED', rawState: 'FAILED', reason: 'FAILED' });
    const piped = parseSacct(slurm('ref-sacct-c-parsable-header').stdout);
    expect(piped).toEqual(table);
  });
  it('gives nothing for unknown ids (header only)', () => {
    expect(parseSacct(slurm('ref-slurmdbd-sacct-unknown').stdout)).toEqual([]);
    expect(parseSacct('JobID|JobName|State|ExitCode\n')).toEqual([]);
  });
  it('reads sacct -P -n with the columns given', () => {
    expect(parseSacct('20|firn-a7|TIMEOUT|0:15\n21|firn-a7|OUT_OF_MEMORY|0:125\n22|x|NODE_FAIL|1:0\n')).toEqual([
      { batchId: '20', name: 'firn-a7', state: 'FAILED', rawState: 'TIMEOUT', exitCode: 143, reason: 'TIMEOUT: killed by signal 15' },
      { batchId: '21', name: 'firn-a7', state: 'FAILED', rawState: 'OUT_OF_MEMORY', exitCode: 253, reason: 'OUT_OF_MEMORY: killed by signal 125' },
      { batchId: '22', name: 'x', state: 'FAILED', rawState: 'NODE_FAIL', exitCode: 1, reason: 'NODE_FAIL: exit code 1' },
    ]);
  });
});

describe('error detection', () => {
  it('recognises unknown job ids', () => {
    expect(isSlurmInvalidJobId(slurm('squeue-unknown').stderr)).toBe(true);
    expect(isSlurmInvalidJobId(slurm('ref-squeue-unknown').stderr)).toBe(true);
    expect(isSlurmInvalidJobId(slurm('scancel-unknown-verbose').stderr)).toBe(true);
    expect(isSlurmInvalidJobId('slurm_load_jobs error: Unable to contact slurm controller (connect failure)')).toBe(false);
  });
  it('recognises disabled accounting', () => {
    expect(isSlurmAccountingDisabled(slurm('sacct-disabled').stderr)).toBe(true);
    expect(isSlurmAccountingDisabled(slurm('ref-sacct-disabled').stderr)).toBe(true);
    expect(isSlurmAccountingDisabled('sacct: error: Problem talking to the database')).toBe(false);
  });
});

describe('the grid comment (%k) and node names', () => {
  it('reads the job comment of the listing format; (null) means none (real squeue output)', () => {
    const jobs = parseSqueue(slurm('squeue-fmt-comment').stdout, SQUEUE_LIST_FORMAT);
    expect(jobs.map((j) => [j.batchId, j.comment, j.name])).toEqual([
      ['392', 'not firn', 'wrap'],
      ['391', undefined, 'firn-9'],
      ['390', 'firn:other%20grid', 'firn-8'],
      ['389_0', 'firn:grid-a', 'firn-a100'],
      ['389_1', 'firn:grid-a', 'firn-a100'],
      ['389_3', 'firn:grid-a', 'firn-a100'],
      ['388', 'firn:grid-a', 'firn-7'],
    ]);
    expect(jobs[0]).toMatchObject({ state: 'QUEUED', rawState: 'PENDING', reason: 'JobHeldUser', rawJobId: '392' });
  });
  it('reads node names and hostnames from sinfo -N (each node once)', () => {
    expect(parseSinfoNodes(slurm('sinfo-nodes').stdout)).toEqual([{ name: 'vm', hostname: 'vm' }]);
    expect(parseSinfoNodes('n1|n1.example.org\nn2|(null)\nn1|n1.example.org\n\n')).toEqual([
      { name: 'n1', hostname: 'n1.example.org' },
      { name: 'n2', hostname: 'n2' },
    ]);
  });
  it('maps black-holed hosts to node names: exact, short ↔ qualified, case-insensitive; others unknown', () => {
    const nodes = [{ name: 'vm', hostname: 'vm' }, { name: 'n01', hostname: 'n01.cluster.example.org' }, { name: 'gpu7', hostname: 'gpu7' }];
    expect(slurmExcludeNodes(['VM.example.org', 'n01', 'gpu7.other.org', 'gpu7.x', 'ghost'], nodes)).toEqual({
      nodes: ['gpu7', 'n01', 'vm'],
      unknown: ['ghost'],
    });
    // two qualified names in different domains are different hosts
    expect(slurmExcludeNodes(['c1.b.org', 'c1'], [{ name: 'c1.a.org', hostname: 'c1.a.org' }])).toEqual({ nodes: ['c1.a.org'], unknown: ['c1.b.org'] });
  });
  it('sbatch refuses the whole submission for an unknown node, and when every node is excluded (real output)', () => {
    expect(slurm('sbatch-exclude-unknown-node')).toMatchObject({ code: 1, stderr: 'sbatch: error: Batch job submission failed: Invalid node name specified\n' });
    expect(slurm('sbatch-exclude-every-node').stderr).toContain('Requested node configuration is not available');
  });
});

describe('pending reasons (squeue %r)', () => {
  it('keeps Slurm\'s own reason of each pending job (captured: held, begin time, dependency)', () => {
    const jobs = parseSqueue(fixtureCase('slurm', 'squeue-fmt-pending-reasons').stdout);
    expect(jobs.map((j) => [j.batchId, j.state, j.reason])).toEqual([
      ['365', 'QUEUED', 'BeginTime'],
      ['366', 'QUEUED', 'Dependency'],
      ['364', 'QUEUED', 'JobHeldUser'],
    ]);
  });
});
