/**
 * One claim loop of bench/claim.ts, in its own process: waits for "go", claims batches of
 * WAITING tasks until none is left, and reports every id it got with per-call latencies.
 */
import { claimTasks, openDb } from '@firn/core';

export interface WorkerStart {
  url: string;
  gridId: number;
  gridName: string;
  batch: number;
}

export interface WorkerReport {
  worker: number;
  ids: number[];
  calls: number;
  /** ms per claimTasks call */
  latencies: number[];
  /** ms from "go" to the empty claim */
  elapsedMs: number;
  error?: string;
}

export function workerMain(worker: number): void {
  let start: WorkerStart | null = null;
  process.on('message', (m: { start?: WorkerStart; go?: true }) => {
    if (m.start) {
      start = m.start;
      process.send!({ ready: true });
    }
    if (m.go && start) void loop(worker, start);
  });
}

async function loop(worker: number, s: WorkerStart): Promise<void> {
  const db = openDb(s.url, { poolMax: 2 });
  const report: WorkerReport = { worker, ids: [], calls: 0, latencies: [], elapsedMs: 0 };
  const t0 = performance.now();
  try {
    for (;;) {
      const c0 = performance.now();
      const got = await claimTasks(db, { gridId: s.gridId, gridName: s.gridName, limit: s.batch, capabilities: {}, leaseMs: 600_000, owner: `queue:${s.gridName}` });
      report.latencies.push(performance.now() - c0);
      report.calls++;
      if (got.length === 0) break;
      for (const t of got) report.ids.push(t.id);
    }
  } catch (e) {
    report.error = e instanceof Error ? e.stack ?? e.message : String(e);
  }
  report.elapsedMs = performance.now() - t0;
  await db.destroy();
  process.send!({ report }, () => process.disconnect());
}
