/**
 * `npm run demo`: the embedded suite runs the DAG example (generate → photon → detector) to
 * completion, with progress bars per state, then prints the dataset statistics, where the
 * outputs are, and the web monitor URL. Exits 0 on COMPLETE, 1 otherwise.
 */
import fs from 'node:fs';
import path from 'node:path';
import cliProgress from 'cli-progress';
import { RpcClient, createLogger, type Logger } from '@firn/core';
import { startEmbedded, EMBEDDED_GRID } from './suite';

export interface DemoOptions {
  dataDir: string;
  example: string;
  jobs: number;
  timeoutMs: number;
  out: NodeJS.WritableStream;
  logger?: Logger;
}

const STATES = ['IDLE', 'WAITING', 'QUEUEING', 'QUEUED', 'PROCESSING', 'READYTOCOPY', 'COPYING', 'COPIED', 'OK', 'ERROR', 'EVICTED', 'RESET', 'FAILED', 'SUSPENDED'];

export async function runDemo(o: DemoOptions): Promise<number> {
  const write = (s: string) => o.out.write(s);
  fs.rmSync(o.dataDir, { recursive: true, force: true });
  fs.mkdirSync(o.dataDir, { recursive: true, mode: 0o700 }); // before the log file is opened there
  const logger = o.logger ?? createLogger({ level: 'warn', format: 'text', file: path.join(o.dataDir, 'firn.log') });
  const started = Date.now();
  // The example's photon task asks for one GPU. The embedded local grid declares one so the
  // DAG runs here; the example's photon step is a CPU stand-in that needs no real GPU.
  const suite = await startEmbedded({
    dataDir: o.dataDir, trayPort: 0, monPort: 0, schedule: '* * * * * *', logger,
    capabilities: { cpu: 8, gpu: 1, memory: 16000, disk: 1_000_000, time: 1440 },
    env: {},
  });
  const client = new RpcClient(suite.trayUrl);
  let bars: cliProgress.MultiBar | null = null;
  try {
    const admin = suite.firstAdmin!;
    const { token } = await client.call<{ token: string }>('auth.login', { username: admin.username, password: admin.password });
    client.token = token;
    const config = JSON.parse(fs.readFileSync(o.example, 'utf8')) as Record<string, unknown>;
    const sub = await client.call<{ dataset_id: number; jobs: number; tasks: number }>('dataset.submit', {
      config, jobs: o.jobs, grids: [EMBEDDED_GRID], description: `demo: ${path.basename(o.example)}`,
    });
    write(`firn demo — embedded suite (SQLite + local executor) in ${o.dataDir}\n`);
    write(`submitted dataset ${sub.dataset_id}: ${sub.jobs} jobs × ${sub.tasks / sub.jobs} tasks (${path.relative(process.cwd(), o.example)})\n\n`);

    const tty = Boolean((o.out as NodeJS.WriteStream).isTTY);
    const barMap = new Map<string, cliProgress.SingleBar>();
    if (tty) {
      bars = new cliProgress.MultiBar(
        { format: ' {state} |{bar}| {value}/{total}', hideCursor: true, clearOnComplete: false, stream: o.out as NodeJS.WriteStream },
        cliProgress.Presets.shades_classic,
      );
    }
    let status = 'PROCESSING';
    let lastLine = '';
    const deadline = Date.now() + o.timeoutMs;
    for (;;) {
      const st = await client.call<{ status: string; tasks: Record<string, number> }>('dataset.status', { dataset_id: sub.dataset_id });
      status = st.status;
      const counts = STATES.map((s) => [s, st.tasks[s] ?? 0] as const).filter(([s, n]) => n > 0 || s === 'OK');
      if (bars) {
        for (const [s, n] of counts) {
          const label = s.padEnd(11);
          let b = barMap.get(s);
          if (!b) barMap.set(s, (b = bars.create(sub.tasks, n, { state: label })));
          b.update(n, { state: label });
        }
        for (const [s, b] of barMap) if (!counts.some(([c]) => c === s)) b.update(0);
      } else {
        const line = counts.map(([s, n]) => `${s} ${n}`).join('  ');
        if (line !== lastLine) write(`  [${((Date.now() - started) / 1000).toFixed(0).padStart(3)}s] ${line}\n`);
        lastLine = line;
      }
      if (status === 'COMPLETE' || status === 'ERRORS') break;
      if (Date.now() > deadline) break;
      await new Promise((r) => setTimeout(r, 500));
    }
    bars?.stop();
    bars = null;
    const seconds = ((Date.now() - started) / 1000).toFixed(1);
    write(`\ndataset ${sub.dataset_id}: ${status} after ${seconds} s\n`);
    if (status !== 'COMPLETE') {
      write(`the dataset did not complete; see ${path.join(o.dataDir, 'firn.log')} and \`firn status ${sub.dataset_id}\`\n`);
      return 1;
    }

    const { stats } = await client.call<{ stats: Record<string, { n: number; sum: number; mean: number; stddev: number; min: number; max: number }> }>('dataset.stats', { dataset_id: sub.dataset_id });
    write('\nstatistics (over all tasks):\n');
    const rows = Object.entries(stats).sort(([a], [b]) => a.localeCompare(b));
    const w = Math.max(4, ...rows.map(([k]) => k.length));
    write(`  ${'name'.padEnd(w)} ${['n', 'sum', 'mean', 'stddev', 'min', 'max'].map((h) => h.padStart(12)).join('')}\n`);
    const f = (x: number) => (Number.isInteger(x) ? String(x) : x.toPrecision(6));
    for (const [k, s] of rows) write(`  ${k.padEnd(w)} ${[s.n, s.sum, s.mean, s.stddev, s.min, s.max].map((x) => f(x).padStart(12)).join('')}\n`);

    const outputs: Array<{ url: string }> = await suite.db('file').select('url').where({ dataset_id: sub.dataset_id, kind: 'output', type: 'permanent' }).orderBy('url');
    const dirs = [...new Set(outputs.map((r) => path.dirname(r.url.replace(/^file:\/\//, ''))))];
    write(`\n${outputs.length} permanent outputs, verified by md5 + sha256, in:\n${dirs.map((d) => `  ${d}\n`).join('')}`);
    write(`\nweb monitor: run \`node packages/client/bin/firn up --data ${path.relative(process.cwd(), o.dataDir) || '.'}\` and open http://127.0.0.1:8581/datasets/${sub.dataset_id}\n`);
    // pages need a login ([mon] anonymous_read is off in the embedded mode too): the demo's admin
    write(`  log in as ${admin.username}, password ${admin.password} (created for this data directory; also for \`firn login http://127.0.0.1:8580 --username ${admin.username}\`)\n`);
    write(`log: ${path.join(o.dataDir, 'firn.log')}\n`);
    return 0;
  } finally {
    bars?.stop();
    client.close();
    await suite.close();
  }
}

/** Entry point of `npm run demo`. */
export function demoMain(argv = process.argv.slice(2)): void {
  const jobsArg = argv.find((a) => a.startsWith('--jobs='));
  const root = path.resolve(__dirname, '..', '..', '..', '..');
  runDemo({
    dataDir: path.resolve(process.env.FIRN_DEMO_DATA ?? path.join(process.cwd(), 'firn-data', 'demo')),
    example: path.join(root, 'examples', 'datasets', 'dag-gpu.json'),
    jobs: jobsArg ? Number(jobsArg.split('=')[1]) : 10,
    timeoutMs: 110_000,
    out: process.stdout,
  }).then(
    (code) => process.exit(code),
    (e: unknown) => {
      process.stderr.write(`demo failed: ${e instanceof Error ? e.message : String(e)}\n`);
      process.exit(1);
    },
  );
}
