/**
 * `shell`: `parameters.command` run by `/bin/sh -c` in the scratch directory, or
 * `parameters.args` (an array) exec'd directly.
 */
import { ModuleConfigError, runModuleProcess, type ModuleContext, type ModuleResult, type PilotModule } from './module';

export const shellModule: PilotModule = {
  className: 'shell',
  parameters: {
    command: { description: 'shell command line, run by /bin/sh -c in FIRN_SCRATCH' },
    args: { description: 'program and arguments (array), exec\'d without a shell' },
  },
  async execute(ctx: ModuleContext): Promise<ModuleResult> {
    return runModuleProcess(ctx, shellArgv(ctx));
  },
};

export function shellArgv(ctx: Pick<ModuleContext, 'parameters' | 'tray' | 'module'>): string[] {
  const { command, args } = ctx.parameters;
  const where = `${ctx.tray}/${ctx.module}`;
  if (command !== undefined && command !== null && command !== '') {
    if (typeof command !== 'string') throw new ModuleConfigError(`${where}: parameters.command must be a string`);
    return ['/bin/sh', '-c', command];
  }
  if (Array.isArray(args) && args.length) {
    if (!args.every((a) => typeof a === 'string' || typeof a === 'number')) {
      throw new ModuleConfigError(`${where}: parameters.args must be an array of strings`);
    }
    return args.map(String);
  }
  throw new ModuleConfigError(`${where}: a shell module needs parameters.command (string) or parameters.args (non-empty array)`);
}
