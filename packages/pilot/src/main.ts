/** Process entry point of firn-pilot (and of the bundle): signals → abort, exit code. */
import { main } from './cli';
import { runWorker } from './worker';

const ac = new AbortController();
let signalled = 0;
for (const sig of ['SIGTERM', 'SIGINT'] as const) {
  process.on(sig, () => {
    signalled++;
    if (signalled > 1) process.exit(143);
    ac.abort(new Error(`received ${sig}`));
  });
}

const argv = process.argv.slice(2);
const run = argv.includes('--worker')
  ? runWorker(argv, { input: process.stdin, output: process.stdout, stderr: process.stderr, env: process.env, signal: ac.signal })
  : main(argv, { stdout: process.stdout, stderr: process.stderr, env: process.env, signal: ac.signal });

run.then(
  (code) => {
    process.exitCode = code;
    // Do not wait for stray timers or sockets: the work is done.
    setTimeout(() => process.exit(code), 200).unref();
  },
  (e: unknown) => {
    process.stderr.write(`firn-pilot: unexpected error: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}\n`);
    process.exit(70);
  },
);
