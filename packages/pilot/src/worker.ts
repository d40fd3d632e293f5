/**
 * `firn-pilot --worker`: a long-lived pilot that runs monitored tasks one after another.
 *
 * Starting a Node process costs 40–60 ms of CPU and loading the bundle as much again, far
 * more than what Firn does for a short task. The local plugin therefore keeps a few of these
 * workers and hands each the next task instead of starting a pilot per task (`[queue]
 * pilot_reuse`). Every task runs exactly as `firn-pilot --mon … --task … --passkey-file …`
 * would run it — the same `main()`, its own logger, reporter, scratch and abort signal — with
 * the same files as the submit script writes: `<dir>/stdout`, `<dir>/stderr` and, once the
 * task has ended, `<dir>/exit_code` (written atomically). Two things are shared by its tasks:
 * keep-alive connections to mon, and one task area (`<scratch>/firn-worker-<pid>-<hex>`),
 * emptied after each task instead of a new directory tree created and removed per task;
 * it is removed when the worker ends.
 *
 * Protocol: JSON, one object per line.
 *   stdin  {"op":"run","job":ID,"dir":ABSOLUTE_DIR,"argv":[pilot flags]}
 *          {"op":"cancel","job":ID}        stop that task as SIGTERM would stop a pilot
 *   stdout {"op":"ready","pid":PID,"version":V}   once, when it accepts work
 *          {"op":"done","job":ID,"code":N}        after exit_code is written
 * A run while another task runs is refused ({"op":"done","job":ID,"code":70,"error":…}, no
 * exit_code written: the plugin never does this). stdin closing (the daemon retired this
 * worker, stopped or died) lets the current task finish, then the worker exits 0;
 * SIGTERM/SIGINT stop the current task first (its exit_code says 143) and exit 143.
 *
 *   firn-pilot --worker [FLAGS…]   FLAGS are put before every task's own flags
 */
import fs from 'node:fs';
import path from 'node:path';
import readline from 'node:readline';
import { Writable } from 'node:stream';
import crypto from 'node:crypto';
import { main, VERSION, type WorkerShared } from './cli';
import { ExitCode } from './pilot';

export interface WorkerIo {
  input: NodeJS.ReadableStream;
  output: NodeJS.WritableStream;
  /** Worker-level messages (each task's own output goes to its files). */
  stderr: NodeJS.WritableStream;
  env: NodeJS.ProcessEnv;
  /** Aborted on SIGTERM/SIGINT (wired in main.ts). */
  signal?: AbortSignal;
}

interface RunRequest {
  job: string;
  dir: string;
  argv: string[];
}

function parseRequest(line: string): { op: 'run'; req: RunRequest } | { op: 'cancel'; job: string } | { error: string } {
  let m: unknown;
  try {
    m = JSON.parse(line);
  } catch {
    return { error: 'not JSON' };
  }
  if (!m || typeof m !== 'object') return { error: 'not an object' };
  const o = m as Record<string, unknown>;
  if (typeof o.job !== 'string' || !o.job) return { error: 'job must be a non-empty string' };
  if (o.op === 'cancel') return { op: 'cancel', job: o.job };
  if (o.op !== 'run') return { error: `unknown op ${JSON.stringify(o.op)}` };
  if (typeof o.dir !== 'string' || !path.isAbsolute(o.dir)) return { error: 'dir must be an absolute path' };
  if (!Array.isArray(o.argv) || o.argv.some((a) => typeof a !== 'string')) return { error: 'argv must be an array of strings' };
  return { op: 'run', req: { job: o.job, dir: o.dir, argv: o.argv as string[] } };
}

/** The command line without `--worker`: flags put before every task's own. */
export function workerBaseArgs(argv: string[]): string[] {
  return argv.filter((a) => a !== '--worker');
}

/**
 * A task's stdout/stderr file, written synchronously: a pilot worker runs one task at a time,
 * and a log line then costs one write(2) instead of a thread-pool round trip.
 */
class TaskOutput extends Writable {
  private fd: number | null;

  constructor(file: string) {
    super();
    this.fd = fs.openSync(file, 'w', 0o600);
  }

  override _write(chunk: Buffer, _enc: BufferEncoding, cb: (e?: Error | null) => void): void {
    try {
      if (this.fd !== null) fs.writeSync(this.fd, chunk);
      cb();
    } catch (e) {
      cb(e as Error);
    }
  }

  override _final(cb: (e?: Error | null) => void): void {
    this.closeFd();
    cb();
  }

  override _destroy(e: Error | null, cb: (e?: Error | null) => void): void {
    this.closeFd();
    cb(e);
  }

  private closeFd(): void {
    if (this.fd === null) return;
    try {
      fs.closeSync(this.fd);
    } catch {
      // already gone
    }
    this.fd = null;
  }
}

function endStream(s: Writable): Promise<void> {
  return new Promise((resolve) => {
    if (s.closed || s.destroyed) return resolve();
    s.once('close', () => resolve());
    s.once('error', () => resolve());
    s.end();
  });
}

/** Run the worker loop; resolves with the process exit code. */
export async function runWorker(argv: string[], io: WorkerIo): Promise<number> {
  const baseArgs = workerBaseArgs(argv);
  // One task area and one set of keep-alive connections to mon for all of this worker's tasks.
  const shared: WorkerShared = { reuseArea: `firn-worker-${process.pid}-${crypto.randomBytes(4).toString('hex')}`, areas: new Set(), agents: new Map() };
  const send = (m: Record<string, unknown>) => {
    try {
      io.output.write(JSON.stringify(m) + '\n');
    } catch {
      // the daemon is gone: the task's exit_code file says everything
    }
  };
  // A daemon that died leaves a closed pipe: EPIPE must not kill a task that is still running.
  io.output.on?.('error', () => undefined);

  let current: { job: string; ac: AbortController } | null = null;
  let inputClosed = false;
  let stopping = false;
  let finish: (code: number) => void = () => undefined;
  const finished = new Promise<number>((resolve) => (finish = resolve));

  const maybeExit = () => {
    if (current) return;
    if (stopping) finish(ExitCode.SIGNALLED);
    else if (inputClosed) finish(ExitCode.OK);
  };

  io.signal?.addEventListener(
    'abort',
    () => {
      stopping = true;
      current?.ac.abort(io.signal?.reason ?? new Error('stopped'));
      maybeExit();
    },
    { once: true },
  );

  const runTask = async (req: RunRequest) => {
    const ac = new AbortController();
    current = { job: req.job, ac };
    let code: number = ExitCode.USAGE;
    const exitFile = path.join(req.dir, 'exit_code');
    try {
      fs.rmSync(exitFile, { force: true });
      const out = new TaskOutput(path.join(req.dir, 'stdout'));
      let err: TaskOutput;
      try {
        err = new TaskOutput(path.join(req.dir, 'stderr'));
      } catch (e) {
        out.destroy();
        throw e;
      }
      try {
        process.chdir(req.dir); // where the submit script runs the pilot
        code = await main([...baseArgs, ...req.argv], { stdout: out, stderr: err, env: io.env, signal: ac.signal, worker: shared });
      } catch (e) {
        err.write(`firn-pilot: unexpected error: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}\n`);
        code = 70;
      } finally {
        await endStream(out);
        await endStream(err);
      }
      fs.writeFileSync(`${exitFile}.tmp`, `${code}\n`);
      fs.renameSync(`${exitFile}.tmp`, exitFile);
    } catch (e) {
      io.stderr.write(`firn-pilot worker: job ${req.job}: ${(e as Error).message}\n`);
      code = 70;
    }
    current = null;
    send({ op: 'done', job: req.job, code });
    maybeExit();
  };

  const rl = readline.createInterface({ input: io.input, crlfDelay: Infinity });
  rl.on('line', (line) => {
    if (!line.trim()) return;
    const m = parseRequest(line);
    if ('error' in m) {
      io.stderr.write(`firn-pilot worker: ignored a request: ${m.error}\n`);
      return;
    }
    if (m.op === 'cancel') {
      if (current?.job === m.job) current.ac.abort(new Error('cancelled by firn-queue'));
      return;
    }
    if (current || stopping) {
      send({ op: 'done', job: m.req.job, code: 70, error: current ? `busy with ${current.job}` : 'stopping' });
      return;
    }
    void runTask(m.req);
  });
  rl.on('close', () => {
    inputClosed = true;
    maybeExit();
  });

  send({ op: 'ready', pid: process.pid, version: VERSION });
  const code = await finished;
  rl.close();
  for (const agent of shared.agents.values()) agent.destroy();
  for (const dir of shared.areas) {
    try {
      fs.rmSync(dir, { recursive: true, force: true });
    } catch (e) {
      io.stderr.write(`firn-pilot worker: cannot remove ${dir}: ${(e as Error).message}\n`);
    }
  }
  return code;
}
