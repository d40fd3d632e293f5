import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { PilotLogger } from './logger';
import { FileReporter, MonUnreachableError, RpcReporter, StalePasskeyError, defaultRetryHorizonMs } from './reporter';
import { RpcClient, RpcError, RpcTransportError, isRetryableRpcFailure } from './core-pure';
import { FakeMon } from '../../../test/pilot/fake-mon';
import { waitUntil } from '../../../test/helpers/db';

const START = {
  task: { id: 42, name: 't', task_index: 0, dataset_id: 1, job_id: 10, job_index: 0, jobs_total: 1, requirements: {} },
  config: { version: 1, tasks: [{ name: 't', trays: [] }] },
  args: {},
  inputs: [],
  external_modules: [],
  system: { heartbeat_seconds: 60 },
};

const MD5 = 'a'.repeat(32);
const SHA = 'b'.repeat(64);
let mon: FakeMon;
let logLines: string[];
let reporter: RpcReporter;

function makeReporter(passkey = mon.passkey, extra: { retryHorizonMs?: number } = {}): RpcReporter {
  logLines = [];
  const stream = { write: (s: string) => logLines.push(s) } as unknown as NodeJS.WritableStream;
  const logger = PilotLogger.create({ stream });
  logger.addSecret(passkey);
  return new RpcReporter({ url: mon.url, taskId: 42, passkey, logger, backoff: { baseMs: 20, maxMs: 200, jitter: 0.5 }, startTimeoutMs: 10_000, ...extra });
}

beforeEach(async () => {
  mon = new FakeMon({ start: START });
  await mon.listen();
  reporter = makeReporter();
});
afterEach(async () => {
  await reporter.close();
  await mon.close();
  expect(mon.invalid).toEqual([]); // every call matched schemas/rpc/pilot.*.json
});

describe('RpcReporter', () => {
  it('sends every update in order with task_id and passkey, finish last', async () => {
    const start = await reporter.start('node1', { cpus: 2 });
    expect(start.task.id).toBe(42);
    reporter.heartbeat({ cpu_seconds: 1 });
    reporter.log('a.stdout', 'hello');
    reporter.files([{ local_name: 'o', url: 'file:///o', temp_url: 'file:///t/o', type: 'permanent', size: 1, md5: MD5, sha256: SHA }]);
    reporter.stats({ events: 3 });
    const fin = await reporter.finish(true, undefined, { cpu_seconds: 1, wall_seconds: 2, rss_mb: 3, disk_mb: 4 });
    expect(fin.status).toBe('READYTOCOPY');
    // the waiting updates travel inside pilot.finish (one request); the heartbeat is dropped:
    // the finish has the final resources
    expect(mon.calls.map((c) => `${c.method}${c.viaFinish ? ' (in finish)' : ''}`)).toEqual([
      'pilot.start', 'pilot.files (in finish)', 'pilot.stats (in finish)', 'pilot.log (in finish)', 'pilot.finish',
    ]);
    expect(mon.bodies).toHaveLength(2);
    expect(mon.callsOf('pilot.finish')[0]?.params).toMatchObject({
      ok: true, stats: { events: 3 }, logs: [{ name: 'a.stdout', data: 'hello', append: false }], files: [{ local_name: 'o', md5: MD5 }],
      resources: { cpu_seconds: 1, wall_seconds: 2, rss_mb: 3, disk_mb: 4 },
    });
    expect(mon.calls.every((c) => c.params.task_id === 42 && c.params.passkey === mon.passkey)).toBe(true);
    expect(mon.callsOf('pilot.start')[0]?.params).toMatchObject({ host: 'node1', resources: { cpus: 2 } });
    expect(logLines.join('')).not.toContain(mon.passkey);
  });

  it('buffers while mon is down, coalesces heartbeats, and delivers everything after it returns', async () => {
    await reporter.start('node1');
    await mon.down();
    for (let i = 1; i <= 20; i++) reporter.heartbeat({ cpu_seconds: i });
    reporter.stats({ events: 5 });
    reporter.log('x.stdout', 'part1 ', true);
    reporter.log('x.stdout', 'part2', true);
    reporter.files([{ local_name: 'o', url: 'u', temp_url: 't', type: 'permanent', size: 1, md5: MD5, sha256: SHA }]);
    const fin = reporter.finish(true);
    await waitUntil(() => reporter.counters.failures >= 3, 5_000, 'retries while mon is down');
    expect(mon.calls.length).toBe(1); // only start
    await mon.up();
    await expect(fin).resolves.toEqual({ status: 'READYTOCOPY' });
    const hb = mon.callsOf('pilot.heartbeat');
    expect(hb.length).toBe(1);
    expect(hb[0]?.params.cpu_seconds).toBe(20);
    expect(mon.callsOf('pilot.stats').map((c) => c.params.stats)).toEqual([{ events: 5 }]);
    expect(mon.callsOf('pilot.log').map((c) => [c.params.data, c.params.append])).toEqual([['part1 part2', true]]);
    expect(mon.callsOf('pilot.files')).toHaveLength(1);
    expect(mon.calls[mon.calls.length - 1]?.method).toBe('pilot.finish');
    // the backlog went out with the finish; the heartbeat on its own (this finish has no resources)
    expect(mon.calls.filter((c) => c.viaFinish).map((c) => c.method).sort()).toEqual(['pilot.files', 'pilot.log', 'pilot.stats']);
    expect(hb[0]?.viaFinish).toBeUndefined();
  });

  it('a mon that does not take updates in pilot.finish (-32602): they are sent on their own, then the finish', async () => {
    await reporter.start('n');
    mon.onCall = (c) => {
      if (c.method === 'pilot.finish' && (c.params.stats || c.params.logs || c.params.files)) throw { code: -32602, message: 'invalid params: /params must NOT have additional properties' };
    };
    reporter.stats({ a: 1 });
    reporter.log('l', 'text');
    await expect(reporter.finish(true)).resolves.toEqual({ status: 'READYTOCOPY' });
    expect(mon.calls.map((c) => `${c.method}${c.viaFinish ? ' (in finish)' : ''}`)).toEqual(['pilot.start', 'pilot.stats', 'pilot.log', 'pilot.finish']);
    expect(mon.callsOf('pilot.log')[0]?.params).toMatchObject({ name: 'l', data: 'text' });
    expect(logLines.join('')).toMatch(/does not take updates with pilot.finish/);
    // and from then on without trying again
    const before = mon.bodies.length;
    reporter.stats({ b: 2 });
    await reporter.finish(true);
    expect(mon.bodies.length - before).toBe(2);
  });

  it('retries a rate-limited call', async () => {
    await reporter.start('n');
    mon.rateLimitNext = 3;
    reporter.stats({ a: 1 });
    await reporter.finish(true);
    expect(mon.callsOf('pilot.stats')).toHaveLength(1);
    expect(reporter.counters.failures).toBeGreaterThanOrEqual(3);
  });

  it('stops on a refused passkey: fatal callback, nothing more sent, finish rejected', async () => {
    await reporter.start('n');
    const fatal = jest.fn();
    reporter.onFatal(fatal);
    mon.revoked = true;
    reporter.heartbeat({ cpu_seconds: 1 });
    await waitUntil(() => fatal.mock.calls.length === 1, 5_000, 'fatal callback');
    expect(fatal.mock.calls[0]?.[0]).toBeInstanceOf(StalePasskeyError);
    await expect(reporter.finish(true)).rejects.toBeInstanceOf(StalePasskeyError);
    reporter.stats({ a: 1 });
    expect(reporter.pending()).toBe(0);
  });

  it('start: keeps trying while mon is down, refuses a wrong passkey', async () => {
    await mon.down();
    const p = reporter.start('n');
    await waitUntil(() => reporter.counters.failures >= 2, 5_000, 'start retries');
    await mon.up();
    await expect(p).resolves.toMatchObject({ task: { id: 42 } });
    await reporter.close();
    reporter = makeReporter('wrong-passkey');
    await expect(reporter.start('n')).rejects.toBeInstanceOf(StalePasskeyError);
  });

  it('drops an update mon rejects for another reason and carries on', async () => {
    await reporter.start('n');
    mon.onCall = (c) => {
      if (c.method === 'pilot.log') throw { code: -32602, message: 'invalid params: /params/name' };
    };
    reporter.log('bad', 'x');
    await reporter.flush(5_000); // sent (and refused) on its own, before the finish
    reporter.stats({ a: 1 });
    await reporter.finish(true);
    expect(mon.calls.map((c) => c.method)).toEqual(['pilot.start', 'pilot.stats', 'pilot.finish']);
    expect(logLines.join('')).toMatch(/mon rejected an update; dropping it/);
  });
});

const RPC_503 = (code: number, message: string, headers: Record<string, string> = {}) => ({
  status: 503,
  headers,
  body: JSON.stringify({ jsonrpc: '2.0', id: null, error: { code, message } }),
});
const FINAL = { cpu_seconds: 1, wall_seconds: 2, rss_mb: 3, disk_mb: 4 };

describe('RpcReporter retry classification (a real HTTP server answering)', () => {
  it('a plain 503 (a stopping mon, not JSON-RPC) is retried and the final report with its stats arrives once', async () => {
    await reporter.start('n');
    mon.rawNext.push(
      { status: 503, headers: { 'content-type': 'text/plain' }, body: 'Service Unavailable' },
      { status: 503, body: JSON.stringify({ statusCode: 503, error: 'Service Unavailable', message: 'shutting down' }) },
      { status: 502, headers: { 'content-type': 'text/html' }, body: '<html>bad gateway</html>' },
    );
    reporter.stats({ events: 7 });
    const fin = await reporter.finish(true, undefined, FINAL);
    expect(fin.status).toBe('READYTOCOPY');
    expect(mon.rawNext).toHaveLength(0);
    expect(mon.callsOf('pilot.finish')).toHaveLength(1);
    expect(mon.callsOf('pilot.finish')[0]?.params).toMatchObject({ ok: true, stats: { events: 7 } });
    expect(reporter.counters.failures).toBe(3);
  });

  it('a 503 with a JSON-RPC -32050 body is retried, not sooner than its Retry-After', async () => {
    await reporter.start('n');
    mon.rawNext.push(RPC_503(-32050, 'unavailable, retry: database down', { 'retry-after': '1' }));
    const t0 = Date.now();
    const fin = await reporter.finish(false, 'module m exited with code 3', FINAL);
    expect(fin.status).toBe('ERROR');
    expect(Date.now() - t0).toBeGreaterThanOrEqual(950);
    expect(mon.callsOf('pilot.finish')).toHaveLength(1);
  });

  it('-32050 and -32603 in a 200 answer (database down) are retried, also for batched updates', async () => {
    await reporter.start('n');
    let refuse = 4;
    mon.onCall = (c) => {
      if (refuse > 0 && c.method !== 'pilot.start') {
        refuse--;
        throw { code: refuse % 2 ? -32050 : -32603, message: 'database unavailable' };
      }
    };
    reporter.heartbeat({ cpu_seconds: 1 });
    reporter.log('a', 'x');
    await reporter.flush(10_000);
    const fin = await reporter.finish(true, undefined, FINAL);
    expect(fin.status).toBe('READYTOCOPY');
    expect(refuse).toBe(0);
    expect(mon.callsOf('pilot.heartbeat')).toHaveLength(1);
    expect(mon.callsOf('pilot.log')).toHaveLength(1);
  });

  it('-32009 (stale passkey) is fatal and never retried', async () => {
    await reporter.start('n');
    mon.rawNext.push({ status: 200, body: JSON.stringify({ jsonrpc: '2.0', id: null, error: { code: -32009, message: 'stale passkey' } }) });
    const fatal = new Promise<Error>((resolve) => reporter.onFatal(resolve));
    await expect(reporter.finish(true, undefined, FINAL)).rejects.toBeInstanceOf(StalePasskeyError);
    await expect(fatal).resolves.toBeInstanceOf(StalePasskeyError);
    expect(mon.bodies.filter((b) => b.includes('pilot.finish'))).toHaveLength(1);
  });

  it('-32602 (invalid params) rejects the finish at once, without retries', async () => {
    await reporter.start('n');
    mon.onCall = (c) => {
      if (c.method === 'pilot.finish') throw { code: -32602, message: 'invalid params: /params/error' };
    };
    await expect(reporter.finish(false, 'x', FINAL)).rejects.toMatchObject({ code: -32602 });
    expect(mon.bodies.filter((b) => b.includes('pilot.finish'))).toHaveLength(1);
    expect(reporter.counters.failures).toBe(0);
  });

  it('ECONNREFUSED: the finish waits for mon to come back on the same port', async () => {
    await reporter.start('n');
    await mon.down();
    reporter.stats({ events: 1 });
    const fin = reporter.finish(true, undefined, FINAL);
    await waitUntil(() => reporter.counters.failures >= 2, 10_000);
    await mon.up();
    await expect(fin).resolves.toMatchObject({ status: 'READYTOCOPY' });
    expect(mon.callsOf('pilot.finish')[0]?.params).toMatchObject({ stats: { events: 1 } });
  });

  it('gives up on the finish only after the retry horizon', async () => {
    await reporter.close();
    reporter = makeReporter(mon.passkey, { retryHorizonMs: 600 });
    await reporter.start('n');
    expect(reporter.retryHorizonMs).toBe(600);
    await mon.down();
    const t0 = Date.now();
    await expect(reporter.finish(true, undefined, FINAL)).rejects.toBeInstanceOf(MonUnreachableError);
    expect(Date.now() - t0).toBeGreaterThanOrEqual(550);
  });

  it('the default horizon is twice the heartbeat timeout mon implies, at least 10 minutes', async () => {
    expect(reporter.retryHorizonMs).toBe(600_000);
    await reporter.start('n'); // heartbeat_seconds 60 → heartbeat_timeout 360 s
    expect(reporter.retryHorizonMs).toBe(720_000);
    expect(defaultRetryHorizonMs(5)).toBe(600_000);
    expect(defaultRetryHorizonMs(300)).toBe(3_600_000);
    expect(defaultRetryHorizonMs('x')).toBe(600_000);
  });

  it('classifies what a real server answers: retryable or not', async () => {
    const client = new RpcClient(mon.url);
    const fail = async () => {
      try {
        await client.call('pilot.heartbeat', { task_id: 42, passkey: mon.passkey });
        return null;
      } catch (e) {
        return e;
      }
    };
    try {
      const cases: Array<[{ status: number; headers?: Record<string, string>; body: string }, boolean]> = [
        [{ status: 503, body: 'Service Unavailable' }, true],
        [RPC_503(-32050, 'unavailable'), true],
        [{ status: 504, body: '' }, true],
        [{ status: 200, body: JSON.stringify({ jsonrpc: '2.0', id: 1, error: { code: -32029, message: 'queueing' } }) }, true],
        [{ status: 200, body: JSON.stringify({ jsonrpc: '2.0', id: 1, error: { code: -32009, message: 'stale' } }) }, false],
        [{ status: 200, body: JSON.stringify({ jsonrpc: '2.0', id: 1, error: { code: -32602, message: 'bad' } }) }, false],
        [{ status: 200, body: JSON.stringify({ jsonrpc: '2.0', id: 1, error: { code: -32001, message: 'who' } }) }, false],
        [{ status: 200, body: JSON.stringify({ jsonrpc: '2.0', id: 1, error: { code: -32003, message: 'no' } }) }, false],
        [{ status: 413, body: 'too large' }, false],
      ];
      for (const [raw, retryable] of cases) {
        mon.rawNext.push(raw);
        const e = await fail();
        expect([raw.status, raw.body, isRetryableRpcFailure(e)]).toEqual([raw.status, raw.body, retryable]);
      }
      mon.rawNext.push({ status: 503, headers: { 'retry-after': '7' }, body: 'x' });
      const e = (await fail()) as RpcTransportError;
      expect(e).toBeInstanceOf(RpcTransportError);
      expect([e.httpStatus, e.retryAfterMs]).toEqual([503, 7000]);
      mon.rawNext.push(RPC_503(-32050, 'unavailable', { 'retry-after': '2' }));
      const r = (await fail()) as RpcError;
      expect([r.code, r.httpStatus, r.retryAfterMs]).toEqual([-32050, 503, 2000]);
      await mon.down();
      expect(isRetryableRpcFailure(await fail())).toBe(true); // ECONNREFUSED
    } finally {
      client.close();
    }
  });
});

describe('FileReporter', () => {
  it('reads the config, writes logs and a JSON report', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'firn-filerep-'));
    try {
      const cfg = path.join(dir, 'c.json');
      fs.writeFileSync(cfg, JSON.stringify({ version: 1, tasks: [{ name: 'a', trays: [] }, { name: 'b', trays: [] }] }));
      const r = new FileReporter({ configFile: cfg, outDir: path.join(dir, 'out'), taskName: 'b', job: 4, dataset: 9, jobsTotal: 10 });
      const s = await r.start();
      expect(s.task).toMatchObject({ name: 'b', task_index: 1, job_index: 4, dataset_id: 9, jobs_total: 10 });
      expect(s.system.site_temp).toBe(`file://${path.join(dir, 'out', 'outputs')}`);
      r.stats({ n: 1 });
      r.log('m.stdout', 'abc');
      await r.finish(false, 'module x/y exited with code 1: boom', { cpu_seconds: 1, wall_seconds: 1, rss_mb: 1, disk_mb: 1 });
      const report = JSON.parse(fs.readFileSync(r.reportPath, 'utf8'));
      expect(report).toMatchObject({ status: 'failed', error: 'module x/y exited with code 1: boom', stats: { n: 1 }, logs: ['m.stdout'] });
      expect(fs.readFileSync(path.join(dir, 'out', 'logs', 'm.stdout'), 'utf8')).toBe('abc');
      await expect(new FileReporter({ configFile: cfg, outDir: dir, taskName: 'zz' }).start()).rejects.toThrow(/no task named "zz"/);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});
