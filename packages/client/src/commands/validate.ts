import type { Command } from 'commander';
import { validateDatasetConfig } from '@firn/core';
import { output, readJsonFile } from '../context';
import { CliError, ExitCode } from '../exit-codes';

/** firn validate FILE — offline, no server needed. */
export function register(program: Command): void {
  program
    .command('validate')
    .description('check a dataset config without submitting it (every problem with its JSON path)')
    .argument('<file>', 'dataset config (JSON)')
    .action(async (file: string, _opts: unknown, cmd: Command) => {
      const r = validateDatasetConfig(readJsonFile(file));
      if (!r.ok) {
        // with --json the issues come as the error's data: {"error": {"code": "error", "message", "data": {valid, issues}}}
        throw Object.assign(
          new CliError(`${file}: invalid (${r.issues.length} problem${r.issues.length === 1 ? '' : 's'})`, ExitCode.ERROR,
            r.issues.map((i) => `  ${i.path || '/'}: ${i.message}`)),
          { data: { valid: false, issues: r.issues } },
        );
      }
      const s = r.summary;
      output(cmd, { valid: true, summary: s }, () => `valid: ${s.tasks} tasks, ${s.trays} trays, ${s.modules} modules`);
    });
}
