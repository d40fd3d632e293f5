import { ConfigError } from '@firn/core';
import { FakeExecutor } from './fake-executor';
import { CondorPlugin, LocalPlugin, PLUGIN_NAMES, PbsPlugin, SgePlugin, SlurmPlugin, createPlugin, isPluginName, jobNameFor, type PluginName, type PluginOptions } from './index';

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
  });
});
