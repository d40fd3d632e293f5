import { TASK_STATUSES, TRANSITIONS, TaskStatus as S, deriveDatasetStatus, deriveJobStatus, isLegal, type Actor } from './states';

const ACTORS: Actor[] = ['core', 'queue', 'mon', 'dh', 'tray'];

// The expected table, written out independently of TRANSITIONS: from → to → actors.
const EXPECTED: Array<[string, string, Actor[], boolean?]> = [
  ['IDLE', 'WAITING', ['core']],
  ['WAITING', 'QUEUEING', ['queue']],
  ['QUEUEING', 'QUEUED', ['queue']],
  ['QUEUEING', 'WAITING', ['queue']],
  ['QUEUED', 'PROCESSING', ['mon']],
  ['QUEUED', 'EVICTED', ['queue', 'dh']],
  ['PROCESSING', 'EVICTED', ['queue', 'dh']],
  ['PROCESSING', 'READYTOCOPY', ['mon']],
  ['PROCESSING', 'ERROR', ['mon', 'queue']],
  ['READYTOCOPY', 'COPYING', ['dh']],
  ['COPYING', 'COPIED', ['dh']],
  ['COPYING', 'ERROR', ['dh']],
  ['COPIED', 'OK', ['dh']],
  ['ERROR', 'RESET', ['core']],
  ['EVICTED', 'RESET', ['core']],
  ['ERROR', 'FAILED', ['core']],
  ['EVICTED', 'FAILED', ['core']], // max_evictions exhausted (added with firn-dh)
  ['RESET', 'WAITING', ['core']],
  ['RESET', 'IDLE', ['core']],
  ...(['IDLE', 'WAITING', 'QUEUEING', 'QUEUED', 'PROCESSING', 'READYTOCOPY', 'COPYING', 'COPIED', 'ERROR', 'EVICTED', 'RESET'].map(
    (f) => [f, 'SUSPENDED', ['tray']] as [string, string, Actor[]],
  )),
  ['SUSPENDED', 'RESET', ['tray']],
  ['FAILED', 'RESET', ['tray']],
  ['OK', 'RESET', ['tray'], true],
];

function expectedActors(from: string, to: string): { actors: Actor[]; adminOnly: boolean } {
  const rows = EXPECTED.filter(([f, t]) => f === from && t === to);
  return { actors: rows.flatMap((r) => r[2]), adminOnly: rows.some((r) => r[3] === true) };
}

describe('task state machine', () => {
  // every (from, to, actor) triple: legal exactly when the expected table says so
  const cases: Array<[string, string, Actor]> = [];
  for (const from of TASK_STATUSES) for (const to of TASK_STATUSES) for (const by of ACTORS) cases.push([from, to, by]);

  test.each(cases)('%s → %s by %s', (from, to, by) => {
    const { actors, adminOnly } = expectedActors(from, to);
    const legalForAnyone = actors.includes(by);
    expect(isLegal(from as S, to as S, by, true)).toBe(legalForAnyone);
    expect(isLegal(from as S, to as S, by, false)).toBe(legalForAnyone && !adminOnly);
  });

  test('the table has no rule the expectation lacks', () => {
    for (const r of TRANSITIONS) for (const f of r.from) for (const by of r.by) {
      expect(expectedActors(f, r.to).actors).toContain(by);
    }
  });
});

describe('status derivation', () => {
  test.each([
    [['OK', 'OK', 'OK'], 'OK'],
    [['OK', 'FAILED', 'OK'], 'FAILED'],
    [['OK', 'FAILED', 'WAITING'], 'PROCESSING'],
    [['SUSPENDED', 'OK'], 'SUSPENDED'],
    [['SUSPENDED', 'QUEUED'], 'PROCESSING'],
    [['IDLE', 'WAITING'], 'PROCESSING'],
    [['FAILED', 'SUSPENDED'], 'FAILED'],
    [['OK', 'FAILED', 'IDLE', 'IDLE'], 'FAILED'], // dependents of a failed task can never run
    [['SUSPENDED', 'IDLE'], 'SUSPENDED'],
    [['OK', 'IDLE'], 'PROCESSING'], // about to be released
    [[], 'PROCESSING'],
  ])('job of %j is %s', (tasks, expected) => {
    expect(deriveJobStatus(tasks as S[])).toBe(expected);
  });

  test.each([
    [{ OK: 10 }, undefined, 'COMPLETE'],
    [{ OK: 9, PROCESSING: 1 }, undefined, 'PROCESSING'],
    [{ OK: 9, FAILED: 1 }, undefined, 'ERRORS'],
    [{ OK: 5, SUSPENDED: 5 }, undefined, 'SUSPENDED'],
    [{ OK: 10 }, 'OBSOLETE', 'OBSOLETE'],
    [{}, 'PROCESSING', 'PROCESSING'],
  ])('dataset with jobs %j (was %s) is %s', (jobs, current, expected) => {
    expect(deriveDatasetStatus(jobs, current as never)).toBe(expected);
  });
});
