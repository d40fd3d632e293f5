#!/usr/bin/env node
/**
 * Build `dist/firn-pilot`: the one-file bundle (dist/firn-pilot.js) as a single executable
 * application (Node's SEA support), so the pilot runs on worker nodes without Node.js.
 *
 *   1. main script = a small prelude + the bundle (without its #! line)
 *   2. node --experimental-sea-config  → the preparation blob
 *   3. copy of this Node binary (process.execPath), blob injected with postject
 *
 * Skipped when dist/firn-pilot is up to date: dist/firn-pilot.sea.json records the sha256 of
 * the bundle, the prelude and the Node binary it was made from. The result needs the same
 * platform (Linux x86-64 here) and a glibc at least as new as the build host's.
 *
 * Usage: node scripts/build-sea.js [--force]
 */
'use strict';
const { spawnSync } = require('node:child_process');
const crypto = require('node:crypto');
const fs = require('node:fs');
const path = require('node:path');

const PKG = path.resolve(__dirname, '..');
const DIST = path.join(PKG, 'dist');
const BUNDLE = path.join(DIST, 'firn-pilot.js');
const OUT = path.join(DIST, 'firn-pilot');
const STAMP = path.join(DIST, 'firn-pilot.sea.json');
const FUSE = 'NODE_SEA_FUSE_fce680ab2cc467b6e072b8b5df1996b2';
/** Bump when this script changes what it makes (forces one rebuild). */
const BUILDER_VERSION = 2;

/**
 * Runs before the bundle. In a single executable, `require` loads built-in modules only and
 * warns on every other name; the bundle's only such requires are optional native add-ons of
 * ssh2 (guarded by try/catch), so answer them with a quiet "not found" instead of a warning.
 */
const PRELUDE = `/* firn-pilot single executable */
require = ((builtin) => {
  const { isBuiltin } = builtin('node:module');
  return Object.assign((id) => {
    if (isBuiltin(id)) return builtin(id);
    const e = new Error("Cannot find module '" + id + "' (not part of the firn-pilot executable)");
    e.code = 'MODULE_NOT_FOUND';
    throw e;
  }, builtin);
})(require);
`;

function sha256(data) {
  return crypto.createHash('sha256').update(data).digest('hex');
}

function fileSha256(file) {
  const h = crypto.createHash('sha256');
  const fd = fs.openSync(file, 'r');
  try {
    const buf = Buffer.alloc(1 << 20);
    let n;
    while ((n = fs.readSync(fd, buf, 0, buf.length, null)) > 0) h.update(buf.subarray(0, n));
  } finally {
    fs.closeSync(fd);
  }
  return h.digest('hex');
}

function fail(message) {
  process.stderr.write(`build-sea: ${message}\n`);
  process.exit(1);
}

function run(cmd, args, what) {
  const r = spawnSync(cmd, args, { cwd: DIST, encoding: 'utf8' });
  if (r.status !== 0) fail(`${what} failed (${r.error ? r.error.message : `exit ${r.status}`}):\n${r.stdout}${r.stderr}`);
}

function main() {
  const force = process.argv.includes('--force');
  if (!fs.existsSync(BUNDLE)) fail(`${BUNDLE} is missing: run \`npm run bundle -w @firn/pilot\` first`);
  const [major] = process.versions.node.split('.').map(Number);
  if (major < 20) fail(`single executables need Node >= 20, this is ${process.version}`);

  const bundle = fs.readFileSync(BUNDLE, 'utf8');
  const wanted = {
    builder: BUILDER_VERSION,
    bundle_sha256: sha256(bundle),
    prelude_sha256: sha256(PRELUDE),
    node: process.version,
    node_sha256: fileSha256(process.execPath),
  };
  if (!force && fs.existsSync(OUT)) {
    try {
      const have = JSON.parse(fs.readFileSync(STAMP, 'utf8'));
      if (Object.entries(wanted).every(([k, v]) => have[k] === v)) {
        process.stdout.write(`build-sea: ${path.relative(process.cwd(), OUT) || OUT} is up to date\n`);
        return;
      }
    } catch {
      // no or unreadable stamp: rebuild
    }
  }

  let postject;
  try {
    postject = require.resolve('postject/dist/cli.js', { paths: [PKG] });
  } catch {
    fail('postject is not installed (npm install -D postject at the repository root)');
  }

  const work = fs.mkdtempSync(path.join(DIST, '.sea-'));
  try {
    const main = path.join(work, 'firn-pilot.js'); // the name stack traces show
    const blob = path.join(work, 'sea-prep.blob');
    const config = path.join(work, 'sea-config.json');
    // keep the bundle's "use strict" directive first, then the prelude, then the bundle
    fs.writeFileSync(main, `'use strict';\n${PRELUDE}${bundle.replace(/^#![^\n]*\n/, '')}`);
    fs.writeFileSync(config, JSON.stringify({ main, output: blob, disableExperimentalSEAWarning: true }, null, 2));
    run(process.execPath, ['--experimental-sea-config', config], 'node --experimental-sea-config');

    const exe = path.join(work, 'firn-pilot');
    fs.copyFileSync(process.execPath, exe);
    fs.chmodSync(exe, 0o755);
    run(process.execPath, [postject, exe, 'NODE_SEA_BLOB', blob, '--sentinel-fuse', FUSE], 'postject');

    const check = spawnSync(exe, ['--version'], { encoding: 'utf8', env: { PATH: '/nonexistent' } });
    if (check.status !== 0) fail(`the new executable does not run: ${check.stderr || check.error}`);
    fs.renameSync(exe, OUT);
    fs.writeFileSync(STAMP, JSON.stringify({ ...wanted, built_at: new Date().toISOString() }, null, 2) + '\n');
    const mb = (fs.statSync(OUT).size / 1048576).toFixed(0);
    process.stdout.write(`build-sea: wrote ${path.relative(process.cwd(), OUT) || OUT} (${mb} MB, pilot ${check.stdout.trim()}, ${process.version})\n`);
  } finally {
    fs.rmSync(work, { recursive: true, force: true });
  }
}

main();
