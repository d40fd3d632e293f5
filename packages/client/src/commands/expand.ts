import type { Command } from 'commander';
import { expandConfig, validateDatasetConfig, type DatasetConfig } from '@firn/core';
import { output, parseIntArg, readJsonFile } from '../context';
import { CliError, ExitCode } from '../exit-codes';

function collectArg(value: string, previous: Record<string, string> = {}): Record<string, string> {
  const i = value.indexOf('=');
  if (i <= 0) throw new CliError(`--arg expects KEY=VALUE, got ${JSON.stringify(value)}`, ExitCode.USAGE);
  return { ...previous, [value.slice(0, i)]: value.slice(i + 1) };
}

/** firn expand FILE --job N — the config as one job would see it (offline, no server needed). */
export function register(program: Command): void {
  program
    .command('expand')
    .description('evaluate the expressions of a dataset config for one job and print the result; what only a worker knows ($system, $args without --arg, $(iter)) is left as is')
    .argument('<file>', 'dataset config (JSON)')
    .requiredOption('-j, --job <n>', 'job index', parseIntArg('--job', 0))
    .option('--dataset <id>', 'dataset id for $(dataset)', parseIntArg('--dataset', 0), 0)
    .option('--jobs-total <n>', 'value of $(jobs_total) (default: job + 1)', parseIntArg('--jobs-total', 1))
    .option('--arg <key=value>', 'a value for $args(key) (repeat for several)', collectArg)
    .action(async (file: string, opts: { job: number; dataset: number; jobsTotal?: number; arg?: Record<string, string> }, cmd: Command) => {
      const raw = readJsonFile(file);
      const v = validateDatasetConfig(raw);
      if (!v.ok) {
        throw new CliError(`${file}: invalid`, ExitCode.ERROR, v.issues.map((i) => `  ${i.path || '/'}: ${i.message}`));
      }
      const config: DatasetConfig = v.config;
      const base = { dataset: opts.dataset, job: opts.job, jobs_total: opts.jobsTotal ?? opts.job + 1, ...(opts.arg ? { args: opts.arg } : {}) };
      let expanded: DatasetConfig;
      try {
        // steering and everything outside tasks with $(task) unset; each task with its own name
        expanded = expandConfig(config, base, { keepUnresolved: true });
        expanded.tasks = config.tasks.map((t, i) => expandConfig(config, { ...base, task: t.name }, { keepUnresolved: true }).tasks[i]!);
      } catch (e) {
        throw new CliError(`${file}: ${(e as Error).message}`, ExitCode.ERROR);
      }
      output(cmd, expanded, () => JSON.stringify(expanded, null, 2));
    });
}
