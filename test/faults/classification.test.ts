/**
 * Which batch-system failures of a running task are the payload's (ERROR, failures + 1: its
 * memory or time limits, so bump rules apply) and which are the infrastructure's (EVICTED,
 * evictions + 1) — docs/production-manager.md "What counts as a failure, what as an eviction".
 */
import { TaskStatus } from '@firn/core';
import { BatchState, judgeBatchJob } from '@firn/queue';

const now = Date.now();
const running = { status: TaskStatus.PROCESSING, statusChangedAt: now - 600_000 };
const judge = (rawState: string, reason?: string, exitCode?: number) =>
  judgeBatchJob(running, { state: BatchState.FAILED, rawState, ...(reason ? { reason } : {}), ...(exitCode !== undefined ? { exitCode } : {}) }, now, 10_000);

test.each([
  ['OUT_OF_MEMORY', 'OutOfMemory', 137],
  ['TIMEOUT', undefined, undefined],
  ['DEADLINE', undefined, undefined],
  ['exited', 'exit code 137', 137],
  ['Eqw', 'job exceeded h_rt limit', undefined],
])('%s (%s) of a running task is the payload: ERROR', (raw, reason, code) => {
  expect(judge(raw, reason, code)?.to).toBe(TaskStatus.ERROR);
});

test.each([
  ['NODE_FAIL', undefined, undefined],
  ['BOOT_FAIL', undefined, undefined],
  ['exited', 'exit code 4', 4], // the pilot could not reach firn-mon for its whole retry horizon
  ['exited', 'exit code 3', 3], // the pilot's passkey was refused
  ['FAILED', 'NonZeroExitCode', 1],
])('%s (%s) of a running task is the infrastructure: EVICTED', (raw, reason, code) => {
  const v = judge(raw, reason, code);
  expect(v?.to).toBe(TaskStatus.EVICTED);
  expect(v?.reason).toMatch(/^batch job failed without the pilot's report: /);
});
