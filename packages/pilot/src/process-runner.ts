/**
 * Runs one module process under the task's limits: its own process group, stdout/stderr
 * straight into files, the process tree sampled from /proc every ~250 ms for CPU and RSS,
 * memory and wall-time limits enforced by killing the whole group.
 *
 * CPU time without /usr/bin/time: the command runs under a tiny /bin/sh wrapper that, after
 * the command ends, saves its own /proc/<pid>/stat — whose cutime/cstime then hold the CPU
 * time of everything the command ran and waited for. The final CPU figure is the larger of
 * that and the last live sample.
 */
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import { FirnError } from './core-pure';
import { cpuSecondsOfStat, treeUsage } from './resources';

const MB = 1024 * 1024;

/** A module was killed because it went over the task's memory or time request. */
export class ResourceLimitError extends FirnError {
  constructor(
    message: string,
    readonly kind: 'memory' | 'time',
  ) {
    super(message);
  }
}

export interface Limits {
  /** Kill when the RSS of the process tree exceeds this many MB. */
  memoryMb?: number | null;
  /** Wall-clock budget of the whole task: started at (ms since epoch) + minutes. */
  time?: { startedAt: number; minutes: number } | null;
}

export interface Sample {
  cpuSeconds: number;
  rssBytes: number;
}

export interface RunOptions {
  /** The program and its arguments (exec'd, no shell unless argv[0] is one). */
  argv: string[];
  cwd: string;
  env: NodeJS.ProcessEnv;
  stdoutFile: string;
  stderrFile: string;
  /** Where the wrapper saves its /proc stat at the end (CPU of the reaped tree). */
  rusageFile: string;
  limits?: Limits;
  /** Sampling period, ms (default 250). */
  sampleMs?: number;
  /** Abort: kill the process group at once. */
  signal?: AbortSignal;
  /** Every sample (the heartbeat reads the latest). */
  onSample?: (s: Sample) => void;
}

export interface RunResult {
  /** Exit code of the command (128+N when it died from signal N); null when killed by us. */
  exitCode: number | null;
  cpuSeconds: number;
  maxRssBytes: number;
  wallSeconds: number;
  /** Set when a limit killed the command. */
  limitError?: ResourceLimitError;
  aborted: boolean;
}

// Shell builtins only: `cat /proc/$$/stat` would be one more process per module (fork + exec,
// ~1 ms of CPU) and dash's `read` reads a byte per system call. `times` prints the CPU time of
// the shell and of every child it waited for (the command and all it ran), in one write; the
// file is rewritten in place (same inode), so a reused task area allocates nothing for it.
const WRAPPER = 'f=$1; shift; "$@"; rc=$?; times > "$f" 2>/dev/null; exit $rc';

/**
 * CPU seconds in what the wrapper saved: the output of the shell's `times` (two lines, the
 * shell's and its children's user and system time, as `<min>m<sec>s`), or — as earlier pilots
 * saved it — a /proc/<pid>/stat line. null when the file holds neither (killed before the end).
 */
export function cpuSecondsOfRusage(text: string): number | null {
  const times = [...text.matchAll(/(\d+)m\s*(\d+(?:[.,]\d+)?)s/g)];
  if (times.length === 4) return times.reduce((a, m) => a + Number(m[1]) * 60 + Number(m[2]!.replace(',', '.')), 0);
  return text.includes(')') ? cpuSecondsOfStat(text) : null;
}

/** Kill a process group and any process of its last known tree (some may have left the group). */
export function killTree(pgid: number, pids: number[] = []): void {
  try {
    process.kill(-pgid, 'SIGKILL');
  } catch {
    // group already gone
  }
  for (const pid of pids) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      // gone
    }
  }
}

function limitCheck(limits: Limits | undefined, s: Sample): ResourceLimitError | null {
  if (!limits) return null;
  if (limits.memoryMb != null && limits.memoryMb > 0 && s.rssBytes > limits.memoryMb * MB) {
    return new ResourceLimitError(`memory limit exceeded (rss ${Math.round(s.rssBytes / MB)} MB > ${limits.memoryMb} MB)`, 'memory');
  }
  if (limits.time && limits.time.minutes > 0) {
    const elapsedMin = (Date.now() - limits.time.startedAt) / 60_000;
    if (elapsedMin > limits.time.minutes) {
      return new ResourceLimitError(`time limit exceeded (wall ${elapsedMin.toFixed(2)} min > ${limits.time.minutes} min)`, 'time');
    }
  }
  return null;
}

/** The time-limit error for a task whose budget is already spent before a module starts. */
export function timeLimitReached(limits: Limits | undefined): ResourceLimitError | null {
  const err = limitCheck(limits ? { time: limits.time ?? null } : undefined, { cpuSeconds: 0, rssBytes: 0 });
  return err;
}

export function runProcess(opts: RunOptions): Promise<RunResult> {
  const started = Date.now();
  const sampleMs = opts.sampleMs ?? 250;
  return new Promise<RunResult>((resolve, reject) => {
    if (opts.signal?.aborted) {
      resolve({ exitCode: null, cpuSeconds: 0, maxRssBytes: 0, wallSeconds: 0, aborted: true });
      return;
    }
    try {
      // emptied, not removed: an empty file reads as "no final figure" (killed before the end)
      fs.truncateSync(opts.rusageFile, 0);
    } catch {
      // not there yet
    }
    const out = fs.openSync(opts.stdoutFile, 'a');
    const err = fs.openSync(opts.stderrFile, 'a');
    let child;
    try {
      child = spawn('/bin/sh', ['-c', WRAPPER, 'firn-module', opts.rusageFile, ...opts.argv], {
        cwd: opts.cwd,
        env: opts.env,
        stdio: ['ignore', out, err],
        detached: true, // own process group: the limit kill reaches every descendant
      });
    } finally {
      fs.closeSync(out);
      fs.closeSync(err);
    }
    const pid = child.pid;
    let cpu = 0;
    let maxRss = 0;
    let lastPids: number[] = [];
    let limitError: ResourceLimitError | undefined;
    let aborted = false;
    let exited = false;

    const sample = () => {
      if (exited || pid === undefined) return;
      const u = treeUsage(pid);
      if (u.pids.length) lastPids = u.pids;
      cpu = Math.max(cpu, u.cpuSeconds);
      maxRss = Math.max(maxRss, u.rssBytes);
      opts.onSample?.({ cpuSeconds: cpu, rssBytes: u.rssBytes });
      if (!limitError) {
        const e = limitCheck(opts.limits, { cpuSeconds: cpu, rssBytes: u.rssBytes });
        if (e) {
          limitError = e;
          killTree(pid, lastPids);
        }
      }
    };
    const timer = setInterval(sample, sampleMs);
    // Time limit: also wake up exactly at the deadline rather than at the next sample.
    let deadlineTimer: NodeJS.Timeout | undefined;
    if (opts.limits?.time && opts.limits.time.minutes > 0) {
      const at = opts.limits.time.startedAt + opts.limits.time.minutes * 60_000;
      deadlineTimer = setTimeout(sample, Math.max(0, at - Date.now() + 5));
    }
    const onAbort = () => {
      aborted = true;
      if (pid !== undefined) killTree(pid, lastPids);
    };
    opts.signal?.addEventListener('abort', onAbort, { once: true });
    // A first look soon after the start (a module that is over within it costs no /proc scan:
    // its CPU comes from the wrapper's rusage file), then every sampleMs.
    const firstSample = setTimeout(sample, Math.min(50, sampleMs));

    child.on('error', (e) => {
      exited = true;
      clearInterval(timer);
      clearTimeout(firstSample);
      if (deadlineTimer) clearTimeout(deadlineTimer);
      opts.signal?.removeEventListener('abort', onAbort);
      reject(new FirnError(`cannot start ${opts.argv[0] ?? '?'}: ${e.message}`));
    });
    child.on('exit', (code, signal) => {
      exited = true;
      clearInterval(timer);
      clearTimeout(firstSample);
      if (deadlineTimer) clearTimeout(deadlineTimer);
      opts.signal?.removeEventListener('abort', onAbort);
      // Leftover background processes of the module die with it.
      if (pid !== undefined) killTree(pid, []);
      try {
        const final = cpuSecondsOfRusage(fs.readFileSync(opts.rusageFile, 'utf8'));
        if (final !== null) cpu = Math.max(cpu, final);
      } catch {
        // killed before the wrapper could write it: keep the last sample
      }
      const killedByUs = limitError !== undefined || aborted;
      resolve({
        exitCode: killedByUs ? null : code ?? (signal ? 128 + (osSignalNumber(signal) ?? 0) : null),
        cpuSeconds: cpu,
        maxRssBytes: maxRss,
        wallSeconds: (Date.now() - started) / 1000,
        ...(limitError ? { limitError } : {}),
        aborted,
      });
    });
  });
}

function osSignalNumber(signal: NodeJS.Signals): number | undefined {
  return os.constants.signals[signal];
}

/** The last `bytes` of a file as text (empty when it does not exist). */
export function readTail(file: string, bytes = 64 * 1024): string {
  let fd: number;
  try {
    fd = fs.openSync(file, 'r');
  } catch {
    return '';
  }
  try {
    const size = fs.fstatSync(fd).size;
    const len = Math.min(size, bytes);
    const buf = Buffer.alloc(len);
    fs.readSync(fd, buf, 0, len, size - len);
    return buf.toString('utf8');
  } finally {
    fs.closeSync(fd);
  }
}

/** The last non-empty line of a text (for error summaries), at most 300 characters. */
export function lastLine(text: string): string {
  const lines = text.split('\n').map((l) => l.trim()).filter(Boolean);
  const l = lines[lines.length - 1] ?? '';
  return l.length > 300 ? l.slice(0, 300) + '…' : l;
}
