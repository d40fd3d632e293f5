/**
 * Statistics count once per task under failing copies (issue 15 (a)): the four daemons as
 * processes on MariaDB (local plugin, real pilots), a 20-job DAG (gen → det, 40 tasks) whose
 * modules each write a ledger line and statistics to $FIRN_STATS — one of them a random value
 * per run, so a run counted twice or a failed attempt's run counted at all changes the sums —
 * and each task one permanent output under a destination directory that refuses writes for
 * ~30 s. Copies fail (COPYING → ERROR), the tasks run again, the destination comes back, the
 * dataset is COMPLETE and every dataset_stat n/sum equals what the ledger's successful runs
 * (the last run of each task) wrote.
 *
 * Refusing writes as root: the tests run as root, which ignores permission bits (chmod 0555
 * stops nobody). `chattr +i` (the immutable attribute, honoured even for root: EPERM on every
 * create inside) works on this machine's ext4 /tmp and is what the test uses; where the
 * filesystem has no such attribute (tmpfs, overlayfs), the destination directory is moved
 * aside and a plain file put at its path for the duration (ENOTDIR on every create below it).
 */
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { E2eSuite } from '../e2e/harness';

const JOBS = 20;
const OUTAGE_MS = 30_000;

/** Each module run: a ledger line with the run's random value, the value and a count as statistics, one output file. */
function dataset(ledger: string, dest: string): Record<string, unknown> {
  const task = (name: string, depends: string[]) => ({
    name,
    ...(depends.length ? { depends } : {}),
    requirements: { cpu: 1, memory: 200, time: 5 },
    data: [{ local: 'out.txt', remote: `file://${dest}/$(dataset)/${name}_$(job).txt`, movement: 'output', type: 'permanent' }],
    trays: [{
      name: 't',
      modules: [{
        name: 'm',
        class: 'shell',
        parameters: {
          // backticks, not $(…): $(…) is a dataset expression
          command: `v=\`od -An -N2 -tu2 /dev/urandom | tr -d ' '\`; echo "run $FIRN_DATASET $FIRN_TASK_ID $v" >> ${ledger}; echo "$v" > out.txt; echo "value $v" >> "$FIRN_STATS"; echo "runs 1" >> "$FIRN_STATS"`,
        },
      }],
    }],
  });
  return {
    version: 1,
    description: 'faults: statistics once through failing copies',
    retry: { max_failures: 60, max_evictions: 2, backoff_seconds: 1, backoff_max_seconds: 2 },
    tasks: [task('gen', []), task('det', ['gen'])],
  };
}

/** Make `dir` refuse every create (as root too) until the returned function restores it. */
function refuseWrites(dir: string): { how: string; restore: () => void } {
  const r = spawnSync('chattr', ['+i', dir], { encoding: 'utf8' });
  if (r.status === 0) {
    return { how: 'chattr +i', restore: () => void spawnSync('chattr', ['-i', dir]) };
  }
  const aside = `${dir}.aside`;
  fs.renameSync(dir, aside);
  fs.writeFileSync(dir, 'not a directory\n');
  return {
    how: 'a file in its place',
    restore: () => {
      if (fs.existsSync(aside)) {
        fs.rmSync(dir, { force: true });
        fs.renameSync(aside, dir);
      }
    },
  };
}

let s: E2eSuite;
let ledger: string;
let dest: string;
let restore: (() => void) | null = null;

beforeAll(async () => {
  s = await E2eSuite.create({ name: 'stats-once', queue: { plugin: 'local', extra: { concurrency: 6 } }, dh: { transfer_retries: 1 } });
  ledger = path.join(s.dir, 'ledger');
  dest = path.join(s.dir, 'dest');
  fs.mkdirSync(dest);
  await s.guard(() => s.startAll());
}, 120_000);
afterAll(async () => {
  restore?.();
  await s?.close();
}, 60_000);

test('a destination refusing writes for 30 s: COMPLETE, every dataset_stat n/sum exactly the ledger\'s successful runs', async () => {
  await s.guard(async () => {
    const refused = refuseWrites(dest);
    restore = refused.restore;
    const since = Date.now();
    const { dataset_id } = await s.submit(dataset(ledger, dest), JOBS);
    // the outage bites: copies fail and tasks go back to run again
    await s.waitFor(async () => (await s.db.db('history').where({ entity: 'task', dataset_id, from_status: 'COPYING', to_status: 'ERROR' })).length >= 3, 60_000, 'failed copies');
    await new Promise((r) => setTimeout(r, Math.max(0, since + OUTAGE_MS - Date.now())));
    refused.restore();
    restore = null;

    const st = await s.waitForDataset(dataset_id, ['COMPLETE'], 180_000);
    expect(Object.fromEntries(Object.entries(st.tasks).filter(([, n]) => n > 0))).toEqual({ OK: 2 * JOBS });
    const tasks = (await s.db.db('task').select('id', 'failures', 'evictions').where('dataset_id', dataset_id)) as Array<{ id: number; failures: number; evictions: number }>;
    expect(tasks).toHaveLength(2 * JOBS);
    const copyFailures = await s.db.db('history').where({ entity: 'task', dataset_id, from_status: 'COPYING', to_status: 'ERROR' });
    expect(copyFailures.length).toBeGreaterThanOrEqual(3);

    // the ledger: every run of every task; the last run of a task is the one that reached OK
    const runs = fs.readFileSync(ledger, 'utf8').trim().split('\n').map((l) => l.split(' ')).filter((w) => w[0] === 'run' && w[1] === String(dataset_id));
    const last = new Map<number, number>();
    const count = new Map<number, number>();
    for (const [, , task, value] of runs) {
      last.set(Number(task), Number(value));
      count.set(Number(task), (count.get(Number(task)) ?? 0) + 1);
    }
    expect([...last.keys()].sort((a, b) => a - b)).toEqual(tasks.map((t) => Number(t.id)).sort((a, b) => a - b));
    // some tasks ran more than once (their copies failed): the case the test is about
    expect([...count.values()].filter((n) => n > 1).length).toBeGreaterThan(0);
    // one run per attempt: each extra run is a failure (its copy) or an eviction of that task
    expect(runs.length).toBe(2 * JOBS + tasks.reduce((n, t) => n + Number(t.failures) + Number(t.evictions), 0));

    const values = [...last.values()];
    const stats = (await s.db.db('dataset_stat').select('name', 'n', 'sum', 'min', 'max').where('dataset_id', dataset_id).whereIn('name', ['value', 'runs']).orderBy('name')) as Array<{ name: string; n: number; sum: number; min: number; max: number }>;
    expect(stats.map((r) => [r.name, Number(r.n), Number(r.sum), Number(r.min), Number(r.max)])).toEqual([
      ['runs', 2 * JOBS, 2 * JOBS, 1, 1],
      ['value', 2 * JOBS, values.reduce((a, b) => a + b, 0), Math.min(...values), Math.max(...values)],
    ]);
    // every other statistic (cpu_seconds, …) counts each task once too
    for (const r of (await s.db.db('dataset_stat').select('name', 'n').where('dataset_id', dataset_id)) as Array<{ name: string; n: number }>) {
      expect([r.name, Number(r.n)]).toEqual([r.name, 2 * JOBS]);
    }
    // every output arrived once the destination was back
    for (const name of ['gen', 'det']) expect(fs.readdirSync(path.join(dest, String(dataset_id))).filter((f) => f.startsWith(`${name}_`))).toHaveLength(JOBS);
    console.log(`stats-once: writes refused by ${refused.how}; ${copyFailures.length} failed copies, ${runs.length} runs for ${2 * JOBS} tasks`);
  });
}, 240_000);
