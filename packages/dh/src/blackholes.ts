/**
 * The black-hole cycle: a worker node that failed at least [dh] blackhole_threshold of its
 * last [dh] blackhole_window tasks (node.recent, kept by firn-mon through core
 * recordNodeOutcome) is excluded for [dh] blackhole_cooldown seconds: node.blackholed_until
 * is set, which claims and pilot.start consult (core blackholedHosts / isBlackholed). Its
 * outcome window starts afresh, so after the cool-down it is judged on new tasks only.
 *
 * Judged fairly: failing often is not enough — a dataset with a bug fails on every node, and
 * on a grid of one host (every `firn up`) that host would be excluded and all production
 * would stop. A node that meets the threshold is black-holed only when its failures are its
 * own (`judgeNode`): the datasets of its failed tasks (tasks whose last run was on it and
 * failed: ERROR / FAILED / EVICTED, or waiting for a retry with failures or evictions) did
 * clearly better elsewhere — on the other hosts that ran them, at most half its failure
 * fraction — or it fails tasks of two datasets or more. A node that is the only one that ran
 * its failing dataset is never black-holed for it. The evidence is the task table (last host
 * per task, changed within the lookback), read with one grouped query per candidate.
 */
import { TaskStatus, chunk, recentFailures, type Db, type Logger } from '@firn/core';
import { insertHistory, writeTransaction } from './db-writes';

export interface BlackholeOptions {
  window: number;
  threshold: number;
  cooldownS: number;
  batchSize: number;
  /** How far back the task table is read for evidence (default BLACKHOLE_LOOKBACK_MS). */
  lookbackMs?: number;
  /** Nodes spared last time and why (kept by the daemon, so that each is logged once). */
  spared?: Map<string, string>;
}

export interface Blackholed {
  id: number;
  hostname: string;
  failures: number;
  until: number;
  /** Why its failures are its own (for the history row). */
  evidence?: string;
}

/** How far back the task table is read for a node's evidence. */
export const BLACKHOLE_LOOKBACK_MS = 24 * 3600_000;
const OK_STATES = [TaskStatus.READYTOCOPY, TaskStatus.COPYING, TaskStatus.COPIED, TaskStatus.OK];
const FAILED_STATES = [TaskStatus.ERROR, TaskStatus.FAILED, TaskStatus.EVICTED];
/** A task waiting for its next attempt whose last attempt (on `host`) failed. */
const RETRY_STATES = [TaskStatus.RESET, TaskStatus.IDLE, TaskStatus.WAITING, TaskStatus.QUEUEING, TaskStatus.QUEUED];

/** A verdict on a node that met the threshold: black-holed, with the evidence, or spared, with why. */
export type NodeVerdict = { blackhole: true; evidence: string } | { blackhole: false; why: string };

/**
 * Are `hostname`'s failures its own? See the header. `since`: the lookback start (ms).
 */
export async function judgeNode(db: Db, hostname: string, since: number): Promise<NodeVerdict> {
  const failedHere = (q: ReturnType<Db>) =>
    q.where('t.host', hostname).andWhere('t.status_changed_at', '>=', since).andWhere((w) =>
      w.whereIn('t.status', FAILED_STATES).orWhere((w2) => w2.whereIn('t.status', RETRY_STATES).andWhere((w3) => w3.where('t.failures', '>', 0).orWhere('t.evictions', '>', 0))));
  const ds: Array<{ dataset_id: number }> = await failedHere(db('task as t')).distinct('t.dataset_id').orderBy('t.dataset_id').limit(100);
  const datasets = ds.map((r) => Number(r.dataset_id));
  if (datasets.length === 0) return { blackhole: false, why: 'no failed task of it on record' };
  if (datasets.length >= 2) return { blackhole: true, evidence: `it failed tasks of ${datasets.length} datasets (${datasets.slice(0, 5).join(', ')}${datasets.length > 5 ? ', …' : ''})` };
  // one dataset: how did it do here, and how on the other hosts that ran it?
  const rows: Array<{ here: number | string; ok: number | string; bad: number | string }> = await db('task as t')
    .select(db.raw('CASE WHEN t.host = ? THEN 1 ELSE 0 END AS here', [hostname]))
    .sum({ ok: db.raw(`CASE WHEN t.status IN (${OK_STATES.map(() => '?').join(', ')}) THEN 1 ELSE 0 END`, OK_STATES) })
    .sum({
      bad: db.raw(
        `CASE WHEN t.status IN (${FAILED_STATES.map(() => '?').join(', ')}) OR (t.status IN (${RETRY_STATES.map(() => '?').join(', ')}) AND (t.failures > 0 OR t.evictions > 0)) THEN 1 ELSE 0 END`,
        [...FAILED_STATES, ...RETRY_STATES],
      ),
    })
    .where('t.dataset_id', datasets[0]!)
    .whereNotNull('t.host')
    .andWhere('t.status_changed_at', '>=', since)
    .groupByRaw('CASE WHEN t.host = ? THEN 1 ELSE 0 END', [hostname]);
  const of = (here: number) => {
    const r = rows.find((x) => Number(x.here) === here);
    return { ok: Number(r?.ok ?? 0), bad: Number(r?.bad ?? 0) };
  };
  const mine = of(1);
  const others = of(0);
  const ran = others.ok + others.bad;
  if (ran === 0) return { blackhole: false, why: `it is the only host that ran dataset ${datasets[0]}` };
  const fracHere = mine.bad / Math.max(1, mine.ok + mine.bad);
  const fracElsewhere = others.bad / ran;
  if (fracElsewhere <= fracHere / 2) {
    return { blackhole: true, evidence: `dataset ${datasets[0]}: ${mine.bad} of ${mine.ok + mine.bad} tasks failed here, ${others.bad} of ${ran} on other hosts` };
  }
  return { blackhole: false, why: `dataset ${datasets[0]} fails as often elsewhere (${others.bad} of ${ran} on other hosts, ${mine.bad} of ${mine.ok + mine.bad} here): the dataset's fault, not the host's` };
}

/** Look at nodes updated since `since` (ms; 0 = all); returns the nodes black-holed and where to look from next time. */
export async function detectBlackholes(db: Db, logger: Logger, now: number, since: number, o: BlackholeOptions): Promise<{ blackholed: Blackholed[]; next: number }> {
  const rows: Array<{ id: number; hostname: string; recent: string; updated_at: number }> = await db('node')
    .select('id', 'hostname', 'recent', 'updated_at')
    .where('updated_at', '>=', since)
    .andWhere('fail_count', '>=', o.threshold)
    .andWhere((w) => w.whereNull('blackholed_until').orWhere('blackholed_until', '<=', now))
    .orderBy([{ column: 'updated_at', order: 'asc' }, { column: 'id', order: 'asc' }])
    .limit(o.batchSize);
  // a full page: continue after it next time; else everything up to now was seen
  const last = rows[rows.length - 1];
  const next = rows.length >= o.batchSize && last ? Number(last.updated_at) : now;
  const until = now + o.cooldownS * 1000;
  const candidates: Blackholed[] = rows
    .map((r) => ({ id: Number(r.id), hostname: r.hostname, failures: recentFailures(r.recent, o.window), until }))
    .filter((r) => r.failures >= o.threshold);
  const hits: Blackholed[] = [];
  for (const c of candidates) {
    const v = await judgeNode(db, c.hostname, now - (o.lookbackMs ?? BLACKHOLE_LOOKBACK_MS));
    if (v.blackhole) hits.push({ ...c, evidence: v.evidence });
    else if (o.spared?.get(c.hostname) !== v.why) {
      // said once per node and reason, not every cycle
      o.spared?.set(c.hostname, v.why);
      logger.info('node fails often but is not black-holed', { host: c.hostname, failures: c.failures, window: o.window, why: v.why });
    }
  }
  if (hits.length === 0) return { blackholed: [], next };

  const blackholed = await writeTransaction(db, async (trx) => {
    const done: Blackholed[] = [];
    for (const part of chunk(hits, 500)) {
      await trx('node')
        .whereIn('id', part.map((h) => h.id))
        .andWhere((w) => w.whereNull('blackholed_until').orWhere('blackholed_until', '<=', now))
        .update({ blackholed_until: until, recent: '' });
      done.push(...part);
    }
    await insertHistory(
      trx,
      done.map((h) => ({
        entity: 'node' as const,
        entityId: h.id,
        action: 'blackhole',
        reason: `${h.hostname}: ${h.failures} of its last ${o.window} tasks failed (threshold ${o.threshold}); ${h.evidence ?? ''}; excluded until ${new Date(until).toISOString()}`,
      })),
      now,
    );
    return done;
  });
  for (const h of blackholed) {
    logger.warn('black-hole node excluded from claims', { host: h.hostname, failures: h.failures, window: o.window, until: new Date(h.until).toISOString() });
  }
  return { blackholed, next };
}
