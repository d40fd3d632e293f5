/**
 * The black-hole cycle: a worker node that failed at least [dh] blackhole_threshold of its
 * last [dh] blackhole_window tasks (node.recent, kept by firn-mon through core
 * recordNodeOutcome) is excluded for [dh] blackhole_cooldown seconds: node.blackholed_until
 * is set, which claims and pilot.start consult (core blackholedHosts / isBlackholed). Its
 * outcome window starts afresh, so after the cool-down it is judged on new tasks only.
 */
import { chunk, recentFailures, type Db, type Logger } from '@firn/core';
import { insertHistory, writeTransaction } from './db-writes';

export interface BlackholeOptions {
  window: number;
  threshold: number;
  cooldownS: number;
  batchSize: number;
}

export interface Blackholed {
  id: number;
  hostname: string;
  failures: number;
  until: number;
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
  const hits: Blackholed[] = rows
    .map((r) => ({ id: Number(r.id), hostname: r.hostname, failures: recentFailures(r.recent, o.window), until }))
    .filter((r) => r.failures >= o.threshold);
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
        reason: `${h.hostname}: ${h.failures} of its last ${o.window} tasks failed (threshold ${o.threshold}); excluded until ${new Date(until).toISOString()}`,
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
