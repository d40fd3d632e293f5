/**
 * Fuzz: dataset configs as a manager (or an attacker with a manager's token) writes them —
 * every example under examples/datasets mutated one field at a time, plus random documents.
 * `validateDatasetConfig` (what `firn validate` and `dataset.submit` run) must answer with
 * issues or a config, never throw, within a bounded time and with a bounded list of issues.
 */
import fs from 'node:fs';
import path from 'node:path';
import fc from 'fast-check';
import { validateDatasetConfig } from '@firn/core';
import { FuzzReport, fuzzRuns, hostileValue, mutate, preview, runInputs } from './support';

const EXAMPLES = path.resolve(__dirname, '..', '..', 'examples', 'datasets');

describe('fuzz dataset config validation', () => {
  test('issues or a config, never a throw; bounded issues and time', async () => {
    const examples = fs.readdirSync(EXAMPLES).filter((f) => f.endsWith('.json')).map((f) => JSON.parse(fs.readFileSync(path.join(EXAMPLES, f), 'utf8')) as unknown);
    expect(examples.length).toBeGreaterThan(2);
    const report = new FuzzReport('dataset-config');
    const slow: string[] = [];
    const arb = fc.oneof(
      { weight: 8, arbitrary: fc.integer({ min: 0, max: examples.length - 1 }).chain((i) => mutate(examples[i])) },
      { weight: 1, arbitrary: fc.integer({ min: 0, max: examples.length - 1 }).chain((i) => mutate(examples[i])).chain((c) => mutate(c)) },
      { weight: 1, arbitrary: hostileValue },
    );
    await runInputs(arb, fuzzRuns(), async (config) => {
      report.inputs++;
      const t0 = performance.now();
      try {
        const r = validateDatasetConfig(config);
        if (!r.ok) {
          const size = JSON.stringify(r.issues).length;
          if (size > report.maxAnswerBytes) report.maxAnswerBytes = size;
          if (size > 64 * 1024) report.finding('oversized', `${r.issues.length} issues, ${size} bytes`, config);
          for (const i of r.issues) {
            if (typeof i.path !== 'string' || typeof i.message !== 'string') report.finding('crashes', `issue without path/message: ${preview(i)}`, config);
          }
        }
      } catch (e) {
        report.finding('crashes', `${(e as Error).name}: ${(e as Error).message?.slice(0, 200)}`, config);
      }
      const ms = performance.now() - t0;
      report.timed(ms);
      if (ms > 1000) slow.push(`${Math.round(ms)} ms for ${preview(config, 120)}`);
    });
    console.log(report.write());
    expect(report.findings).toEqual([]);
    expect(slow).toEqual([]);
  }, 600_000);
});
