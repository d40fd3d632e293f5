/**
 * Worker nodes and black holes. firn-mon records each finished task's outcome per host
 * (`recordNodeOutcome`); firn-dh marks a host that fails too often as black-holed for a
 * cool-down (node.blackholed_until); claims and `pilot.start` ask `blackholedHosts` /
 * `isBlackholed` and stay away from it.
 */
import { chunk, isMysql, now as nowMs, type DbOrTrx } from './db';

/** How many outcomes `node.recent` keeps (its column width). */
export const NODE_RECENT_LENGTH = 64;
export const NodeOutcome = { OK: 'O', FAILED: 'F' } as const;

export interface NodeOutcomeRecord {
  host: string;
  gridId?: number | null;
  ok: boolean;
}

/**
 * Hosts whose black-hole cool-down has not ended at `now` — of one grid when `gridId` is
 * given (e.g. for a batch system's exclude-nodes directive).
 */
export async function blackholedHosts(db: DbOrTrx, now: number = nowMs(), gridId?: number): Promise<string[]> {
  const q = db('node').select('hostname').where('blackholed_until', '>', now).orderBy('hostname');
  if (gridId !== undefined) q.andWhere('grid_id', gridId);
  const rows: Array<{ hostname: string }> = await q;
  return rows.map((r) => r.hostname);
}

/** Is `host` black-holed at `now`? */
export async function isBlackholed(db: DbOrTrx, host: string, now: number = nowMs()): Promise<boolean> {
  const row = await db('node').first('id').where('hostname', host).andWhere('blackholed_until', '>', now);
  return row !== undefined;
}

/** Record one task outcome on a host (see `recordNodeOutcomes`). */
export async function recordNodeOutcome(db: DbOrTrx, host: string, gridId: number | null | undefined, ok: boolean, now: number = nowMs()): Promise<void> {
  await recordNodeOutcomes(db, [{ host, gridId, ok }], now);
}

/**
 * Record task outcomes per host, in order: counts incremented and 'O' / 'F' appended to
 * `node.recent` (newest last, the last NODE_RECENT_LENGTH kept); the node row is created on
 * first sight. One multi-row upsert per 200 hosts, however many outcomes.
 */
export async function recordNodeOutcomes(db: DbOrTrx, outcomes: readonly NodeOutcomeRecord[], now: number = nowMs()): Promise<void> {
  const perHost = new Map<string, { gridId: number | null; ok: number; fail: number; recent: string }>();
  for (const o of outcomes) {
    if (!o.host) continue;
    const host = o.host.slice(0, 255);
    const h = perHost.get(host) ?? { gridId: null, ok: 0, fail: 0, recent: '' };
    if (o.gridId != null) h.gridId = o.gridId;
    if (o.ok) h.ok++;
    else h.fail++;
    h.recent = (h.recent + (o.ok ? NodeOutcome.OK : NodeOutcome.FAILED)).slice(-NODE_RECENT_LENGTH);
    perHost.set(host, h);
  }
  if (perHost.size === 0) return;
  const mysql = isMysql(db);
  const N = NODE_RECENT_LENGTH;
  const upsert = mysql
    ? `ON DUPLICATE KEY UPDATE ok_count = ok_count + VALUES(ok_count), fail_count = fail_count + VALUES(fail_count),
         recent = RIGHT(CONCAT(recent, VALUES(recent)), ${N}), grid_id = COALESCE(VALUES(grid_id), grid_id), updated_at = VALUES(updated_at)`
    : `ON CONFLICT(hostname) DO UPDATE SET ok_count = node.ok_count + excluded.ok_count, fail_count = node.fail_count + excluded.fail_count,
         recent = substr(node.recent || excluded.recent, -${N}), grid_id = COALESCE(excluded.grid_id, node.grid_id), updated_at = excluded.updated_at`;
  for (const part of chunk([...perHost.entries()], 200)) {
    await db.raw(
      `INSERT INTO node (hostname, grid_id, ok_count, fail_count, recent, updated_at) VALUES ${part.map(() => '(?, ?, ?, ?, ?, ?)').join(', ')} ${upsert}`,
      part.flatMap(([host, h]) => [host, h.gridId, h.ok, h.fail, h.recent, now]),
    );
  }
}

/** Failures among the last `window` outcomes of a `node.recent` string. */
export function recentFailures(recent: string, window: number): number {
  let n = 0;
  if (window <= 0) return 0;
  for (const c of recent.slice(-window)) if (c === NodeOutcome.FAILED) n++;
  return n;
}

/** A black-holed node as `grid.holes` lists it. */
export interface BlackHole {
  /** The grid the node last ran tasks for (null: not known). */
  grid: string | null;
  node: string;
  /** Why firn-dh excluded it (its history row), null when none is on record. */
  reason: string | null;
  /** When it was excluded (ms), null when no history row says. */
  since: number | null;
  /** When the exclusion ends (ms). */
  until: number;
}

/** Most black holes one answer lists (the rest are counted in `more`). */
export const BLACK_HOLES_MAX = 1000;

/**
 * The nodes black-holed at `now`, with the reason and time of their latest `blackhole` history
 * row; of the given grids only when `gridIds` is given. Ordered by grid and host name.
 */
export async function listBlackholes(db: DbOrTrx, now: number = nowMs(), gridIds?: readonly number[]): Promise<{ holes: BlackHole[]; more: number }> {
  const q = db('node as n')
    .leftJoin('grid as g', 'g.id', 'n.grid_id')
    .select('n.id', 'n.hostname', 'n.blackholed_until', 'g.name as grid')
    .where('n.blackholed_until', '>', now)
    .orderBy([{ column: 'g.name', order: 'asc' }, { column: 'n.hostname', order: 'asc' }])
    .limit(BLACK_HOLES_MAX + 1);
  if (gridIds) q.whereIn('n.grid_id', gridIds.length ? [...gridIds] : [-1]);
  const rows: Array<{ id: number; hostname: string; blackholed_until: number | string; grid: string | null }> = await q;
  const more = Math.max(0, rows.length - BLACK_HOLES_MAX);
  const shown = rows.slice(0, BLACK_HOLES_MAX);
  const why = new Map<number, { reason: string | null; created_at: number }>();
  for (const part of chunk(shown.map((r) => Number(r.id)), 500)) {
    // the latest blackhole row per node: max id per entity_id, then those rows
    const latest = db('history').max({ id: 'id' }).where({ entity: 'node', action: 'blackhole' }).whereIn('entity_id', part).groupBy('entity_id');
    const hist: Array<{ entity_id: number; reason: string | null; created_at: number | string }> = await db('history')
      .select('entity_id', 'reason', 'created_at')
      .whereIn('id', latest);
    for (const h of hist) why.set(Number(h.entity_id), { reason: h.reason, created_at: Number(h.created_at) });
  }
  return {
    holes: shown.map((r) => {
      const h = why.get(Number(r.id));
      return { grid: r.grid ?? null, node: r.hostname, reason: h?.reason ?? null, since: h ? h.created_at : null, until: Number(r.blackholed_until) };
    }),
    more,
  };
}

/**
 * End a node's black-hole exclusion now (`grid.clear_hole`): `blackholed_until` cleared and its
 * outcome window emptied (it is judged on new tasks only). Returns the node's id and whether it
 * was black-holed; null when no node of that name belongs to the grid (`gridId` null: a node
 * not attributed to any grid).
 */
export async function clearBlackhole(db: DbOrTrx, gridId: number | null, host: string, now: number = nowMs()): Promise<{ id: number; until: number | null; wasBlackholed: boolean } | null> {
  const q = db('node').first('id', 'blackholed_until').where('hostname', host);
  if (gridId === null) q.whereNull('grid_id');
  else q.andWhere('grid_id', gridId);
  const row = (await q) as { id: number; blackholed_until: number | string | null } | undefined;
  if (!row) return null;
  const until = row.blackholed_until === null ? null : Number(row.blackholed_until);
  const wasBlackholed = until !== null && until > now;
  if (wasBlackholed) await db('node').where({ id: row.id }).update({ blackholed_until: null, recent: '', updated_at: now });
  return { id: Number(row.id), until, wasBlackholed };
}
