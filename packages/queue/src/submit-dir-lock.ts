/**
 * The exclusive lock a firn-queue daemon holds on its grid's submit directory, so that two
 * daemons never share one (each would start the other's queued local jobs, and adopt or cancel
 * the other's batch jobs): `<submit_dir>/.firn-queue.lock`, created exclusively (O_EXCL, through
 * the executor: `set -C` in /bin/sh on the submit host, local or over SSH), holding one JSON line
 * `{pid, start, boot, host, since}` of the holder. Released (removed) on a clean stop.
 *
 * Stale locks: a lock whose holder ran on this host (`host` = our hostname) and is gone is taken
 * over. Gone means: no such pid, or a pid whose /proc start time differs (a reused pid), or
 * another boot (`/proc/sys/kernel/random/boot_id` differs: after a reboot pids and start times
 * repeat). A lock held from another host cannot be checked from here: the daemon refuses to
 * start and the message says whose it is (remove the file once that daemon is known to be gone).
 * Node has no flock(2), hence a file plus a liveness check; a lock taken over in the same
 * moment by two starting daemons is settled by reading the file back (whoever's line is there).
 */
import { readFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { FirnError, type Executor } from '@firn/core';

export const LOCK_FILE = '.firn-queue.lock';

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

/** Another live daemon holds the submit directory. */
export class SubmitDirLockedError extends FirnError {
  constructor(
    message: string,
    readonly holder: LockHolder | null,
  ) {
    super(message);
  }
}

function procStartOf(pid: number): string | null {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19] ?? null;
  } catch {
    return null;
  }
}

function bootId(): string {
  try {
    return readFileSync('/proc/sys/kernel/random/boot_id', 'utf8').trim() || '-';
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

const describe = (h: LockHolder | null) => (h ? `pid ${h.pid} on ${h.host} (since ${h.since})` : 'an unreadable lock file');

export class SubmitDirLock {
  private held = false;
  readonly file: string;
  private readonly line: string;

  constructor(
    private readonly executor: Executor,
    submitDir: string,
    private readonly self: LockHolder = selfHolder(),
  ) {
    this.file = path.posix.join(submitDir, LOCK_FILE);
    this.line = JSON.stringify(self) + '\n';
  }

  get isHeld(): boolean {
    return this.held;
  }

  /** Take the lock or throw SubmitDirLockedError naming the holder. */
  async acquire(): Promise<void> {
    if (this.held) return;
    await this.executor.mkdir(path.posix.dirname(this.file), 0o700);
    for (let round = 0; round < 3; round++) {
      if (await this.createExclusive()) {
        // read back: a stale lock taken over by two daemons at once ends with one line
        if ((await this.read()) === this.line) {
          this.held = true;
          return;
        }
        continue;
      }
      const text = await this.read();
      if (text === null) continue; // released meanwhile
      const holder = parseLockHolder(text);
      if (holder && holderGone(holder, this.self)) {
        // the holder is dead: remove its lock, unless it changed since we read it
        if ((await this.read()) === text) await this.executor.remove(this.file);
        continue;
      }
      throw new SubmitDirLockedError(
        `submit directory ${path.posix.dirname(this.file)} is locked by another firn-queue: ${describe(holder)}` +
          (holder && holder.host !== this.self.host ? `; if that daemon is gone, remove ${this.file}` : ''),
        holder,
      );
    }
    throw new SubmitDirLockedError(`could not take the lock ${this.file}: it keeps changing hands`, null);
  }

  /** Remove the lock if it is still ours. */
  async release(): Promise<void> {
    if (!this.held) return;
    this.held = false;
    if ((await this.read()) === this.line) await this.executor.remove(this.file);
  }

  private async read(): Promise<string | null> {
    const b = await this.executor.readFile(this.file);
    return b === null ? null : b.toString('utf8');
  }

  /** O_EXCL create: /bin/sh's noclobber (`set -C`) opens the file with O_CREAT|O_EXCL. */
  private async createExclusive(): Promise<boolean> {
    const r = await this.executor.exec('/bin/sh', ['-c', 'umask 077 && set -C && cat > "$1"', 'firn-queue-lock', this.file], { input: this.line, timeoutMs: 30_000 });
    if (r.code === 0) return true;
    const b = await this.executor.readFile(this.file).catch(() => null);
    if (b === null) throw new Error(`cannot create ${this.file}: ${r.stderr.trim() || `exit ${r.code}`}`);
    return false;
  }
}
