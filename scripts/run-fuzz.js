#!/usr/bin/env node
// `npm run fuzz [-- RUNS [SEED]]`: the fuzz suite (test/fuzz/) at full size — 10,000 inputs per
// surface by default (CI runs the same files at FIRN_FUZZ_CI_RUNS inside `npm test`) — then a
// report: per surface, inputs, crashes, HTTP 5xx, -32603 answers, answers over 1 MB, the
// largest answer and the slowest input, and the first findings with the input behind each.
const { spawnSync } = require('node:child_process');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');

const root = path.join(__dirname, '..');
const runs = process.argv[2] ?? process.env.FIRN_FUZZ_RUNS ?? '10000';
const seed = process.argv[3] ?? process.env.FIRN_FUZZ_SEED ?? String(Date.now() % 2147483647);
const report = path.join(os.tmpdir(), `firn-fuzz-${process.pid}.jsonl`);
fs.rmSync(report, { force: true });
console.log(`fuzz: ${runs} inputs per surface, seed ${seed} (repeat with: npm run fuzz -- ${runs} ${seed})`);
const r = spawnSync(process.execPath, [path.join(root, 'node_modules', 'jest', 'bin', 'jest.js'), '--selectProjects', 'integration', '--runInBand', 'test/fuzz'], {
  stdio: 'inherit', cwd: root, env: { ...process.env, FIRN_FUZZ_RUNS: runs, FIRN_FUZZ_SEED: seed, FIRN_FUZZ_REPORT: report },
});
const lines = fs.existsSync(report) ? fs.readFileSync(report, 'utf8').trim().split('\n').filter(Boolean).map((l) => JSON.parse(l)) : [];
console.log('\n=== fuzz report');
console.log(['surface', 'inputs', 'crashes', '5xx', '-32603', '>1MB', 'max answer', 'max ms'].map((h, i) => (i ? h.padStart(11) : h.padEnd(22))).join(''));
for (const l of lines) {
  console.log([l.surface.padEnd(22), ...[l.inputs, l.crashes, l.http_5xx, l.internal_errors, l.answers_over_1mb, l.max_answer_bytes, l.max_ms].map((v) => String(v).padStart(11))].join(''));
  for (const f of l.findings) console.log(`    ${f}`);
}
const bad = lines.reduce((n, l) => n + l.crashes + l.http_5xx + l.internal_errors + l.answers_over_1mb, 0);
console.log(`${lines.length} surfaces, ${lines.reduce((n, l) => n + l.inputs, 0)} inputs, ${bad} findings; seed ${seed}`);
fs.rmSync(report, { force: true });
process.exit(r.status === 0 && bad === 0 && lines.length > 0 ? 0 : 1);
