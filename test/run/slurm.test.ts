/**
 * `firn run` against real Slurm (test/services/start-slurm.sh) with no database configured:
 * the DAG example as one job array, the GPU policy, and detach + cancel.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { waitUntil } from '../helpers/db';
import { startService } from '../queue/support/harness';
import { squeue } from '../queue/support/slurm';
import { DAG, expectDagRun, firn, type SummaryJson } from './helpers';

let dir: string;
let available = true;
/** No database anywhere: a DB URL in the environment must not matter (and none is read). */
const env = { ...process.env, FIRN_DB_URL: 'mysql://nobody:wrong@127.0.0.1:1/none' };

beforeAll(() => {
  if (startService('slurm') === 'skip') available = false;
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'firn-run-slurm-'));
  fs.chmodSync(dir, 0o755);
});
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

describe('firn run with the slurm plugin', () => {
  it('runs dag-gpu.json, 5 jobs, as one array: the README sums, outputs with checksums, no GPU requested', async () => {
    if (!available) return;
    const out = path.join(dir, 'dag');
    const r = await firn(['--json', 'run', DAG, '--jobs', '5', '--plugin', 'slurm', '--out', out, '--poll', '0.5'], env);
    expect({ code: r.code, err: r.err }).toEqual({ code: 0, err: expect.stringContaining('asks for 1 GPU but the site offers none') });
    const s = JSON.parse(r.out) as SummaryJson;
    expectDagRun(s, 5, out);
    const ids = s.jobs.map((j) => j.batch_id ?? '');
    const array = ids[0]!.split('_')[0];
    expect(ids).toEqual([0, 1, 2, 3, 4].map((i) => `${array}_${i}`));
    const script = fs.readFileSync(path.join(out, 'batch', 'submit-0', 'submit.sh'), 'utf8');
    expect(script).toContain('#SBATCH --mem=1000M'); // the largest task (photon: $eval(2 * 500))
    expect(script).toContain('#SBATCH --time=15'); // three tasks of 5 minutes, one after the other
    expect(script).not.toContain('--gres');
  }, 120_000);

  it('asks Slurm for a GPU only when told the site has them (this cluster has none: sbatch refuses)', async () => {
    if (!available) return;
    const out = path.join(dir, 'gpu');
    const r = await firn(['run', DAG, '--jobs', '2', '--plugin', 'slurm', '--out', out, '--gpus', '1'], env);
    expect(r.code).toBe(1);
    expect(r.err).toMatch(/sbatch failed .*(gres|generic resource)/i);
    expect(fs.readFileSync(path.join(out, 'batch', 'submit-0', 'submit.sh'), 'utf8')).toContain('#SBATCH --gres=gpu:1');
  }, 60_000);

  it('--detach leaves the jobs to Slurm; --cancel removes them; --status then reports them lost', async () => {
    if (!available) return;
    const file = path.join(dir, 'slow.json');
    fs.writeFileSync(file, JSON.stringify({
      version: 1,
      tasks: [{ name: 'slow', requirements: { memory: 100, time: 5 }, trays: [{ name: 't', modules: [{ name: 'm', class: 'shell', parameters: { command: 'sleep 120' } }] }] }],
    }));
    const out = path.join(dir, 'slow');
    const r = await firn(['--json', 'run', file, '--jobs', '2', '--plugin', 'slurm', '--out', out, '--detach'], env);
    expect(r.code).toBe(0);
    const ids = (JSON.parse(r.out) as { jobs: Array<{ batch_id: string }> }).jobs.map((j) => j.batch_id);
    const live = () => squeue().filter((j) => ids.includes(j.id) && ['PENDING', 'RUNNING', 'CONFIGURING'].includes(j.state));
    expect(live()).toHaveLength(2);

    const c = await firn(['--json', 'run', '--cancel', out], env);
    expect([c.code, JSON.parse(c.out).cancelled]).toEqual([0, 2]);
    await waitUntil(() => live().length === 0, 30_000, 'Slurm to cancel the jobs');
    const ended = await waitUntil(async () => {
      const st = await firn(['--json', 'run', '--status', out], env);
      const v = JSON.parse(st.out) as SummaryJson;
      return v.done ? { code: st.code, v } : null;
    }, 30_000, 'the run to end');
    const s = ended!;
    expect(s.code).toBe(1);
    expect(s.v.counts).toMatchObject({ lost: 2, ok: 0 });
    for (const j of s.v.jobs) expect(j.reason).toMatch(/^cancelled \(firn run --cancel, /);
  }, 90_000);
});
