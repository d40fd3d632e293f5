import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { ConfigError } from '@firn/core';
import { LocalPlugin } from './local';
import type { BatchJobStatus, PluginOptions, SubmitBatch, SubmitTask } from './plugin';
import { shellQuote } from './shell-quote';

const HOSTILE = "a'b; rm -rf / $(touch pwned)";
let root: string;
let plugins: LocalPlugin[] = [];

/**
 * Stand-in pilot: records its pid and arguments, then waits until the test writes an exit
 * code into <taskDir>/release.
 */
const FAKE_PILOT = `#!/bin/sh
dir=$(dirname "$6")
echo $$ > "$dir/pilot.pid"
echo $$ >> "$dir/starts"
printf 'task=%s mon=%s\\n' "$4" "$2"
printf 'FOO=%s\\n' "$FOO"
printf 'SECRET=%s\\n' "\${FIRN_TEST_SECRET:-}"
while [ ! -e "$dir/release" ]; do sleep 0.05; done
exit "$(cat "$dir/release")"
`;

beforeEach(() => {
  root = fs.mkdtempSync(path.join(os.tmpdir(), 'firn-local-'));
  fs.writeFileSync(path.join(root, 'pilot.sh'), FAKE_PILOT);
  plugins = [];
  process.env['FIRN_TEST_SECRET'] = 'do-not-leak';
});

afterEach(async () => {
  delete process.env['FIRN_TEST_SECRET'];
  for (const p of plugins) await p.close();
  // kill whatever a failed test left running
  for (const entry of fs.readdirSync(root, { recursive: true }) as string[]) {
    if (!entry.endsWith('pilot.pid')) continue;
    const pid = Number(fs.readFileSync(path.join(root, entry), 'utf8'));
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      /* gone */
    }
  }
  fs.rmSync(root, { recursive: true, force: true });
});

function plugin(over: Partial<PluginOptions> = {}): LocalPlugin {
  const p = new LocalPlugin(null, {
    grid: 'local',
    monUrl: 'http://127.0.0.1:9/rpc',
    pilotCommand: `/bin/sh ${shellQuote(path.join(root, 'pilot.sh'))}`,
    environment: { FOO: HOSTILE },
    submitDir: path.join(root, 'submit'),
    concurrency: 1,
    ...over,
  });
  plugins.push(p);
  return p;
}

function batch(ids: number[], name = 'b1'): SubmitBatch {
  const dir = path.join(root, 'submit', name);
  return {
    dir,
    tasks: ids.map(
      (taskId): SubmitTask => ({
        taskId,
        datasetId: 1,
        jobIndex: taskId,
        taskName: 'main',
        requirements: { cpu: 1, gpu: 0, memory: 100, disk: 0, time: 10 },
        passkeyFile: path.join(dir, `task ${taskId}`, 'passkey'),
        taskDir: path.join(dir, `task ${taskId}`),
      }),
    ),
  };
}

async function waitUntil<T>(what: string, probe: () => Promise<T | undefined | false>, timeoutMs = 10_000): Promise<T> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const v = await probe();
    if (v) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

const stateOf = async (p: LocalPlugin, id: string): Promise<BatchJobStatus> => (await p.checkJobStatus([id])).get(id) as BatchJobStatus;
const waitState = (p: LocalPlugin, id: string, state: string) =>
  waitUntil(`${id} ${state}`, async () => {
    const s = await stateOf(p, id);
    return s.state === state ? s : undefined;
  });
const release = (b: SubmitBatch, taskId: number, code: number) => fs.writeFileSync(path.join(b.dir, `task ${taskId}`, 'release'), String(code));
const pilotPid = (b: SubmitBatch, taskId: number) =>
  waitUntil('pilot pid', async () => {
    const file = path.join(b.dir, `task ${taskId}`, 'pilot.pid');
    return fs.existsSync(file) ? Number(fs.readFileSync(file, 'utf8').trim()) || undefined : undefined;
  });

/** Running (not gone, not a zombie waiting for a reaper that never comes, as under a container's init). */
function alive(pid: number): boolean {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    return !/^[ZX]/.test(stat.slice(stat.lastIndexOf(')') + 2));
  } catch {
    return false;
  }
}

describe('LocalPlugin', () => {
  it('runs at most `concurrency` pilots and reports exit codes from the exit_code file', async () => {
    const p = plugin();
    const b = batch([1, 2]);
    const script = await p.writeConfig(b);
    expect(script).toBe(path.join(b.dir, 'submit.sh'));
    const { batchIds } = await p.submit(b, script);
    const [id1, id2] = [batchIds.get(1) as string, batchIds.get(2) as string];
    expect(id1).toMatch(/^local-1-[0-9a-f]{16}$/); // registry tag + random
    expect(id2).toMatch(/^local-2-[0-9a-f]{16}$/);

    await waitState(p, id1, 'RUNNING');
    expect(await stateOf(p, id2)).toEqual({ batchId: id2, name: 'firn-2', state: 'QUEUED', rawState: 'waiting' });
    expect(await p.listJobs()).toEqual([
      { batchId: id1, name: 'firn-1', state: 'RUNNING' },
      { batchId: id2, name: 'firn-2', state: 'QUEUED' },
    ]);

    release(b, 1, 0);
    expect(await waitState(p, id1, 'COMPLETED')).toEqual({ batchId: id1, name: 'firn-1', state: 'COMPLETED', rawState: 'exited', exitCode: 0 });
    await waitState(p, id2, 'RUNNING');
    release(b, 2, 3);
    expect(await waitState(p, id2, 'FAILED')).toEqual({ batchId: id2, name: 'firn-2', state: 'FAILED', rawState: 'exited', exitCode: 3, reason: 'exit code 3' });

    const out = fs.readFileSync(path.join(b.dir, 'task 1', 'stdout'), 'utf8');
    expect(out).toBe(`task=1 mon=http://127.0.0.1:9/rpc\nFOO=${HOSTILE}\nSECRET=\n`);
    expect(fs.existsSync(path.join(b.dir, 'task 1', 'pwned'))).toBe(false);
    expect(fs.readFileSync(path.join(b.dir, 'task 2', 'exit_code'), 'utf8')).toBe('3\n');
    expect(fs.readFileSync(path.join(b.dir, `${id1}.pid`), 'utf8')).toMatch(/^\d+ \d+\n$/);
    expect(await p.listJobs()).toEqual([]);
  });

  it('survives a daemon restart: a new plugin on the same submitDir sees and kills the pilot', async () => {
    const first = plugin();
    const b = batch([7]);
    const { batchIds } = await first.submit(b, await first.writeConfig(b));
    const id = batchIds.get(7) as string;
    await waitState(first, id, 'RUNNING');
    const pid = await pilotPid(b, 7);
    expect(alive(pid)).toBe(true);
    await first.close();

    const second = plugin();
    expect(await second.listJobs()).toEqual([{ batchId: id, name: 'firn-7', state: 'RUNNING' }]);
    await second.remove([id]);
    await waitUntil('pilot killed', async () => !alive(pid));
    const final = await waitUntil('wrapper gone too', async () => {
      const s = await stateOf(second, id);
      return s.rawState === 'cancelled' ? s : undefined;
    });
    expect(final).toEqual({ batchId: id, name: 'firn-7', state: 'CANCELLED', rawState: 'cancelled', reason: 'removed' });
    expect(await second.listJobs()).toEqual([]);
  });

  it('two plugins on one submit directory start each job once: its pid file is created exclusively before the start', async () => {
    const a = plugin({ concurrency: 4, startAfterSubmitted: true });
    const b = plugin({ concurrency: 4 });
    const bt = batch([21, 22, 23]);
    const { batchIds } = await a.submit(bt, await a.writeConfig(bt));
    const ids = [...batchIds.values()];
    // b finds the records on disk and both pump at once
    await Promise.all([a.submitted(), b.checkJobStatus(ids), a.checkJobStatus(ids), b.listJobs()]);
    for (const t of [21, 22, 23]) await pilotPid(bt, t);
    await new Promise((r) => setTimeout(r, 300));
    // the stand-in pilot appends one line per start to its task directory
    for (const t of [21, 22, 23]) {
      const starts = fs.readFileSync(path.join(bt.dir, `task ${t}`, 'starts'), 'utf8').trim().split('\n');
      expect(starts).toHaveLength(1);
    }
    for (const id of ids) expect(fs.readFileSync(path.join(bt.dir, `${id}.pid`), 'utf8')).toMatch(/^\d+ \S+\n$/);
    for (const t of [21, 22, 23]) release(bt, t, 0);
    for (const id of ids) await waitState(a, id, 'COMPLETED');
  });

  it('a job id of another submit directory is UNOBSERVED (never lost); an untagged unknown id is UNKNOWN', async () => {
    const p = plugin();
    const got = await p.checkJobStatus(['local-5-0000000011111111', 'local-6-abcdef12']);
    expect(got.get('local-5-0000000011111111')).toMatchObject({ state: 'UNOBSERVED', rawState: 'elsewhere' });
    expect(got.get('local-6-abcdef12')).toMatchObject({ state: 'UNKNOWN' });
  });

  it('reports a pilot that vanished without an exit code as UNKNOWN, and unknown ids as UNKNOWN', async () => {
    const p = plugin();
    const b = batch([8]);
    const { batchIds } = await p.submit(b, await p.writeConfig(b));
    const id = batchIds.get(8) as string;
    await waitState(p, id, 'RUNNING');
    const [pidText = ''] = fs.readFileSync(path.join(b.dir, `${id}.pid`), 'utf8').split(' ');
    process.kill(-Number(pidText), 'SIGKILL');
    expect(await waitState(p, id, 'UNKNOWN')).toEqual({ batchId: id, name: 'firn-8', state: 'UNKNOWN', rawState: 'vanished', reason: 'process gone without an exit code' });
    const got = await p.checkJobStatus(['local-99-deadbeef', 'nonsense']);
    expect([...got.values()].map((s) => s.state)).toEqual(['UNKNOWN', 'UNKNOWN']);
  });

  it('cleanQ cancels queued and running jobs whose task is no longer active', async () => {
    const p = plugin();
    const b = batch([10, 11, 12]);
    const { batchIds } = await p.submit(b, await p.writeConfig(b));
    await waitState(p, batchIds.get(10) as string, 'RUNNING');
    const removed = await p.cleanQ((_job, taskId) => taskId === 11);
    expect(removed.map((j) => j.name)).toEqual(['firn-10', 'firn-12']);
    expect(await waitState(p, batchIds.get(12) as string, 'CANCELLED')).toMatchObject({ reason: 'removed before it started' });
    await waitState(p, batchIds.get(10) as string, 'CANCELLED');
    // the freed slot goes to the job that was kept
    await waitState(p, batchIds.get(11) as string, 'RUNNING');
    release(b, 11, 0);
    await waitState(p, batchIds.get(11) as string, 'COMPLETED');
    expect(fs.existsSync(path.join(b.dir, 'task 12', 'stdout'))).toBe(false);
  });

  it('fails a job whose batch directory vanished before it could start', async () => {
    const p = plugin();
    const b = batch([20, 21]);
    const { batchIds } = await p.submit(b, await p.writeConfig(b));
    await waitState(p, batchIds.get(20) as string, 'RUNNING');
    await pilotPid(b, 20); // its shell has read the script by now
    fs.rmSync(path.join(b.dir, 'submit.sh'));
    release(b, 20, 0);
    const s = await waitState(p, batchIds.get(21) as string, 'FAILED');
    expect(s).toMatchObject({ rawState: 'not started', reason: expect.stringMatching(/^could not start: .*ENOENT.*submit\.sh/) });
    expect(await waitState(p, batchIds.get(20) as string, 'COMPLETED')).toMatchObject({ exitCode: 0 });
  });

  it('needs an absolute submitDir', () => {
    expect(() => plugin({ submitDir: undefined })).toThrow(ConfigError);
    expect(() => plugin({ submitDir: 'relative/dir' })).toThrow(/submitDir must be an absolute directory/);
  });
});
