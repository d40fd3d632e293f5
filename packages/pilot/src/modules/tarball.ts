/**
 * `tarball`: `parameters.create` (archive name) from `parameters.path` (a path or list of
 * paths, default "."), compression chosen by the suffix (.tar.gz/.tgz, .tar.bz2, .tar.xz,
 * .tar); or `parameters.extract` (archive) into `parameters.path` (default "."), format
 * detected. Paths are relative to the scratch directory. Runs the system's tar as a module
 * process, so limits and CPU accounting apply.
 */
import fs from 'node:fs';
import path from 'node:path';
import { ModuleConfigError, runModuleProcess, stringParam, type ModuleContext, type ModuleResult, type PilotModule } from './module';

export const tarballModule: PilotModule = {
  className: 'tarball',
  parameters: {
    create: { description: 'archive to create (suffix selects compression)' },
    extract: { description: 'archive to extract' },
    path: { description: 'create: what to pack (string or array, default "."); extract: where to unpack (default ".")' },
  },
  async execute(ctx: ModuleContext): Promise<ModuleResult> {
    const create = stringParam(ctx, 'create');
    const extract = stringParam(ctx, 'extract');
    const where = `${ctx.tray}/${ctx.module}`;
    if (!!create === !!extract) throw new ModuleConfigError(`${where}: a tarball module needs exactly one of parameters.create or parameters.extract`);
    const p = ctx.parameters.path;
    if (create) {
      const paths = p === undefined || p === null || p === '' ? ['.'] : Array.isArray(p) ? p.map(String) : [String(p)];
      if (!paths.length) throw new ModuleConfigError(`${where}: parameters.path is empty`);
      const archive = path.resolve(ctx.scratch, create);
      fs.mkdirSync(path.dirname(archive), { recursive: true });
      // The archive may live inside what is being packed: leave it out.
      const rel = path.relative(ctx.scratch, archive);
      return runModuleProcess(ctx, ['tar', '-c', '-a', '-f', archive, `--exclude=./${rel}`, `--exclude=${rel}`, '--', ...paths]);
    }
    const dest = path.resolve(ctx.scratch, p === undefined || p === null || p === '' ? '.' : String(p));
    fs.mkdirSync(dest, { recursive: true });
    return runModuleProcess(ctx, ['tar', '-x', '-f', path.resolve(ctx.scratch, extract as string), '-C', dest]);
  },
};
