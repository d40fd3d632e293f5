/**
 * An in-memory batch system for testing the daemon's cycle logic deterministically (the
 * real plugins are exercised against real batch systems in the other test files).
 */
import {
  BatchState,
  jobNameFor,
  taskIdFromJobName,
  type BatchJobStatus,
  type BatchPlugin,
  type ListedJob,
  type SubmitBatch,
  type SubmitResult,
} from '@firn/queue';
import { BatchSystemError } from '@firn/core';

export interface FakeJob {
  batchId: string;
  name: string;
  state: BatchState;
  rawState: string;
  reason?: string;
  exitCode?: number;
}

export class FakeBatchSystem implements BatchPlugin {
  readonly name = 'fake';
  /** Pretend every job runs on this host (as the local plugin does). */
  workerHost?: string;
  readonly jobs = new Map<string, FakeJob>();
  readonly submissions: SubmitBatch[] = [];
  readonly removed: string[] = [];
  private next = 100;
  /** Make the next submit fail with this message; `accepted` = the jobs exist anyway (a timeout after the fact). */
  failNextSubmit: { message: string; accepted?: boolean } | null = null;
  /** Called inside submit (tests block here). */
  onSubmit: ((batch: SubmitBatch) => Promise<void>) | null = null;

  async writeConfig(batch: SubmitBatch): Promise<string> {
    return `${batch.dir}/submit.sh`;
  }

  async submit(batch: SubmitBatch): Promise<SubmitResult> {
    this.submissions.push(batch);
    if (this.onSubmit) await this.onSubmit(batch);
    const base = this.next++;
    const batchIds = new Map<number, string>();
    batch.tasks.forEach((t, i) => batchIds.set(t.taskId, this.add(`${base}_${i}`, t.taskId)));
    const fail = this.failNextSubmit;
    if (fail) {
      this.failNextSubmit = null;
      if (!fail.accepted) for (const id of batchIds.values()) this.jobs.delete(id);
      throw new BatchSystemError(`sbatch failed (exit 1): ${fail.message}`, 'sbatch', 1, fail.message);
    }
    return { batchIds };
  }

  add(batchId: string, taskId: number, state: BatchState = BatchState.QUEUED): string {
    this.jobs.set(batchId, { batchId, name: jobNameFor(taskId), state, rawState: state === BatchState.QUEUED ? 'PD' : 'R' });
    return batchId;
  }

  set(batchId: string, change: Partial<FakeJob>): void {
    const j = this.jobs.get(batchId);
    if (!j) throw new Error(`no fake job ${batchId}`);
    Object.assign(j, change);
  }

  async checkJobStatus(batchIds: string[]): Promise<Map<string, BatchJobStatus>> {
    const out = new Map<string, BatchJobStatus>();
    for (const id of batchIds) {
      const j = this.jobs.get(id);
      out.set(id, j ? { batchId: id, state: j.state, rawState: j.rawState, reason: j.reason, exitCode: j.exitCode, name: j.name } : { batchId: id, state: BatchState.UNKNOWN, rawState: '' });
    }
    return out;
  }

  async remove(batchIds: string[]): Promise<void> {
    for (const id of batchIds) {
      const j = this.jobs.get(id);
      if (j && (j.state === BatchState.QUEUED || j.state === BatchState.RUNNING)) {
        this.removed.push(id);
        j.state = BatchState.CANCELLED;
        j.rawState = 'CA';
      }
    }
  }

  async listJobs(): Promise<ListedJob[]> {
    return [...this.jobs.values()]
      .filter((j) => j.state === BatchState.QUEUED || j.state === BatchState.RUNNING)
      .map((j) => ({ batchId: j.batchId, name: j.name, state: j.state }));
  }

  async cleanQ(keep: (job: ListedJob, taskId: number) => boolean): Promise<ListedJob[]> {
    const doomed = (await this.listJobs()).filter((j) => {
      const id = taskIdFromJobName(j.name);
      return id !== null && !keep(j, id);
    });
    await this.remove(doomed.map((j) => j.batchId));
    return doomed;
  }

  /** Live jobs per task id. */
  liveByTask(): Map<number, string[]> {
    const out = new Map<number, string[]>();
    for (const j of this.jobs.values()) {
      if (j.state !== BatchState.QUEUED && j.state !== BatchState.RUNNING) continue;
      const id = taskIdFromJobName(j.name)!;
      out.set(id, [...(out.get(id) ?? []), j.batchId]);
    }
    return out;
  }
}
