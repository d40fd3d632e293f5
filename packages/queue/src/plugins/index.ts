/**
 * Batch-system plugins of firn-queue: the interface (plugin.ts) and a factory by name
 * (`[queue] plugin`).
 */
import { ConfigError, type Executor } from '@firn/core';
import { CondorPlugin } from './condor';
import { LocalPlugin } from './local';
import { PbsPlugin } from './pbs';
import type { BatchPlugin, PluginOptions } from './plugin';
import { SgePlugin } from './sge';
import { SlurmPlugin } from './slurm';

export * from './plugin';
export { shellJoin, shellQuote, splitCommandLine } from './shell-quote';
export { CondorPlugin, LocalPlugin, PbsPlugin, SgePlugin, SlurmPlugin };

export const PLUGIN_NAMES = ['local', 'slurm', 'pbs', 'sge', 'condor'] as const;
export type PluginName = (typeof PLUGIN_NAMES)[number];

export function isPluginName(name: string): name is PluginName {
  return (PLUGIN_NAMES as readonly string[]).includes(name);
}

/**
 * The plugin for `[queue] plugin`. Throws ConfigError for an unknown name or invalid options
 * (the message names the field).
 */
export function createPlugin(name: PluginName, executor: Executor, options: PluginOptions): BatchPlugin {
  switch (name) {
    case 'local':
      return new LocalPlugin(executor, options);
    case 'slurm':
      return new SlurmPlugin(executor, options);
    case 'pbs':
      return new PbsPlugin(executor, options);
    case 'sge':
      return new SgePlugin(executor, options);
    case 'condor':
      return new CondorPlugin(executor, options);
    default: {
      const unknown: string = name;
      throw new ConfigError(`queue.plugin must be one of ${PLUGIN_NAMES.join(', ')}; got ${JSON.stringify(unknown)}`);
    }
  }
}
