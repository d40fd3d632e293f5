import { fixtureCase } from './fake-executor';
import {
  PBS_STATES,
  isPbsUnknownJob,
  parseQstatFull,
  parseQstatTable,
  parseQsubOutput,
  pbsIdKey,
  pbsOwner,
  pbsState,
  qstatFullStatuses,
} from './pbs-parse';

const torque = (name: string) => fixtureCase('torque', name);

describe('parseQsubOutput', () => {
  it('reads the job id the Slurm wrappers print', () => {
    expect(parseQsubOutput(torque('qsub').stdout)).toBe('27');
    expect(parseQsubOutput(torque('qsub-named').stdout)).toBe('28');
    expect(parseQsubOutput(torque('ref-qsub').stdout)).toBe('7');
  });
  it('reads Torque and PBS Pro ids with a server part', () => {
    expect(parseQsubOutput('123.torque.example.org\n')).toBe('123.torque.example.org');
    expect(parseQsubOutput('4567[].pbs01\n')).toBe('4567[].pbs01');
  });
  it('finds no id in the wrappers’ error paragraph', () => {
    const bad = torque('qsub-bad-queue');
    expect(bad.code).toBe(1);
    expect(parseQsubOutput(bad.stdout)).toBeNull();
    expect(parseQsubOutput(torque('qsub-missing-script').stdout)).toBeNull();
  });
  it('compares ids by their numeric part', () => {
    expect(pbsIdKey('123.torque.example.org')).toBe('123');
    expect(pbsIdKey('7')).toBe('7');
    expect(pbsIdKey('12[3].srv')).toBe('12[3]');
  });
});

describe('PBS states', () => {
  it('maps every state letter', () => {
    const got = Object.fromEntries(Object.keys(PBS_STATES).map((l) => [l, pbsState(l).state]));
    expect(got).toEqual({
      Q: 'QUEUED',
      W: 'QUEUED',
      H: 'QUEUED',
      T: 'QUEUED',
      M: 'QUEUED',
      R: 'RUNNING',
      E: 'RUNNING',
      S: 'RUNNING',
      U: 'RUNNING',
      B: 'RUNNING',
      C: 'COMPLETED',
      F: 'COMPLETED',
      X: 'COMPLETED',
    });
    expect(pbsState('H')).toEqual({ state: 'QUEUED', rawState: 'H', reason: 'held' });
    expect(pbsState('Z')).toEqual({ state: 'UNKNOWN', rawState: 'Z' });
  });
  it('uses the exit status of finished jobs when there is one', () => {
    expect(pbsState('C', 0)).toEqual({ state: 'COMPLETED', rawState: 'C', exitCode: 0 });
    expect(pbsState('C', 3)).toEqual({ state: 'FAILED', rawState: 'C', exitCode: 3, reason: 'exit status 3' });
    expect(pbsState('F', -11)).toMatchObject({ state: 'FAILED', exitCode: -11 });
    expect(pbsState('C')).toEqual({ state: 'COMPLETED', rawState: 'C' });
  });
});

describe('parseQstatFull', () => {
  it('reads a running job of the wrappers (tab-indented)', () => {
    const [rec] = parseQstatFull(torque('qstat-f-running').stdout);
    expect(rec?.id).toBe('27');
    expect(rec?.attributes).toMatchObject({ Job_Name: 'tjob', Job_Owner: 'root@localhost', job_state: 'R', queue: 'debug' });
    expect(qstatFullStatuses(parseQstatFull(torque('qstat-f-running').stdout))).toEqual([{ batchId: '27', name: 'tjob', state: 'RUNNING', rawState: 'R' }]);
    expect(pbsOwner(rec!)).toBe('root');
  });
  it('cannot tell failed from completed under the wrappers: both C without exit status', () => {
    expect(qstatFullStatuses(parseQstatFull(torque('qstat-f-failed').stdout))).toEqual([{ batchId: '25', name: 'tfail', state: 'COMPLETED', rawState: 'C' }]);
    expect(qstatFullStatuses(parseQstatFull(torque('qstat-f-completed').stdout))).toEqual([{ batchId: '26', name: 'tok', state: 'COMPLETED', rawState: 'C' }]);
  });
  it('shows held jobs as Q under the wrappers, and nothing for unknown ids', () => {
    expect(qstatFullStatuses(parseQstatFull(torque('qstat-f-held').stdout))).toEqual([{ batchId: '29', name: 'held', state: 'QUEUED', rawState: 'Q' }]);
    const unknown = torque('qstat-f-unknown');
    expect(unknown.code).toBe(153);
    expect(parseQstatFull(unknown.stdout)).toEqual([]);
  });
  it('reads real Torque output: server ids, exit_status, wrapped values, several jobs', () => {
    const text = [
      'Job Id: 123.torque.example.org',
      '    Job_Name = firn-42',
      '    Job_Owner = firn@submit.example.org',
      '    job_state = C',
      '    exit_status = 1',
      '    Variable_List = PBS_O_QUEUE=batch,PBS_O_HOME=/home/firn,',
      '\tPBS_O_LOGNAME=firn',
      '    comment = Job started on Mon Jan 1 at 10:00',
      '',
      'Job Id: 124.torque.example.org',
      '    Job_Name = firn-43',
      '    job_state = H',
      '',
    ].join('\n');
    const recs = parseQstatFull(text);
    expect(recs[0]?.attributes['Variable_List']).toBe('PBS_O_QUEUE=batch,PBS_O_HOME=/home/firn,PBS_O_LOGNAME=firn');
    expect(qstatFullStatuses(recs)).toEqual([
      { batchId: '123.torque.example.org', name: 'firn-42', state: 'FAILED', rawState: 'C', exitCode: 1, reason: 'exit status 1; Job started on Mon Jan 1 at 10:00' },
      { batchId: '124.torque.example.org', name: 'firn-43', state: 'QUEUED', rawState: 'H', reason: 'held' },
    ]);
  });
  it('reads PBS Pro spelling Exit_status and state F', () => {
    const s = qstatFullStatuses(parseQstatFull('Job Id: 9.pbs\n    Job_Name = firn-9\n    job_state = F\n    Exit_status = 0\n'));
    expect(s).toEqual([{ batchId: '9.pbs', name: 'firn-9', state: 'COMPLETED', rawState: 'F', exitCode: 0 }]);
  });
});

describe('parseQstatTable', () => {
  it('reads the default listing (Q, R, C)', () => {
    const rows = parseQstatTable(torque('ref-qstat-running').stdout);
    expect(rows.map((r) => `${r.batchId}:${r.name}:${r.rawState}:${r.state}`)).toEqual([
      '1:wrap:C:COMPLETED',
      '2:wrap:C:COMPLETED',
      '3:wrap:C:COMPLETED',
      '4:wrap:C:COMPLETED',
      '5:wrap:C:COMPLETED',
      '6:wrap:C:COMPLETED',
      '7:tjob:R:RUNNING',
      '8:second:R:RUNNING',
      '9:third:Q:QUEUED',
    ]);
    expect(parseQstatTable(torque('qstat-held').stdout)).toEqual([{ batchId: '29', name: 'held', state: 'QUEUED', rawState: 'Q' }]);
  });
  it('reads qstat -a (state is the one-character column; names up to 20 chars)', () => {
    const rows = parseQstatTable(torque('qstat-a').stdout);
    expect(rows).toHaveLength(34);
    expect(rows.find((r) => r.batchId === '6')).toEqual({ batchId: '6', name: 'firn-timeout', state: 'COMPLETED', rawState: 'C' });
    const ref = parseQstatTable(torque('ref-qstat-a').stdout);
    expect(ref.find((r) => r.batchId === '9')).toEqual({ batchId: '9', name: 'third', state: 'QUEUED', rawState: 'Q' });
  });
  it('gives nothing for no table', () => {
    expect(parseQstatTable(torque('qstat-unknown').stdout)).toEqual([]);
    expect(parseQstatTable(torque('qstat-x-unsupported').stdout)).toEqual([]);
  });
});

describe('isPbsUnknownJob', () => {
  it('recognises exit 153 and Torque’s message', () => {
    expect(isPbsUnknownJob(torque('qstat-unknown').stderr, torque('qstat-unknown').code)).toBe(true);
    expect(isPbsUnknownJob('qstat: Unknown Job Id Error 99.torque.example.org', 153)).toBe(true);
    expect(isPbsUnknownJob('qdel: Unknown Job Id 99.torque', 1)).toBe(true);
    expect(isPbsUnknownJob("Cannot connect to default server host 'torque' - check pbs_server daemon.", 111)).toBe(false);
  });
});
