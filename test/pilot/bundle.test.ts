/**
 * The one-file bundle (`npm run bundle -w @firn/pilot` → packages/pilot/dist/firn-pilot.js),
 * copied alone into an empty directory and run with plain `node` as a real process — as on a
 * worker node with nothing installed: --help, a monitored task staging its outputs over
 * sftp:// (ssh2 bundled without its optional native parts) through a 3 s mon outage,
 * SIGTERM, and an unmonitored run of an example dataset.
 */
import { execFileSync, spawn } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { missingService, waitUntil } from '../helpers/db';
import { FakeMon } from './fake-mon';
import { HttpFileServer, portOpen, sshEnv } from './http-file-server';
import { EXPECTED_RESULT, EXPECTED_STATS, sha256, startResult, writeWebFiles } from './pilot-task';

const REPO = path.resolve(__dirname, '..', '..');
let dir: string;
let bundle: string;
let web: HttpFileServer;
let sums: { toolsSha256: string; inSha256: string };

/** No node_modules anywhere above `d`: the bundle must not find any package. */
function noNodeModulesAbove(d: string): boolean {
  for (let p = d; ; p = path.dirname(p)) {
    if (fs.existsSync(path.join(p, 'node_modules'))) return false;
    if (path.dirname(p) === p) return true;
  }
}

/** A bare environment: PATH and HOME only (no NODE_PATH, no npm variables). */
function bareEnv(extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  return { PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: process.env.HOME ?? '/root', ...extra };
}

interface Proc {
  code: Promise<number | null>;
  stdout: () => string;
  stderr: () => string;
  pid: number;
}
function runBundle(args: string[], env: NodeJS.ProcessEnv): Proc {
  const child = spawn(process.execPath, [bundle, ...args], { cwd: path.dirname(bundle), env, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  child.stdout.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr.on('data', (d: Buffer) => (err += d.toString()));
  return {
    code: new Promise((resolve) => child.on('exit', (c, s) => resolve(c ?? (s ? 128 + (os.constants.signals[s] ?? 0) : null)))),
    stdout: () => out,
    stderr: () => err,
    pid: child.pid as number,
  };
}

beforeAll(async () => {
  execFileSync('npm', ['run', 'bundle', '-w', '@firn/pilot'], { cwd: REPO, stdio: 'pipe' });
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'firn-bundle-'));
  fs.mkdirSync(path.join(dir, 'bin'));
  bundle = path.join(dir, 'bin', 'firn-pilot.js');
  fs.copyFileSync(path.join(REPO, 'packages', 'pilot', 'dist', 'firn-pilot.js'), bundle);
  sums = writeWebFiles(path.join(dir, 'www'));
  web = await new HttpFileServer(path.join(dir, 'www')).listen();
}, 120_000);
afterAll(async () => {
  await web?.close();
  if (dir) fs.rmSync(dir, { recursive: true, force: true });
});

describe('the firn-pilot bundle', () => {
  it('is one file that needs no package at run time', () => {
    expect(fs.readdirSync(path.dirname(bundle))).toEqual(['firn-pilot.js']);
    expect(noNodeModulesAbove(path.dirname(bundle))).toBe(true);
    const text = fs.readFileSync(bundle, 'utf8');
    // no server-side dependencies were dragged in
    for (const name of ['knex', 'mysql2', 'better-sqlite3', 'fastify', 'winston', 'ajv']) {
      expect(text).not.toMatch(new RegExp(`require\\(["']${name}["']\\)|node_modules/${name}/`));
    }
  });

  it('prints its usage with plain node', () => {
    const out = execFileSync(process.execPath, [bundle, '--help'], { cwd: path.dirname(bundle), env: bareEnv(), encoding: 'utf8' });
    expect(out).toContain('firn-pilot --mon URL --task ID --passkey-file FILE');
    expect(out).toContain('--unmonitored --config-file FILE --out DIR');
  });

  it('rejects bad usage with exit code 2', async () => {
    const p = runBundle(['--mon', 'ftp://x', '--task', '1', '--passkey-file', '/nonexistent'], bareEnv());
    expect(await p.code).toBe(2);
    expect(p.stderr()).toMatch(/--mon must be an http/);
  });

  it('runs a monitored task, stages outputs over sftp:// and rides out a 3 s mon outage', async () => {
    const ssh = sshEnv();
    if (!(ssh.SSH_KEY && (await portOpen(ssh.SSH_HOST ?? '127.0.0.1', Number(ssh.SSH_PORT ?? 2222))))) {
      missingService('sshd', 'bash test/services/start-sshd.sh');
      return;
    }
    const remoteDir = `/tmp/firn-bundle-sftp-${process.pid}-${crypto.randomBytes(3).toString('hex')}`;
    const siteTemp = `sftp://${ssh.SSH_USER}@${ssh.SSH_HOST}:${ssh.SSH_PORT}${remoteDir}`;
    const mon = new FakeMon({
      start: startResult({ webUrl: web.url, ...sums, siteTemp, extraModule: { name: 'slow', class: 'shell', parameters: { command: 'sleep 3' } } }),
    });
    await mon.listen();
    const passkeyFile = path.join(dir, 'passkey');
    fs.writeFileSync(passkeyFile, `${mon.passkey}\n`, { mode: 0o600 });
    try {
      const p = runBundle(
        ['--mon', mon.url, '--task', '42', '--passkey-file', passkeyFile, '--scratch', path.join(dir, 'scratch'), '--cache', path.join(dir, 'cache'),
          '--ssh-key', ssh.SSH_KEY as string, '--ssh-known-hosts', ssh.SSH_KNOWN_HOSTS as string],
        bareEnv({ FIRN_PILOT_HEARTBEAT_SECONDS: '0.3', FIRN_PILOT_BACKOFF_MAX_SECONDS: '2' }),
      );
      await waitUntil(() => mon.callsOf('pilot.log').some((c) => c.params.name === 'post.ext.stdout'), 30_000, 'the slow module');
      await mon.down();
      await new Promise((r) => setTimeout(r, 3_000));
      await mon.up();
      const code = await p.code;
      expect({ code, stderr: p.stderr().slice(-2000) }).toMatchObject({ code: 0 });
      expect(p.stderr()).not.toContain(mon.passkey);
      expect(mon.bodies.join('\n')).toContain(mon.passkey); // sent to mon, and only there

      expect(mon.invalid).toEqual([]);
      const fin = mon.callsOf('pilot.finish');
      expect(fin).toHaveLength(1);
      expect(fin[0]?.params.ok).toBe(true);
      const { cpu_seconds: _cpu, ...stats } = mon.callsOf('pilot.stats')[0]?.params.stats as Record<string, number>;
      expect(stats).toEqual(EXPECTED_STATS);
      const files = mon.callsOf('pilot.files')[0]?.params.files as Array<Record<string, any>>;
      const result = files.find((f) => f.local_name === 'result.txt') as Record<string, any>;
      expect(result.temp_url).toBe(`${siteTemp}/7/5/main/result.txt`);
      expect(result.url).toBe(`${siteTemp}/results/7/0005/result.txt`);
      expect(result.sha256).toBe(sha256(EXPECTED_RESULT));
      // the sshd is on this machine: the staged file is really there, as firnsite wrote it
      expect(fs.readFileSync(path.join(remoteDir, '7', '5', 'main', 'result.txt'), 'utf8')).toBe(EXPECTED_RESULT);
      expect(fs.readdirSync(path.join(dir, 'scratch'))).toEqual([]);
    } finally {
      await mon.close();
      fs.rmSync(remoteDir, { recursive: true, force: true });
    }
  }, 90_000);

  it('on SIGTERM kills its module, removes its scratch and exits 143 without finishing', async () => {
    const pidFile = path.join(dir, 'term.pid');
    const mon = new FakeMon({
      start: startResult({
        webUrl: web.url,
        ...sums,
        siteTemp: `file://${path.join(dir, 'st-term')}`,
        extraModule: { name: 'long', class: 'shell', parameters: { command: `echo $$ > ${pidFile}; exec sleep 60` } },
      }),
    });
    await mon.listen();
    const passkeyFile = path.join(dir, 'passkey-term');
    fs.writeFileSync(passkeyFile, mon.passkey);
    const scratch = path.join(dir, 'scratch-term');
    try {
      const p = runBundle(['--mon', mon.url, '--task', '42', '--passkey-file', passkeyFile, '--scratch', scratch, '--cache', path.join(dir, 'cache')], bareEnv());
      await waitUntil(() => fs.existsSync(pidFile) && fs.readFileSync(pidFile, 'utf8').trim() !== '', 30_000, 'the long module');
      const modulePid = Number(fs.readFileSync(pidFile, 'utf8'));
      process.kill(p.pid, 'SIGTERM');
      expect(await p.code).toBe(143);
      await waitUntil(() => {
        try {
          const st = fs.readFileSync(`/proc/${modulePid}/stat`, 'utf8');
          return st.slice(st.lastIndexOf(')') + 2).startsWith('Z');
        } catch {
          return true;
        }
      }, 5_000, 'the module to die');
      expect(fs.readdirSync(scratch)).toEqual([]);
      expect(mon.callsOf('pilot.finish')).toHaveLength(0);
    } finally {
      await mon.close();
    }
  }, 60_000);

  it('runs an example dataset unmonitored and writes a report', async () => {
    const out = path.join(dir, 'unmonitored');
    const p = runBundle(
      ['--unmonitored', '--config-file', path.join(REPO, 'examples', 'datasets', 'simulation.json'), '--out', out, '--job', '3', '--dataset', '12', '--jobs-total', '10', '--scratch', path.join(dir, 'scratch-u')],
      bareEnv(),
    );
    expect(await p.code).toBe(0);
    const report = JSON.parse(fs.readFileSync(path.join(out, 'report.json'), 'utf8'));
    expect(report).toMatchObject({ status: 'ok', task: { name: 'simulate', job_index: 3, dataset_id: 12, jobs_total: 10 } });
    // 100 events numbered 0..99 with energy seed + job + i = 7 + 3 + i
    expect(report.stats).toMatchObject({ events: 100, energy_sum: 100 * 10 + (99 * 100) / 2 });
    expect(report.stats.cpu_seconds).toEqual(expect.any(Number));
    const [o] = report.outputs;
    expect(o).toMatchObject({ local_name: 'events.txt', type: 'permanent' });
    const staged = fs.readFileSync(new URL(o.temp_url));
    expect(sha256(staged)).toBe(o.sha256);
    expect(staged.toString().split('\n')[1]).toBe('1 11');
    expect(fs.readdirSync(path.join(dir, 'scratch-u'))).toEqual([]);
  }, 60_000);
});
