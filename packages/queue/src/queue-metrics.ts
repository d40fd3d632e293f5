import client from 'prom-client';
import { registerTaskGauges, type Db, type Logger } from '@firn/core';
import { PHASES, type CycleReport } from './queue-daemon';

/**
 * firn-queue's Prometheus metrics (served on `[queue] metrics_port`, see core metrics-server.ts).
 * Every label set is bounded: `grid` is this daemon's one grid, `phase` one of PHASES, `status`
 * a task state; dataset series come from registerTaskGauges (the most recent active datasets).
 */
export interface QueueMetrics {
  registry: client.Registry;
  /** Feed one cycle's report (QueueDaemonOptions.onCycle). */
  observe(report: CycleReport): void;
}

/**
 * With `registry` (firn up: firn-mon's) only the queue's own series are added there: the
 * process metrics and the task gauges are the owner's.
 */
export function createQueueMetrics(db: Db, grid: string, options: { logger?: Logger; registry?: client.Registry } = {}): QueueMetrics {
  const registry = options.registry ?? new client.Registry();
  if (!options.registry) {
    client.collectDefaultMetrics({ register: registry, prefix: 'firn_queue_' });
    registerTaskGauges(registry, db, { logger: options.logger });
  }
  const labelNames = ['grid'] as const;
  const depth = new client.Gauge({ name: 'firn_queue_depth', help: 'QUEUEING + QUEUED tasks of the grid after the last cycle', labelNames, registers: [registry] });
  const claims = new client.Counter({ name: 'firn_queue_claims_total', help: 'tasks claimed', labelNames, registers: [registry] });
  const submitted = new client.Counter({ name: 'firn_queue_submitted_total', help: 'tasks submitted to the batch system', labelNames, registers: [registry] });
  const submitErrors = new client.Counter({ name: 'firn_queue_submit_errors_total', help: 'submissions the batch system refused', labelNames, registers: [registry] });
  const outcomes = new client.Counter({
    name: 'firn_queue_reconciled_total', help: 'tasks the cycle settled from the batch system\'s view, by outcome', labelNames: ['grid', 'outcome'], registers: [registry],
  });
  const errors = new client.Counter({ name: 'firn_queue_errors_total', help: 'cycle phases that failed, by phase', labelNames: ['grid', 'phase'], registers: [registry] });
  const cycles = new client.Counter({ name: 'firn_queue_cycles_total', help: 'cycles run', labelNames, registers: [registry] });
  const duration = new client.Histogram({
    name: 'firn_queue_cycle_duration_seconds', help: 'duration of one cycle phase (and of the whole cycle: phase="total")',
    labelNames: ['grid', 'phase'], buckets: [0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300], registers: [registry],
  });
  const lastCycle = new client.Gauge({ name: 'firn_queue_last_cycle_timestamp_seconds', help: 'when the last cycle finished', labelNames, registers: [registry] });
  // every series exists from the start (rate() over a counter that appears late misses its first step)
  for (const c of [claims, submitted, submitErrors, cycles]) c.inc({ grid }, 0);
  for (const phase of PHASES) errors.inc({ grid, phase }, 0);
  return {
    registry,
    observe(r) {
      depth.set({ grid }, r.queued_after);
      claims.inc({ grid }, r.claimed);
      submitted.inc({ grid }, r.submitted);
      submitErrors.inc({ grid }, r.submit_failed);
      for (const outcome of ['adopted', 'released', 'evicted', 'failed', 'removed'] as const) if (r[outcome]) outcomes.inc({ grid, outcome }, r[outcome]);
      for (const e of r.errors) {
        const phase = e.slice(0, e.indexOf(':'));
        errors.inc({ grid, phase: (PHASES as readonly string[]).includes(phase) ? phase : 'other' });
      }
      cycles.inc({ grid });
      for (const [phase, ms] of Object.entries(r.durations)) if (typeof ms === 'number') duration.observe({ grid, phase }, ms / 1000);
      lastCycle.set({ grid }, r.finished_at / 1000);
    },
  };
}
