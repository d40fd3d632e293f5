import { TaskStatus, type ClaimedTask } from '@firn/core';
import { BatchState } from './plugins/plugin';
import { groupByRequirements, judgeBatchJob } from './queue-daemon';

describe('judgeBatchJob', () => {
  const now = 1_000_000;
  const queued = { status: TaskStatus.QUEUED, statusChangedAt: now - 60_000 };
  const running = { status: TaskStatus.PROCESSING, statusChangedAt: now - 60_000 };
  const fresh = { status: TaskStatus.QUEUED, statusChangedAt: now - 1_000 };

  test('queued and running jobs leave the task alone', () => {
    expect(judgeBatchJob(queued, { state: BatchState.QUEUED, rawState: 'PD' }, now, 10_000)).toBeNull();
    expect(judgeBatchJob(running, { state: BatchState.RUNNING, rawState: 'R' }, now, 10_000)).toBeNull();
  });

  test('a cancelled job evicts the task at once, with the batch system words', () => {
    expect(judgeBatchJob(fresh, { state: BatchState.CANCELLED, rawState: 'CANCELLED', reason: 'by 0' }, now, 10_000)).toEqual({
      to: TaskStatus.EVICTED, reason: 'batch job cancelled (CANCELLED, by 0)',
    });
  });

  test('a failure is ERROR for a running task and EVICTED for one the pilot never started', () => {
    const job = { state: BatchState.FAILED, rawState: 'OUT_OF_MEMORY', reason: 'OutOfMemory', exitCode: 137 };
    expect(judgeBatchJob(running, job, now, 10_000)).toEqual({ to: TaskStatus.ERROR, reason: 'batch system reports failure: OUT_OF_MEMORY, OutOfMemory, exit 137' });
    expect(judgeBatchJob(queued, job, now, 10_000)?.to).toBe(TaskStatus.EVICTED);
  });

  test('a job that ended or vanished is lost only after the grace period', () => {
    expect(judgeBatchJob(fresh, { state: BatchState.UNKNOWN, rawState: '' }, now, 10_000)).toBeNull();
    expect(judgeBatchJob(queued, { state: BatchState.UNKNOWN, rawState: '' }, now, 10_000)).toEqual({ to: TaskStatus.EVICTED, reason: 'batch job vanished from the batch system' });
    expect(judgeBatchJob(fresh, { state: BatchState.COMPLETED, rawState: 'COMPLETED', exitCode: 0 }, now, 10_000)).toBeNull();
    expect(judgeBatchJob(running, { state: BatchState.COMPLETED, rawState: 'COMPLETED', exitCode: 0 }, now, 10_000)).toEqual({
      to: TaskStatus.EVICTED, reason: 'batch job ended without the pilot finishing (COMPLETED, exit 0)',
    });
  });
});

describe('groupByRequirements', () => {
  const task = (id: number, cpu: number, site: string | null = null): ClaimedTask => ({
    id, datasetId: 1, jobId: id, jobIndex: id, taskIndex: 0, name: 't', passkey: 'p', leaseUntil: 0,
    requirements: { cpu, gpu: 0, memory: 2000, disk: 10000, time: 60, site },
  });
  test('identical requirements share a group, in claim order', () => {
    const groups = groupByRequirements([task(1, 1), task(2, 4), task(3, 1), task(4, 1, 'wisc'), task(5, 4)]);
    expect(groups.map((g) => g.map((t) => t.id))).toEqual([[1, 3], [2, 5], [4]]);
  });
  test('no tasks, no groups', () => {
    expect(groupByRequirements([])).toEqual([]);
  });
});
