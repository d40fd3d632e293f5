import { execFile, spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { TaskStatus } from '@firn/core';
import { DhDaemon } from '@firn/dh';
import { createTestDb, DB_KINDS, waitUntil, type TestDb } from '../helpers/db';
import { DH_BIN, dhConfig, insertDataset, requireBuiltBin, taskRow, tmpDir } from './fixtures';

function run(args: string[], env: Record<string, string> = {}): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, [DH_BIN, ...args], { env: { PATH: process.env.PATH ?? '', ...env }, timeout: 30_000 }, (err, stdout, stderr) =>
      resolve({ code: err ? ((err as { code?: number }).code ?? null) : 0, stdout, stderr }),
    );
  });
}

describe('firn-dh command line', () => {
  let dir: string;
  beforeAll(() => {
    dir = tmpDir();
    requireBuiltBin();
  });
  afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

  test('--check-config accepts the example config and names the bad key otherwise', async () => {
    const ok = await run(['--config', path.resolve(__dirname, '../../config/dh.ini'), '--check-config']);
    expect(ok).toMatchObject({ code: 0, stdout: expect.stringMatching(/configuration OK/) });
    const bad = path.join(dir, 'bad.ini');
    fs.writeFileSync(bad, '[dh]\ntransfer_retries = -1\nschedule = */10 * * * * *\n');
    expect(await run(['--config', bad, '--check-config'])).toMatchObject({ code: 2, stderr: expect.stringMatching(/\[dh\] transfer_retries must be >= 0/) });
    expect(await run(['--config', path.resolve(__dirname, '../../config/dh.ini'), '--check-config'], { FIRN_DH_SCHEDULE: 'every minute' })).toMatchObject({
      code: 2, stderr: expect.stringMatching(/\[dh\] schedule is not a valid cron expression/),
    });
    expect(await run(['--config', path.join(dir, 'missing.ini'), '--check-config'])).toMatchObject({ code: 2, stderr: expect.stringMatching(/cannot read config file/) });
  });
});

describe.each(DB_KINDS)('firn-dh on its schedule on %s', (kind) => {
  let t: TestDb;
  let dir: string;
  beforeAll(async () => {
    t = await createTestDb(kind);
    dir = tmpDir();
  });
  afterAll(async () => {
    await t?.drop();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  test('in process: start() runs the cycles on each tick, stop() drains', async () => {
    const dh = new DhDaemon({ db: t.db, config: dhConfig({ schedule: '* * * * * *' }) });
    const f = await insertDataset(t.db, { jobs: 2, retry: { backoff_seconds: 0 }, status: (j) => (j === 0 ? TaskStatus.READYTOCOPY : TaskStatus.ERROR) });
    dh.start();
    try {
      await waitUntil(async () => (await taskRow(t.db, f.taskIds[0]![0]!)).status === 'OK', 10_000, 'data cycle');
      await waitUntil(async () => (await taskRow(t.db, f.taskIds[1]![0]!)).status === 'WAITING', 10_000, 'retry cycle');
      await waitUntil(async () => (await t.db('job').where({ id: f.jobIds[0]! }).first()).status === 'OK', 10_000, 'roll-up');
    } finally {
      await dh.stop();
    }
  });

  test('the bin runs until SIGTERM and then exits 0', async () => {
    requireBuiltBin();
    const ini = path.join(dir, 'dh.ini');
    fs.writeFileSync(ini, `[db]\nurl = ${t.url}\n[dh]\nschedule = * * * * * *\n[log]\nformat = json\n`);
    const f = await insertDataset(t.db, { jobs: 1, status: () => TaskStatus.READYTOCOPY });
    const log = path.join(dir, 'dh.log');
    const out = fs.openSync(log, 'w');
    const child = spawn(process.execPath, [DH_BIN, '--config', ini], { stdio: ['ignore', out, out] });
    fs.closeSync(out);
    const exit = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
    try {
      await waitUntil(async () => (await taskRow(t.db, f.taskIds[0]![0]!)).status === 'OK', 20_000, 'the task moved by the bin');
    } finally {
      child.kill('SIGTERM');
    }
    expect(await exit).toBe(0);
    const lines = fs.readFileSync(log, 'utf8').trim().split('\n').map((l) => JSON.parse(l) as { message: string; daemon?: string });
    expect(lines.map((l) => l.message)).toEqual(expect.arrayContaining(['firn-dh started', 'signal received: finishing the running cycles', 'firn-dh stopped']));
    expect(lines.filter((l) => l.message === 'firn-dh started')[0]?.daemon).toBe('dh');
  });
});
