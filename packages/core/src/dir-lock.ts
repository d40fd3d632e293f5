/**
 * Exclusive locks on a directory held by one live process: a lock file created with O_EXCL
 * holding one JSON line `{pid, start, boot, host, since}` of the holder. Used by firn-queue for
 * its submit directory (through an executor, possibly over SSH: queue's submit-dir-lock.ts) and
 * by `firn up` for its data directory (DataDirLock below, a local file).
 *
 * Stale locks: a lock whose holder ran on this host (`host` = our hostname) and is gone is taken
 * over. Gone means: no such pid, or a pid whose /proc start time differs (a reused pid), or
 * another boot (`/proc/sys/kernel/random/boot_id` differs: after a reboot pids and start times
 * repeat). A lock held from another host cannot be checked from here: it is refused, naming the
 * holder. Node has no flock(2), hence a file plus a liveness check; a stale lock taken over by two
 * processes in the same moment is settled by reading the file back (whoever's line is there).
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { FirnError } from './errors';

export interface LockHolder {
  pid: number;
  /** /proc/<pid>/stat start time (clock ticks since boot); '-' where unknown. */
  start: string;
  /** Linux boot id; '-' where unknown. */
  boot: string;
  host: string;
  /** ISO time the lock was taken. */
  since: string;
}

function procStartOf(pid: number): string | null {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19] ?? null;
  } catch {
    return null;
  }
}

function bootId(): string {
  try {
    return fs.readFileSync('/proc/sys/kernel/random/boot_id', 'utf8').trim() || '-';
  } catch {
    return '-';
  }
}

/** This process as a lock holder. */
export function selfHolder(now = new Date()): LockHolder {
  return { pid: process.pid, start: procStartOf(process.pid) ?? '-', boot: bootId(), host: os.hostname(), since: now.toISOString() };
}

/** A lock file's holder (pure); null when the text is not a holder line. */
export function parseLockHolder(text: string): LockHolder | null {
  try {
    const o = JSON.parse(text.trim()) as Partial<LockHolder>;
    if (!Number.isInteger(o.pid) || (o.pid as number) <= 0 || typeof o.host !== 'string') return null;
    return { pid: o.pid as number, start: String(o.start ?? '-'), boot: String(o.boot ?? '-'), host: o.host, since: String(o.since ?? '') };
  } catch {
    return null;
  }
}

/**
 * Is the holder certainly gone? Only decidable for a holder of this host: its pid is not running,
 * or runs another process (start time), or it ran before the last boot.
 */
export function holderGone(h: LockHolder, self: LockHolder = selfHolder()): boolean {
  if (h.host !== self.host) return false;
  if (h.boot !== '-' && self.boot !== '-' && h.boot !== self.boot) return true;
  if (h.pid === self.pid && h.start === self.start) return false;
  try {
    process.kill(h.pid, 0);
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'ESRCH';
  }
  const start = procStartOf(h.pid);
  if (start === null) return process.platform === 'linux';
  return h.start !== '-' && start !== h.start;
}

/** How a holder reads in a message. */
export function describeHolder(h: LockHolder | null): string {
  return h ? `pid ${h.pid} on ${h.host} (since ${h.since})` : 'an unreadable lock file';
}

/** Another live process holds the directory. */
export class DirLockedError extends FirnError {
  constructor(
    message: string,
    readonly holder: LockHolder | null,
  ) {
    super(message);
  }
}

export const DATA_DIR_LOCK_FILE = '.firn-up.lock';

/**
 * `firn up`'s lock on its data directory (`<dir>/.firn-up.lock`, 0600): two suites on one
 * database would run two firn-dh and two queues for one grid, each rewriting the other's grid row.
 */
export class DataDirLock {
  readonly file: string;
  private readonly line: string;
  private held = false;

  constructor(dir: string, private readonly self: LockHolder = selfHolder()) {
    this.file = path.join(dir, DATA_DIR_LOCK_FILE);
    this.line = JSON.stringify(self) + '\n';
  }

  /** Take the lock or throw DirLockedError naming the holder's pid. */
  acquire(): void {
    if (this.held) return;
    for (let round = 0; round < 3; round++) {
      try {
        fs.writeFileSync(this.file, this.line, { flag: 'wx', mode: 0o600 });
        if (this.read() === this.line) {
          this.held = true;
          return;
        }
        continue;
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
      }
      const text = this.read();
      if (text === null) continue; // released meanwhile
      const holder = parseLockHolder(text);
      if (holder && holderGone(holder, this.self)) {
        if (this.read() === text) fs.rmSync(this.file, { force: true });
        continue;
      }
      throw new DirLockedError(
        `data directory ${path.dirname(this.file)} is in use by another firn up: ${describeHolder(holder)}` +
          (holder && holder.host !== this.self.host ? `; if it is gone, remove ${this.file}` : holder ? '' : `; remove ${this.file} if no firn up runs`),
        holder,
      );
    }
    throw new DirLockedError(`could not take the lock ${this.file}: it keeps changing hands`, null);
  }

  /** Remove the lock if it is still ours. */
  release(): void {
    if (!this.held) return;
    this.held = false;
    if (this.read() === this.line) fs.rmSync(this.file, { force: true });
  }

  private read(): string | null {
    try {
      return fs.readFileSync(this.file, 'utf8');
    } catch {
      return null;
    }
  }
}
