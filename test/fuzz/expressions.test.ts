/**
 * Fuzz: the expression language (`$eval`, `$sprintf`, `$args`, `$steering`, `$choice`, `$(var)`)
 * and its submit-time scanner. Inputs are built from the language's own tokens, nested and
 * repeated, with hostile numbers and formats. Every input must either evaluate to a bounded
 * string or fail with the expression error (never RangeError, TypeError or a hang), and the
 * scanner's answer must stay bounded.
 */
import fc from 'fast-check';
import { FirnError, checkExpressions, evaluate, type ExpressionContext } from '@firn/core';
import { FuzzReport, NASTY_NUMBERS, fuzzRuns, preview, runInputs } from './support';

const ctx: ExpressionContext = {
  args: { input: 'in.i3', n: 7, seed: 42 },
  steering: { energy: 100, name: 'nu', list: '1,2,3' },
  system: { site_temp: 'file:///tmp/site' },
  dataset: 20001, job: 12, jobs_total: 100, task: 'main', iter: 0,
} as unknown as ExpressionContext;

const atom = fc.oneof(
  fc.constantFrom('$(job)', '$(dataset)', '$(jobs_total)', '$(task)', '$(iter)', '$(nosuch)', '$args(n)', '$args(nosuch)', '$steering(energy)', '$system(site_temp)', '$HOME', '$', '$$'),
  fc.constantFrom(...NASTY_NUMBERS).map(String),
  fc.constantFrom('1e400', '0x10', '1/0', '0/0', '-', '+', '*', '**', '%', '/', '(', ')', ',', '"', "'", '"%.99g"', '"%999999d"', '"%s%s%s"', '"%-0+ #5.3e"', '"%c"', '"%x"', 'true', 'and', 'or', 'not', '==', '<', '?', ':', '[', ']'),
  fc.string({ maxLength: 6 }),
);

const expression: fc.Arbitrary<string> = fc.letrec<{ e: string }>((tie) => ({
  e: fc.oneof(
    { depthSize: 'small' },
    atom,
    fc.array(tie('e'), { maxLength: 4 }).map((xs) => xs.join(' ')),
    fc.tuple(fc.constantFrom('$eval(', '$sprintf(', '$choice(', '$args(', '$steering(', '('), tie('e'), fc.constantFrom(')', '', '))', ', 3)')).map(([a, b, c]) => `${a}${b}${c}`),
  ),
})).e;

/** Repeated and deeply nested shapes: what made the scanner quadratic and the evaluator overflow the stack. */
const blowup = fc.tuple(fc.constantFrom('$eval(', '$eval((', '(', '$sprintf("%s",', '$choice(', '$(', '$eval(1+', '$sprintf("%.99g", '), fc.integer({ min: 1, max: 16_000 }), fc.boolean())
  .map(([unit, n, close]) => `${unit.repeat(n)}1${close ? ')'.repeat(n) : ''}`);

describe('fuzz the expression language', () => {
  test('evaluate and checkExpressions: bounded output, only expression errors, linear time', async () => {
    const report = new FuzzReport('expressions');
    const bad: string[] = [];
    await runInputs(fc.oneof({ weight: 4, arbitrary: expression }, { weight: 1, arbitrary: blowup }), fuzzRuns(), async (text) => {
      report.inputs++;
      const t0 = performance.now();
      try {
        const out = evaluate(text, ctx);
        if (out.length > 1 << 20) report.finding('oversized', `evaluated to ${out.length} chars`, text);
      } catch (e) {
        if (!(e instanceof FirnError)) report.finding('crashes', `${(e as Error).name}: ${(e as Error).message?.slice(0, 200)}`, text);
        else if ((e as Error).message.length > 4096) report.finding('oversized', `error message of ${(e as Error).message.length} chars`, text);
      }
      try {
        const issues = checkExpressions(text);
        const size = JSON.stringify(issues).length;
        if (size > report.maxAnswerBytes) report.maxAnswerBytes = size;
        if (size > 64 * 1024) report.finding('oversized', `checkExpressions answered ${issues.length} issues, ${size} bytes`, text);
      } catch (e) {
        report.finding('crashes', `checkExpressions threw ${(e as Error).name}: ${(e as Error).message?.slice(0, 200)}`, text);
      }
      const ms = performance.now() - t0;
      report.timed(ms);
      // 100 KB of input must never take seconds (the quadratic scan took 15 s)
      if (ms > 1000) bad.push(`${Math.round(ms)} ms for ${preview(text, 80)}`);
    });
    console.log(report.write());
    expect(report.findings).toEqual([]);
    expect(bad).toEqual([]);
  }, 600_000);
});
