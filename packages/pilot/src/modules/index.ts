import type { ModuleConfig } from '../protocol';
import { externalModule } from './external';
import { ModuleConfigError, type PilotModule } from './module';
import { shellModule } from './shell';
import { tarballModule } from './tarball';
import { transferModule } from './transfer';

/** Built-in module classes by name. */
export const BUILTIN_MODULES: Readonly<Record<string, PilotModule>> = {
  shell: shellModule,
  transfer: transferModule,
  tarball: tarballModule,
};

/** The module implementation for a module config: a built-in class, or `external` when it has a `src`. */
export function moduleFor(config: ModuleConfig, where: string): PilotModule {
  if (config.src) return externalModule;
  const cls = config.class;
  if (!cls) throw new ModuleConfigError(`${where}: a module needs a class (${Object.keys(BUILTIN_MODULES).join(', ')}) or a src`);
  const m = Object.hasOwn(BUILTIN_MODULES, cls) ? BUILTIN_MODULES[cls] : undefined;
  if (!m) {
    throw new ModuleConfigError(`${where}: unknown module class ${JSON.stringify(cls)} (built-ins: ${Object.keys(BUILTIN_MODULES).join(', ')}; other classes need a src)`);
  }
  return m;
}

export * from './module';
export { shellModule, transferModule, tarballModule, externalModule };
export { argsOf, interpreterFor, splitWords } from './external';
export { shellArgv } from './shell';
