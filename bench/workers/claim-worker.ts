/**
 * Claim loops of bench/claim.ts, in one process: waits for "go", runs `loops` concurrent claim
 * loops (each on its own database connection, through core's claimTasks — the call firn-queue
 * makes) until the deadline or until none is left, and reports every id it got with per-call
 * latencies. Optionally walks each claimed batch on to OK through core's transition() (the
 * moves queue, mon and dh make), for the "claim + walk to OK" figure.
 */
import { TaskStatus, claimTasks, openDb, transition } from '@firn/core';

export interface WorkerStart {
  url: string;
  gridId: number;
  gridName: string;
  batch: number;
  /** Concurrent claim loops in this process (one connection each). */
  loops: number;
  /** Stop claiming after this many ms from "go". */
  durationMs: number;
  /** Walk every claimed task on to OK (QUEUEING → QUEUED → PROCESSING → READYTOCOPY → COPYING → COPIED → OK). */
  walk: boolean;
}

export interface WorkerReport {
  worker: number;
  ids: number[];
  calls: number;
  /** ms per claimTasks call */
  latencies: number[];
  /** ms from "go" to the last loop's end */
  elapsedMs: number;
  error?: string;
}

const WALK: Array<[TaskStatus, TaskStatus, 'queue' | 'mon' | 'dh']> = [
  [TaskStatus.QUEUEING, TaskStatus.QUEUED, 'queue'],
  [TaskStatus.QUEUED, TaskStatus.PROCESSING, 'mon'],
  [TaskStatus.PROCESSING, TaskStatus.READYTOCOPY, 'mon'],
  [TaskStatus.READYTOCOPY, TaskStatus.COPYING, 'dh'],
  [TaskStatus.COPYING, TaskStatus.COPIED, 'dh'],
  [TaskStatus.COPIED, TaskStatus.OK, 'dh'],
];

export function workerMain(worker: number): void {
  let start: WorkerStart | null = null;
  process.on('message', (m: { start?: WorkerStart; go?: true }) => {
    if (m.start) {
      start = m.start;
      process.send!({ ready: true });
    }
    if (m.go && start) void run(worker, start);
  });
}

async function run(worker: number, s: WorkerStart): Promise<void> {
  const db = openDb(s.url, { poolMax: s.loops + 1 });
  const report: WorkerReport = { worker, ids: [], calls: 0, latencies: [], elapsedMs: 0 };
  const t0 = performance.now();
  const deadline = t0 + s.durationMs;
  const loop = async () => {
    while (performance.now() < deadline) {
      const c0 = performance.now();
      const got = await claimTasks(db, { gridId: s.gridId, gridName: s.gridName, limit: s.batch, capabilities: {}, leaseMs: 600_000, owner: `queue:${s.gridName}` });
      report.latencies.push(performance.now() - c0);
      report.calls++;
      if (got.length === 0) break;
      const ids = got.map((t) => t.id);
      for (const id of ids) report.ids.push(id);
      if (s.walk) {
        for (const [from, to, by] of WALK) await transition(db, { taskIds: ids, from, to, by, actor: by, strict: true });
      }
    }
  };
  try {
    await Promise.all(Array.from({ length: s.loops }, loop));
  } catch (e) {
    report.error = e instanceof Error ? e.stack ?? e.message : String(e);
  }
  report.elapsedMs = performance.now() - t0;
  await db.destroy();
  process.send!({ report }, () => process.disconnect());
}
