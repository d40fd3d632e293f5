/** Shared by the `firn run` tests: the CLI in-process, expected numbers, dataset files. */
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { runFirn } from '../helpers/cli';

export const ROOT = path.resolve(__dirname, '..', '..');
export const DAG = path.join(ROOT, 'examples', 'datasets', 'dag-gpu.json');

export interface Run { code: number; out: string; err: string }

/** `firn …` in this process with its own streams and environment. */
export async function firn(argv: string[], env: Record<string, string | undefined> = process.env): Promise<Run> {
  return runFirn(argv, env);
}

/** examples/datasets/README.md: the summed statistics of dag-gpu.json over N jobs (indices 0 … N−1). */
export function dagExpected(n: number): Record<string, number> {
  const energy = 5650 * n + 50 * n * (n - 1);
  return { events: 100 * n, energy_sum: energy, photons: 3 * energy, calib_passes: 2 * n, detected_events: 100 * n, hits: energy + 100 * n };
}

export function sha256(file: string): string {
  return crypto.createHash('sha256').update(fs.readFileSync(file)).digest('hex');
}

export function md5(file: string): string {
  return crypto.createHash('md5').update(fs.readFileSync(file)).digest('hex');
}

export interface SummaryJson {
  out: string;
  done: boolean;
  counts: Record<string, number>;
  warnings: string[];
  stats: Record<string, { n: number; sum: number; mean: number; min: number; max: number }>;
  jobs: Array<{
    index: number;
    batch_id: string | null;
    state: string;
    reason?: string;
    tasks: Array<{
      name: string;
      status: string;
      error?: string;
      stats: Record<string, number>;
      outputs: Array<{ local_name: string; type: string; url: string; temp_url: string; size: number; md5: string; sha256: string; verified: boolean | null }>;
    }>;
  }>;
}

/** The summed statistics without cpu_seconds (measured, so never the same twice). */
export function sums(s: SummaryJson): Record<string, number> {
  return Object.fromEntries(Object.entries(s.stats).filter(([k]) => k !== 'cpu_seconds').map(([k, v]) => [k, v.sum]));
}

/**
 * Every job ok, the sums as the README says, and the permanent outputs where the dataset
 * puts them with the checksums the reports carry (job_temp files cleaned up).
 */
export function expectDagRun(s: SummaryJson, n: number, out: string): void {
  expect(s.done).toBe(true);
  expect(s.counts).toMatchObject({ ok: n, failed: 0, lost: 0 });
  expect(sums(s)).toEqual(dagExpected(n));
  expect(s.stats.cpu_seconds?.n).toBe(3 * n);
  for (const j of s.jobs) {
    expect(j.tasks.map((t) => [t.name, t.status])).toEqual([['generate', 'ok'], ['photon', 'ok'], ['detector', 'ok']]);
    const all = j.tasks.flatMap((t) => t.outputs);
    expect(all.map((o) => [o.local_name, o.type])).toEqual([['gen.txt', 'job_temp'], ['photons.txt', 'job_temp'], ['det.txt', 'permanent']]);
    for (const o of all) {
      expect(o.sha256).toMatch(/^[0-9a-f]{64}$/);
      expect(o.md5).toMatch(/^[0-9a-f]{32}$/);
    }
    const det = all.find((o) => o.local_name === 'det.txt')!;
    const file = path.join(out, 'site-temp', 'results', '0', `det_${String(j.index).padStart(6, '0')}.txt`);
    expect(det.url).toBe(`file://${file}`);
    expect(det.verified).toBe(true);
    expect([sha256(file), md5(file), fs.statSync(file).size]).toEqual([det.sha256, det.md5, det.size]);
    // one line per event i: energy (7 + job + i) + 1
    expect(fs.readFileSync(file, 'utf8').split('\n')[0]).toBe(`0 ${7 + j.index + 1}`);
    expect(fs.existsSync(path.join(out, 'site-temp', 'results', '0', String(j.index), 'gen.txt'))).toBe(false);
    expect(fs.existsSync(path.join(out, 'site-temp', '0', String(j.index)))).toBe(false);
  }
}
