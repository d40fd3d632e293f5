import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Option, type Command } from 'commander';
import { loadConfig, parseCapabilities, validateDatasetConfig, type FirnConfig } from '@firn/core';
import { PLUGIN_NAMES, pilotCommandOf, type PluginName, type PluginOptions } from '@firn/queue';
import { contextOf, output, parseIntArg, readJsonFile } from '../context';
import { CliError, ExitCode } from '../exit-codes';
import { defaultRunPilot } from '../unmonitored/pilot-command';
import { siteTempUrl } from '../unmonitored/plan';
import { readRunState } from '../unmonitored/run-state';
import { cancelRun, pluginFor, pollRun, startRun, verifyOutputs, waitRun, type RunStatus } from '../unmonitored/runner';
import { countsLine, renderSummary, summarize } from '../unmonitored/summary';

interface RunFlags {
  jobs?: number;
  plugin?: PluginName;
  config?: string;
  out?: string;
  dataset: number;
  detach?: boolean;
  status?: string;
  wait?: boolean;
  cancel?: string;
  pilot?: string;
  siteTemp?: string;
  gpus?: number;
  concurrency?: number;
  arg?: Record<string, string>;
  jobArgs?: string;
  poll: number;
  verify: boolean;
}

function collectArg(value: string, previous: Record<string, string> = {}): Record<string, string> {
  const i = value.indexOf('=');
  if (i <= 0) throw new CliError(`--arg expects KEY=VALUE, got ${JSON.stringify(value)}`, ExitCode.USAGE);
  return { ...previous, [value.slice(0, i)]: value.slice(i + 1) };
}

function positive(name: string): (v: string) => number {
  return (v: string) => {
    const n = Number(v);
    if (!Number.isFinite(n) || n <= 0) throw new CliError(`${name} must be a positive number, got ${JSON.stringify(v)}`, ExitCode.USAGE);
    return n;
  };
}

const HELP = `
Runs a dataset straight on a batch system: no database, no firn daemons. Each job becomes one
batch job (all jobs of equal requirements in one array) whose script runs the pilot in
unmonitored mode once per task, in dependency order; a task's outputs are copied to their
destinations (relative ones under the site temp directory) before the next task of the job
stages them as inputs. Reports (statistics, outputs with md5/sha256) land in
DIR/jobs/<job>/tasks/<task>/report.json; the summary sums the statistics of all jobs.

GPUs: a batch job asks for a GPU only when the site offers them (--gpus N, or gpu in the
--config's [queue] capabilities); otherwise GPU tasks run without one, with a warning.

Examples:
  firn run examples/datasets/dag-gpu.json --jobs 5 --plugin slurm
  firn run sim.json --jobs 100 --plugin slurm --config site.ini --detach --out runs/sim
  firn run --status runs/sim [--wait]      firn run --cancel runs/sim`;

/** Plugin options, pilot, scratch, site temp and GPUs from a site config file (INI). */
function siteConfig(file: string, env: Record<string, string | undefined>): { cfg: FirnConfig; options: Partial<PluginOptions>; gpus?: number } {
  let cfg: FirnConfig;
  try {
    cfg = loadConfig({ file, env });
  } catch (e) {
    throw new CliError(`--config ${file}: ${(e as Error).message}`);
  }
  const q = cfg.queue;
  if (q.ssh_host) throw new CliError(`--config ${file}: [queue] ssh_host is set, but firn run submits from this host (run it on the submit host)`);
  const options: Partial<PluginOptions> = {
    environment: { ...cfg.environment },
    ...(q.partition ? { partition: q.partition } : {}),
    ...(q.queue ? { queue: q.queue } : {}),
    ...(q.account ? { account: q.account } : {}),
    ...(q.extra_directives ? { extraDirectives: q.extra_directives.split(/[;\n]/).map((s) => s.trim()).filter(Boolean) } : {}),
    ...(q.grid ? { grid: q.grid } : {}),
    concurrency: q.concurrency,
  };
  let gpus: number | undefined;
  if (q.capabilities) gpus = parseCapabilities(q.capabilities).gpu;
  return { cfg, options, ...(gpus !== undefined ? { gpus } : {}) };
}

function jobArgsFrom(file: string): Array<Record<string, unknown>> {
  const data = readJsonFile(file);
  if (!Array.isArray(data) || data.some((a) => !a || typeof a !== 'object' || Array.isArray(a))) {
    throw new CliError(`--job-args ${file}: expected a JSON array with one object of $args per job`, ExitCode.USAGE);
  }
  return data as Array<Record<string, unknown>>;
}

function defaultOut(file: string): string {
  const stamp = new Date().toISOString().replace(/[-:]/g, '').replace(/\.\d+Z$/, 'Z');
  return path.resolve(`firn-run-${path.basename(file, '.json').replace(/[^A-Za-z0-9._-]/g, '_')}-${stamp}`);
}

/** Report a run's state (waiting first when asked); sets the exit code: 0 when every job is ok. */
async function report(cmd: Command, out: string, flags: Pick<RunFlags, 'wait' | 'poll' | 'verify'>): Promise<void> {
  const ctx = contextOf(cmd);
  const state = readRunState(out);
  const plugin = pluginFor(state, ctx.io.env);
  let status: RunStatus;
  let interrupted = false;
  try {
    if (flags.wait) {
      let last = '';
      const r = await waitRun(state, plugin, {
        pollMs: flags.poll * 1000,
        ...(ctx.interrupted ? { interrupted: ctx.interrupted } : {}),
        onPoll: (s) => {
          const line = `firn run: ${countsLine(s.counts)}${s.batchError ? ` (batch system: ${s.batchError})` : ''}`;
          if (line !== last) ctx.io.stderr.write(`${line}\n`);
          last = line;
        },
      });
      status = r;
      interrupted = r.interrupted;
    } else {
      status = await pollRun(state, plugin);
    }
  } finally {
    await plugin.close?.();
  }
  if (flags.verify) await verifyOutputs(status);
  const summary = summarize(out, state, status);
  output(cmd, summary, () => renderSummary(summary));
  if (interrupted) ctx.io.stderr.write(`firn run: stopped waiting; the jobs go on. Follow them with: firn run --status ${out} --wait\n`);
  const allOk = status.done && status.counts.ok === state.jobs.length;
  ctx.exitCode = allOk ? ExitCode.OK : ExitCode.ERROR;
  if (status.done && !allOk) ctx.io.stderr.write(`firn run: ${state.jobs.length - status.counts.ok} of ${state.jobs.length} jobs did not succeed\n`);
}

/** firn run FILE --jobs N … | firn run --status DIR | firn run --cancel DIR */
export function register(program: Command): void {
  program
    .command('run')
    .description('run a dataset directly on a batch system, without database or daemons (unmonitored)')
    .argument('[file]', 'dataset config (JSON)')
    .option('-n, --jobs <n>', 'number of jobs (indices 0 … n−1)', parseIntArg('--jobs', 1))
    .addOption(new Option('--plugin <plugin>', 'batch system (default: [queue] plugin of --config, else local)').choices([...PLUGIN_NAMES]))
    .option('--config <file>', 'site config (INI): [queue] partition, account, extra_directives, concurrency, capabilities; [system] pilot, scratch, site_temp; [environment]')
    .option('--out <dir>', 'run directory (default ./firn-run-<name>-<time>)')
    .option('--dataset <id>', 'value of $(dataset)', parseIntArg('--dataset', 0), 0)
    .option('--detach', 'submit and return; follow with --status DIR')
    .option('--status <dir>', 'show the state of a run (with --wait: until it ends)')
    .option('--wait', 'with --status: wait until every job has ended')
    .option('--cancel <dir>', 'remove the batch jobs of a run')
    .option('--pilot <command>', 'pilot command on the worker nodes (default: [system] pilot, else the built single executable, else node firn-pilot.js)')
    .option('--site-temp <dir>', 'directory (or file:// URL) where tasks stage outputs; relative destinations go under it (default DIR/site-temp)')
    .option('--gpus <n>', 'GPUs one batch slot offers (default: gpu of [queue] capabilities, else 0)', parseIntArg('--gpus', 0))
    .option('--concurrency <n>', 'local plugin: most jobs at once (default: number of CPUs)', parseIntArg('--concurrency', 1))
    .option('--arg <key=value>', 'a value of $args(key) for every job (repeat for several)', collectArg)
    .option('--job-args <file>', 'JSON array: the $args of each job (--jobs defaults to its length)')
    .option('--poll <seconds>', 'how often to look at the batch system while waiting', positive('--poll'), 2)
    .option('--no-verify', 'do not check the outputs against their sha256')
    .addHelpText('after', HELP)
    .action(async (file: string | undefined, flags: RunFlags, cmd: Command) => {
      const ctx = contextOf(cmd);
      if (flags.status || flags.cancel) {
        if (file) throw new CliError('give either FILE (a new run) or --status/--cancel DIR', ExitCode.USAGE);
        if (flags.cancel) {
          const out = path.resolve(flags.cancel);
          const state = readRunState(out);
          const plugin = pluginFor(state, ctx.io.env);
          try {
            const n = await cancelRun(out, state, plugin);
            output(cmd, { out, cancelled: n }, () => `firn run: removed ${n} batch job${n === 1 ? '' : 's'} of ${out}`);
          } finally {
            await plugin.close?.();
          }
          return;
        }
        await report(cmd, path.resolve(flags.status as string), flags);
        return;
      }
      if (!file) throw new CliError('missing the dataset config FILE (or --status DIR)', ExitCode.USAGE);
      if (flags.wait) throw new CliError('--wait goes with --status DIR (a new run waits unless --detach)', ExitCode.USAGE);

      const v = validateDatasetConfig(readJsonFile(file));
      if (!v.ok) throw new CliError(`${file}: invalid (${v.issues.length} problem${v.issues.length === 1 ? '' : 's'})`, ExitCode.ERROR, v.issues.map((i) => `  ${i.path || '/'}: ${i.message}`));

      const site = flags.config ? siteConfig(flags.config, ctx.io.env) : undefined;
      const jobArgs = flags.jobArgs ? jobArgsFrom(flags.jobArgs) : undefined;
      const jobs = flags.jobs ?? jobArgs?.length;
      if (!jobs) throw new CliError('--jobs N is required', ExitCode.USAGE);
      if (jobArgs && jobs > jobArgs.length) throw new CliError(`--jobs ${jobs} but --job-args has ${jobArgs.length} entries`, ExitCode.USAGE);

      const out = path.resolve(flags.out ?? defaultOut(file));
      if (fs.existsSync(path.join(out, 'run.json'))) throw new CliError(`${out} already holds a run: look at it with firn run --status ${out}, or choose another --out`, ExitCode.CONFLICT);
      const plugin: PluginName = flags.plugin ?? site?.cfg.queue.plugin ?? 'local';
      const pilot = flags.pilot ?? (site?.cfg.system.pilot ? pilotCommandOf(site.cfg.system.pilot) : null) ?? defaultRunPilot();
      if (!pilot) throw new CliError('no pilot found: build it (npm run build) or give --pilot COMMAND');
      let siteTemp: string;
      try {
        siteTemp = siteTempUrl(flags.siteTemp ?? site?.cfg.system.site_temp ?? path.join(out, 'site-temp'));
      } catch (e) {
        throw new CliError((e as Error).message, ExitCode.USAGE);
      }
      const fixedArgs = flags.arg ?? {};
      const pluginOptions: Partial<PluginOptions> = { ...site?.options, ...(flags.concurrency ? { concurrency: flags.concurrency } : {}) };

      let state;
      try {
        state = await startRun({
          source: file,
          config: v.config,
          out,
          jobs,
          dataset: flags.dataset,
          plugin,
          pluginOptions,
          pilot,
          siteTemp,
          ...(site?.cfg.system.scratch ? { scratch: site.cfg.system.scratch } : {}),
          siteGpus: flags.gpus ?? site?.gpus ?? 0,
          args: (j) => ({ ...(jobArgs?.[j] ?? {}), ...fixedArgs }),
          env: ctx.io.env,
        });
      } catch (e) {
        const hint = fs.existsSync(path.join(out, 'run.json')) ? ` (what was submitted: firn run --status ${out}; remove it: firn run --cancel ${out})` : '';
        throw new CliError(`${(e as Error).message}${hint}`);
      }
      for (const w of state.warnings) ctx.io.stderr.write(`firn run: warning: ${w}\n`);
      ctx.io.stderr.write(`firn run: submitted ${jobs} job${jobs === 1 ? '' : 's'} to ${plugin} (pilot ${pilot}); run directory ${out}\n`);
      if (flags.detach) {
        const local = plugin === 'local' && jobs > (pluginOptions.concurrency ?? os.availableParallelism());
        output(cmd, { out, plugin, jobs: state.jobs.map((j) => ({ index: j.index, batch_id: j.batch_id })) }, () =>
          `firn run: detached. Follow it with: firn run --status ${out} [--wait]` +
            (local ? '\nnote: the local plugin starts queued jobs only while a firn process watches them (firn run --status DIR --wait)' : ''));
        return;
      }
      await report(cmd, out, { wait: true, poll: flags.poll, verify: flags.verify });
    });
}
