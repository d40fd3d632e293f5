/**
 * Progress people can read (issue 18): `firn status` with % complete, the last hour's rate and an
 * ETA; `firn ls` with % complete and FAILED tasks; `status --watch` on a terminal with a
 * cli-progress bar scaled to the dataset's tasks. In-process against firn-tray on SQLite and
 * MariaDB, over the web monitor's seeded production (test/web/seed.ts: every number known).
 */
import fs from 'node:fs';
import path from 'node:path';
import { PassThrough } from 'node:stream';
import { main } from '@firn/client';
import { startTray, type Tray } from '@firn/tray';
import { createTestDb, DB_KINDS, type TestDb } from '../helpers/db';
import { PASSWORDS, seedWeb, type WebSeed } from '../web/seed';
import { makeCert, tmpDir, trayConfig } from './helpers';

interface Run { code: number; out: string; err: string }

async function firnIn(env: Record<string, string>, argv: string[], options: { input?: string; tty?: boolean; onOut?: (out: string) => void } = {}): Promise<Run> {
  const stdin = new PassThrough();
  stdin.end(options.input ?? '');
  const stdout = Object.assign(new PassThrough(), options.tty ? { isTTY: true, columns: 160 } : {});
  const stderr = new PassThrough();
  let out = '';
  let err = '';
  stdout.on('data', (d: Buffer) => {
    out += d.toString();
    options.onOut?.(out);
  });
  stderr.on('data', (d: Buffer) => (err += d.toString()));
  const code = await main(argv, { stdin, stdout, stderr, env });
  return { code, out, err };
}

const ISO = /\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ/;

describe.each(DB_KINDS)('firn status / ls progress against firn-tray on %s', (kind) => {
  let t: TestDb;
  let tray: Tray;
  let dir: string;
  let seed: WebSeed;
  let bob: Record<string, string>;
  let alice: Record<string, string>;

  beforeAll(async () => {
    t = await createTestDb(kind);
    seed = await seedWeb(t.db);
    dir = tmpDir('firn-cli-progress-');
    const cert = makeCert(dir);
    tray = await startTray({ config: trayConfig(t.url, {}, cert), db: t.db });
    bob = { FIRN_CONFIG_DIR: path.join(dir, 'bob'), FIRN_CA: cert.cert, HOME: dir };
    alice = { FIRN_CONFIG_DIR: path.join(dir, 'alice'), FIRN_CA: cert.cert, HOME: dir };
    expect((await firnIn(bob, ['login', tray.url, '-u', 'bob'], { input: `${PASSWORDS.bob}\n` })).code).toBe(0);
    expect((await firnIn(alice, ['login', tray.url, '-u', 'alice'], { input: `${PASSWORDS.alice}\n` })).code).toBe(0);
  });
  afterAll(async () => {
    await tray?.close();
    await t?.drop();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it('status: percent, tasks/h over the last hour and an ISO ETA', async () => {
    const before = Date.now();
    const r = await firnIn(bob, ['status', String(seed.sim.id)]);
    expect(r.code).toBe(0);
    // 12 of 20 tasks OK; one (job 3's sim, 40 min ago) finished in the last hour: 8 remaining take 8 h
    const m = /^progress: 60\.0% complete \(12\/20 tasks OK\), 1 tasks\/h over the last hour, ETA (\S+)$/m.exec(r.out);
    expect(m).not.toBeNull();
    expect(m![1]).toMatch(ISO);
    const eta = Date.parse(m![1]!);
    expect(eta).toBeGreaterThanOrEqual(Math.floor((before + 8 * 3600_000) / 1000) * 1000);
    expect(eta).toBeLessThanOrEqual(Date.now() + 8 * 3600_000);
    const json = JSON.parse((await firnIn(bob, ['--json', 'status', String(seed.sim.id)])).out) as { progress: Record<string, unknown> };
    expect(json.progress).toMatchObject({ percent: 60, ok: 12, total: 20, tasks_per_hour: 1 });
    expect(typeof json.progress.eta).toBe('string');
  });

  it('status: ETA unknown when nothing finished in the last hour', async () => {
    const r = await firnIn(bob, ['status', String(seed.offline.id)]);
    expect(r.code).toBe(0);
    expect(r.out).toMatch(/^progress: \d+\.\d% complete \(\d+\/\d+ tasks OK\), 0 tasks\/h over the last hour, ETA (unknown|done)$/m);
  });

  it('ls: % complete and FAILED tasks per dataset', async () => {
    const r = await firnIn(bob, ['ls']);
    expect(r.code).toBe(0);
    const lines = r.out.split('\n');
    expect(lines[0]).toMatch(/^ID +STATUS +PRIO +TYPE +JOBS +TASKS\/JOB +OWNER +DONE +FAILED +CREATED/);
    expect(lines.find((l) => l.startsWith(`${seed.sim.id} `))).toMatch(new RegExp(`^${seed.sim.id} +PROCESSING +5 +simulation +10 +2 +alice +60\\.0% +1 +\\d{4}-`));
    const json = JSON.parse((await firnIn(bob, ['--json', 'ls'])).out) as Array<{ id: number; progress: unknown }>;
    expect(json.find((d) => d.id === seed.sim.id)!.progress).toEqual({ ok: 12, failed: 1, total: 20, percent: 60 });
  });

  it('status --watch on a terminal draws a cli-progress bar scaled to the tasks', async () => {
    let suspended = false;
    const r = await firnIn(bob, ['status', String(seed.sim.id), '--watch', '--interval', '1'], {
      tty: true,
      onOut: (out) => {
        if (!suspended && out.includes('12/20 tasks OK')) {
          suspended = true;
          void firnIn(alice, ['suspend', String(seed.sim.id)]);
        }
      },
    });
    expect(r.code).toBe(1); // SUSPENDED, not COMPLETE
    // 30 cells at 60 %: 18 full, 12 empty (cli-progress's shades_classic)
    expect(r.out).toContain(`progress |${'\u2588'.repeat(18)}${'\u2591'.repeat(12)}| 60.0% 12/20 tasks OK · 1 tasks/h · ETA `);
    expect(r.out).toMatch(/dataset \d+: PROCESSING[\s\S]*dataset \d+: SUSPENDED/);
    expect(r.out).not.toMatch(/^progress: /m); // the bar replaces the text line on a terminal
  });
});
