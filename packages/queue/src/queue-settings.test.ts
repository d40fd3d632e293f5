import fs from 'node:fs';
import path from 'node:path';
import { ConfigError, LocalExecutor, loadConfig } from '@firn/core';
import { createPlugin } from './plugins';
import { defaultPilotCommand, queueSettings } from './queue-settings';

const settings = (queue: Record<string, unknown>, more: Record<string, Record<string, unknown>> = {}) =>
  queueSettings(loadConfig({ overrides: { queue, system: { pilot: '/opt/firn/firn-pilot', data: '/var/lib/firn' }, ...more } }));

describe('queueSettings', () => {
  test('defaults and derived values', () => {
    const s = settings({ grid: 'wisc', plugin: 'slurm', partition: 'debug', extra_directives: '#SBATCH --qos=low; #SBATCH --constraint=avx2' }, {
      mon: { url: 'https://mon.example.org:8581' }, environment: { X509_CERT_DIR: '/etc/grid-security/certificates' },
    });
    expect(s).toMatchObject({
      grid: 'wisc', plugin: 'slurm', schedule: '*/10 * * * * *', maxQueued: 100, maxSubmitPerCycle: 500, leaseMs: 300_000,
      submitDir: path.resolve('/var/lib/firn/queue/wisc'), capabilities: undefined, ssh: undefined,
    });
    expect(s.pluginOptions).toMatchObject({
      grid: 'wisc', monUrl: 'https://mon.example.org:8581', pilotCommand: '/opt/firn/firn-pilot', partition: 'debug',
      extraDirectives: ['#SBATCH --qos=low', '#SBATCH --constraint=avx2'], environment: { X509_CERT_DIR: '/etc/grid-security/certificates' },
    });
  });

  test('capabilities are parsed and checked', () => {
    expect(settings({ grid: 'g', capabilities: '{"cpu": 16, "gpu": 2, "site": "wisc"}' }).capabilities).toEqual({ cpu: 16, gpu: 2, site: 'wisc' });
    expect(() => settings({ grid: 'g', capabilities: '{"gpu": -1}' })).toThrow(/\[queue\] capabilities: .*\/gpu must be a non-negative number/);
    expect(() => settings({ grid: 'g', capabilities: '{"cores": 4}' })).toThrow(/\/cores is not a known capability/);
  });

  test('precise errors that name the key', () => {
    expect(() => settings({})).toThrow(new ConfigError('[queue] grid is required (the name of this site)'));
    expect(() => settings({ grid: 'g', schedule: 'every minute' })).toThrow(/\[queue\] schedule is not a valid cron expression/);
    expect(() => settings({ grid: 'g', ssh_host: 'login.example.org' })).toThrow('[queue] ssh_user is required when ssh_host is set');
    expect(() => settings({ grid: 'g', ssh_host: 'h', ssh_user: 'u' })).toThrow(/\[queue\] ssh_key/);
    expect(() => settings({ grid: 'g', ssh_host: 'h', ssh_user: 'u', ssh_key: '/nonexistent/key' })).toThrow('[queue] ssh_key /nonexistent/key is not a readable file');
    expect(() => settings({ grid: 'g', ssh_host: 'h', ssh_user: 'u', ssh_key: __filename, ssh_known_hosts: '/nonexistent/known_hosts' }))
      .toThrow('[queue] ssh_known_hosts /nonexistent/known_hosts is not a readable file');
  });

  test('ssh: an absolute remote submit_dir and an explicit pilot are required', () => {
    const key = __filename; // any readable file
    expect(() => settings({ grid: 'g', ssh_host: 'h', ssh_user: 'u', ssh_key: key })).toThrow(/submit_dir must be an absolute path on the submit host/);
    const s = settings({ grid: 'g', ssh_host: 'h', ssh_user: 'u', ssh_key: key, submit_dir: '/scratch/firn', ssh_port: 2222 });
    expect(s.ssh).toEqual({ host: 'h', port: 2222, user: 'u', keyFile: key, timeoutMs: 30_000 });
    expect(s.submitDir).toBe('/scratch/firn');
    expect(() => queueSettings(loadConfig({ overrides: { queue: { grid: 'g', ssh_host: 'h', ssh_user: 'u', ssh_key: key, submit_dir: '/x' } } })))
      .toThrow('[system] pilot is required when ssh_host is set (the pilot command as the worker nodes see it)');
  });

  test('the default pilot is the bundled one when it is installed', () => {
    const found = defaultPilotCommand();
    if (found) expect(found).toMatch(/^node \/.*firn-pilot\.js$/);
    else expect(() => queueSettings(loadConfig({ overrides: { queue: { grid: 'g' } } }))).toThrow(/\[system\] pilot is not set/);
  });
});

describe('the example configs config/queue-*.ini', () => {
  const dir = path.resolve(__dirname, '..', '..', '..', 'config');
  const files = fs.readdirSync(dir).filter((f) => /^queue-.*\.ini$/.test(f));

  test('there is one per plugin and one for ssh', () => {
    expect(files.sort()).toEqual(['queue-condor.ini', 'queue-local.ini', 'queue-pbs.ini', 'queue-sge.ini', 'queue-slurm.ini', 'queue-ssh.ini']);
  });

  test.each(files)('%s passes --check-config and builds its plugin', (file) => {
    const raw = loadConfig({ file: path.join(dir, file) });
    const overrides: Record<string, Record<string, unknown>> = {};
    // the example's key and known_hosts files do not exist here
    if (raw.queue.ssh_key) overrides.queue = { ssh_key: __filename, ...(raw.queue.ssh_known_hosts ? { ssh_known_hosts: __filename } : {}) };
    if (!raw.system.pilot && !defaultPilotCommand()) overrides.system = { pilot: '/opt/firn/firn-pilot' };
    const s = queueSettings(loadConfig({ file: path.join(dir, file), overrides }));
    const kind = file.replace(/^queue-|\.ini$/g, '');
    expect(kind === 'ssh' ? s.ssh?.host : s.plugin).toBe(kind === 'ssh' ? 'login.example.org' : kind);
    expect(s.capabilities).toBeDefined();
    expect(() => createPlugin(s.plugin, new LocalExecutor(), s.pluginOptions)).not.toThrow();
    if (kind === 'slurm') expect(s.pluginOptions.extraDirectives).toEqual(['#SBATCH --qos=normal', '#SBATCH --constraint=avx2']);
  });
});
