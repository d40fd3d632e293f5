/**
 * Worker processes of bench/peers.ts: the peer job queues' workers, each running a no-op task
 * until the parent says stop (the parent watches the queue drain). Firn's side is not here:
 * bench/peers.ts forks bench/workers/claim-worker.ts's workerMain (claimTasks, then walk to OK
 * through transition()), the code bench/claim.ts measures.
 *
 * Protocol (as claim-worker): {start} → {ready}; {go} → the workers start; {stop} → they stop
 * gracefully and send {report} with the jobs they completed (the parent reads this process's
 * CPU time from /proc, as for Firn's workers).
 */
import { Logger as GraphileLogger, run as runGraphile, type Runner } from 'graphile-worker';
import { Worker as BullWorker } from 'bullmq';

export interface PeerWorkerStart {
  kind: 'graphile' | 'bullmq';
  /** graphile: PostgreSQL connection string; bullmq: redis://host:port */
  url: string;
  /** graphile: its schema; bullmq: the queue name */
  name: string;
  /** Jobs run at once in this process. */
  concurrency: number;
}

export interface PeerWorkerReport {
  worker: number;
  completed: number;
  failed: number;
  error?: string;
}

/** graphile-worker's log lines below "error" dropped (they would be measured too). */
const quietGraphile = new GraphileLogger(() => (level, message) => {
  if (level === 'error') process.stderr.write(`graphile-worker: ${message}\n`);
});

async function startGraphile(s: PeerWorkerStart, count: { completed: number; failed: number }): Promise<() => Promise<void>> {
  const runner: Runner = await runGraphile({
    connectionString: s.url,
    schema: s.name,
    concurrency: s.concurrency,
    maxPoolSize: s.concurrency + 2,
    noHandleSignals: true,
    pollInterval: 1000,
    logger: quietGraphile,
    taskList: { noop: async () => undefined },
  });
  runner.events.on('job:success', () => count.completed++);
  runner.events.on('job:error', () => count.failed++);
  return () => runner.stop();
}

async function startBull(s: PeerWorkerStart, count: { completed: number; failed: number }): Promise<() => Promise<void>> {
  const u = new URL(s.url);
  const worker = new BullWorker(s.name, async () => undefined, {
    connection: { host: u.hostname, port: Number(u.port || 6379), maxRetriesPerRequest: null },
    concurrency: s.concurrency,
    autorun: false,
  });
  worker.on('completed', () => count.completed++);
  worker.on('failed', () => count.failed++);
  worker.on('error', (e) => process.stderr.write(`bullmq worker: ${e.message}\n`));
  void worker.run();
  return () => worker.close();
}

export function peerWorkerMain(worker: number): void {
  let start: PeerWorkerStart | null = null;
  let stop: (() => Promise<void>) | null = null;
  const count = { completed: 0, failed: 0 };
  let error: string | undefined;
  process.on('message', (m: { start?: PeerWorkerStart; go?: true; stop?: true }) => {
    if (m.start) {
      start = m.start;
      process.send!({ ready: true });
    }
    if (m.go && start) {
      const s: PeerWorkerStart = start;
      (s.kind === 'graphile' ? startGraphile(s, count) : startBull(s, count)).then(
        (f) => (stop = f),
        (e: unknown) => (error = e instanceof Error ? e.stack ?? e.message : String(e)),
      );
    }
    if (m.stop) {
      void (async () => {
        try {
          await stop?.();
        } catch (e) {
          error ??= e instanceof Error ? e.message : String(e);
        }
        const report: PeerWorkerReport = { worker, completed: count.completed, failed: count.failed, ...(error ? { error } : {}) };
        process.send!({ report }, () => process.exit(0));
      })();
    }
  });
}
