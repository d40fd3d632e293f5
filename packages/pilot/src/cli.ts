/**
 * firn-pilot command line. Thin: parse flags, build a Reporter (mon or report file), call
 * runPilot, map the outcome to an exit code.
 *
 *   firn-pilot --mon URL --task ID --passkey-file F [--scratch DIR] [--cache DIR] [--ca FILE] [--insecure]
 *   firn-pilot --unmonitored --config-file F --out DIR [--job N] [--dataset D] [--jobs-total T] [--task NAME]
 *   firn-pilot --worker [options]   (worker.ts)
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { PilotLogger } from './logger';
import { ExitCode, runPilot, type PilotOptions } from './pilot';
import { RpcClient } from './core-pure';
import { FileReporter, RpcReporter, type Reporter, type RpcReporterOptions } from './reporter';

export const VERSION = '0.1.0';

export const USAGE = `firn-pilot ${VERSION} — runs one Firn task on a worker node

Monitored (started by firn-queue):
  firn-pilot --mon URL --task ID --passkey-file FILE [options]

Unmonitored (no firn-mon; writes DIR/report.json):
  firn-pilot --unmonitored --config-file FILE --out DIR [--job N] [--dataset D]
             [--jobs-total T] [--task NAME] [--args JSON] [--site-temp URL] [options]

Worker (kept by firn-queue's local plugin; runs monitored tasks one after another,
each given as a JSON line on stdin; options are put before every task's own):
  firn-pilot --worker [options]

Options:
  --mon URL              firn-mon base URL (http:// or https://)
  --task ID|NAME         task id (monitored) or task name (unmonitored; default: first task)
  --passkey-file FILE    file holding the task's passkey
  --scratch DIR          parent of the task's scratch directory (default: $TMPDIR)
  --cache DIR            metaproject cache (default: <scratch>/firn-cache)
  --keep-scratch         do not remove the scratch directory at the end
  --ca FILE              PEM CA to trust for mon and https downloads
  --insecure             accept any TLS certificate (testing only)
  --ssh-key FILE         private key for sftp:// (default: FIRN_SSH_KEY, ~/.ssh/id_*)
  --ssh-known-hosts FILE known_hosts for sftp:// host keys (default: FIRN_SSH_KNOWN_HOSTS,
                         ~/.ssh/known_hosts; hosts not listed are refused)
  --ssh-accept-unknown-hosts
                         accept an sftp:// host known_hosts does not list (a warning is logged)
  --heartbeat SECONDS    heartbeat period (default: mon's; env FIRN_PILOT_HEARTBEAT_SECONDS)
  --retry-horizon SECONDS
                         how long the final report is kept and retried while mon cannot take
                         it (default: twice mon's heartbeat timeout, at least 600; env
                         FIRN_PILOT_RETRY_HORIZON_SECONDS)
  --log-level LEVEL      error | warn | info | debug (default info)
  -h, --help             this text
  --version              print the version

Exit codes: 0 task OK, 1 task failed (reported), 2 usage, 3 passkey refused by mon,
4 mon unreachable, 143 stopped by a signal.
`;

class UsageError extends Error {}

function int(name: string, v: string | undefined): number | undefined {
  if (v === undefined) return undefined;
  if (!/^-?\d+$/.test(v)) throw new UsageError(`--${name} must be an integer, got ${JSON.stringify(v)}`);
  return Number(v);
}

export interface CliIo {
  stdout: NodeJS.WritableStream;
  stderr: NodeJS.WritableStream;
  env: NodeJS.ProcessEnv;
  /** Stops the run (SIGTERM/SIGINT wiring lives in main.ts). */
  signal?: AbortSignal;
  /** Set by a pilot worker (`firn-pilot --worker`): what its tasks share. */
  worker?: WorkerShared;
}

/** What the tasks of one pilot worker share: a task area and keep-alive connections to mon. */
export interface WorkerShared {
  /** Name of the worker's task area under each task's scratch root (PilotOptions.reuseArea). */
  reuseArea: string;
  /** The task areas used so far (removed when the worker ends). */
  areas: Set<string>;
  /** Keep-alive agents by mon URL and TLS settings. */
  agents: Map<string, NonNullable<RpcReporterOptions['agent']>>;
}

/** Parse flags and run; resolves with the process exit code. */
export async function main(argv: string[], io: CliIo = { stdout: process.stdout, stderr: process.stderr, env: process.env }): Promise<number> {
  let values: Record<string, string | boolean | undefined>;
  try {
    values = parseArgs({
      args: argv,
      strict: true,
      allowPositionals: false,
      options: {
        mon: { type: 'string' },
        task: { type: 'string' },
        'passkey-file': { type: 'string' },
        scratch: { type: 'string' },
        cache: { type: 'string' },
        'keep-scratch': { type: 'boolean' },
        ca: { type: 'string' },
        insecure: { type: 'boolean' },
        'ssh-key': { type: 'string' },
        'ssh-known-hosts': { type: 'string' },
        'ssh-accept-unknown-hosts': { type: 'boolean' },
        heartbeat: { type: 'string' },
        'retry-horizon': { type: 'string' },
        'log-level': { type: 'string' },
        unmonitored: { type: 'boolean' },
        'config-file': { type: 'string' },
        out: { type: 'string' },
        job: { type: 'string' },
        dataset: { type: 'string' },
        'jobs-total': { type: 'string' },
        args: { type: 'string' },
        'site-temp': { type: 'string' },
        help: { type: 'boolean', short: 'h' },
        version: { type: 'boolean' },
      },
    }).values;
  } catch (e) {
    io.stderr.write(`firn-pilot: ${(e as Error).message}\n\n${USAGE}`);
    return ExitCode.USAGE;
  }
  if (values.help) {
    io.stdout.write(USAGE);
    return ExitCode.OK;
  }
  if (values.version) {
    io.stdout.write(`${VERSION}\n`);
    return ExitCode.OK;
  }
  const str = (k: string) => (typeof values[k] === 'string' ? (values[k] as string) : undefined);

  const level = str('log-level') ?? 'info';
  if (!['error', 'warn', 'info', 'debug'].includes(level)) {
    io.stderr.write(`firn-pilot: --log-level must be error, warn, info or debug, got ${JSON.stringify(level)}\n`);
    return ExitCode.USAGE;
  }
  const logger = PilotLogger.create({ stream: io.stderr, level: level as 'info' });

  let reporter: Reporter;
  let ca: Buffer | undefined;
  try {
    const caFile = str('ca');
    if (caFile) ca = fs.readFileSync(caFile);
    if (values.unmonitored) {
      const configFile = str('config-file');
      const out = str('out');
      if (!configFile) throw new UsageError('--unmonitored needs --config-file FILE');
      if (!out) throw new UsageError('--unmonitored needs --out DIR');
      let args: Record<string, unknown> | undefined;
      const argsText = str('args');
      if (argsText) {
        try {
          args = JSON.parse(argsText) as Record<string, unknown>;
        } catch {
          throw new UsageError('--args must be a JSON object');
        }
        if (!args || typeof args !== 'object' || Array.isArray(args)) throw new UsageError('--args must be a JSON object');
      }
      const job = int('job', str('job'));
      const dataset = int('dataset', str('dataset'));
      const jobsTotal = int('jobs-total', str('jobs-total'));
      const task = str('task');
      const siteTemp = str('site-temp');
      reporter = new FileReporter({
        configFile,
        outDir: path.resolve(out),
        ...(task !== undefined ? { taskName: task } : {}),
        ...(job !== undefined ? { job } : {}),
        ...(dataset !== undefined ? { dataset } : {}),
        ...(jobsTotal !== undefined ? { jobsTotal } : {}),
        ...(args ? { args } : {}),
        ...(siteTemp ? { siteTemp } : {}),
      });
    } else {
      const mon = str('mon');
      const taskId = int('task', str('task'));
      const passkeyFile = str('passkey-file');
      if (!mon) throw new UsageError('--mon URL is required (or --unmonitored)');
      if (!/^https?:\/\//.test(mon)) throw new UsageError(`--mon must be an http:// or https:// URL, got ${JSON.stringify(mon)}`);
      if (taskId === undefined || taskId < 1) throw new UsageError('--task ID (a positive integer) is required');
      if (!passkeyFile) throw new UsageError('--passkey-file FILE is required');
      let passkey: string;
      try {
        passkey = fs.readFileSync(passkeyFile, 'utf8').trim();
      } catch (e) {
        throw new UsageError(`cannot read --passkey-file: ${(e as Error).message}`);
      }
      if (!passkey) throw new UsageError('--passkey-file is empty');
      logger.addSecret(passkey);
      const backoffCap = Number(io.env.FIRN_PILOT_BACKOFF_MAX_SECONDS);
      const horizonText = str('retry-horizon') ?? io.env.FIRN_PILOT_RETRY_HORIZON_SECONDS;
      const horizon = horizonText !== undefined && horizonText !== '' ? Number(horizonText) : undefined;
      if (horizon !== undefined && !(Number.isFinite(horizon) && horizon > 0 && horizon <= 7 * 86400)) {
        throw new UsageError(`--retry-horizon (or FIRN_PILOT_RETRY_HORIZON_SECONDS) must be a number of seconds in (0, 604800], got ${JSON.stringify(horizonText)}`);
      }
      let agent: RpcReporterOptions['agent'];
      if (io.worker) {
        const key = JSON.stringify([mon, str('ca') ?? null, values.insecure === true]);
        agent = io.worker.agents.get(key);
        if (!agent) io.worker.agents.set(key, (agent = RpcClient.agentFor(mon, { ...(ca ? { ca } : {}), ...(values.insecure ? { insecure: true } : {}) })));
      }
      reporter = new RpcReporter({
        url: mon,
        taskId,
        passkey,
        logger,
        ...(ca ? { ca } : {}),
        ...(values.insecure ? { insecure: true } : {}),
        ...(agent ? { agent } : {}),
        ...(horizon !== undefined ? { retryHorizonMs: horizon * 1000 } : {}),
        ...(Number.isFinite(backoffCap) && backoffCap > 0 ? { backoff: { baseMs: 500, maxMs: backoffCap * 1000, jitter: 0.5 } } : {}),
      });
    }
  } catch (e) {
    if (e instanceof UsageError) {
      io.stderr.write(`firn-pilot: ${e.message}\n\nRun firn-pilot --help for usage.\n`);
      return ExitCode.USAGE;
    }
    io.stderr.write(`firn-pilot: ${(e as Error).message}\n`);
    return ExitCode.USAGE;
  }

  const hb = str('heartbeat');
  const heartbeat = hb !== undefined ? Number(hb) : undefined;
  if (heartbeat !== undefined && !(heartbeat > 0)) {
    io.stderr.write(`firn-pilot: --heartbeat must be a positive number of seconds, got ${JSON.stringify(hb)}\n`);
    return ExitCode.USAGE;
  }
  const scratch = str('scratch');
  const cache = str('cache');
  const sshKey = str('ssh-key');
  const knownHosts = str('ssh-known-hosts');
  const options: PilotOptions = {
    reporter,
    logger,
    env: io.env,
    ...(scratch ? { scratchRoot: scratch } : {}),
    ...(cache ? { cacheDir: cache } : {}),
    ...(values['keep-scratch'] ? { keepScratch: true } : {}),
    ...(heartbeat !== undefined ? { heartbeatSeconds: heartbeat } : {}),
    ...(io.signal ? { signal: io.signal } : {}),
    ...(io.worker ? { reuseArea: io.worker.reuseArea } : {}),
    stager: {
      ...(ca ? { ca } : {}),
      ...(values.insecure ? { insecure: true } : {}),
      sftp: {
        ...(sshKey ? { privateKeyPath: sshKey } : {}),
        ...(knownHosts ? { knownHostsFile: knownHosts } : {}),
        ...(values['ssh-accept-unknown-hosts'] || io.env.FIRN_SSH_ACCEPT_UNKNOWN_HOSTS === '1' ? { acceptUnknownHosts: true } : {}),
      },
    },
  };
  if (io.worker && !values['keep-scratch']) io.worker.areas.add(path.resolve(scratch ?? os.tmpdir(), io.worker.reuseArea));
  const outcome = await runPilot(options);
  if (reporter instanceof FileReporter && outcome.exitCode !== ExitCode.USAGE) {
    io.stderr.write(`firn-pilot: report written to ${reporter.reportPath}\n`);
  }
  return outcome.exitCode;
}
