/**
 * Issue 18, the rest: times in human output are ISO 8601 UTC to the second; a piped `firn shell`
 * stops at the first failing command with its exit code; the shell completes file paths and
 * dataset ids. In-process against firn-tray on SQLite (none of it depends on the database).
 */
import fs from 'node:fs';
import path from 'node:path';
import { PassThrough } from 'node:stream';
import { createUser } from '@firn/core';
import { buildProgram, completer, createContext, datasetIdSource, main } from '@firn/client';
import { startTray, type Tray } from '@firn/tray';
import { createTestDb, type TestDb } from '../helpers/db';
import { ROOT, makeCert, tmpDir, trayConfig } from './helpers';

interface Run { code: number; out: string; err: string }

function streams(env: Record<string, string>, input: string) {
  const stdin = new PassThrough();
  stdin.end(input);
  const stdout = new PassThrough();
  const stderr = new PassThrough();
  const r = { out: '', err: '' };
  stdout.on('data', (d: Buffer) => (r.out += d.toString()));
  stderr.on('data', (d: Buffer) => (r.err += d.toString()));
  return { io: { stdin, stdout, stderr, env }, r };
}

async function firnIn(env: Record<string, string>, argv: string[], input = ''): Promise<Run> {
  const { io, r } = streams(env, input);
  const code = await main(argv, io);
  return { code, ...r };
}

const example = (n: string) => path.join(ROOT, 'examples', 'datasets', `${n}.json`);
/** 2026-12-04T18:42:00.789Z: the milliseconds must not show. */
const T = Date.UTC(2026, 11, 4, 18, 42, 0, 789);
const ISO = '2026-12-04T18:42:00Z';

describe('the firn CLI: times, piped shell, completion (firn-tray on SQLite)', () => {
  let t: TestDb;
  let tray: Tray;
  let dir: string;
  let env: Record<string, string>;
  let ds: number;
  const firn = (argv: string[], input = '') => firnIn(env, argv, input);

  beforeAll(async () => {
    t = await createTestDb('sqlite');
    dir = tmpDir('firn-cli-shell-');
    const cert = makeCert(dir);
    await createUser(t.db, { username: 'admin', role: 'admin', password: 'admin-password' });
    tray = await startTray({ config: trayConfig(t.url, {}, cert), db: t.db });
    env = { FIRN_CONFIG_DIR: path.join(dir, 'cfg'), FIRN_CA: cert.cert, HOME: dir };
    const login = await firn(['login', tray.url, '-u', 'admin'], 'admin-password\n');
    expect(login.code).toBe(0);
    // login's expiry is an ISO string from the server: shown to the second
    expect(login.out).toMatch(/token valid until \d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ\n$/);
    await t.db('grid').insert({ name: 'site-a', plugin: 'slurm', capabilities: '{}', status: 'enabled', created_at: T, last_seen_at: T });
    const sub = await firn(['--json', 'submit', example('simulation'), '-n', '1', '--grid', 'site-a']);
    expect(sub.code).toBe(0);
    ds = (JSON.parse(sub.out) as { dataset_id: number }).dataset_id;
    await t.db('dataset').where({ id: ds }).update({ created_at: T });
    await t.db('job').where({ dataset_id: ds }).update({ status_changed_at: T });
    await t.db('task').where({ dataset_id: ds }).update({ status_changed_at: T });
  });
  afterAll(async () => {
    await tray?.close();
    await t?.drop();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  describe('times in human output', () => {
    it('ls, show, jobs, task, grid ls, user ls print ISO 8601 UTC to the second', async () => {
      const ls = await firn(['ls']);
      expect(ls.out).toMatch(new RegExp(`\\n${ds} +PROCESSING .* ${ISO} `));
      expect((await firn(['show', String(ds)])).out).toContain(`created: ${ISO}\n`);
      expect((await firn(['jobs', String(ds)])).out).toMatch(new RegExp(`${ds}\\.0 +\\w+ +${ISO}\\n`));
      const task = (await t.db('task').where({ dataset_id: ds }).first()) as { id: number };
      const shown = await firn(['task', String(task.id)]);
      expect(shown.code).toBe(0);
      expect(shown.out).toContain(`status_changed_at: ${ISO}\n`);
      expect(shown.out).not.toMatch(/_at: \d{10,}/); // no raw epoch ms anywhere
      expect((await firn(['grid', 'ls'])).out).toMatch(new RegExp(`site-a +slurm +enabled +${ISO}\\s`));
      expect((await firn(['user', 'ls'])).out).toMatch(/admin +admin +\w+ +\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ\n/);
    });

    it('--json keeps the numbers', async () => {
      const task = (await t.db('task').where({ dataset_id: ds }).first()) as { id: number };
      const j = JSON.parse((await firn(['--json', 'task', String(task.id)])).out) as { status_changed_at: number };
      expect(j.status_changed_at).toBe(T);
      const list = JSON.parse((await firn(['--json', 'ls'])).out) as Array<{ id: number; created_at: number }>;
      expect(list.find((d) => d.id === ds)?.created_at).toBe(T);
    });
  });

  describe('completion in firn shell', () => {
    const programFor = (e: Record<string, string>) => buildProgram(createContext(streams(e, '').io));

    it('offers the dataset ids dataset.list gives, newest first, from a cache of a few seconds', async () => {
      const program = programFor(env);
      let now = 1_000_000;
      const complete = completer(program, { datasetIds: datasetIdSource(program, { ttlMs: 5000, now: () => now }) });
      expect(await complete('status ')).toEqual([[String(ds)], '']);
      const sub = await firn(['--json', 'submit', example('simulation'), '-n', '1', '--grid', 'site-a']);
      const ds2 = (JSON.parse(sub.out) as { dataset_id: number }).dataset_id;
      expect((await complete('reset '))[0]).toEqual([String(ds)]); // still the cached answer
      now += 5000;
      expect((await complete('reset '))[0]).toEqual([String(ds2), String(ds)]);
      expect((await complete(`jobs ${ds2}`))[0]).toEqual([String(ds2)]);
      expect((await complete('submit '))[0]).not.toContain(String(ds)); // a file, not a dataset
    });

    it('offers no ids (and does not fail) when not logged in or the server is not there', async () => {
      const anon = programFor({ ...env, FIRN_CONFIG_DIR: path.join(dir, 'nobody'), FIRN_URL: tray.url });
      expect(await completer(anon, { datasetIds: datasetIdSource(anon) })('status ')).toEqual([[], '']);
      const gone = programFor({ ...env, FIRN_URL: 'http://127.0.0.1:1' });
      const started = Date.now();
      expect(await completer(gone, { datasetIds: datasetIdSource(gone, { timeoutMs: 500 }) })('status ')).toEqual([[], '']);
      expect(Date.now() - started).toBeLessThan(2000);
    });
  });

  describe('firn shell with a script piped in', () => {
    const script = (...lines: string[]) => lines.join('\n') + '\n';

    it('stops at the first failing command and exits with its code', async () => {
      const r = await firn(['shell'], script(`status ${ds}`, 'suspend 999999', 'ls'));
      expect(r.code).toBe(4); // no dataset 999999: not found
      expect(r.out).toContain(`dataset ${ds}: PROCESSING`);
      expect(r.out).not.toMatch(/^ID +STATUS/m); // ls never ran
      expect(r.err).toMatch(/no dataset 999999/);
      expect(r.err).toContain('firn shell: stopped at line 2 (exit 4)');
      // a line that does not parse is a usage error (2), and stops the script too
      const bad = await firn(['shell'], script('# comment', '', "status 'x", 'ls'));
      expect(bad.code).toBe(2);
      expect(bad.err).toContain('stopped at line 3 (exit 2)');
      expect(bad.out).toBe('');
    });

    it('--keep-going runs on and exits with the last command\'s code; a clean script exits 0', async () => {
      const k = await firn(['shell', '--keep-going'], script('suspend 999999', 'ls'));
      expect(k.code).toBe(0);
      expect(k.out).toMatch(/^ID +STATUS/m);
      const last = await firn(['shell', '-k'], script('ls', 'suspend 999999'));
      expect(last.code).toBe(4);
      const ok = await firn(['shell'], script(`status ${ds}`, 'ls', 'exit', 'suspend 999999'));
      expect([ok.code, ok.err]).toEqual([0, '']);
    });

    it('on a terminal an error ends the command, not the shell (exit: the last command\'s code)', async () => {
      const { io, r } = streams(env, script('suspend 999999', 'ls', 'exit'));
      Object.assign(io.stdin, { isTTY: true });
      Object.assign(io.stdout, { isTTY: true, columns: 80 });
      const code = await main(['shell'], io);
      expect(code).toBe(0);
      expect(r.err).toMatch(/no dataset 999999/);
      expect(r.err).not.toContain('stopped');
      expect(r.out).toMatch(/ID +STATUS/);
    });

    it('on a terminal, Tab completes a file argument through readline', async () => {
      const rel = path.relative(process.cwd(), example('simulation'));
      const { io, r } = streams(env, '');
      const stdin = new PassThrough(); // typed key by key: readline treats a chunk with a Tab in it as a paste
      Object.assign(stdin, { isTTY: true });
      Object.assign(io.stdout, { isTTY: true, columns: 200 });
      const done = main(['shell'], { ...io, stdin });
      const tick = () => new Promise((res) => setTimeout(res, 50));
      for (const keys of [`validate ${rel.slice(0, -'ulation.json'.length)}`, '\t', '\r', 'exit\r']) {
        await tick();
        stdin.write(keys);
      }
      stdin.end();
      expect(await done).toBe(0);
      expect(r.err).toBe('');
      expect(r.out).toContain(`validate ${rel}`);
      expect(r.out).toMatch(/\nvalid: \d+ tasks/);
    });
  });
});
