import os from 'node:os';
import { ConfigError } from '@firn/core';
import { FakeExecutor } from './fake-executor';
import {
  CondorPlugin, LocalPlugin, PLUGIN_NAMES, PbsPlugin, SgePlugin, SlurmPlugin, createPlugin, gridJobPrefix, gridTag, isPluginName, jobNameFor, taskIdFromJobName,
  type PluginName, type PluginOptions,
} from './index';

const options: PluginOptions = {
  grid: 'g',
  monUrl: 'http://mon:8081/rpc',
  pilotCommand: 'firn-pilot',
  environment: {},
  submitDir: '/tmp/firn-index-test',
};

describe('createPlugin', () => {
  it('builds every plugin by name', () => {
    const ex = new FakeExecutor();
    const expected = { local: LocalPlugin, slurm: SlurmPlugin, pbs: PbsPlugin, sge: SgePlugin, condor: CondorPlugin };
    for (const name of PLUGIN_NAMES) {
      const p = createPlugin(name, ex, options);
      expect(p).toBeInstanceOf(expected[name]);
      expect(p.name).toBe(name);
    }
    expect(ex.calls).toEqual([]);
  });
  it('names the valid plugins when given an unknown one', () => {
    expect(() => createPlugin('lsf' as PluginName, new FakeExecutor(), options)).toThrow(
      new ConfigError('queue.plugin must be one of local, slurm, pbs, sge, condor; got "lsf"'),
    );
    expect(isPluginName('slurm')).toBe(true);
    expect(isPluginName('lsf')).toBe(false);
  });
  it('validates options up front', () => {
    expect(() => createPlugin('slurm', new FakeExecutor(), { ...options, monUrl: 'nope' })).toThrow(ConfigError);
    expect(() => createPlugin('local', new FakeExecutor(), { ...options, submitDir: undefined })).toThrow(ConfigError);
  });
  it('re-exports the interface', () => {
    expect(jobNameFor(12)).toBe('firn-12');
    expect(taskIdFromJobName('firn-12')).toBe(12);
    expect(taskIdFromJobName('firn-g-12')).toBeNull();
  });
  it('only the local plugin names its one worker host (this machine)', () => {
    const ex = new FakeExecutor();
    expect(createPlugin('local', ex, options).workerHost).toBe(os.hostname());
    for (const name of ['slurm', 'pbs', 'sge', 'condor'] as const) expect(createPlugin(name, ex, options).workerHost).toBeUndefined();
  });
});

describe('gridTag', () => {
  it('keeps a plain name; sanitises and hashes any other, so that different grids never share a tag', () => {
    expect(gridTag('wisc_slurm.2')).toBe('wisc_slurm.2');
    expect(gridJobPrefix('wisc_slurm.2')).toBe('firn-wisc_slurm.2-');
    const odd = ['grid-s', 'grid s', 'grid/s', 'a'.repeat(33), 'a'.repeat(34), 'ünï', 'x'.repeat(190)];
    const tags = odd.map(gridTag);
    expect(new Set([...tags, gridTag('grid_s'), gridTag('grid_s_')]).size).toBe(odd.length + 2);
    for (const t of tags) {
      expect(t).toMatch(/^[A-Za-z0-9_.]{1,32}$/);
      expect(t).toMatch(/_[0-9a-f]{8}$/);
    }
    expect(gridTag('grid-s')).toBe('grid_s_f4868d29'); // stable: names of jobs already submitted depend on it
  });
});
