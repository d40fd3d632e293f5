import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { waitUntil } from '../helpers/db';
import { ROOT, bundleCli, makeCert, tmpDir } from './helpers';

/**
 * firn-tray and firn as real processes (bundled from source with esbuild): the tray's config
 * check, `user add` with the password piped on stdin, HTTPS serving, graceful SIGTERM; and
 * `firn shell` driven through stdin: login, submit, status.
 */
describe('firn-tray and firn shell as processes', () => {
  let tray: { file: string; cleanup: () => void };
  let client: { file: string; cleanup: () => void };
  let dir: string;
  let ini: string;
  let proc: ChildProcess | null = null;
  let stderr = '';

  beforeAll(async () => {
    [tray, client] = await Promise.all([bundleCli('tray'), bundleCli('client')]);
    dir = tmpDir();
    const cert = makeCert(dir);
    ini = path.join(dir, 'tray.ini');
    fs.writeFileSync(ini, [
      '[db]', `url = sqlite://${path.join(dir, 'firn.sqlite')}`,
      '[tray]', 'host = 127.0.0.1', 'port = 0', `tls_cert = ${path.basename(cert.cert)}`, `tls_key = ${path.basename(cert.key)}`,
      '[log]', 'level = debug', 'format = json', '',
    ].join('\n'));
  }, 60_000);
  afterAll(() => {
    if (proc && proc.exitCode === null) proc.kill('SIGKILL');
    tray?.cleanup();
    client?.cleanup();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  const run = (file: string, args: string[], input = '', env: Record<string, string> = {}) =>
    spawnSync(process.execPath, [file, ...args], { input, encoding: 'utf8', env: { PATH: process.env.PATH ?? '', HOME: dir, ...env }, timeout: 60_000 });

  it('firn-tray --check-config accepts a good config and names the bad key of a bad one', () => {
    const ok = run(tray.file, ['--config', ini, '--check-config']);
    expect([ok.status, ok.stdout]).toEqual([0, expect.stringMatching(/^config OK: db sqlite:\/\/.*; tray https:\/\/127\.0\.0\.1:0\n$/)]);
    const bad = path.join(dir, 'bad.ini');
    fs.writeFileSync(bad, '[tray]\nport = seventy\n');
    const r = run(tray.file, ['--config', bad, '--check-config']);
    expect(r.status).toBe(1);
    expect(r.stderr).toMatch(/\[tray\] port must be integer/);
    expect(run(tray.file, ['--no-such-flag']).status).toBe(2);
  });

  it('firn-tray user add reads the password from stdin (at least 8 characters)', () => {
    const short = run(tray.file, ['user', 'add', 'admin', '--role', 'admin', '--config', ini], 'short\n');
    expect(short.status).toBe(1);
    expect(short.stderr).toMatch(/password must be at least 8 characters/);
    const ok = run(tray.file, ['user', 'add', 'admin', '--role', 'admin', '--config', ini], 'admin-password\n');
    expect([ok.status, ok.stdout]).toEqual([0, 'user admin created with role admin\n']);
    expect(run(tray.file, ['user', 'add', 'admin', '--role', 'admin', '--config', ini], 'admin-password\n').stderr).toMatch(/already exists/);
    expect(run(tray.file, ['user', 'list', '--config', ini]).stdout).toBe('admin\tadmin\tlocal\n');
  });

  it('serves HTTPS; firn shell logs in, submits and shows status from stdin; SIGTERM stops it cleanly', async () => {
    proc = spawn(process.execPath, [tray.file, '--config', ini], { env: { PATH: process.env.PATH ?? '', HOME: dir }, stdio: ['ignore', 'ignore', 'pipe'] });
    proc.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
    const url = await waitUntil(() => {
      if (proc!.exitCode !== null) throw new Error(`firn-tray exited with ${proc!.exitCode}: ${stderr}`);
      return /firn-tray listening on (https:\/\/127\.0\.0\.1:\d+)/.exec(stderr)?.[1];
    }, 20_000, 'firn-tray to listen') as string;

    const env = { FIRN_CONFIG_DIR: path.join(dir, 'cli'), FIRN_CA: path.join(dir, 'cert.pem') };
    const script = [
      `login ${url} --username admin`,
      'admin-password',
      '# a comment, then an empty line',
      '',
      `submit ${path.join(ROOT, 'examples', 'datasets', 'simulation.json')} --jobs 2 --description "from the shell"`,
      'status 1',
      'ls',
      'suspend 7',
      'status 1 --json',
      'exit',
      'ls',
    ].join('\n') + '\n';
    const sh = await new Promise<{ code: number | null; out: string; err: string }>((resolve) => {
      const c = spawn(process.execPath, [client.file, 'shell', '--keep-going'], { env: { PATH: process.env.PATH ?? '', HOME: dir, ...env } });
      let out = '';
      let err = '';
      c.stdout.on('data', (d: Buffer) => (out += d.toString()));
      c.stderr.on('data', (d: Buffer) => (err += d.toString()));
      c.on('close', (code) => resolve({ code, out, err }));
      c.stdin.end(script);
    });
    expect(sh.out).toMatch(new RegExp(`logged in to ${url.replace(/[.]/g, '\\.')} as admin \\(admin\\)`));
    expect(sh.out).toContain('submitted dataset 1: 2 jobs, 2 tasks');
    expect(sh.out).toMatch(/dataset 1: PROCESSING\ntasks \(2\)\n {2}WAITING +█+ 2\/2 100\.0%/);
    expect(sh.out).toMatch(/\n1 +PROCESSING +0 +simulation +2 +1 +admin .* from the shell/);
    expect(sh.err).toMatch(/no dataset 7/); // with --keep-going an error ends the command, not the script
    expect(sh.out).toMatch(/"WAITING": 2/); // the command after it ran
    expect(sh.out.match(/\nID +STATUS/g)).toHaveLength(1); // nothing after exit
    expect(sh.code).toBe(0);
    const history = fs.readFileSync(path.join(dir, 'cli', 'history'), 'utf8');
    expect(history).toContain('status 1 --json\n');
    expect(history).not.toContain('admin-password');
    expect(fs.statSync(path.join(dir, 'cli', 'client.json')).mode & 0o777).toBe(0o600);
    const token = (JSON.parse(fs.readFileSync(path.join(dir, 'cli', 'client.json'), 'utf8')) as { token: string }).token;

    // the same through one-shot commands of the real binary
    const st = spawnSync(process.execPath, [client.file, '--json', 'status', '1'], { encoding: 'utf8', env: { PATH: process.env.PATH ?? '', HOME: dir, ...env } });
    expect(st.status).toBe(0);
    expect(JSON.parse(st.stdout)).toMatchObject({ status: 'PROCESSING', tasks: { WAITING: 2 } });
    const nf = spawnSync(process.execPath, [client.file, 'status', '42'], { encoding: 'utf8', env: { PATH: process.env.PATH ?? '', HOME: dir, ...env } });
    expect(nf.status).toBe(4);

    const exited = new Promise<number | null>((r) => proc!.on('exit', (code) => r(code)));
    proc.kill('SIGTERM');
    expect(await exited).toBe(0);
    expect(stderr).toMatch(/"message":"shutting down","signal":"SIGTERM"/);
    expect(stderr).toMatch(/"message":"firn-tray stopped"/);
    expect(stderr).toMatch(/"message":"dataset submitted"/);
    expect(stderr).not.toContain('admin-password');
    expect(stderr).not.toContain(token);
  });
});
