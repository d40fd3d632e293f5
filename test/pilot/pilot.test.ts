/**
 * firn-pilot against a recording JSON-RPC mon (test/pilot/fake-mon.ts) speaking the pilot.*
 * protocol: a whole task (metaproject, inputs, two trays with iterations, an external module,
 * outputs), limits, module failures, mon outages (3 s and the 30 s acceptance) and a passkey
 * revoked mid-run. Modules are real processes; only mon is stood in for.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { PilotLogger, RpcReporter, runPilot, type PilotOutcome } from '@firn/pilot';
import { waitUntil } from '../helpers/db';
import { FakeMon } from './fake-mon';
import { HttpFileServer } from './http-file-server';
import { EXPECTED_RESULT, EXPECTED_STATS, sha256, startResult, writeWebFiles, type StartOptions } from './pilot-task';

let root: string;
let web: HttpFileServer;
let sums: { toolsSha256: string; inSha256: string };

beforeAll(async () => {
  root = fs.mkdtempSync(path.join(os.tmpdir(), 'firn-pilot-it-'));
  sums = writeWebFiles(path.join(root, 'www'));
  web = await new HttpFileServer(path.join(root, 'www')).listen();
});
afterAll(async () => {
  await web.close();
  fs.rmSync(root, { recursive: true, force: true });
});

interface Run {
  mon: FakeMon;
  siteTemp: string;
  scratch: string;
  logger: PilotLogger;
  outcome: Promise<PilotOutcome>;
}

let counter = 0;
async function startRun(o: Partial<StartOptions> = {}, backoff = { baseMs: 50, maxMs: 500 }): Promise<Run> {
  const n = ++counter;
  const siteTempDir = path.join(root, `site-temp-${n}`);
  const siteTemp = pathToFileURL(siteTempDir).href;
  const mon = new FakeMon({ start: startResult({ webUrl: web.url, ...sums, siteTemp, ...o }) });
  await mon.listen();
  const logger = PilotLogger.create({ stream: null });
  logger.addSecret(mon.passkey);
  const reporter = new RpcReporter({ url: mon.url, taskId: 42, passkey: mon.passkey, logger, backoff: { ...backoff, jitter: 0.5 } });
  const scratch = path.join(root, `scratch-${n}`);
  const outcome = runPilot({ reporter, logger, scratchRoot: scratch, cacheDir: path.join(root, 'cache'), heartbeatSeconds: 0.2, sampleMs: 100 });
  return { mon, siteTemp: siteTempDir, scratch, logger, outcome };
}

function finishCall(mon: FakeMon) {
  expect(mon.invalid).toEqual([]);
  const f = mon.callsOf('pilot.finish');
  expect(f).toHaveLength(1);
  return f[0]?.params as { ok: boolean; error?: string; resources?: Record<string, number> };
}

/** Everything the pilot reported for a successful run of the fixture task. */
function expectCompleteRun(run: Run, outcome: PilotOutcome) {
  const { mon } = run;
  expect(mon.invalid).toEqual([]); // every call matched schemas/rpc/pilot.*.json
  expect(outcome).toMatchObject({ exitCode: 0, ok: true });
  const fin = finishCall(mon);
  expect(fin.ok).toBe(true);
  expect(fin.resources).toEqual(expect.objectContaining({ cpu_seconds: expect.any(Number), wall_seconds: expect.any(Number), rss_mb: expect.any(Number), disk_mb: expect.any(Number) }));
  // finish is the last call; stats and files arrived once, before it
  expect(mon.calls[mon.calls.length - 1]?.method).toBe('pilot.finish');
  const stats = mon.callsOf('pilot.stats');
  expect(stats).toHaveLength(1);
  const { cpu_seconds: cpu, ...rest } = stats[0]?.params.stats as Record<string, number>;
  expect(rest).toEqual(EXPECTED_STATS);
  expect(cpu).toBeGreaterThanOrEqual(0);

  const files = mon.callsOf('pilot.files');
  expect(files).toHaveLength(1);
  const list = files[0]?.params.files as Array<Record<string, any>>;
  expect(list.map((f) => f.local_name).sort()).toEqual(['hello.tar.gz', 'result.txt']);
  const result = list.find((f) => f.local_name === 'result.txt') as Record<string, any>;
  const temp = path.join(run.siteTemp, '7', '5', 'main', 'result.txt');
  expect(result).toEqual({
    local_name: 'result.txt',
    url: `${pathToFileURL(run.siteTemp).href}/results/7/0005/result.txt`,
    temp_url: pathToFileURL(temp).href,
    type: 'permanent',
    size: Buffer.byteLength(EXPECTED_RESULT),
    md5: expect.stringMatching(/^[0-9a-f]{32}$/),
    sha256: sha256(EXPECTED_RESULT),
  });
  expect(fs.readFileSync(temp, 'utf8')).toBe(EXPECTED_RESULT);
  const tarball = list.find((f) => f.local_name === 'hello.tar.gz') as Record<string, any>;
  expect(tarball.type).toBe('job_temp');
  expect(sha256(fs.readFileSync(path.join(run.siteTemp, '7', '5', 'main', 'hello.tar.gz')))).toBe(tarball.sha256);

  // logs: per-iteration stdout tails, the external module's output, the pilot's own log
  const logs = new Map(mon.callsOf('pilot.log').map((c) => [c.params.name as string, c.params.data as string]));
  expect(logs.get('gen.count.0.stdout')).toBe('iteration 0 of job 5 in main, FIRN_ITER=0\n');
  expect(logs.get('gen.count.2.stdout')).toBe('iteration 2 of job 5 in main, FIRN_ITER=2\n');
  expect(logs.get('post.ext.stdout')).toBe('ext ran with --fast\n');
  expect(logs.get('pilot')).toMatch(/task done; finishing/);
  // the passkey appears in no log and in nothing but the call envelopes
  for (const data of logs.values()) expect(data).not.toContain(mon.passkey);
  expect(run.logger.tail()).not.toContain(mon.passkey);

  // the scratch area is gone (only the parent directory remains)
  expect(fs.readdirSync(run.scratch)).toEqual([]);
}

describe('firn-pilot with a recording mon', () => {
  it('runs a task with two trays, iterations, a metaproject, inputs, an external module and outputs', async () => {
    const run = await startRun({ extraModule: { name: 'wait', class: 'shell', parameters: { command: 'sleep 0.6' } } });
    try {
      const outcome = await run.outcome;
      expectCompleteRun(run, outcome);
      expect(run.mon.callsOf('pilot.start')[0]?.params).toMatchObject({ host: os.hostname(), resources: { cpus: os.cpus().length } });
      const hb = run.mon.callsOf('pilot.heartbeat');
      expect(hb.length).toBeGreaterThanOrEqual(2);
      expect(hb[hb.length - 1]?.params).toEqual(
        expect.objectContaining({ cpu_seconds: expect.any(Number), rss_mb: expect.any(Number), disk_mb: expect.any(Number), wall_seconds: expect.any(Number) }),
      );
      // during `sleep 0.6` a heartbeat saw a live process tree
      expect(hb.some((h) => h.params.rss_mb > 0)).toBe(true);
    } finally {
      await run.mon.close();
    }
  });

  it('completes and delivers every update when mon is down for 3 s in the middle of the run', async () => {
    const run = await startRun({ extraModule: { name: 'slow', class: 'shell', parameters: { command: 'sleep 4; echo "slept 1" >> "$FIRN_STATS"' } } });
    try {
      await waitUntil(() => run.mon.callsOf('pilot.log').some((c) => c.params.name === 'post.ext.stdout'), 20_000, 'the slow module to start');
      await run.mon.down();
      const downAt = Date.now();
      await new Promise((r) => setTimeout(r, 3_000));
      const callsWhileDown = run.mon.calls.length;
      await run.mon.up();
      const outcome = await run.outcome;
      expect(Date.now() - downAt).toBeGreaterThanOrEqual(3_000);
      expect(run.mon.calls.length).toBeGreaterThan(callsWhileDown);
      // the slow module's extra stat shows the run carried on through the outage
      const stats = run.mon.callsOf('pilot.stats')[0]?.params.stats as Record<string, number>;
      expect(stats.slept).toBe(1);
      delete stats.slept;
      expectCompleteRun(run, outcome);
      expect(run.mon.callsOf('pilot.heartbeat').some((h) => h.at > downAt + 3_000)).toBe(true);
    } finally {
      await run.mon.close();
    }
  });

  it('acceptance: mon stopped for 30 s while the pilot runs; the pilot completes and every update arrives after mon returns', async () => {
    const run = await startRun(
      { extraModule: { name: 'slow', class: 'shell', parameters: { command: 'sleep 3; echo "slept 1" >> "$FIRN_STATS"' } } },
      { baseMs: 500, maxMs: 3_000 },
    );
    try {
      await waitUntil(() => run.mon.callsOf('pilot.start').length === 1, 10_000, 'pilot.start');
      await run.mon.down();
      const downAt = Date.now();
      await new Promise((r) => setTimeout(r, 30_000));
      expect(run.mon.calls.filter((c) => c.at > downAt)).toHaveLength(0);
      await run.mon.up();
      const upAt = Date.now();
      const outcome = await run.outcome;
      expect(Date.now() - upAt).toBeLessThan(8_000);
      const stats = run.mon.callsOf('pilot.stats')[0]?.params.stats as Record<string, number>;
      expect(stats.slept).toBe(1);
      delete stats.slept;
      expectCompleteRun(run, outcome);
      // the run's updates were delivered after mon came back (heartbeats coalesced into few calls)
      const after = run.mon.calls.filter((c) => c.at >= upAt).map((c) => c.method);
      // (the waiting heartbeat is replaced by the finish's final resources)
      expect(after).toEqual(expect.arrayContaining(['pilot.log', 'pilot.files', 'pilot.stats', 'pilot.finish']));
      expect(run.mon.callsOf('pilot.finish')[0]?.params.resources).toMatchObject({ cpu_seconds: expect.any(Number), wall_seconds: expect.any(Number) });
      expect(run.mon.callsOf('pilot.heartbeat').filter((c) => c.at >= upAt).length).toBeLessThanOrEqual(3);
    } finally {
      await run.mon.close();
    }
  }, 90_000);

  it('stops, kills its module and removes the scratch directory when mon refuses the passkey mid-run', async () => {
    const pidFile = path.join(root, 'revoked.pid');
    const run = await startRun({ extraModule: { name: 'long', class: 'shell', parameters: { command: `echo $$ > ${pidFile}; exec sleep 60` } } });
    try {
      await waitUntil(() => fs.existsSync(pidFile) && fs.readFileSync(pidFile, 'utf8').trim() !== '', 20_000, 'the long module to start');
      const pid = Number(fs.readFileSync(pidFile, 'utf8'));
      run.mon.revoked = true; // the task was reset: its passkey is dead
      const t0 = Date.now();
      const outcome = await run.outcome;
      expect(outcome.exitCode).toBe(3);
      expect(Date.now() - t0).toBeLessThan(5_000);
      await waitUntil(() => {
        try {
          const st = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
          return st.slice(st.lastIndexOf(')') + 2).startsWith('Z');
        } catch {
          return true;
        }
      }, 5_000, 'the module process to die');
      expect(run.mon.callsOf('pilot.finish')).toHaveLength(0);
      expect(run.mon.callsOf('pilot.stats')).toHaveLength(0);
      expect(fs.readdirSync(run.scratch)).toEqual([]);
    } finally {
      await run.mon.close();
    }
  });

  it('exits 3 without creating anything when pilot.start is refused', async () => {
    const mon = new FakeMon({ start: {} });
    await mon.listen();
    try {
      const logger = PilotLogger.create({ stream: null });
      const reporter = new RpcReporter({ url: mon.url, taskId: 42, passkey: 'not-the-passkey', logger });
      const scratch = path.join(root, 'scratch-refused');
      const outcome = await runPilot({ reporter, logger, scratchRoot: scratch });
      expect(outcome.exitCode).toBe(3);
      expect(fs.existsSync(scratch)).toBe(false);
      expect(mon.calls).toHaveLength(0);
    } finally {
      await mon.close();
    }
  });

  it('gives up waiting for an unreachable mon at start when it is signalled', async () => {
    const mon = new FakeMon({ start: {} });
    await mon.listen();
    await mon.down();
    const logger = PilotLogger.create({ stream: null });
    const reporter = new RpcReporter({ url: mon.url, taskId: 42, passkey: mon.passkey, logger, backoff: { baseMs: 100, maxMs: 1_000 } });
    const ac = new AbortController();
    const p = runPilot({ reporter, logger, scratchRoot: path.join(root, 'scratch-sig'), signal: ac.signal });
    await waitUntil(() => reporter.counters.failures >= 2, 10_000, 'start retries');
    const t0 = Date.now();
    ac.abort(new Error('SIGTERM'));
    expect((await p).exitCode).toBe(143);
    expect(Date.now() - t0).toBeLessThan(2_000);
    expect(fs.existsSync(path.join(root, 'scratch-sig'))).toBe(false);
  });

  it('kills a module that allocates beyond the memory request and fails with "memory limit exceeded"', async () => {
    const run = await startRun({
      requirements: { memory: 100 },
      extraModule: { name: 'alloc', class: 'shell', parameters: { command: `python3 -c "x=bytearray(300*1024*1024); import time; time.sleep(5)"` } },
    });
    try {
      const outcome = await run.outcome;
      expect(outcome.exitCode).toBe(1);
      const fin = finishCall(run.mon);
      expect(fin.ok).toBe(false);
      expect(fin.error).toMatch(/^module post\/alloc: memory limit exceeded \(rss \d+ MB > 100 MB\)$/);
      expect(Number(/rss (\d+) MB/.exec(fin.error ?? '')?.[1])).toBeGreaterThan(100);
      expect(run.mon.callsOf('pilot.stats')).toHaveLength(0); // a failed task's partial stats are not reported
      expect(run.mon.callsOf('pilot.files')).toHaveLength(0);
      expect(fs.readdirSync(run.scratch)).toEqual([]);
    } finally {
      await run.mon.close();
    }
  });

  it("uses mon's (bumped) memory requirement over the config's", async () => {
    const run = await startRun({
      requirements: { memory: 50 },
      monRequirements: { memory: 1000 },
      extraModule: { name: 'alloc', class: 'shell', parameters: { command: `python3 -c "x=bytearray(150*1024*1024)"` } },
    });
    try {
      expect((await run.outcome).exitCode).toBe(0);
    } finally {
      await run.mon.close();
    }
  });

  it('kills a module running past the time request and fails with "time limit exceeded"', async () => {
    const run = await startRun({ requirements: { time: 0.05 }, extraModule: { name: 'sleepy', class: 'shell', parameters: { command: 'sleep 60' } } });
    try {
      const t0 = Date.now();
      const outcome = await run.outcome;
      expect(Date.now() - t0).toBeLessThan(10_000);
      expect(outcome.exitCode).toBe(1);
      expect(finishCall(run.mon).error).toMatch(/^module post\/sleepy: time limit exceeded \(wall 0\.0\d min > 0\.05 min\)$/);
    } finally {
      await run.mon.close();
    }
  });

  it('reports a failing module with its exit code and last stderr line, with its output tails', async () => {
    const run = await startRun({ extraModule: { name: 'bad', class: 'shell', parameters: { command: 'echo partial; echo "warming up" >&2; echo "boom: no such detector" >&2; exit 3' } } });
    try {
      const outcome = await run.outcome;
      expect(outcome.exitCode).toBe(1);
      expect(finishCall(run.mon)).toMatchObject({ ok: false, error: 'module post/bad exited with code 3: boom: no such detector' });
      const logs = new Map(run.mon.callsOf('pilot.log').map((c) => [c.params.name, c.params.data]));
      expect(logs.get('post.bad.stdout')).toBe('partial\n');
      expect(logs.get('post.bad.stderr')).toBe('warming up\nboom: no such detector\n');
    } finally {
      await run.mon.close();
    }
  });

  it('fails the task when an input does not match its checksum', async () => {
    const run = await startRun({ inSha256: 'a'.repeat(64) });
    try {
      expect((await run.outcome).exitCode).toBe(1);
      expect(finishCall(run.mon).error).toMatch(/^input in\.txt: checksum mismatch for http:\/\/127\.0\.0\.1:\d+\/in\.txt: sha256 /);
    } finally {
      await run.mon.close();
    }
  });

  it('stages outputs straight to their destination when the site has no site_temp', async () => {
    const dest = path.join(root, 'final-dest');
    const n = ++counter;
    const start = startResult({ webUrl: web.url, ...sums }) as { config: { tasks: Array<{ data: Array<Record<string, string>> }> } };
    const data = start.config.tasks[1]?.data as Array<Record<string, string>>;
    data[1] = { local: 'result.txt', remote: `${pathToFileURL(dest).href}/r-$(job).txt`, movement: 'output' };
    data.splice(2, 1);
    const mon = new FakeMon({ start });
    await mon.listen();
    try {
      const logger = PilotLogger.create({ stream: null });
      const reporter = new RpcReporter({ url: mon.url, taskId: 42, passkey: mon.passkey, logger });
      const outcome = await runPilot({ reporter, logger, scratchRoot: path.join(root, `scratch-${n}`), cacheDir: path.join(root, 'cache') });
      expect(outcome.exitCode).toBe(0);
      const files = mon.callsOf('pilot.files')[0]?.params.files as Array<Record<string, unknown>>;
      expect(files).toEqual([expect.objectContaining({ url: `${pathToFileURL(dest).href}/r-5.txt`, temp_url: `${pathToFileURL(dest).href}/r-5.txt`, sha256: sha256(EXPECTED_RESULT) })]);
      expect(fs.readFileSync(path.join(dest, 'r-5.txt'), 'utf8')).toBe(EXPECTED_RESULT);
    } finally {
      await mon.close();
    }
  });
});
