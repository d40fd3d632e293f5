/**
 * `firn site add | install | start | status | logs | stop | rm` against a real sshd on
 * 127.0.0.1:2222 where the account `firnsite` plays the remote site. A firn-tray and a
 * firn-mon run in this process on a fresh MariaDB database; the site's firn-queue (the
 * one-file bundle, started over SSH as firnsite) reaches that database with its own MySQL
 * account, heartbeats, claims a task and runs it with the installed single-executable
 * pilot through the local plugin — the pilot reports to the real firn-mon.
 */
import { execFileSync } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { RpcClient, createUser, loadConfig } from '@firn/core';
import { startMon, type RunningMon } from '@firn/mon';
import { startTray, type Tray } from '@firn/tray';
import { createTestDb, missingService, waitUntil, type TestDb } from '../helpers/db';
import { portOpen } from '../pilot/http-file-server';
import { serviceEnv } from '../queue/support/harness';
import { runFirn } from '../helpers/cli';

const ROOT = path.resolve(__dirname, '..', '..');
const ssh = serviceEnv('ssh');
const SSH_HOST = ssh.SSH_HOST ?? '127.0.0.1';
const SSH_PORT = Number(ssh.SSH_PORT ?? 2222);
const SSH_USER = ssh.SSH_USER ?? 'firnsite';
const SSH_KEY = ssh.SSH_KEY ?? '/etc/firn-test/ssh/id_ed25519';
const SSH_KNOWN_HOSTS = ssh.SSH_KNOWN_HOSTS ?? '/etc/firn-test/ssh/known_hosts';

interface Run { code: number; out: string; err: string }

/**
 * The artefacts `firn site install` copies, as `npm run build` makes them: the firn-queue
 * bundle is rebuilt from the current sources (its database migrations must match the ones
 * this process applies; incremental, a few seconds); the single-executable pilot is built
 * when missing or older than the pilot bundle (build-sea.js checks).
 */
function buildArtefacts(): void {
  const run = (cmd: string, args: string[]) => execFileSync(cmd, args, { cwd: ROOT, stdio: 'pipe' });
  run('npx', ['tsc', '--build', 'packages/queue']);
  run('npm', ['run', 'bundle', '-w', '@firn/queue']);
  if (!fs.existsSync(path.join(ROOT, 'packages', 'pilot', 'dist', 'firn-pilot.js'))) run('npm', ['run', 'bundle', '-w', '@firn/pilot']);
  run(process.execPath, [path.join(ROOT, 'packages', 'pilot', 'scripts', 'build-sea.js')]);
}

const TASK_CONFIG = (command: string) => ({
  version: 1,
  description: 'firn site test',
  tasks: [{
    name: 'work',
    requirements: { cpu: 1, memory: 200, time: 5 },
    trays: [{ name: 't', modules: [{ name: 'm', class: 'shell', parameters: { command } }] }],
  }],
});

describe('firn site against a real sshd (firnsite@127.0.0.1 as the site)', () => {
  let t: TestDb;
  let tray: Tray;
  let mon: RunningMon;
  let dir: string;
  let env: Record<string, string>;
  let siteDb: { user: string; password: string; url: string };
  let remoteHome: string;
  const name = `site-${process.pid}-${crypto.randomBytes(2).toString('hex')}`;
  const remoteRel = `firn-test-${name}`;
  let rpc: RpcClient;
  let ready = false;

  const firn = async (argv: string[], input = ''): Promise<Run> => {
    return runFirn(argv, env, input);
  };
  const gridRow = async () => (await t.db('grid').where({ name }).first()) as { id: number; plugin: string; status: string; last_seen_at: number | null } | undefined;
  const remotePid = (): number | null => {
    try {
      return Number(fs.readFileSync(path.join(remoteHome, remoteRel, 'firn-queue.pid'), 'utf8').trim()) || null;
    } catch {
      return null;
    }
  };
  const alive = (pid: number | null) => {
    if (!pid) return false;
    try {
      process.kill(pid, 0);
      return true;
    } catch {
      return false;
    }
  };

  beforeAll(async () => {
    if (!(fs.existsSync(SSH_KEY) && (await portOpen(SSH_HOST, SSH_PORT)))) {
      missingService('sshd', 'bash test/services/start-sshd.sh');
      return;
    }
    buildArtefacts();
    t = await createTestDb('mariadb');
    const dbName = new URL(t.url).pathname.slice(1);
    siteDb = { user: `fs_${crypto.randomBytes(4).toString('hex')}`, password: crypto.randomBytes(12).toString('base64url'), url: '' };
    for (const host of ['127.0.0.1', 'localhost']) {
      await t.db.raw('CREATE USER ?@? IDENTIFIED BY ?', [siteDb.user, host, siteDb.password]);
      await t.db.raw('GRANT ALL PRIVILEGES ON ??.* TO ?@?', [dbName, siteDb.user, host]);
    }
    siteDb.url = `mysql://${siteDb.user}:${siteDb.password}@127.0.0.1:3306/${dbName}`;

    const config = loadConfig({ overrides: { db: { url: t.url }, tray: { host: '127.0.0.1', port: 0 }, mon: { host: '127.0.0.1', port: 0 } } });
    tray = await startTray({ config, db: t.db });
    mon = await startMon({ config, db: t.db, heartbeatSeconds: 1 });
    await createUser(t.db, { username: 'admin', role: 'admin', password: 'admin-password' });
    rpc = new RpcClient(tray.url);
    const { token } = await rpc.call<{ token: string }>('auth.login', { username: 'admin', password: 'admin-password' });
    rpc = new RpcClient(tray.url, { token });
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'firn-site-test-'));
    env = { HOME: dir, FIRN_CONFIG_DIR: path.join(dir, 'cfg'), FIRN_URL: tray.url, FIRN_TOKEN: token, PATH: process.env.PATH ?? '/usr/bin:/bin' };
    remoteHome = execFileSync('getent', ['passwd', SSH_USER], { encoding: 'utf8' }).split(':')[5] as string;
    ready = true;
  }, 240_000);

  afterAll(async () => {
    // whatever happened: no daemon of ours left on the site, no files, no database account
    const pid = remotePid();
    if (pid && alive(pid)) {
      process.kill(pid, 'SIGTERM');
      await waitUntil(() => !alive(pid), 30_000, 'the site daemon to stop').catch(() => process.kill(pid, 'SIGKILL'));
    }
    if (remoteHome) fs.rmSync(path.join(remoteHome, remoteRel), { recursive: true, force: true });
    rpc?.close();
    await mon?.close();
    await tray?.close();
    if (siteDb?.user) for (const host of ['127.0.0.1', 'localhost']) await t.db.raw('DROP USER IF EXISTS ?@?', [siteDb.user, host]).catch(() => undefined);
    await t?.drop();
    if (dir) fs.rmSync(dir, { recursive: true, force: true });
  }, 60_000);

  it('adds, installs, starts, heartbeats, runs a task, logs, stops, and is removed only when drained', async () => {
    if (!ready) return;

    // add: a grid in the central database, the connection on this machine (0600)
    const add = await firn(['site', 'add', name, '--ssh', `${SSH_USER}@${SSH_HOST}:${SSH_PORT}`, '--key', SSH_KEY, '--known-hosts', SSH_KNOWN_HOSTS, '--plugin', 'local',
      '--capabilities', '{"cpu": 2, "memory": 2000, "time": 60}', '--remote-dir', `~/${remoteRel}`, '--mon-url', mon.url,
      '--set', 'queue.schedule=*/2 * * * * *', '--set', 'queue.concurrency=2']);
    expect({ code: add.code, err: add.err }).toEqual({ code: 0, err: '' });
    expect(await gridRow()).toMatchObject({ plugin: 'local', status: 'enabled', last_seen_at: null });
    const sitesFile = path.join(dir, 'cfg', 'sites.json');
    expect(fs.statSync(sitesFile).mode & 0o777).toBe(0o600);
    expect(JSON.parse(fs.readFileSync(sitesFile, 'utf8')).sites[name].ssh).toEqual({ host: SSH_HOST, port: SSH_PORT, user: SSH_USER, key: SSH_KEY, known_hosts: SSH_KNOWN_HOSTS });
    expect((await firn(['site', 'add', name, '--ssh', `${SSH_USER}@${SSH_HOST}`, '--plugin', 'local'])).code).toBe(5);
    expect((await firn(['site', 'add', name, '--ssh', `${SSH_USER}@${SSH_HOST}`, '--known-hosts', path.join(dir, 'nope'), '--plugin', 'local'])).err).toMatch(/--known-hosts .*nope is not a readable file/);

    // a known_hosts that lists another key for the host: nothing is done on it
    const sitesBefore = fs.readFileSync(sitesFile, 'utf8');
    const otherKey = path.join(dir, 'other_known_hosts');
    const blob = Buffer.concat([Buffer.from([0, 0, 0, 11]), Buffer.from('ssh-ed25519'), Buffer.from([0, 0, 0, 32]), crypto.randomBytes(32)]);
    fs.writeFileSync(otherKey, `[${SSH_HOST}]:${SSH_PORT} ssh-ed25519 ${blob.toString('base64')}\n`);
    const tampered = JSON.parse(sitesBefore);
    tampered.sites[name].ssh.known_hosts = otherKey;
    fs.writeFileSync(sitesFile, JSON.stringify(tampered), { mode: 0o600 });
    const badKey = await firn(['site', 'status', name]);
    expect(badKey.code).not.toBe(0);
    expect(badKey.err).toMatch(/presented a key that .*other_known_hosts does not list/);
    fs.writeFileSync(sitesFile, sitesBefore, { mode: 0o600 });

    // install: bundle, single-executable pilot, schemas, config (0600, readable by the site only), control script
    const inst = await firn(['site', 'install', name, '--db-url', siteDb.url]);
    expect({ code: inst.code, err: inst.err.replace(/^firn site: installing.*\n/, '') }).toEqual({ code: 0, err: '' });
    expect(inst.out).toContain(`configuration OK: grid ${name}, plugin local`);
    const rdir = path.join(remoteHome, remoteRel);
    for (const f of ['firn-queue.js', 'firn-pilot', 'queue.ini', 'firn-queue-ctl', 'schemas/config.schema.json']) expect(fs.existsSync(path.join(rdir, f))).toBe(true);
    const ini = fs.statSync(path.join(rdir, 'queue.ini'));
    expect([ini.mode & 0o777, ini.uid]).toEqual([0o600, Number(execFileSync('id', ['-u', SSH_USER], { encoding: 'utf8' }))]);
    expect(fs.readFileSync(path.join(rdir, 'queue.ini'), 'utf8')).toContain(`pilot = ${rdir}/firn-pilot`);
    const again = await firn(['--json', 'site', 'install', name]);
    expect(again.code).toBe(0);
    expect(JSON.parse(again.out).unchanged).toEqual(expect.arrayContaining([`${rdir}/firn-queue.js`, `${rdir}/firn-pilot`]));

    // status before start: not running (exit 1); start; the grid heartbeats into the central database
    const before = await firn(['site', 'status', name]);
    expect([before.code, before.out]).toEqual([1, expect.stringMatching(/firn-queue: +not running/)]);
    const start = await firn(['site', 'start', name]);
    expect({ code: start.code, err: start.err }).toEqual({ code: 0, err: '' });
    const pid = remotePid();
    expect(start.out).toContain(`started on ${name} (pid ${pid})`);
    expect(alive(pid)).toBe(true);
    expect(fs.readFileSync(`/proc/${pid}/status`, 'utf8')).toMatch(new RegExp(`^Uid:\\s+${execFileSync('id', ['-u', SSH_USER], { encoding: 'utf8' }).trim()}\\s`, 'm'));
    await waitUntil(async () => (await gridRow())?.last_seen_at, 30_000, 'the first heartbeat');
    const st = await firn(['--json', 'site', 'status', name]);
    expect(st.code).toBe(0);
    expect(JSON.parse(st.out)).toMatchObject({ running: true, pid, grid: { status: 'enabled', plugin: 'local' } });
    expect(JSON.parse(st.out).heartbeat_age_seconds).toBeLessThan(30);
    expect((await firn(['site', 'start', name])).out).toContain(`already runs on ${name} (pid ${pid})`);

    // a task for this grid: claimed, submitted to the site's batch system, run by the installed pilot
    const ds = await rpc.call<{ dataset_id: number }>('dataset.submit', { config: TASK_CONFIG('echo "answer 42" >> "$FIRN_STATS"'), jobs: 1, grids: [name] });
    const task = () => t.db('task').where({ dataset_id: ds.dataset_id }).first() as Promise<{ id: number; status: string; grid_id: number }>;
    await waitUntil(async () => (await task()).status === 'READYTOCOPY', 60_000, 'the task to be run by the site');
    const h = await t.db('history').where({ entity: 'task', entity_id: (await task()).id }).orderBy('id').pluck('to_status');
    expect(h).toEqual(expect.arrayContaining(['QUEUEING', 'QUEUED', 'PROCESSING', 'READYTOCOPY']));
    expect((await task()).grid_id).toBe((await gridRow())?.id);
    // the task's statistics reached mon (they join the dataset's totals when firn-dh, not run here, moves it to OK)
    const answer = await t.db('task_stat').where({ task_id: (await task()).id, name: 'answer' }).first() as { value: number } | undefined;
    expect(Number(answer?.value)).toBe(42);

    const logs = await firn(['site', 'logs', name, '-n', '200']);
    expect(logs.code).toBe(0);
    expect(logs.out).toMatch(/"message":"submitted"/);

    // stop: SIGTERM, the process is gone, status says so
    const stop = await firn(['site', 'stop', name]);
    expect([stop.code, stop.out.trim()]).toEqual([0, `${name}: stopped ${pid}`]);
    expect(alive(pid)).toBe(false);
    expect((await firn(['site', 'status', name])).code).toBe(1);

    // rm is refused while a task is queued or running there; --drain disables the grid and waits
    expect((await firn(['site', 'start', name])).code).toBe(0);
    const slow = await rpc.call<{ dataset_id: number }>('dataset.submit', { config: TASK_CONFIG('sleep 4'), jobs: 1, grids: [name] });
    await waitUntil(async () => ['QUEUED', 'PROCESSING'].includes(((await t.db('task').where({ dataset_id: slow.dataset_id }).first()) as { status: string }).status), 60_000, 'the slow task');
    const refused = await firn(['site', 'rm', name]);
    expect([refused.code, refused.err]).toEqual([5, expect.stringMatching(/refused: .*queued or running.*--drain/)]);
    expect(await gridRow()).toBeDefined();
    const pid2 = remotePid();
    const rm = await firn(['site', 'rm', name, '--drain', '--poll', '1', '--timeout', '120', '--purge']);
    expect({ code: rm.code, err: rm.err }).toEqual({ code: 0, err: expect.stringContaining(`grid ${name} disabled; waiting`) });
    expect(((await t.db('task').where({ dataset_id: slow.dataset_id }).first()) as { status: string }).status).toBe('READYTOCOPY');
    expect(await gridRow()).toBeUndefined();
    expect(alive(pid2)).toBe(false);
    expect(fs.existsSync(rdir)).toBe(false);
    expect(JSON.parse(fs.readFileSync(sitesFile, 'utf8')).sites[name]).toBeUndefined();
  }, 240_000);
});
