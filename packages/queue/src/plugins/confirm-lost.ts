/**
 * One rule for every plugin before a job may be called gone (BatchState.UNKNOWN, which the
 * daemon turns into EVICTED): missing from the queue listing → asked by its own id → asked
 * accounting → only then UNKNOWN. A listing is not the last word: Slurm 22.05's
 * `squeue --array` omits the last pending element of a stepped array (`--array=0,3,…,18`)
 * which `squeue --jobs=<id>` still shows (test/fixtures/slurm/squeue-stepped-array-*), and a
 * finished job is only in accounting.
 *
 * Each step answers for the ids it is given: what it found (keyed by the id asked for), and
 * which ids it could not answer for (its tool failed). A found status of UNOBSERVED is weak
 * ("the batch system still knows this id but says nothing of its state", e.g. SGE `qstat -j`):
 * later steps still look, and it stands only if they find nothing better. An id that no step
 * found is UNKNOWN only when every step answered for it; otherwise UNOBSERVED (not judged this
 * cycle). Pure apart from the steps it calls, so it is tested with steps that replay captured
 * output.
 */
import { BatchState, type BatchJobStatus } from './plugin';

export interface LookupAnswer {
  /** requested id → its status */
  found: ReadonlyMap<string, BatchJobStatus>;
  /** Requested ids this step could not answer for (the tool failed, or cannot be asked). */
  unanswered?: Iterable<string>;
}

export type LookupStep = (ids: string[]) => Promise<LookupAnswer>;

export interface ConfirmSteps {
  /** The queue as listed (every job it shows); a failure throws and fails the whole check. */
  list: LookupStep;
  /** The batch system asked about each id directly (omitted where the listing already is by id). */
  byId?: LookupStep;
  /** Accounting: finished jobs (sacct, qacct, condor_history); omitted where there is none. */
  accounting?: LookupStep;
}

/** The status of every id, UNKNOWN only when confirmed by every step. */
export async function confirmJobStatuses(batchIds: readonly string[], steps: ConfirmSteps): Promise<Map<string, BatchJobStatus>> {
  const wanted = [...new Set(batchIds)];
  const strong = new Map<string, BatchJobStatus>();
  const weak = new Map<string, BatchJobStatus>();
  const unsure = new Set<string>();
  const named: Array<[string, LookupStep | undefined]> = [['listing', steps.list], ['look-up by id', steps.byId], ['accounting', steps.accounting]];
  for (const [, step] of named) {
    const ask = wanted.filter((id) => !strong.has(id));
    if (ask.length === 0) break;
    if (!step) continue;
    const answer = await step(ask);
    const asked = new Set(ask);
    for (const [id, s] of answer.found) {
      if (!asked.has(id)) continue;
      if (s.state === BatchState.UNOBSERVED) {
        if (!weak.has(id)) weak.set(id, { ...s, batchId: id });
      } else strong.set(id, { ...s, batchId: id });
    }
    for (const id of answer.unanswered ?? []) if (asked.has(id)) unsure.add(id);
  }
  const out = new Map<string, BatchJobStatus>();
  for (const id of wanted) {
    const s = strong.get(id) ?? weak.get(id);
    if (s) out.set(id, s);
    else if (unsure.has(id)) out.set(id, { batchId: id, state: BatchState.UNOBSERVED, rawState: 'not confirmed', reason: 'not listed, and a look-up by id or in accounting failed' });
    else out.set(id, { batchId: id, state: BatchState.UNKNOWN, rawState: 'unknown' }); // confirmed by every step there is
  }
  return out;
}

/** A step's answer from a list of statuses (keyed by their own batch ids). */
export function answerOf(statuses: Iterable<BatchJobStatus>, unanswered: Iterable<string> = []): LookupAnswer {
  const found = new Map<string, BatchJobStatus>();
  for (const s of statuses) found.set(s.batchId, s);
  return { found, unanswered };
}
