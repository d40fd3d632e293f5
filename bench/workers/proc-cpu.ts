/**
 * CPU time of processes from /proc (Linux), in clock ticks, for the benches that count a
 * database server's CPU beside their own: utime + stime of a process, and of every process
 * with a given command name (a server and its exited helpers: PostgreSQL's backends end up
 * in the postmaster's cutime + cstime once it reaps them).
 */
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';

export const CLK_TCK = Number(spawnSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).stdout.trim()) || 100;
export const ticksToMs = (t: number): number => (t * 1000) / CLK_TCK;

/** utime + stime (self) and cutime + cstime (reaped children) of one process, or null when it is gone. */
export function procTicks(pid: number): { self: number; children: number } | null {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    // fields after the command: state(3) … utime(14) stime(15) cutime(16) cstime(17) → indices 11..14
    return { self: Number(f[11]) + Number(f[12]), children: Number(f[13]) + Number(f[14]) };
  } catch {
    return null;
  }
}

/** The pids whose /proc/<pid>/comm is one of `names` (e.g. mariadbd, postgres, redis-server). */
export function pidsByName(names: readonly string[]): number[] {
  const out: number[] = [];
  for (const entry of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      if (names.includes(fs.readFileSync(`/proc/${entry}/comm`, 'utf8').trim())) out.push(Number(entry));
    } catch {
      /* gone meanwhile */
    }
  }
  return out;
}

/**
 * Every CPU tick the named server processes used so far, by pid: self + reaped children.
 * Diff two snapshots with serverTicksBetween (a process that ended between them is counted
 * through its parent's children ticks, when the parent is one of the named processes).
 */
export function serverTicks(names: readonly string[]): Map<number, number> {
  const out = new Map<number, number>();
  for (const pid of pidsByName(names)) {
    const t = procTicks(pid);
    if (t) out.set(pid, t.self + t.children);
  }
  return out;
}

/**
 * Ticks used between two serverTicks snapshots: Σ after − Σ before. A process that appeared
 * meanwhile counts from 0; one that ended meanwhile left its whole time in its (named)
 * parent's children ticks, so subtracting what it had before leaves what it used since.
 */
export function serverTicksBetween(before: Map<number, number>, after: Map<number, number>): number {
  let sum = 0;
  for (const t of after.values()) sum += t;
  for (const t of before.values()) sum -= t;
  return sum;
}
