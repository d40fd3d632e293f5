/**
 * firn-dh killed with SIGKILL in the middle of copying a large output (its `.firn-part` is
 * at the destination), then restarted: it takes the COPYING tasks up again and every output
 * ends at its destination exactly once — no partial file left, one file row per output,
 * checksums verified (computed here from the bytes at the destination).
 */
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { E2eSuite, checksums } from './harness';

const JOBS = 2;
const MB = 1024 * 1024;
const SIZE = 200 * MB;
let s: E2eSuite;
let dest: string;

beforeAll(async () => {
  s = await E2eSuite.create({ name: 'dhkill', queue: { plugin: 'local', extra: { concurrency: 2 } } });
  dest = path.join(s.dir, 'dest');
  fs.mkdirSync(dest);
  await s.guard(() => s.startAll());
}, 90_000);
afterAll(async () => {
  await s?.close();
}, 60_000);

const parts = () => fs.readdirSync(dest).filter((f) => f.endsWith('.firn-part'));

test('SIGKILL during a copy, restart: every output at its destination exactly once, verified', async () => {
  await s.guard(async () => {
    const config = {
      version: 1,
      description: 'e2e: large permanent outputs, firn-dh killed while copying',
      tasks: [{
        name: 'big',
        requirements: { cpu: 1, memory: 1000, disk: 2000, time: 10 },
        data: [{ local: 'big.bin', remote: `file://${dest}/big_$(job).bin`, movement: 'output', type: 'permanent' }],
        trays: [{ name: 't', modules: [{ name: 'write', class: 'shell', parameters: { command: `head -c ${SIZE} /dev/urandom > big.bin` } }] }],
      }],
    };
    const { dataset_id: id } = await s.submit(config, JOBS);

    // wait for a partial copy at the destination, then kill firn-dh on the spot
    await s.waitFor(() => parts().length > 0 || !s.running('dh'), 120_000, 'firn-dh to start copying (a .firn-part at the destination)', 5);
    expect(s.running('dh')).toBe(true);
    const killed = await s.stop('dh', 'SIGKILL');
    expect(killed.signal).toBe('SIGKILL');
    const leftBehind = parts();
    expect(leftBehind.length).toBeGreaterThan(0); // killed mid-copy: the partial file is still there
    const copying = (await s.db.db('task').where({ dataset_id: id, status: 'COPYING' }).count({ n: '*' })) as Array<{ n: number }>;
    expect(Number(copying[0]!.n)).toBeGreaterThan(0);
    // whatever was renamed into place before the kill is complete
    for (const f of fs.readdirSync(dest).filter((n) => n.endsWith('.bin'))) expect(fs.statSync(path.join(dest, f)).size).toBe(SIZE);

    // restart: the COPYING tasks are taken up again
    await s.start('dh');
    const st = await s.waitForDataset(id, ['COMPLETE'], 120_000);
    expect(st.tasks.OK).toBe(JOBS);
    expect(fs.readFileSync(s.daemons.get('dh')!.log, 'utf8')).toMatch(/"message":"resuming interrupted copies"/);

    // exactly once: the destination holds the outputs and nothing else
    expect(fs.readdirSync(dest).sort()).toEqual(Array.from({ length: JOBS }, (_, j) => `big_${j}.bin`));
    const files = (await s.db.db('file').select('task_id', 'url', 'temp_url', 'state', 'size', 'md5', 'sha256').where({ dataset_id: id, kind: 'output' }).orderBy('url')) as Array<{
      task_id: number; url: string; temp_url: string | null; state: string; size: number; md5: string; sha256: string;
    }>;
    expect(files.map((f) => f.url)).toEqual(Array.from({ length: JOBS }, (_, j) => `file://${dest}/big_${j}.bin`));
    expect(new Set(files.map((f) => Number(f.task_id))).size).toBe(JOBS);
    for (const f of files) {
      expect([f.state, f.temp_url, Number(f.size)]).toEqual(['VERIFIED', null, SIZE]);
      expect(await checksums(fileURLToPath(f.url))).toEqual({ md5: f.md5, sha256: f.sha256, size: SIZE });
    }
    // and the staged copies in site temp are gone
    const stagedLeft: string[] = [];
    const walk = (d: string) => {
      for (const e of fs.readdirSync(d, { withFileTypes: true })) {
        const p = path.join(d, e.name);
        if (e.isDirectory()) walk(p);
        else if (fs.statSync(p).size >= SIZE) stagedLeft.push(p);
      }
    };
    walk(s.siteTemp);
    expect(stagedLeft).toEqual([]);

    // each task went READYTOCOPY → COPYING → COPIED → OK once: no second delivery
    const h = (await s.db.db('history').select('entity_id', 'from_status', 'to_status').where({ entity: 'task', dataset_id: id, action: 'transition' })) as Array<{ entity_id: number; from_status: string; to_status: string }>;
    for (const taskId of new Set(files.map((f) => Number(f.task_id)))) {
      const mine = h.filter((r) => Number(r.entity_id) === taskId).map((r) => `${r.from_status}>${r.to_status}`);
      for (const step of ['READYTOCOPY>COPYING', 'COPYING>COPIED', 'COPIED>OK']) expect(mine.filter((m) => m === step)).toHaveLength(1);
      expect(mine.filter((m) => m.endsWith('>ERROR'))).toHaveLength(0);
    }
  });
}, 240_000);
