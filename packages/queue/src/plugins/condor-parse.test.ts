/**
 * HTCondor parsers against test/fixtures/condor/*.txt — written from the documented output
 * formats (see the README there), since no HTCondor pool is available.
 */
import {
  CONDOR_ATTRS,
  CONDOR_JOB_STATUS,
  classAdString,
  condorIdConstraint,
  condorStatus,
  isCondorUnknownJob,
  parseCondorAf,
  parseCondorAnalyze,
  parseCondorSubmit,
} from './condor-parse';
import { fixtureTranscript, parseTranscript, transcriptEntry } from './fake-executor';

const SUBMIT = fixtureTranscript('condor', 'submit.txt');
const Q = fixtureTranscript('condor', 'q.txt');
const HISTORY = fixtureTranscript('condor', 'history.txt');
const RM = fixtureTranscript('condor', 'rm.txt');
const AF = `-af:jt ${CONDOR_ATTRS.join(' ')}`;

describe('parseCondorSubmit', () => {
  it('expands -terse ranges into job ids', () => {
    const [many, one, verbose, error] = parseTranscript(SUBMIT);
    expect(parseCondorSubmit(many!.output)).toEqual(['12.0', '12.1', '12.2']);
    expect(parseCondorSubmit(one!.output)).toEqual(['13.0']);
    expect(parseCondorSubmit(verbose!.output)).toEqual(['14.0', '14.1', '14.2']);
    expect(error!.code).toBe(1);
    expect(parseCondorSubmit(error!.output)).toEqual([]);
  });
  it('reads several clusters and ignores nonsense ranges', () => {
    expect(parseCondorSubmit('20.0 - 20.1\n21.0 - 21.0\n')).toEqual(['20.0', '20.1', '21.0']);
    expect(parseCondorSubmit('20.3 - 21.0\n')).toEqual([]);
  });
});

describe('condor_q / condor_history autoformat', () => {
  it('maps every JobStatus, with exit codes, signals and hold/remove reasons', () => {
    const e = transcriptEntry(Q, `condor_q 12.0 12.1 12.2 12.3 12.4 12.5 12.6 12.7 12.8 99.0 ${AF}`);
    const statuses = parseCondorAf(e.output, CONDOR_ATTRS).map(condorStatus);
    expect(statuses).toEqual([
      { batchId: '12.0', name: 'firn-101', state: 'QUEUED', rawState: 'Idle' },
      { batchId: '12.1', name: 'firn-102', state: 'RUNNING', rawState: 'Running' },
      { batchId: '12.2', name: 'firn-103', state: 'CANCELLED', rawState: 'Removed', reason: 'removed: via condor_rm (by user firn)' },
      { batchId: '12.3', name: 'firn-104', state: 'COMPLETED', rawState: 'Completed', exitCode: 0 },
      {
        batchId: '12.4',
        name: 'firn-105',
        state: 'FAILED',
        rawState: 'Held',
        reason: 'held: Error from slot1@wn01.example.org: Job has gone over memory limit of 2048 megabytes. Peak usage: 2300 megabytes.',
      },
      { batchId: '12.5', name: 'firn-106', state: 'RUNNING', rawState: 'TransferringOutput' },
      { batchId: '12.6', name: 'firn-107', state: 'RUNNING', rawState: 'Suspended', reason: 'suspended' },
      { batchId: '12.7', name: 'firn-108', state: 'FAILED', rawState: 'Completed', exitCode: 3, reason: 'exit code 3' },
      { batchId: '12.8', name: 'firn-109', state: 'FAILED', rawState: 'Completed', exitCode: 137, reason: 'killed by signal 9' },
    ]);
    expect(Object.keys(CONDOR_JOB_STATUS)).toEqual(['1', '2', '3', '4', '5', '6', '7']);
  });
  it('gives nothing for unknown ids; jobs without FirnJobName have no name', () => {
    expect(parseCondorAf(transcriptEntry(Q, `condor_q 99.0 ${AF}`).output, CONDOR_ATTRS)).toEqual([]);
    const listed = parseCondorAf(parseTranscript(Q)[1]!.output, CONDOR_ATTRS).map(condorStatus);
    expect(listed.find((s) => s.batchId === '15.0')).toEqual({ batchId: '15.0', state: 'QUEUED', rawState: 'Idle' });
  });
  it('skips the schedd failure banner', () => {
    const e = parseTranscript(Q)[3]!;
    expect(e.code).toBe(1);
    expect(parseCondorAf(e.output, CONDOR_ATTRS)).toEqual([]);
  });
  it('reads condor_history the same way', () => {
    const e = parseTranscript(HISTORY)[0]!;
    expect(parseCondorAf(e.output, CONDOR_ATTRS).map((r) => condorStatus(r))).toEqual([
      { batchId: '11.2', name: 'firn-93', state: 'CANCELLED', rawState: 'Removed', reason: 'removed: via condor_rm (by user firn)' },
      { batchId: '11.1', name: 'firn-92', state: 'FAILED', rawState: 'Completed', exitCode: 1, reason: 'exit code 1' },
      { batchId: '11.0', name: 'firn-91', state: 'COMPLETED', rawState: 'Completed', exitCode: 0 },
    ]);
  });
  it('reads the space-separated -af:j form (free text last)', () => {
    const rows = parseCondorAf('12.4 5 undefined undefined undefined firn-105 over memory limit\n', ['JobStatus', 'ExitCode', 'ExitBySignal', 'ExitSignal', 'FirnJobName', 'HoldReason']);
    expect(rows).toEqual([
      { batchId: '12.4', values: { JobStatus: '5', ExitCode: undefined, ExitBySignal: undefined, ExitSignal: undefined, FirnJobName: 'firn-105', HoldReason: 'over memory limit' } },
    ]);
  });
});

describe('condor_rm and helpers', () => {
  it('recognises unknown ids but not schedd failures', () => {
    const [ok, cluster, unknown, constraint, failure] = parseTranscript(RM);
    expect(ok!.code).toBe(0);
    expect(cluster!.output).toMatch(/marked for removal/);
    expect(isCondorUnknownJob(unknown!.output)).toBe(true);
    expect(isCondorUnknownJob(constraint!.output)).toBe(true);
    expect(isCondorUnknownJob(failure!.output)).toBe(false);
  });
  it('builds id constraints and ClassAd strings', () => {
    expect(condorIdConstraint(['12.0', '12.3', '13.1'])).toBe('(ClusterId == 12 && (ProcId == 0 || ProcId == 3)) || (ClusterId == 13 && (ProcId == 1))');
    expect(() => condorIdConstraint(['12'])).toThrow(/not an HTCondor job id/);
    expect(classAdString('grid "a"\\b')).toBe('"grid \\"a\\"\\\\b"');
    expect(() => classAdString('a\nb')).toThrow();
  });
});

describe('parseCondorAnalyze', () => {
  const A = fixtureTranscript('condor', 'analyze.txt');
  it('says why idle jobs wait: the run analysis summary and the conditions no slot matches', () => {
    expect(Object.fromEntries(parseCondorAnalyze(transcriptEntry(A, 'condor_q -better-analyze 40.0 41.0').output))).toEqual({
      '40.0': '0 of 10 machines can run it (10 rejected by its requirements); no slot matches TARGET.GPUs >= RequestGPUs',
      '41.0': '0 of 10 machines can run it (10 rejected by its requirements); no slot matches TARGET.Memory >= RequestMemory',
    });
    expect(parseCondorAnalyze(transcriptEntry(A, 'condor_q -better-analyze 42.0').output).get('42.0')).toBe('0 of 10 machines can run it (10 match but are serving other users)');
    expect(parseCondorAnalyze('nonsense\n').size).toBe(0);
  });
});
