/**
 * Resource sampling on a Linux worker node, from /proc and (when present) nvidia-smi:
 * CPU time and RSS of a module's process tree, disk use of the scratch directory, GPU use.
 * Nothing here needs privileges or extra packages.
 */
import { execFile, execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';

/** One line of /proc/<pid>/stat, the fields we use. */
export interface ProcStat {
  pid: number;
  ppid: number;
  pgrp: number;
  /** utime + stime + cutime + cstime, in clock ticks. */
  ticks: number;
  /** Resident set size, pages. */
  rssPages: number;
}

function getconf(name: string, fallback: number): number {
  try {
    const v = Number(execFileSync('getconf', [name], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim());
    return Number.isFinite(v) && v > 0 ? v : fallback;
  } catch {
    return fallback;
  }
}

let sysconf: { clkTck: number; pageSize: number } | null = null;
/** Clock ticks per second and page size (asked once from getconf; 100 and 4096 otherwise). */
export function systemConstants(): { clkTck: number; pageSize: number } {
  sysconf ??= { clkTck: getconf('CLK_TCK', 100), pageSize: getconf('PAGESIZE', 4096) };
  return sysconf;
}

/** Parse the text of /proc/<pid>/stat (the command name may contain spaces and parentheses). */
export function parseProcStat(text: string): ProcStat | null {
  const close = text.lastIndexOf(')');
  const open = text.indexOf('(');
  if (close < 0 || open < 0) return null;
  const pid = Number(text.slice(0, open).trim());
  // Fields after the command: 3 state, 4 ppid, 5 pgrp, … 14 utime, 15 stime, 16 cutime, 17 cstime, … 24 rss
  const f = text.slice(close + 2).trim().split(/\s+/);
  const n = (field: number) => Number(f[field - 3] ?? NaN);
  const ticks = n(14) + n(15) + n(16) + n(17);
  if (!Number.isFinite(pid) || !Number.isFinite(ticks)) return null;
  return { pid, ppid: n(4), pgrp: n(5), ticks, rssPages: Math.max(0, n(24)) };
}

/** Every process visible in /proc right now. */
export function readAllProcesses(procDir = '/proc'): ProcStat[] {
  let names: string[];
  try {
    names = fs.readdirSync(procDir);
  } catch {
    return [];
  }
  const out: ProcStat[] = [];
  for (const name of names) {
    if (!/^\d+$/.test(name)) continue;
    try {
      const s = parseProcStat(fs.readFileSync(path.join(procDir, name, 'stat'), 'utf8'));
      if (s) out.push(s);
    } catch {
      // the process exited between readdir and read
    }
  }
  return out;
}

export interface TreeUsage {
  pids: number[];
  /** CPU seconds of the live tree, including the reaped children each member has waited for. */
  cpuSeconds: number;
  rssBytes: number;
}

/**
 * The process tree rooted at `rootPid`: its descendants by parent link, plus any process in
 * the root's process group (so a child that was re-parented to init still counts).
 *
 * CPU: summing utime+stime+cutime+cstime over the live tree never counts a process twice —
 * a live process's time is only in its own utime/stime, and a reaped one's only in the
 * cutime/cstime of the parent that waited for it.
 */
export function treeUsage(rootPid: number, procs: ProcStat[] = readAllProcesses()): TreeUsage {
  const { clkTck, pageSize } = systemConstants();
  const children = new Map<number, ProcStat[]>();
  for (const p of procs) {
    let list = children.get(p.ppid);
    if (!list) children.set(p.ppid, (list = []));
    list.push(p);
  }
  const seen = new Map<number, ProcStat>();
  const root = procs.find((p) => p.pid === rootPid);
  const stack: ProcStat[] = root ? [root] : [];
  for (const p of procs) if (p.pgrp === rootPid && p.pid !== rootPid) stack.push(p);
  while (stack.length) {
    const p = stack.pop() as ProcStat;
    if (seen.has(p.pid)) continue;
    seen.set(p.pid, p);
    for (const c of children.get(p.pid) ?? []) stack.push(c);
  }
  let ticks = 0;
  let rss = 0;
  for (const p of seen.values()) {
    ticks += p.ticks;
    rss += p.rssPages;
  }
  return { pids: [...seen.keys()], cpuSeconds: ticks / clkTck, rssBytes: rss * pageSize };
}

/** CPU seconds recorded in a saved /proc/<pid>/stat text (own + waited-for children). */
export function cpuSecondsOfStat(text: string): number | null {
  const s = parseProcStat(text);
  return s ? s.ticks / systemConstants().clkTck : null;
}

/**
 * Bytes allocated on disk below `dir` (like `du -s`), never following symlinks. Synchronous
 * system calls (no thread-pool round trip per entry: a short task's area has a handful), with
 * a turn of the event loop every 1,000 entries so that a huge area does not stall the pilot.
 */
export async function diskUsage(dir: string): Promise<number> {
  let total = 0;
  let visited = 0;
  const seen = new Set<string>();
  const walk = async (d: string, depth: number): Promise<void> => {
    if (depth > 64) return;
    let entries: fs.Dirent[];
    try {
      entries = fs.readdirSync(d, { withFileTypes: true });
    } catch {
      return;
    }
    for (const e of entries) {
      if (++visited % 1000 === 0) await new Promise((r) => setImmediate(r));
      const p = path.join(d, e.name);
      try {
        const st = fs.lstatSync(p);
        const key = `${st.dev}:${st.ino}`;
        if (!seen.has(key)) {
          seen.add(key);
          total += st.blocks ? st.blocks * 512 : st.size;
        }
        if (st.isDirectory()) await walk(p, depth + 1);
      } catch {
        // vanished while walking
      }
    }
  };
  await walk(dir, 0);
  return total;
}

let nvidiaSmi: string | null | undefined;
function findOnPath(cmd: string): string | null {
  for (const dir of (process.env.PATH ?? '').split(path.delimiter)) {
    if (!dir) continue;
    const p = path.join(dir, cmd);
    try {
      fs.accessSync(p, fs.constants.X_OK);
      return p;
    } catch {
      // not here
    }
  }
  return null;
}

/** Mean GPU utilisation (percent) over the GPUs nvidia-smi reports; undefined without one. */
export function gpuUtilization(timeoutMs = 10_000): Promise<number | undefined> {
  if (nvidiaSmi === undefined) nvidiaSmi = findOnPath('nvidia-smi');
  const bin = nvidiaSmi;
  if (!bin) return Promise.resolve(undefined);
  return new Promise((resolve) => {
    execFile(bin, ['--query-gpu=utilization.gpu', '--format=csv,noheader,nounits'], { timeout: timeoutMs }, (err, stdout) => {
      if (err) return resolve(undefined);
      resolve(parseGpuUtilization(stdout));
    });
  });
}

/** Mean of the numbers nvidia-smi printed, one per GPU ("[N/A]" lines ignored). */
export function parseGpuUtilization(text: string): number | undefined {
  const values = text
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => /^\d+(\.\d+)?$/.test(l))
    .map(Number);
  if (!values.length) return undefined;
  return values.reduce((a, b) => a + b, 0) / values.length;
}
