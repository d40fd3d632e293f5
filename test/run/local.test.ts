/**
 * `firn run` (unmonitored: no database, no daemons) with the local plugin: the DAG example
 * end to end, a failing task, an invalid config, detach and --status.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { DAG, ROOT, dagExpected, expectDagRun, firn, sums, type SummaryJson } from './helpers';

let dir: string;
beforeAll(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'firn-run-local-'));
});
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

function writeDataset(name: string, tasks: Array<{ name: string; depends?: string[]; command: string }>): string {
  const file = path.join(dir, `${name}.json`);
  fs.writeFileSync(file, JSON.stringify({
    version: 1,
    tasks: tasks.map((t) => ({
      name: t.name,
      ...(t.depends ? { depends: t.depends } : {}),
      requirements: { memory: 200, time: 5 },
      trays: [{ name: 'tray', modules: [{ name: 'mod', class: 'shell', parameters: { command: t.command } }] }],
    })),
  }));
  return file;
}

describe('firn run with the local plugin', () => {
  it('runs dag-gpu.json, 5 jobs: the README sums, outputs with checksums, a warning for the GPU task', async () => {
    const out = path.join(dir, 'dag');
    const r = await firn(['--json', 'run', DAG, '--jobs', '5', '--plugin', 'local', '--out', out, '--poll', '0.3']);
    expect({ code: r.code, err: r.err }).toEqual({ code: 0, err: expect.stringContaining('asks for 1 GPU but the site offers none') });
    const s = JSON.parse(r.out) as SummaryJson;
    expectDagRun(s, 5, out);
    // tasks ran in dependency order within each job, one batch job per dataset job
    expect(fs.readFileSync(path.join(out, 'jobs', '000003', 'progress'), 'utf8').split('\n').slice(1, -1)).toEqual([
      'start generate', 'ok generate', 'start photon', 'ok photon', 'start detector', 'ok detector', 'ok',
    ]);
    expect(new Set(s.jobs.map((j) => j.batch_id)).size).toBe(5);

    // later, from the run directory alone: the same numbers, as a table for people
    const st = await firn(['run', '--status', out]);
    expect(st.code).toBe(0);
    expect(st.out).toMatch(/^firn run: 5 jobs of .*dag-gpu\.json \(dataset 0\) on local: 5 ok$/m);
    expect(st.out).toMatch(new RegExp(`^energy_sum +5 +${dagExpected(5).energy_sum} `, 'm'));
    expect(st.out).toMatch(/^4 +ok +local-\d+-[0-9a-f]+ +3\/3 .*1 \(sha256 ok\)/m);

    // the run directory is not reused
    expect((await firn(['run', DAG, '--jobs', '1', '--out', out])).code).toBe(5);
  }, 60_000);

  it('a failing task fails its job (the rest of the job does not run); the others succeed; exit 1', async () => {
    const file = writeDataset('fails', [
      { name: 'a', command: 'echo "a_runs 1" >> "$FIRN_STATS"' },
      { name: 'b', depends: ['a'], command: '[ $(job) -ne 1 ] || { echo "job one breaks" >&2; exit 3; }; echo "b_runs 1" >> "$FIRN_STATS"' },
      { name: 'c', depends: ['b'], command: 'echo "c_runs 1" >> "$FIRN_STATS"' },
    ]);
    const out = path.join(dir, 'fails');
    const r = await firn(['--json', 'run', file, '--jobs', '3', '--out', out, '--poll', '0.3']);
    expect(r.code).toBe(1);
    expect(r.err).toContain('1 of 3 jobs did not succeed');
    const s = JSON.parse(r.out) as SummaryJson;
    expect(s.counts).toMatchObject({ ok: 2, failed: 1 });
    const bad = s.jobs[1]!;
    expect(bad).toMatchObject({ state: 'failed', reason: 'failed b (pilot exit 1)' });
    expect(bad.tasks.map((t) => t.status)).toEqual(['ok', 'failed', 'not run']);
    expect(bad.tasks[1]!.error).toMatch(/module tray\/mod exited with code 3: job one breaks/);
    expect(sums(s)).toEqual({ a_runs: 3, b_runs: 2, c_runs: 2 });
  }, 60_000);

  it('offline processing: one job per input file with --job-args, run by the .js pilot with node (--pilot)', async () => {
    const inputs = path.join(ROOT, 'examples', 'datasets', 'offline-inputs');
    const argsFile = path.join(dir, 'offline-args.json');
    fs.writeFileSync(argsFile, JSON.stringify([1, 2, 3].map((i) => ({ input: `file://${inputs}/run_00000${i}.txt` }))));
    const out = path.join(dir, 'offline');
    const bundle = path.join(ROOT, 'packages', 'pilot', 'dist', 'firn-pilot.js');
    const r = await firn(['--json', 'run', path.join(ROOT, 'examples', 'datasets', 'offline.json'), '--job-args', argsFile, '--dataset', '4',
      '--pilot', `node ${bundle}`, '--out', out, '--poll', '0.3']);
    expect({ code: r.code, err: r.err }).toEqual({ code: 0, err: expect.stringContaining(`(pilot node ${bundle})`) });
    const s = JSON.parse(r.out) as SummaryJson;
    expect(sums(s)).toEqual({ files: 3, lines: 30, value_sum: 465 });
    const processed = path.join(out, 'site-temp', 'results', '4', 'processed_000001.txt');
    expect(fs.readFileSync(processed, 'utf8').trim().split('\n').map(Number)).toEqual([11, 12, 13, 14, 15, 16, 17, 18, 19, 20].map((v) => 2 * v));
    expect(s.jobs[1]!.tasks[0]!.outputs[0]).toMatchObject({ url: `file://${processed}`, verified: true });
  }, 60_000);

  it('refuses an invalid config with the JSON path of each problem and submits nothing', async () => {
    const file = path.join(dir, 'invalid.json');
    fs.writeFileSync(file, JSON.stringify({ version: 1, tasks: [{ name: 'x', depends: ['nope'], trays: [] }] }));
    const out = path.join(dir, 'invalid');
    const r = await firn(['run', file, '--jobs', '2', '--out', out]);
    expect(r.code).toBe(1);
    expect(r.err).toMatch(/invalid[\s\S]*\/tasks\/0\/depends\/0/);
    expect(fs.existsSync(out)).toBe(false);
    expect((await firn(['run', DAG])).err).toMatch(/--jobs N is required/);
  });

  it('--detach returns after submitting; --status --wait follows the run to its end', async () => {
    const file = writeDataset('detach', [{ name: 'only', command: 'sleep 1; echo "n 1" >> "$FIRN_STATS"' }]);
    const out = path.join(dir, 'detach');
    const r = await firn(['--json', 'run', file, '--jobs', '3', '--out', out, '--detach', '--concurrency', '3']);
    expect(r.code).toBe(0);
    const submitted = JSON.parse(r.out) as { out: string; jobs: Array<{ index: number; batch_id: string }> };
    expect(submitted.jobs.map((j) => j.index)).toEqual([0, 1, 2]);
    expect(fs.existsSync(path.join(out, 'jobs', '000000', 'result'))).toBe(false); // still sleeping
    const w = await firn(['--json', 'run', '--status', out, '--wait', '--poll', '0.3']);
    expect(w.code).toBe(0);
    expect(sums(JSON.parse(w.out) as SummaryJson)).toEqual({ n: 3 });
  }, 60_000);
});
