import client from 'prom-client';
import { registerTaskGauges, type Db, type Logger } from '@firn/core';
import { CYCLES, type CycleEvent } from './dh-daemon';

/**
 * firn-dh's Prometheus metrics (served on `[dh] metrics_port`, see core metrics-server.ts).
 * Bounded labels: `cycle` is one of CYCLES, `outcome` a fixed word per cycle, `reason` the
 * error class name (FirnError subclasses, `Error`, `other` past 20 distinct names).
 */
export interface DhMetrics {
  registry: client.Registry;
  observe(event: CycleEvent): void;
}

const MAX_REASONS = 20;

/** With `registry` (firn up: firn-mon's) only dh's own series are added there (see createQueueMetrics). */
export function createDhMetrics(db: Db, options: { logger?: Logger; registry?: client.Registry } = {}): DhMetrics {
  const registry = options.registry ?? new client.Registry();
  if (!options.registry) {
    client.collectDefaultMetrics({ register: registry, prefix: 'firn_dh_' });
    registerTaskGauges(registry, db, { logger: options.logger });
  }
  const duration = new client.Histogram({
    name: 'firn_dh_cycle_duration_seconds', help: 'duration of one dh cycle', labelNames: ['cycle'],
    buckets: [0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300], registers: [registry],
  });
  const cycleErrors = new client.Counter({ name: 'firn_dh_cycle_errors_total', help: 'cycles that failed, by cycle and error class', labelNames: ['cycle', 'reason'], registers: [registry] });
  const copies = new client.Counter({ name: 'firn_dh_copies_total', help: 'output files copied to their destination', registers: [registry] });
  const bytes = new client.Counter({ name: 'firn_dh_copied_bytes_total', help: 'bytes of the output files copied', registers: [registry] });
  const files = new client.Counter({ name: 'firn_dh_files_total', help: 'output files handled, by outcome (present: already verified in place; refused: outside the storage roots)', labelNames: ['outcome'], registers: [registry] });
  const tasks = new client.Counter({ name: 'firn_dh_tasks_total', help: 'tasks moved by the dh cycles, by outcome', labelNames: ['outcome'], registers: [registry] });
  for (const cycle of CYCLES) duration.zero({ cycle });
  copies.inc(0);
  bytes.inc(0);
  const reasons = new Set<string>();
  const reasonOf = (e: Error) => {
    const name = /^[A-Za-z][A-Za-z0-9_]{0,40}$/.test(e.name) ? e.name : 'other';
    if (reasons.has(name) || reasons.size < MAX_REASONS) {
      reasons.add(name);
      return name;
    }
    return 'other';
  };
  return {
    registry,
    observe(ev) {
      duration.observe({ cycle: ev.name }, ev.seconds);
      if (ev.error) {
        cycleErrors.inc({ cycle: ev.name, reason: reasonOf(ev.error) });
        return;
      }
      switch (ev.name) {
        case 'data': {
          const r = ev.result;
          if (!r) return;
          copies.inc(r.copied);
          bytes.inc(r.bytes);
          files.inc({ outcome: 'present' }, r.present);
          files.inc({ outcome: 'refused' }, r.refused);
          tasks.inc({ outcome: 'ok' }, r.ok);
          tasks.inc({ outcome: 'copy_error' }, r.errors);
          break;
        }
        case 'lost':
          tasks.inc({ outcome: 'evicted' }, ev.result?.length ?? 0);
          break;
        case 'retries':
          tasks.inc({ outcome: 'reset' }, ev.result?.reset ?? 0);
          tasks.inc({ outcome: 'failed' }, ev.result?.failed ?? 0);
          break;
        default:
          break;
      }
    },
  };
}
