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
 * The holder line and the liveness check live in core's dir-lock.ts.
 */
import path from 'node:path';
import { DirLockedError, describeHolder as describe, holderGone, parseLockHolder, selfHolder, type Executor, type LockHolder } from '@firn/core';

// the holder line, its parsing and the liveness check are core's (dir-lock.ts), shared with firn up's data-directory lock
export { holderGone, parseLockHolder, selfHolder, type LockHolder };

export const LOCK_FILE = '.firn-queue.lock';

/** Another live daemon holds the submit directory. */
export class SubmitDirLockedError extends DirLockedError {}

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
