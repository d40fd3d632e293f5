/**
 * The real thing: the firn-dh bin as a child process, SIGKILLed in the middle of copying
 * large outputs, then started again. Every output must end at its destination exactly once,
 * verified, with nothing left behind. Needs the built bin (`npm test` builds first).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { TaskStatus, checksumFile } from '@firn/core';
import { PART_SUFFIX } from '@firn/dh';
import { createTestDb, DB_KINDS, waitUntil, type TestDb } from '../helpers/db';
import { DH_BIN, insertDataset, insertOutput, listFiles, randomFile, requireBuiltBin, taskHistory, taskRow, tmpDir } from './fixtures';

const FILES = 5;
const SIZE = 48 << 20;

beforeAll(requireBuiltBin);

function startDh(config: string, log: string): { child: ChildProcess; exit: Promise<{ code: number | null; signal: NodeJS.Signals | null }> } {
  const out = fs.openSync(log, 'a');
  const child = spawn(process.execPath, [DH_BIN, '--config', config, '--once'], { stdio: ['ignore', out, out] });
  const exit = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => child.on('exit', (code, signal) => resolve({ code, signal })));
  fs.closeSync(out);
  return { child, exit };
}

describe.each(DB_KINDS)('firn-dh SIGKILLed mid-copy on %s', (kind) => {
  let t: TestDb;
  let dir: string;
  beforeAll(async () => {
    t = await createTestDb(kind);
    dir = tmpDir('firn-dh-kill-');
  });
  afterAll(async () => {
    await t?.drop();
    if (dir) fs.rmSync(dir, { recursive: true, force: true });
  });

  test('restarted, it delivers every output exactly once, verified', async () => {
    const f = await insertDataset(t.db, { jobs: 1, tasks: [{ name: 'gen' }, { name: 'proc', depends: [0] }], status: (_j, i) => (i === 0 ? TaskStatus.READYTOCOPY : TaskStatus.IDLE) });
    const gen = { id: f.taskIds[0]![0]!, jobId: f.jobIds[0]!, datasetId: f.datasetId };
    const dest = path.join(dir, 'dest');
    const sums = [];
    for (let i = 0; i < FILES; i++) {
      const s = randomFile(path.join(dir, `temp/out${i}.i3`), SIZE);
      sums.push(s);
      await insertOutput(t.db, gen, { local: `out${i}.i3`, url: pathToFileURL(path.join(dest, `run/out${i}.i3`)).href, tempUrl: pathToFileURL(s.path).href, md5: s.md5, sha256: s.sha256, size: s.size });
    }
    const ini = path.join(dir, 'dh.ini');
    fs.writeFileSync(ini, `[db]\nurl = ${t.url}\n[dh]\ntransfer_retries = 1\nheartbeat_timeout = 600\ndestinations = ${pathToFileURL(dir).href}\n[system]\nsite_temp = ${pathToFileURL(dir).href}\n[log]\nlevel = debug\nformat = json\n`);

    // 1. start, and kill it once one output is recorded and the next is being written
    const first = startDh(ini, path.join(dir, 'dh-1.log'));
    let exited = false;
    void first.exit.then(() => (exited = true));
    await waitUntil(
      async () => {
        if (exited) throw new Error(`firn-dh finished before it could be killed:\n${fs.readFileSync(path.join(dir, 'dh-1.log'), 'utf8')}`);
        const verified = await t.db('file').where({ task_id: gen.id, state: 'VERIFIED' }).count({ n: '*' }).first();
        return Number(verified?.n) >= 1 && listFiles(dest).some((p) => p.endsWith(PART_SUFFIX));
      },
      60_000, 'a verified output and a partial copy', 5,
    );
    first.child.kill('SIGKILL');
    expect(await first.exit).toEqual({ code: null, signal: 'SIGKILL' });

    expect((await taskRow(t.db, gen.id)).status).toBe('COPYING');
    const states = await t.db('file').where({ task_id: gen.id }).pluck('state');
    expect(states).toContain('VERIFIED');
    expect(states).toContain('STAGED');

    // 2. start again: it takes the interrupted task up
    const second = startDh(ini, path.join(dir, 'dh-2.log'));
    const r = await second.exit;
    expect({ ...r, log: r.code === 0 ? '' : fs.readFileSync(path.join(dir, 'dh-2.log'), 'utf8') }).toEqual({ code: 0, signal: null, log: '' });

    expect((await taskRow(t.db, gen.id)).status).toBe('OK');
    expect((await taskRow(t.db, f.taskIds[0]![1]!)).status).toBe('WAITING');
    // exactly once: one file per output, no parts, checksums as staged
    expect(listFiles(dest)).toEqual(sums.map((_, i) => `run/out${i}.i3`).sort());
    for (const [i, s] of sums.entries()) {
      expect(await checksumFile(path.join(dest, `run/out${i}.i3`))).toEqual({ md5: s.md5, sha256: s.sha256, size: s.size });
    }
    const files = await t.db('file').where({ task_id: gen.id }).orderBy('id');
    expect(files.map((x) => x.state)).toEqual(Array(FILES).fill('VERIFIED'));
    expect(files.map((x) => x.temp_url)).toEqual(Array(FILES).fill(null));
    expect(listFiles(path.join(dir, 'temp'))).toEqual([]);
    expect((await taskHistory(t.db, gen.id)).map((h) => `${h.from_status}>${h.to_status}`)).toEqual(['READYTOCOPY>COPYING', 'COPYING>COPIED', 'COPIED>OK']);
  });
});
