import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { cpuSecondsOfRusage, lastLine, readTail, runProcess, type RunOptions } from './process-runner';
import { readAllProcesses } from './resources';

let dir: string;
beforeEach(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'firn-run-'));
});
afterEach(() => {
  fs.rmSync(dir, { recursive: true, force: true });
});

function opts(argv: string[], extra: Partial<RunOptions> = {}): RunOptions {
  return {
    argv,
    cwd: dir,
    env: { ...process.env },
    stdoutFile: path.join(dir, 'out'),
    stderrFile: path.join(dir, 'err'),
    rusageFile: path.join(dir, 'rusage'),
    ...extra,
  };
}

/** Running (a zombie waiting for init to reap it counts as dead). Polls briefly: SIGKILL is asynchronous. */
async function alive(pid: number): Promise<boolean> {
  const running = () => {
    try {
      const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
      return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3) !== 'Z';
    } catch {
      return false;
    }
  };
  for (let i = 0; i < 50 && running(); i++) await new Promise((r) => setTimeout(r, 20));
  return running();
}

describe('runProcess', () => {
  it('runs a command with its output in files and returns its exit code', async () => {
    const r = await runProcess(opts(['/bin/sh', '-c', 'echo hello; echo oops >&2; exit 3']));
    expect(r.exitCode).toBe(3);
    expect(fs.readFileSync(path.join(dir, 'out'), 'utf8')).toBe('hello\n');
    expect(lastLine(readTail(path.join(dir, 'err')))).toBe('oops');
    expect(r.limitError).toBeUndefined();
  });

  it('counts the CPU time of the whole tree, including a grandchild that already exited', async () => {
    // A grandchild does a fixed amount of work, records its own CPU time and exits; its parent
    // waits for it, so its time ends up in the parent's cutime. (Fixed work, not a wall-clock
    // busy loop, so a loaded machine cannot make the numbers disagree.)
    const own = path.join(dir, 'own-cpu');
    const burn = `${JSON.stringify(process.execPath)} -e "let x = 0; for (let i = 0; i < 1.5e8; i++) x += i; const u = process.cpuUsage(); require('fs').writeFileSync('${own}', String((u.user + u.system) / 1e6))"`;
    const r = await runProcess(opts(['/bin/sh', '-c', `${burn}; sleep 0.3`], { sampleMs: 50 }));
    expect(r.exitCode).toBe(0);
    const reported = Number(fs.readFileSync(own, 'utf8'));
    expect(reported).toBeGreaterThan(0.1);
    expect(r.cpuSeconds).toBeGreaterThanOrEqual(reported * 0.95 - 0.02); // clock ticks are 10 ms
    expect(r.cpuSeconds).toBeLessThan(reported + 1);
  });

  it('a command over before any sample still reports its CPU time: the wrapper saves it (shell builtin times, no extra process)', async () => {
    const own = path.join(dir, 'own-cpu');
    const burn = `${JSON.stringify(process.execPath)} -e "let x = 0; for (let i = 0; i < 1e8; i++) x += i; const u = process.cpuUsage(); require('fs').writeFileSync('${own}', String((u.user + u.system) / 1e6))"`;
    const r = await runProcess(opts(['/bin/sh', '-c', burn], { sampleMs: 600_000 }));
    expect(r.exitCode).toBe(0);
    const reported = Number(fs.readFileSync(own, 'utf8'));
    expect(r.cpuSeconds).toBeGreaterThanOrEqual(reported * 0.95 - 0.02);
    expect(r.cpuSeconds).toBeLessThan(reported + 1);
    expect(fs.readFileSync(path.join(dir, 'rusage'), 'utf8')).toMatch(/^\d+m[\d.]+s \d+m[\d.]+s\n\d+m[\d.]+s \d+m[\d.]+s\n$/);
  });

  it('kills a process tree that goes over the memory limit', async () => {
    const pidFile = path.join(dir, 'pid');
    // node allocates and touches 300 MB; the limit is 100 MB.
    const alloc = `echo $$ > ${pidFile}; exec ${JSON.stringify(process.execPath)} -e "const b = Buffer.alloc(300*1024*1024, 1); setTimeout(() => console.log(b.length), 20000)"`;
    const t0 = Date.now();
    const r = await runProcess(opts(['/bin/sh', '-c', alloc], { limits: { memoryMb: 100 } }));
    expect(r.limitError?.kind).toBe('memory');
    expect(r.limitError?.message).toMatch(/^memory limit exceeded \(rss \d+ MB > 100 MB\)$/);
    expect(r.exitCode).toBeNull();
    expect(Date.now() - t0).toBeLessThan(15_000);
    expect(await alive(Number(fs.readFileSync(pidFile, 'utf8')))).toBe(false);
  });

  it('kills a command that runs past the time limit', async () => {
    const t0 = Date.now();
    const r = await runProcess(opts(['sleep', '30'], { limits: { time: { startedAt: Date.now(), minutes: 0.02 } } }));
    expect(r.limitError?.kind).toBe('time');
    expect(r.limitError?.message).toMatch(/^time limit exceeded \(wall 0\.0\d min > 0\.02 min\)$/);
    expect(Date.now() - t0).toBeGreaterThanOrEqual(1_150);
    expect(Date.now() - t0).toBeLessThan(5_000);
  });

  it('kills the process group on abort, background children included', async () => {
    const ac = new AbortController();
    const pidFile = path.join(dir, 'bgpid');
    const p = runProcess(opts(['/bin/sh', '-c', `sleep 30 & echo $! > ${pidFile}; wait`], { signal: ac.signal }));
    for (let i = 0; i < 100 && !fs.existsSync(pidFile); i++) await new Promise((r) => setTimeout(r, 20));
    const bg = Number(fs.readFileSync(pidFile, 'utf8'));
    expect(readAllProcesses().some((p) => p.pid === bg)).toBe(true);
    ac.abort();
    const r = await p;
    expect(r.aborted).toBe(true);
    expect(await alive(bg)).toBe(false);
  });
});

describe('cpuSecondsOfRusage', () => {
  it('reads the shell times of dash and bash, a saved /proc stat line, and nothing', () => {
    expect(cpuSecondsOfRusage('0m0.010000s 0m0.000000s\n1m2.500000s 0m0.250000s\n')).toBeCloseTo(62.76, 6);
    expect(cpuSecondsOfRusage('0m0.001s 0m0.002s\n0m1.000s 0m0.500s\n')).toBeCloseTo(1.503, 6);
    expect(cpuSecondsOfRusage('0m 0.01s 0m 0.00s\n0m 2,50s 0m 0,25s\n')).toBeCloseTo(2.76, 6); // other shells and locales
    const stat = '123 (my (odd) cmd) S 1 123 123 0 -1 4194304 100 0 0 0 50 25 100 25 20 0 1 0 42 1000 100 0';
    expect(cpuSecondsOfRusage(stat)).toBeCloseTo(2, 6); // (50 + 25 + 100 + 25) ticks at 100 Hz
    expect(cpuSecondsOfRusage('')).toBeNull();
    expect(cpuSecondsOfRusage('garbage')).toBeNull();
  });
});
