/**
 * The local plugin's long-lived pilots: `firn-pilot --worker` processes (see
 * packages/pilot/src/worker.ts) that each run one task at a time, handed over as a JSON line.
 *
 * Why: a pilot process per task pays the Node start and the bundle load (≈ 100 ms of CPU)
 * for every task; a worker pays it once per `reuse` tasks. Each task still runs exactly as a
 * freshly started pilot runs it, with the same files in its task directory.
 *
 * - At most `size` workers; a worker is started when a job needs one and none is idle, and
 *   must say `{"op":"ready"}` within `readyTimeoutMs`. If it does not (the configured pilot is
 *   not Firn's, or too old), the pool turns itself off for good (`disabled` says why) and the
 *   plugin goes back to a pilot process per task.
 * - A worker that has run `reuse` tasks, or was idle for `idleMs`, gets its stdin closed and
 *   exits; so does every worker when the daemon stops or dies (its end of the pipe closes),
 *   after finishing the task it runs — like the detached pilots of the per-task mode, a
 *   running task outlives the daemon.
 * - Workers are process-group leaders (detached), so a Ctrl-C in the daemon's terminal does
 *   not reach them, and the plugin can signal a worker with everything it started.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import readline from 'node:readline';

export interface PilotPoolOptions {
  /** The pilot command, split into words; `--worker` is appended. */
  words: string[];
  env: Record<string, string>;
  cwd: string;
  /** The workers' own stderr (each task's output goes to its task directory). */
  logFile: string;
  size: number;
  reuse: number;
  idleMs: number;
  readyTimeoutMs?: number;
  /** A worker finished a job (its exit_code file should be there now). */
  onDone: (jobId: string, code: number) => void;
  /** A worker exited; `jobId` is the job it was running, if any (that job is lost). */
  onExit: (jobId: string | null) => void;
  onWarning?: (message: string) => void;
}

interface Worker {
  child: ChildProcess;
  pid: number;
  /** /proc start time, so a reused pid is not mistaken for this worker. */
  start: string;
  job: string | null;
  runs: number;
  retiring: boolean;
  idleTimer: NodeJS.Timeout | null;
}

export type PoolStart = { pid: number; start: string } | 'busy' | 'disabled';

/** Linux process start time (clock ticks since boot, /proc/<pid>/stat field 22), '-' elsewhere. */
export function procStart(pid: number): string {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19] || '-';
  } catch {
    return '-';
  }
}

export class PilotPool {
  private readonly workers = new Set<Worker>();
  private starting: Promise<Worker | null> | null = null;
  /** Why the pool is off (the pilot is not a worker-capable firn-pilot); null while usable. */
  disabled: string | null = null;
  private closed = false;

  constructor(private readonly opts: PilotPoolOptions) {}

  /** Workers alive (tests, diagnostics). */
  get count(): number {
    return this.workers.size;
  }

  /** Is one of our workers running this job? */
  runs(jobId: string): boolean {
    for (const w of this.workers) if (w.job === jobId) return true;
    return false;
  }

  /**
   * Hand a job to an idle worker, starting one if fewer than `size` run. 'busy': all workers
   * are busy (try again when one is done); 'disabled': use a pilot process instead.
   * `claim` is awaited with the chosen worker before the job is sent to it (the plugin writes
   * the job's pid file there, so that a daemon killed in between never runs a task twice).
   */
  async run(jobId: string, dir: string, argv: string[], claim: (pid: number, start: string) => Promise<void>): Promise<PoolStart> {
    if (this.disabled || this.closed) return 'disabled';
    let worker: Worker | null = null;
    for (const w of this.workers) {
      if (!w.job && !w.retiring) {
        worker = w;
        break;
      }
    }
    if (!worker) {
      if (this.workers.size >= this.opts.size) return 'busy';
      this.starting ??= this.spawnWorker().finally(() => (this.starting = null));
      worker = await this.starting;
      if (!worker) return 'disabled';
      if (worker.job || worker.retiring) return 'busy';
    }
    if (worker.idleTimer) clearTimeout(worker.idleTimer);
    worker.idleTimer = null;
    worker.job = jobId;
    try {
      await claim(worker.pid, worker.start);
    } catch (e) {
      worker.job = null;
      throw e;
    }
    worker.child.stdin!.write(JSON.stringify({ op: 'run', job: jobId, dir, argv }) + '\n');
    return { pid: worker.pid, start: worker.start };
  }

  /** Ask the worker running this job to stop it (as SIGTERM stops a pilot). false: not ours. */
  cancel(jobId: string): boolean {
    for (const w of this.workers) {
      if (w.job === jobId) {
        w.child.stdin!.write(JSON.stringify({ op: 'cancel', job: jobId }) + '\n');
        return true;
      }
    }
    return false;
  }

  /** SIGKILL the process group of the worker running this job (a cancel that was not heeded). */
  kill(jobId: string): void {
    for (const w of this.workers) {
      if (w.job !== jobId) continue;
      try {
        process.kill(-w.pid, 'SIGKILL');
      } catch {
        /* gone */
      }
    }
  }

  /** Close every worker's stdin: idle ones exit now, busy ones after their task. */
  close(): void {
    this.closed = true;
    for (const w of this.workers) this.retire(w);
  }

  private retire(w: Worker): void {
    w.retiring = true;
    if (w.idleTimer) clearTimeout(w.idleTimer);
    w.idleTimer = null;
    w.child.stdin?.end();
  }

  private spawnWorker(): Promise<Worker | null> {
    const { words } = this.opts;
    let fd: number;
    try {
      fd = fs.openSync(this.opts.logFile, 'a', 0o600);
    } catch (e) {
      return Promise.resolve(this.disable(`cannot open ${this.opts.logFile}: ${(e as Error).message}`));
    }
    let child: ChildProcess;
    try {
      child = spawn(words[0]!, [...words.slice(1), '--worker'], { cwd: this.opts.cwd, env: this.opts.env, detached: true, stdio: ['pipe', 'pipe', fd] });
    } catch (e) {
      return Promise.resolve(this.disable(`cannot start ${words.join(' ')} --worker: ${(e as Error).message}`));
    } finally {
      fs.closeSync(fd);
    }
    child.stdin!.on('error', () => undefined); // a worker that died: its exit event says so
    return new Promise((resolve) => {
      let worker: Worker | null = null;
      const timer = setTimeout(() => {
        child.kill('SIGKILL');
        settle(`${words.join(' ')} --worker did not report ready within ${this.opts.readyTimeoutMs ?? 10_000} ms`);
      }, this.opts.readyTimeoutMs ?? 10_000);
      const settle = (failure: string | null) => {
        clearTimeout(timer);
        if (failure !== null) resolve(this.disable(failure));
        else resolve(worker);
      };
      child.once('error', (e) => settle(`cannot start ${words.join(' ')} --worker: ${e.message}`));
      const lines = readline.createInterface({ input: child.stdout!, crlfDelay: Infinity });
      lines.on('line', (line) => {
        let m: Record<string, unknown>;
        try {
          m = JSON.parse(line) as Record<string, unknown>;
        } catch {
          m = {};
        }
        if (!worker) {
          if (m.op !== 'ready' || child.pid === undefined) {
            child.kill('SIGKILL');
            settle(`${words.join(' ')} --worker answered ${JSON.stringify(line.slice(0, 200))} instead of {"op":"ready"}`);
            return;
          }
          worker = { child, pid: child.pid, start: procStart(child.pid), job: null, runs: 0, retiring: false, idleTimer: null };
          this.workers.add(worker);
          if (this.closed) this.retire(worker);
          settle(null);
          return;
        }
        if (m.op === 'done' && typeof m.job === 'string' && worker.job === m.job) {
          worker.job = null;
          worker.runs++;
          if (worker.runs >= this.opts.reuse || this.closed) this.retire(worker);
          else {
            const w = worker;
            w.idleTimer = setTimeout(() => this.retire(w), this.opts.idleMs);
            w.idleTimer.unref();
          }
          this.opts.onDone(m.job, typeof m.code === 'number' ? m.code : 70);
        }
      });
      child.once('exit', (code, signal) => {
        if (!worker) {
          settle(`${words.join(' ')} --worker exited (${signal ?? `code ${code}`}) before reporting ready`);
          return;
        }
        this.workers.delete(worker);
        if (worker.idleTimer) clearTimeout(worker.idleTimer);
        if (worker.job && !this.closed) this.opts.onWarning?.(`pilot worker ${worker.pid} exited (${signal ?? `code ${code}`}) while running ${worker.job}`);
        this.opts.onExit(worker.job);
      });
      // The daemon's event loop must not wait for its workers: they outlive it by design.
      child.unref();
      (child.stdout as unknown as { unref?: () => void }).unref?.();
      (child.stdin as unknown as { unref?: () => void }).unref?.();
    });
  }

  private disable(why: string): null {
    if (!this.disabled) {
      this.disabled = why;
      this.opts.onWarning?.(`pilot workers are off, every task gets its own pilot process: ${why}`);
    }
    return null;
  }
}
