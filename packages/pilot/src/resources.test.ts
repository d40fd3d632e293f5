import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { diskUsage, parseGpuUtilization, parseProcStat, readAllProcesses, treeUsage } from './resources';

describe('parseProcStat', () => {
  it('reads the fields after a command name containing spaces and parentheses', () => {
    // pid (comm) state ppid pgrp session tty tpgid flags minflt cminflt majflt cmajflt utime stime cutime cstime prio nice threads itreal start vsize rss
    const line = '1234 (my (odd) prog) S 1 1234 1234 0 -1 4194304 100 0 0 0 250 50 7 3 20 0 1 0 999 123456789 2048 18446744073709551615';
    expect(parseProcStat(line)).toEqual({ pid: 1234, ppid: 1, pgrp: 1234, ticks: 310, rssPages: 2048 });
  });
  it('rejects garbage', () => {
    expect(parseProcStat('nonsense')).toBeNull();
  });
});

describe('treeUsage', () => {
  it('finds the children and grandchildren of a process and their RSS', async () => {
    const child = spawn('/bin/sh', ['-c', 'sleep 5 & sleep 5 & wait'], { detached: true, stdio: 'ignore' });
    try {
      const pid = child.pid as number;
      let u = treeUsage(pid);
      for (let i = 0; i < 100 && u.pids.length < 3; i++) {
        await new Promise((r) => setTimeout(r, 20));
        u = treeUsage(pid);
      }
      expect(u.pids).toContain(pid);
      expect(u.pids.length).toBe(3); // sh + two sleeps
      expect(u.rssBytes).toBeGreaterThan(0);
      // nothing unrelated: our own jest process is not in the tree
      expect(u.pids).not.toContain(process.pid);
    } finally {
      process.kill(-(child.pid as number), 'SIGKILL');
    }
  });
  it('is empty for a process that does not exist', () => {
    const procs = readAllProcesses();
    const unused = Math.max(...procs.map((p) => p.pid)) + 100000;
    expect(treeUsage(unused, procs)).toEqual({ pids: [], cpuSeconds: 0, rssBytes: 0 });
  });
});

describe('diskUsage', () => {
  it('counts the bytes of files below a directory', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'firn-du-'));
    try {
      fs.mkdirSync(path.join(dir, 'a'));
      fs.writeFileSync(path.join(dir, 'a', 'f'), Buffer.alloc(200_000, 1));
      const n = await diskUsage(dir);
      expect(n).toBeGreaterThanOrEqual(200_000);
      expect(n).toBeLessThan(400_000);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('parseGpuUtilization', () => {
  it('averages the GPUs nvidia-smi lists and ignores [N/A]', () => {
    expect(parseGpuUtilization('40\n60\n[N/A]\n')).toBe(50);
    expect(parseGpuUtilization('')).toBeUndefined();
  });
});
