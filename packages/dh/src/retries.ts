/**
 * The retry cycle: every ERROR / EVICTED task whose backoff is not known to be running gets
 * a decision from its dataset's retry policy (core `decideRetry`):
 *   - wait  → next_retry_at = the time the backoff ends (the task is not looked at before);
 *   - reset → requirements bumped if a rule says so, ERROR|EVICTED → RESET → WAITING (or
 *             IDLE while a dependency is not OK) with the passkey revoked;
 *   - fail  → ERROR|EVICTED → FAILED.
 * Every decision is in history with its reason.
 */
import crypto from 'node:crypto';
import {
  DatasetStatus, TaskStatus, coerceError, compileRetryPolicy, compileStoredRetryPolicy, decideRetry, settleResetTasks, transition,
  type CompiledRetryPolicy, type Db, type Logger, type RetryBump, type RetryDecision,
} from '@firn/core';
import { insertHistory, updateByCase, writeTransaction, type HistoryRow } from './db-writes';

export interface RetryCycleResult {
  /** Tasks reset (now WAITING or IDLE). */
  reset: number;
  /** …of which had their requirements bumped. */
  bumped: number;
  failed: number;
  /** Tasks whose backoff is running (next_retry_at set). */
  waiting: number;
}

interface Row {
  id: number;
  dataset_id: number;
  status: 'ERROR' | 'EVICTED';
  failures: number;
  evictions: number;
  error_summary: string | null;
  status_changed_at: number;
  req_memory: number;
  req_time: number;
  req_disk: number;
  retry: string | null;
}

const INT_MAX = 2_147_483_647;
const BUMP_UNITS: Record<keyof RetryBump, string> = { memory: 'MB', time: 'min', disk: 'MB' };

/** A stable number in [0, 1) for a string: the jitter of one retry, the same every time it is decided. */
export function unitHash(s: string): number {
  return crypto.createHash('sha256').update(s).digest().readUIntBE(0, 6) / 2 ** 48;
}

/**
 * Datasets whose stored rules were already reported as not compiling (with the policy text
 * they had then), so the daemon logs each once, not every cycle. Bounded: cleared when full.
 */
const reportedBadRules = new Map<number, string>();
const REPORTED_MAX = 10_000;

/**
 * The retry policy of each dataset (its `retry` JSON), compiled once per cycle. A rule whose
 * pattern does not compile (a dataset stored before rules were RE2) is kept as a rule that
 * never matches — logged once per dataset here, and named in every decision's reason (so in
 * the task's history) — rather than silently dropped.
 */
function policyCache(logger: Logger): (datasetId: number, json: string | null) => CompiledRetryPolicy {
  const cache = new Map<number, CompiledRetryPolicy>();
  return (datasetId, json) => {
    let p = cache.get(datasetId);
    if (!p) {
      try {
        const compiled = compileStoredRetryPolicy(json ? JSON.parse(json) : undefined);
        p = compiled.policy;
        if (compiled.problems.length && reportedBadRules.get(datasetId) !== json) {
          if (reportedBadRules.size >= REPORTED_MAX) reportedBadRules.clear();
          reportedBadRules.set(datasetId, json ?? '');
          logger.warn('dataset retry rules that do not compile never match', {
            dataset: datasetId,
            rules: compiled.problems.slice(0, 20).map((i) => `${i.path}: ${i.message}`),
          });
        }
      } catch (e) {
        logger.error('dataset retry policy is invalid; using the defaults', { dataset: datasetId, error: coerceError(e).message.slice(0, 2000) });
        p = compileRetryPolicy(undefined);
      }
      cache.set(datasetId, p);
    }
    return p;
  };
}

export async function applyRetryPolicy(db: Db, logger: Logger, now: number, batchSize: number): Promise<RetryCycleResult> {
  const result: RetryCycleResult = { reset: 0, bumped: 0, failed: 0, waiting: 0 };
  const policyOf = policyCache(logger);
  await writeTransaction(db, async (trx) => {
    Object.assign(result, { reset: 0, bumped: 0, failed: 0, waiting: 0 }); // a retried transaction starts over
    const rows: Row[] = await trx('task as t')
      .join('dataset as d', 'd.id', 't.dataset_id')
      .select('t.id', 't.dataset_id', 't.status', 't.failures', 't.evictions', 't.error_summary', 't.status_changed_at',
        't.req_memory', 't.req_time', 't.req_disk', 'd.retry')
      .whereIn('t.status', [TaskStatus.ERROR, TaskStatus.EVICTED])
      .andWhere((w) => w.whereNull('t.next_retry_at').orWhere('t.next_retry_at', '<=', now))
      .whereNotIn('d.status', [DatasetStatus.OBSOLETE, DatasetStatus.DELETED])
      .orderBy('t.id')
      .limit(batchSize);
    if (rows.length === 0) return;

    const waits = new Map<number, number>();
    const history: HistoryRow[] = [];
    const groups = new Map<string, { from: 'ERROR' | 'EVICTED'; to: TaskStatus; reason: string; ids: number[] }>();
    const bumps: Record<'req_memory' | 'req_time' | 'req_disk', Map<number, number>> = { req_memory: new Map(), req_time: new Map(), req_disk: new Map() };

    for (const r of rows) {
      const id = Number(r.id);
      const counters = {
        status: r.status,
        failures: Number(r.failures),
        evictions: Number(r.evictions),
        errorSummary: r.error_summary,
        since: Number(r.status_changed_at),
      };
      const attempt = r.status === TaskStatus.ERROR ? counters.failures : counters.evictions;
      const d: RetryDecision = decideRetry(policyOf(Number(r.dataset_id), r.retry), counters, now, unitHash(`${id}:${r.status}:${attempt}`));
      if (d.action === 'wait') {
        waits.set(id, d.notBefore);
        history.push({ entity: 'task', entityId: id, datasetId: Number(r.dataset_id), action: 'retry_wait', from: r.status, to: r.status,
          reason: `${d.reason}; not before ${new Date(d.notBefore).toISOString()}` });
        continue;
      }
      let reason = d.reason;
      if (d.action === 'reset' && d.bump) {
        const changes: string[] = [];
        for (const k of ['memory', 'time', 'disk'] as const) {
          const m = d.bump[k];
          if (m === undefined) continue;
          const col = `req_${k}` as const;
          const before = Number(r[col]);
          const after = Math.min(INT_MAX, Math.max(1, Math.ceil(before * m)));
          bumps[col].set(id, after);
          changes.push(`${k} ${before} → ${after} ${BUMP_UNITS[k]} (×${m})`);
        }
        reason += `; requirements bumped: ${changes.join(', ')}`;
        result.bumped++;
      }
      const to = d.action === 'reset' ? TaskStatus.RESET : TaskStatus.FAILED;
      const key = `${r.status}\u0000${to}\u0000${reason}`;
      const g = groups.get(key) ?? { from: r.status, to, reason, ids: [] };
      g.ids.push(id);
      groups.set(key, g);
    }

    const retryable = { status: [TaskStatus.ERROR, TaskStatus.EVICTED] };
    if (waits.size) result.waiting = await updateByCase(trx, 'task', 'next_retry_at', waits, retryable);
    for (const [col, values] of Object.entries(bumps)) if (values.size) await updateByCase(trx, 'task', col, values, retryable);
    if (history.length) await insertHistory(trx, history, now);

    const resetIds: number[] = [];
    for (const g of groups.values()) {
      const changed = await transition(trx, {
        taskIds: g.ids, from: g.from, to: g.to, by: 'core', actor: 'dh', reason: g.reason, strict: false,
        ...(g.to === TaskStatus.FAILED ? { set: { lease_until: null } } : {}),
      });
      if (g.to === TaskStatus.RESET) resetIds.push(...changed);
      else result.failed += changed.length;
    }
    const settled = await settleResetTasks(trx, resetIds, 'dh', 'retry (passkey revoked)');
    result.reset = settled.waiting.length + settled.idle.length;
  });
  if (result.reset || result.failed) logger.info('retry policy applied', { ...result });
  return result;
}
