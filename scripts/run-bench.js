#!/usr/bin/env node
// `npm run bench [-- NAME...]`: runs each bench/<NAME>.ts (default: all) in its own process
// with tsx, each printing its own numbers and writing bench/results/<NAME>.json; then prints
// a summary. Targets are ratios against baselines measured in the same run, not timed tests.
const { spawnSync } = require('node:child_process');
const fs = require('node:fs');
const path = require('node:path');

const root = path.join(__dirname, '..');
const benchDir = path.join(root, 'bench');
const wanted = process.argv.slice(2);
const all = fs.readdirSync(benchDir).filter((f) => f.endsWith('.ts')).map((f) => f.replace(/\.ts$/, '')).sort();
const names = wanted.length ? wanted : all;
let failed = 0;
for (const name of names) {
  if (!all.includes(name)) {
    console.error(`no benchmark bench/${name}.ts (have: ${all.join(', ')})`);
    process.exit(2);
  }
  console.log(`\n=== bench/${name}.ts`);
  const r = spawnSync(process.execPath, ['--import', 'tsx', path.join(benchDir, `${name}.ts`)], { stdio: 'inherit', cwd: root });
  if (r.status !== 0) {
    failed++;
    console.error(`bench/${name}.ts exited with ${r.status}`);
  }
}
console.log('\n=== summary (bench/results/*.json)');
for (const name of names) {
  const f = path.join(benchDir, 'results', `${name}.json`);
  if (fs.existsSync(f)) console.log(`${name}: ${fs.readFileSync(f, 'utf8').trim()}`);
}
process.exit(failed ? 1 : 0);
