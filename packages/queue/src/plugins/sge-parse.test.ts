import { fixtureCase } from './fake-executor';
import {
  isSgeUnknownJob,
  parseQacct,
  parseSgeQstatTable,
  parseSgeQstatXml,
  parseSgeQsubOutput,
  parseSgeSchedulingInfo,
  qacctStatuses,
  sgeJobStatuses,
  sgeState,
} from './sge-parse';

const sge = (name: string) => fixtureCase('sge', name);

describe('parseSgeQsubOutput', () => {
  it('reads -terse ids, arrays included', () => {
    expect(parseSgeQsubOutput(sge('qsub-terse-ok').stdout)).toEqual({ jobId: '3' });
    expect(parseSgeQsubOutput(sge('qsub-terse').stdout)).toEqual({ jobId: '5' });
    expect(parseSgeQsubOutput(sge('qsub-terse-array').stdout)).toEqual({ jobId: '7', tasks: [1, 2, 3, 4] });
    expect(parseSgeQsubOutput(sge('ref-qsub-terse').stdout)).toEqual({ jobId: '3' });
  });
  it('reads the verbose form', () => {
    expect(parseSgeQsubOutput(sge('qsub-plain').stdout)).toEqual({ jobId: '6' });
    expect(parseSgeQsubOutput(sge('qsub-array-plain').stdout)).toEqual({ jobId: '8', tasks: [1, 2, 3] });
    expect(parseSgeQsubOutput(sge('ref-qsub-plain-binary').stdout)).toEqual({ jobId: '1' });
    expect(parseSgeQsubOutput('Your job-array 12.2-10:4 ("x") has been submitted\n')).toEqual({ jobId: '12', tasks: [2, 6, 10] });
  });
  it('finds no id in errors', () => {
    for (const name of ['qsub-error-bad-queue', 'qsub-error-missing-script', 'qsub-error-name-with-spaces']) {
      const c = sge(name);
      expect(c.code).not.toBe(0);
      expect(parseSgeQsubOutput(c.stdout)).toBeNull();
    }
  });
});

describe('sgeState', () => {
  it('maps every state code combination SGE prints', () => {
    const cases: Record<string, string> = {
      qw: 'QUEUED',
      hqw: 'QUEUED',
      hRwq: 'QUEUED',
      Rq: 'QUEUED',
      w: 'QUEUED',
      r: 'RUNNING',
      t: 'RUNNING',
      Rr: 'RUNNING',
      Rt: 'RUNNING',
      s: 'RUNNING',
      ts: 'RUNNING',
      S: 'RUNNING',
      T: 'RUNNING',
      Eqw: 'FAILED',
      Ehqw: 'FAILED',
      dr: 'CANCELLED',
      dt: 'CANCELLED',
      dRr: 'CANCELLED',
      ds: 'CANCELLED',
      dqw: 'CANCELLED',
      z: 'COMPLETED',
      x: 'UNKNOWN',
      '': 'UNKNOWN',
    };
    const got = Object.fromEntries(Object.keys(cases).map((c) => [c, sgeState(c).state]));
    expect(got).toEqual(cases);
    expect(sgeState('hqw')).toEqual({ state: 'QUEUED', rawState: 'hqw', reason: 'held' });
    expect(sgeState('Eqw').reason).toMatch(/error state Eqw/);
    expect(sgeState('s')).toEqual({ state: 'RUNNING', rawState: 's', reason: 'suspended' });
  });
});

describe('parseSgeQstatXml', () => {
  it('reads running and pending jobs, array tasks expanded to job.task ids', () => {
    const statuses = sgeJobStatuses(parseSgeQstatXml(sge('qstat-xml').stdout));
    expect(statuses.map((s) => `${s.batchId}:${s.name}:${s.rawState}`)).toEqual([
      '5:firn-single:r',
      '6:sgejob:r',
      '7.1:firn-array:r',
      '7.2:firn-array:r',
      '7.3:firn-array:r',
      '7.4:firn-array:r',
      '8.1:firn-array2:r',
      '10:firn-a-rather-long-job-name-1234:r',
      '8.2:firn-array2:qw',
      '8.3:firn-array2:qw',
      '9:firn-held:hqw',
    ]);
    expect(statuses.find((s) => s.batchId === '9')).toEqual({ batchId: '9', name: 'firn-held', state: 'QUEUED', rawState: 'hqw', reason: 'held' });
  });
  it('reads qstat -f -xml (jobs inside Queue-List) the same way', () => {
    const a = sgeJobStatuses(parseSgeQstatXml(sge('qstat-f-xml').stdout)).map((s) => s.batchId);
    expect(a).toContain('7.4');
    expect(a).toContain('8.3');
  });
  it('reads the transferring state and deletions in progress (reference)', () => {
    const t = sgeJobStatuses(parseSgeQstatXml(sge('ref-qstat-xml-transferring').stdout));
    expect(t.find((s) => s.batchId === '2')).toEqual({ batchId: '2', name: 'sgejob', state: 'RUNNING', rawState: 't' });
    expect(t.find((s) => s.batchId === '5')).toMatchObject({ state: 'QUEUED', rawState: 'hqw' });
  });
  it('gives nothing for an empty queue or unknown_jobs', () => {
    expect(parseSgeQstatXml(sge('ref-qstat-xml-empty').stdout)).toEqual([]);
    expect(parseSgeQstatXml(sge('qstat-j-unknown-xml').stdout)).toEqual([]);
  });
  it('decodes XML entities in names', () => {
    const [job] = parseSgeQstatXml('<job_list state="running"><JB_job_number>4</JB_job_number><JB_name>a&amp;b&lt;c</JB_name><state>r</state></job_list>');
    expect(job?.name).toBe('a&b<c');
  });
});

describe('parseSgeQstatTable', () => {
  it('reads plain qstat with running/pending array tasks (names cut to 10)', () => {
    const jobs = parseSgeQstatTable(sge('qstat').stdout);
    expect(jobs.map((j) => `${j.jobId}:${j.name}:${j.state}:${j.tasks ?? '-'}`)).toEqual([
      '5:firn-singl:r:-',
      '6:sgejob:r:-',
      '7:firn-array:r:1',
      '7:firn-array:r:2',
      '7:firn-array:r:3',
      '7:firn-array:r:4',
      '8:firn-array:r:1',
      '10:firn-a-rat:r:-',
      '8:firn-array:qw:2,3',
      '9:firn-held:hqw:-',
    ]);
    expect(sgeJobStatuses(jobs).filter((s) => s.batchId.startsWith('8.')).map((s) => s.batchId)).toEqual(['8.1', '8.2', '8.3']);
  });
  it('reads the transferring state, qstat -f job lines, and deletion in progress', () => {
    expect(parseSgeQstatTable(sge('ref-qstat-transferring').stdout).map((j) => j.state)).toEqual(['r', 't', 'qw', 'qw', 'hqw']);
    expect(parseSgeQstatTable(sge('ref-qstat-f').stdout).map((j) => `${j.jobId}:${j.state}`)).toEqual(['2:r', '3:r', '4:qw', '5:hqw']);
    expect(parseSgeQstatTable('      3 0.50000 sleep      root         dr    11/22/2026 02:12:46 all.q@localhost                    1        \n')).toEqual([
      { jobId: '3', name: 'sleep', owner: 'root', state: 'dr' },
    ]);
    expect(parseSgeQstatTable(sge('ref-qstat-empty').stdout)).toEqual([]);
  });
});

describe('qacct', () => {
  it('reads a successful job', () => {
    expect(qacctStatuses(parseQacct(sge('qacct-ok').stdout))).toEqual([
      { batchId: '3', name: 'firn-ok', state: 'COMPLETED', rawState: 'failed=0 exit_status=0', exitCode: 0 },
    ]);
  });
  it('reads a script that exited non-zero', () => {
    const [s] = qacctStatuses(parseQacct(sge('qacct-failed').stdout));
    expect(s).toMatchObject({ batchId: '4', state: 'FAILED', exitCode: 3, reason: 'exit status 3' });
    expect(qacctStatuses(parseQacct(sge('ref-qacct-exit1').stdout))[0]).toMatchObject({ batchId: '4', state: 'FAILED', exitCode: 1 });
  });
  it('reads a job killed by qdel (failed 100, exit 137)', () => {
    expect(qacctStatuses(parseQacct(sge('qacct-deleted').stdout))).toEqual([
      {
        batchId: '5',
        name: 'firn-single',
        state: 'FAILED',
        rawState: 'failed=100 exit_status=137',
        exitCode: 137,
        reason: 'failed 100 : assumedly after job; exit status 137',
      },
    ]);
    expect(qacctStatuses(parseQacct(sge('ref-qacct-killed').stdout))[0]).toMatchObject({ batchId: '3', state: 'FAILED', exitCode: 137 });
  });
  it('gives array tasks their job.task ids; the last record of a rerun wins', () => {
    const text = [
      '==============================================================',
      'jobname      firn-a40',
      'jobnumber    12',
      'taskid       2',
      'failed       0    ',
      'exit_status  0',
      '==============================================================',
      'jobname      firn-a40',
      'jobnumber    12',
      'taskid       1',
      'failed       0',
      'exit_status  1',
      '==============================================================',
      'jobname      firn-a40',
      'jobnumber    12',
      'taskid       1',
      'failed       0',
      'exit_status  0',
    ].join('\n');
    expect(qacctStatuses(parseQacct(text)).map((s) => `${s.batchId}:${s.state}`)).toEqual(['12.2:COMPLETED', '12.1:COMPLETED']);
  });
  it('recognises unknown ids', () => {
    const c = sge('qacct-unknown');
    expect(c.code).toBe(1);
    expect(parseQacct(c.stdout)).toEqual([]);
    expect(isSgeUnknownJob(c.stderr)).toBe(true);
    expect(isSgeUnknownJob(sge('qdel-unknown').stdout)).toBe(true);
    expect(isSgeUnknownJob(sge('qstat-j-unknown').stderr)).toBe(true);
    expect(isSgeUnknownJob('error: commlib error: got select error (Connection refused)')).toBe(false);
  });
});

describe('parseSgeSchedulingInfo', () => {
  it('reads why each pending job waits (qstat -j on real SGE 8.1.9: a hold, an unsatisfiable -l, an array)', () => {
    const info = parseSgeSchedulingInfo(sge('qstat-j-pending').stdout);
    expect(Object.fromEntries(info)).toEqual({
      7: 'Job is in hold state',
      8: '(-l arch=sparc64) cannot run at host "localhost" because it offers only hl:arch=lx-amd64',
      9: '(-l arch=sparc64) cannot run at host "localhost" because it offers only hl:arch=lx-amd64',
    });
    expect(Object.fromEntries(parseSgeSchedulingInfo(sge('qstat-j-excluded-host').stdout))).toEqual({
      52: '(-l hostname=!localhost&!localhost.*) cannot run in queue "all.q@localhost" because it offers only qf:hostname=localhost',
    });
  });
  it('joins continuation lines; a scheduler without job info gives nothing', () => {
    const text = 'job_number:                 3\nscheduling info:            queue instance "a.q@h1" dropped because it is full\n                            queue instance "a.q@h2" dropped because it is disabled\n';
    expect(parseSgeSchedulingInfo(text).get('3')).toBe('queue instance "a.q@h1" dropped because it is full; queue instance "a.q@h2" dropped because it is disabled');
    expect(parseSgeSchedulingInfo('job_number:                 4\nscheduling info:            (Collecting of scheduler job information is turned off)\n').size).toBe(0);
  });
});
