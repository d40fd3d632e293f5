/**
 * The self-contained pilot: `packages/pilot/dist/firn-pilot`, Node's single-executable
 * application made by `npm run build` (scripts/build-sea.js). It runs tasks where `node` is
 * nowhere on PATH — here a PATH holding every tool of /usr/bin except node (on this host
 * /bin is /usr/bin, which has node) — and the batch plugins run it when `[system] pilot`
 * points at it.
 */
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { loadConfig } from '@firn/core';
import { queueSettings } from '@firn/queue';
import { firn, sums, type SummaryJson } from '../run/helpers';

const ROOT = path.resolve(__dirname, '..', '..');
const DIST = path.join(ROOT, 'packages', 'pilot', 'dist');
let dir: string;
let bin: string;
let pilot: string;

/** A bin directory with links to every command of /usr/bin except Node.js and its tools. */
function pathWithoutNode(into: string): string {
  fs.mkdirSync(into);
  const skip = new Set(['node', 'nodejs', 'npm', 'npx', 'corepack']);
  for (const name of fs.readdirSync('/usr/bin')) if (!skip.has(name)) fs.symlinkSync(path.join('/usr/bin', name), path.join(into, name));
  return into;
}

function exec(file: string, args: string[], env: NodeJS.ProcessEnv): Promise<{ code: number | null; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn(file, args, { env, stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.on('close', (code) => resolve({ code, stderr }));
  });
}

beforeAll(() => {
  // `npm run build` made it; a plain `jest` run builds it here when missing or stale (fast when up to date)
  if (!fs.existsSync(path.join(DIST, 'firn-pilot.js'))) execFileSync('npm', ['run', 'bundle', '-w', '@firn/pilot'], { cwd: ROOT, stdio: 'pipe' });
  execFileSync(process.execPath, [path.join(ROOT, 'packages', 'pilot', 'scripts', 'build-sea.js')], { cwd: ROOT, stdio: 'pipe' });
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'firn-sea-'));
  bin = pathWithoutNode(path.join(dir, 'bin'));
  // the executable alone in a directory of its own, as on a worker node
  fs.mkdirSync(path.join(dir, 'worker'));
  pilot = path.join(dir, 'worker', 'firn-pilot');
  fs.copyFileSync(path.join(DIST, 'firn-pilot'), pilot);
  fs.chmodSync(pilot, 0o755);
}, 120_000);
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

describe('the single-executable pilot', () => {
  it('is a real executable, and the test PATH really has no node', () => {
    expect(fs.readFileSync(pilot).subarray(0, 4)).toEqual(Buffer.from([0x7f, 0x45, 0x4c, 0x46])); // ELF, not a script
    const which = spawnSync(path.join(bin, 'which'), ['node'], { env: { PATH: bin }, encoding: 'utf8' });
    expect([which.status, which.stdout]).toEqual([1, '']);
    expect(spawnSync('/bin/sh', ['-c', 'command -v node'], { env: { PATH: bin } }).status).not.toBe(0);
    expect(spawnSync(pilot, ['--version'], { env: { PATH: bin }, encoding: 'utf8' }).stdout.trim()).toBe('0.1.0');
  });

  it('runs a task (unmonitored) with no node on PATH: statistics, output with its checksum', async () => {
    const out = path.join(dir, 'report');
    const scratch = path.join(dir, 'scratch');
    const r = await exec(pilot, [
      '--unmonitored', '--config-file', path.join(ROOT, 'examples', 'datasets', 'simulation.json'), '--out', out,
      '--job', '3', '--dataset', '12', '--jobs-total', '10', '--scratch', scratch,
    ], { PATH: bin, HOME: dir });
    expect({ code: r.code, stderr: r.stderr.slice(-1500) }).toMatchObject({ code: 0 });
    expect(r.stderr).not.toMatch(/Warning|single-executable/i); // the prelude keeps the SEA require() warning away
    const report = JSON.parse(fs.readFileSync(path.join(out, 'report.json'), 'utf8'));
    expect(report).toMatchObject({ status: 'ok', task: { name: 'simulate', job_index: 3, dataset_id: 12 } });
    // 100 events of energy 7 + 3 + i
    expect(report.stats).toMatchObject({ events: 100, energy_sum: 100 * 10 + 4950 });
    const [o] = report.outputs;
    const staged = fs.readFileSync(new URL(o.temp_url));
    expect(crypto.createHash('sha256').update(staged).digest('hex')).toBe(o.sha256);
    expect(fs.readdirSync(scratch)).toEqual([]);
  }, 60_000);

  it('is what the batch plugins run when [system] pilot points at it (firn run, local plugin, jobs without node)', async () => {
    const file = path.join(dir, 'no-node.json');
    fs.writeFileSync(file, JSON.stringify({
      version: 1,
      tasks: [
        { name: 'first', requirements: { memory: 200, time: 5 }, data: [{ local: 'x.txt', remote: 'r/$(job)/x.txt', movement: 'output', type: 'job_temp' }],
          trays: [{ name: 't', modules: [{ name: 'm', class: 'shell', parameters: { command: 'if command -v node; then exit 9; fi; echo $(job) > x.txt; echo "nonode 1" >> "$FIRN_STATS"' } }] }] },
        { name: 'second', depends: ['first'], requirements: { memory: 200, time: 5 }, data: [{ local: 'x.txt', remote: 'r/$(job)/x.txt', movement: 'input', type: 'job_temp' }],
          trays: [{ name: 't', modules: [{ name: 'm', class: 'shell', parameters: { command: 'echo "got $(cat x.txt)" >&2; echo "job_sum $(cat x.txt)" >> "$FIRN_STATS"' } }] }] },
      ],
    }));
    const ini = path.join(dir, 'site.ini');
    fs.writeFileSync(ini, `[queue]\nplugin = local\nconcurrency = 3\n\n[system]\npilot = ${pilot}\n\n[environment]\nPATH = ${bin}\n`);
    const out = path.join(dir, 'run');
    const r = await firn(['--json', 'run', file, '--jobs', '3', '--config', ini, '--out', out, '--poll', '0.3']);
    expect({ code: r.code, err: r.err }).toMatchObject({ code: 0, err: expect.stringContaining(`(pilot ${pilot})`) });
    const s = JSON.parse(r.out) as SummaryJson;
    expect(s.counts).toMatchObject({ ok: 3 });
    expect(sums(s)).toEqual({ nonode: 3, job_sum: 0 + 1 + 2 });
    expect(fs.readFileSync(path.join(out, 'jobs', '000001', 'run.sh'), 'utf8')).toContain(`\n${pilot} --unmonitored `);
    expect(fs.readFileSync(path.join(out, 'batch', 'submit-0', 'submit.sh'), 'utf8')).toContain(`PATH=${bin}\nexport PATH`);
  }, 60_000);

  it('queue settings: a .js bundle runs with node, the executable (or any command line) as written', () => {
    const settings = (p: string) => queueSettings(loadConfig({ overrides: { queue: { grid: 'g', plugin: 'local', submit_dir: dir }, system: { pilot: p } } })).pluginOptions.pilotCommand;
    expect(settings(pilot)).toBe(pilot);
    expect(settings('/opt/firn/firn-pilot.js')).toBe('node /opt/firn/firn-pilot.js');
    expect(settings("node '/opt/my firn/firn-pilot.js'")).toBe("node '/opt/my firn/firn-pilot.js'");
  });
});
